"""``--executor dask`` on a LocalCluster of 2 worker processes: a batch through ``process`` gives the
local run's products, a burst through ``watch`` is done once per input, and a worker killed while
running a task costs neither an input nor a duplicate product."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from click.testing import CliRunner

distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed "
                                                        "(pip install 'image2[dask]')")

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from image2.cli.main import cli
from image2.synthetic import references as rf
from image2.synthetic.exposures import make_rate, write_association
from image2.watch.ledger import DONE, Ledger

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "memory_limit": "1.5GiB",
           "dashboard_address": ":0"}
SUBARRAY = {"SUBSTRT1": 101, "SUBSTRT2": 201, "SUBARRAY": "SUB160"}
SHAPE = (128, 160)
SINGLES = [f"jw01234001001_01101_0000{n}_nrcb1" for n in (4, 5, 6)]
ASSOCIATED = "jw01234001001_01101_00001_nrcb1"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(**CLUSTER) as local:
        yield local


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-frame NIRCam NRCB1 references, read by the workers from the (shared) folder."""
    folder = tmp_path_factory.mktemp("refs")
    rf.make_flat(folder / "jwst_nircam_flat_0001.fits", detector="NRCB1")
    rf.make_photom(folder / "jwst_nircam_photom_0001.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_area(folder / "jwst_nircam_area_0001.fits", detector="NRCB1")
    rf.make_distortion(folder / "jwst_nircam_distortion_0001.asdf", detector="NRCB1")
    rf.make_filteroffset(folder / "jwst_nircam_filteroffset_0001.asdf", detector="NRCB1")
    return folder


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """An association (science + 2 backgrounds) and three single rate files."""
    folder = tmp_path_factory.mktemp("batch")
    make_rate(folder / "sci_rate.fits", shape=SHAPE, primary=SUBARRAY)
    make_rate(folder / "bkg1_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=2)
    make_rate(folder / "bkg2_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=3)
    association = write_association(folder / "jw01234_image2_asn.json", [{"name": ASSOCIATED, "members": [
        {"expname": "sci_rate.fits", "exptype": "science"},
        {"expname": "bkg1_rate.fits", "exptype": "background"},
        {"expname": "bkg2_rate.fits", "exptype": "background"}]}])
    singles = [make_rate(folder / f"{name}_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=10 + i)
               for i, name in enumerate(SINGLES)]
    return [association, *singles]


@pytest.fixture(scope="module")
def local_products(tmp_path_factory: pytest.TempPathFactory, batch: list[Path], refs: Path) -> Path:
    """The batch calibrated here, without any executor: what every cluster run must reproduce."""
    out = tmp_path_factory.mktemp("local")
    result = invoke("process", *batch, "--refs", refs, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def invoke(*args: object) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _asdf_parts(hdu: fits.BinTableHDU) -> tuple[bytes, bytes]:
    """The ASDF tree's ``meta`` text and its binary blocks (its ``history`` lists software in load order)."""
    raw = hdu.data["ASDF_METADATA"][0].tobytes()
    end = raw.index(b"\n...\n")
    return raw[raw.index(b"\nmeta:"):end], raw[end:]


def assert_same_product(a: Path, b: Path) -> None:
    """Same HDUs, same header cards (but the DATE of writing), arrays identical byte for byte."""
    with fits.open(a) as first, fits.open(b) as second:
        assert [h.name for h in first] == [h.name for h in second]
        for one, other in zip(first, second):
            if one.name == "ASDF":
                assert _asdf_parts(one) == _asdf_parts(other)
                continue
            cards = [[(c.keyword, c.value) for c in hdu.header.cards if c.keyword != "DATE"] for hdu in (one, other)]
            assert cards[0] == cards[1], (a.name, one.name)
            if one.data is not None:
                assert one.data.dtype == other.data.dtype and one.data.tobytes() == other.data.tobytes(), one.name


def assert_products_match(out: Path, expected: Path) -> None:
    names = sorted(p.name for p in expected.glob("*.fits"))
    assert names == sorted(f"{root}_{kind}.fits" for root in (ASSOCIATED, *SINGLES) for kind in ("cal", "i2d"))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == names
    for name in names:
        assert_same_product(out / name, expected / name)


def stores_built() -> int:
    """How many reference stores this worker built (it should have chosen no reference itself)."""
    module = sys.modules.get("image2.run.references")
    return module._reference_source.cache_info().currsize if module is not None else 0


def test_a_batch_on_the_cluster_gives_the_local_products(tmp_path: Path, batch: list[Path], refs: Path,
                                                         local_products: Path, cluster: LocalCluster) -> None:
    out = tmp_path / "out"
    result = invoke("process", *batch, "--refs", refs, "-o", out, "--executor", "dask",
                    "--scheduler", cluster.scheduler_address, "-q")
    assert result.exit_code == 0, result.output
    assert "done 4, skipped 0, failed 0" in result.output
    assert_products_match(out, local_products)
    assert fits.getheader(out / f"{SINGLES[0]}_cal.fits")["R_FLAT"] == "crds://jwst_nircam_flat_0001.fits"
    assert "process_input" in cluster.scheduler.task_prefixes
    with Client(cluster) as client:
        assert set(client.run(stores_built).values()) == {0}  # the coordinator chose, the workers only read

    again = invoke("process", *batch, "--refs", refs, "-o", out, "--executor", "dask",
                   "--scheduler", cluster.scheduler_address, "-q")
    assert again.exit_code == 0 and "done 0, skipped 4, failed 0" in again.output  # kept, as locally


class KillOnce(WorkerPlugin):
    """Kills its worker process at one transition of the first ``process_input`` task to reach it, once."""

    def __init__(self, marker: Path, finish: str, start: str | None = None) -> None:
        self.marker = str(marker)
        self.finish = finish
        self.start = start

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish != self.finish or self.start not in (None, start) or not str(key).startswith("process_input"):
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)


def _run_with_a_killed_worker(tmp_path: Path, batch: list[Path], refs: Path, plugin: KillOnce,
                              config: dict[str, Any]) -> Any:
    with dask.config.set(config), LocalCluster(**CLUSTER) as local, Client(local) as client:
        client.register_plugin(plugin, name="kill-once")
        return invoke("process", *batch, "--refs", refs, "-o", tmp_path / "out", "--executor", "dask",
                      "--scheduler", local.scheduler_address, "-q")


def test_a_worker_killed_after_publishing_costs_no_input_and_no_duplicate(tmp_path: Path, batch: list[Path],
                                                                          refs: Path, local_products: Path) -> None:
    # No rerun by Dask itself (allowed-failures 0): the scheduler reports KilledWorker, image2 submits
    # again, and the new run finds the products the dead worker had published.
    plugin = KillOnce(tmp_path / "killed", finish="memory", start="executing")
    result = _run_with_a_killed_worker(tmp_path, batch, refs, plugin, {"distributed.scheduler.allowed-failures": 0})
    assert (tmp_path / "killed").exists()
    assert result.exit_code == 0, result.output
    assert "done 4, skipped 0, failed 0" in result.output
    listed = [line.strip() for line in result.output.splitlines() if line.startswith("    ")]  # under each input
    assert sorted(Path(line).name for line in listed) == sorted(p.name for p in local_products.glob("*.fits"))
    assert_products_match(tmp_path / "out", local_products)


def test_a_worker_killed_while_running_a_task_costs_no_input_and_no_duplicate(tmp_path: Path, batch: list[Path],
                                                                              refs: Path, local_products: Path) -> None:
    # Dask notices the lost worker and runs the task again elsewhere (allowed-failures at its default).
    plugin = KillOnce(tmp_path / "killed", finish="executing")
    result = _run_with_a_killed_worker(tmp_path, batch, refs, plugin, {})
    assert (tmp_path / "killed").exists()
    assert result.exit_code == 0, result.output
    assert "done 4, skipped 0, failed 0" in result.output
    assert_products_match(tmp_path / "out", local_products)


def wait_until(condition: Callable[[], object], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_a_burst_through_watch_on_the_cluster_is_done_once_per_input(tmp_path: Path, refs: Path,
                                                                     local_products: Path, batch: list[Path],
                                                                     cluster: LocalCluster) -> None:
    inbox, out, staging = tmp_path / "in", tmp_path / "out", tmp_path / "staging"
    for folder in (inbox, out, staging):
        folder.mkdir()
    log_path = tmp_path / "watch.log"
    with open(log_path, "w") as log:
        watch = subprocess.Popen([sys.executable, "-m", "image2", "--log-format", "json", "watch", str(inbox),
                                  "-o", str(out), "--refs", str(refs), "--settle", "0.3", "--heartbeat", "1",
                                  "--executor", "dask", "--scheduler", cluster.scheduler_address],
                                 cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: '"scan"' in log_path.read_text())
        sources = [p for p in batch if p.name.endswith("_rate.fits")]
        for source in sources:  # the burst: each lands whole, by rename
            (staging / source.name).write_bytes(source.read_bytes())
        for source in sources:
            os.replace(staging / source.name, inbox / source.name)

        def all_done() -> bool:
            ledger = Ledger.in_folder(out, readonly=True)
            try:
                return all((item := ledger.latest(inbox / s.name)) is not None and item.state == DONE for s in sources)
            finally:
                ledger.close()

        wait_until(all_done)
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(120)
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert code == 0, log_path.read_text()[-3000:]
    ledger = Ledger.in_folder(out, readonly=True)
    try:
        for source in sources:
            item = ledger.latest(inbox / source.name)
            assert (item.state, item.attempts) == (DONE, 1)
            named = [e["event"] for e in events if e.get("file") == str(inbox / source.name)
                     and e["event"] in ("running", "done")]
            assert named == ["running", "done"], source.name
    finally:
        ledger.close()
    for name in SINGLES:
        for kind in ("cal", "i2d"):
            assert_same_product(out / f"{name}_{kind}.fits", local_products / f"{name}_{kind}.fits")
    assert "run_task" in cluster.scheduler.task_prefixes  # the daemon's tasks ran on the cluster
    with Client(cluster) as client:
        assert set(client.run(stores_built).values()) == {0}  # the daemon chose, the workers only read
