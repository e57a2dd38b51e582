"""Executors without a cluster: the local pool, bounded retries of lost tasks, coordinator-chosen
references, how a repeated task's products are counted, and that Dask stays out unless asked for."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli
from image2.cli.process import settled
from image2.io.refs.selection import Choice
from image2.run.executors import (
    ExecutorUnavailable,
    finished,
    lost_worker,
    make_executor,
    process_pool,
    stop_executor,
    worker_exits,
)
from image2.run.options import RunOptions
from image2.run.process import process_input
from image2.run.references import with_reference_choices
from image2.run.results import ProductResult
from image2.synthetic import references as rf
from image2.synthetic.exposures import make_rate

REPO = Path(__file__).resolve().parents[1]
SUBARRAY = {"SUBSTRT1": 101, "SUBSTRT2": 201, "SUBARRAY": "SUB160"}
SHAPE = (128, 160)


def _square(value: int) -> int:
    return value * value


def test_the_local_executor_runs_calls_in_worker_processes() -> None:
    with make_executor("local", 2) as pool:
        assert isinstance(pool, concurrent.futures.ProcessPoolExecutor)
        ends = sorted((end.args, end.result, end.attempts) for end in finished(pool, _square, [(3,), (4,)]))
    assert ends == [((3,), 9, 1), ((4,), 16, 1)]


def test_unknown_executors_and_a_scheduler_without_dask_are_refused() -> None:
    with pytest.raises(ExecutorUnavailable, match="unknown executor 'slurm'"), make_executor("slurm", 1):
        pass
    with pytest.raises(ExecutorUnavailable, match="--scheduler needs --executor dask"), \
            make_executor("local", 1, "tcp://head:8786"):
        pass


class Flaky:
    """A call that loses its worker (as a cluster reports it) the first ``losses`` times, then answers."""

    def __init__(self, losses: int, error: type[BaseException] = concurrent.futures.CancelledError) -> None:
        self.losses = losses
        self.error = error
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, value: int) -> int:
        with self.lock:
            self.calls += 1
            if self.calls <= self.losses:
                raise self.error("worker lost")
        return value + 1


def test_a_call_whose_worker_was_lost_is_run_again_a_bounded_number_of_times() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        flaky = Flaky(losses=2)
        [end] = list(finished(pool, flaky, [(1,)], retries=2))
        assert (end.result, end.error, end.attempts, flaky.calls) == (2, None, 3, 3)

        flaky = Flaky(losses=5)
        [end] = list(finished(pool, flaky, [(1,)], retries=2))
        assert isinstance(end.error, concurrent.futures.CancelledError) and end.attempts == 3 and flaky.calls == 3

        flaky = Flaky(losses=1, error=ValueError)  # the task's own error: not retried
        [end] = list(finished(pool, flaky, [(1,)], retries=2))
        assert isinstance(end.error, ValueError) and (end.attempts, flaky.calls) == (1, 1)


def test_only_lost_workers_count_as_lost() -> None:
    assert lost_worker(concurrent.futures.CancelledError())
    assert not lost_worker(ValueError("bad data")) and not lost_worker(OSError("disk full"))


def _done(folder: Path, name: str, *suffixes: str) -> ProductResult:
    return ProductResult(folder / f"{name}_rate.fits", name, "done", tuple(folder / f"{name}{s}" for s in suffixes))


def _skipped(folder: Path, name: str) -> ProductResult:
    return ProductResult(folder / f"{name}_rate.fits", name, "skipped", (folder / f"{name}_cal.fits",),
                         "exists already (use --overwrite)")


def test_products_of_a_lost_attempt_of_the_same_run_count_as_done(tmp_path: Path) -> None:
    for name in ("a_cal.fits", "a_i2d.fits", "b_cal.fits", "c_cal.fits", "c_i2d.fits"):
        (tmp_path / name).write_bytes(b"x")
    before = frozenset({"b_cal.fits"})  # b was there before the run; a and c were made during it
    results = [_skipped(tmp_path, "a"), _skipped(tmp_path, "b"), _done(tmp_path, "c", "_cal.fits", "_i2d.fits"),
               ProductResult(tmp_path / "other_asn.json", "c", "skipped", (tmp_path / "c_cal.fits",), "exists")]
    out = settled(results, before)
    assert [r.status for r in out] == ["done", "skipped", "done", "skipped"]
    assert out[0].outputs == (tmp_path / "a_cal.fits", tmp_path / "a_i2d.fits") and out[0].error is None
    assert out[1:] == results[1:]


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    rf.make_flat(folder / "jwst_nircam_flat_0001.fits", detector="NRCB1")
    rf.make_photom(folder / "jwst_nircam_photom_0001.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_distortion(folder / "jwst_nircam_distortion_0001.asdf", detector="NRCB1")
    return folder


def test_the_coordinator_chooses_references_from_headers_and_leaves_overrides_out(tmp_path: Path,
                                                                                  refs: Path) -> None:
    science = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=SHAPE, primary=SUBARRAY)
    options = RunOptions(output_dir=tmp_path / "out", reference_dirs=[refs], overrides={"photom": "N/A"})
    chosen = with_reference_choices(science, options)
    assert {reftype: choice.path for reftype, choice in chosen.references[str(science)].items()} == {
        "distortion": refs / "jwst_nircam_distortion_0001.asdf", "filteroffset": None,
        "flat": refs / "jwst_nircam_flat_0001.fits", "area": None}
    assert list(chosen.references) == [str(science)]
    assert all(choice.rejected == () for choice in chosen.references[str(science)].values())  # kept small
    assert with_reference_choices(science, RunOptions(output_dir=tmp_path, reference_dirs=[tmp_path / "gone"])
                                  ).references == {}


def test_an_ambiguous_choice_is_left_to_the_worker_which_reports_it(tmp_path: Path, refs: Path) -> None:
    rf.make_flat(refs / "jwst_nircam_flat_0002.fits", detector="NRCB1")
    science = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=SHAPE, primary=SUBARRAY)
    options = with_reference_choices(science, RunOptions(output_dir=tmp_path / "out", reference_dirs=[refs]))
    assert options.references == {}
    [result] = process_input(science, options)
    assert result.status == "failed" and "ambiguous FLAT selection" in result.error


def test_the_worker_reads_the_references_it_is_given_and_records_them_as_store_choices(tmp_path: Path,
                                                                                       refs: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other_flat = rf.make_flat(elsewhere / "jwst_nircam_flat_0777.fits", detector="NRCB1", value=2.0)
    science = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    options = RunOptions(output_dir=out, reference_dirs=[refs],
                         overrides={"filteroffset": "N/A", "photom": "N/A", "area": "N/A"},
                         references={str(science): {
                             "distortion": Choice("distortion", refs / "jwst_nircam_distortion_0001.asdf"),
                             "flat": Choice("flat", other_flat)}})
    [result] = process_input(science, options)
    assert result.status == "done", result.error
    header = fits.getheader(out / "jw01234001001_01101_00001_nrcb1_cal.fits")
    assert header["R_FLAT"] == "crds://jwst_nircam_flat_0777.fits"  # not the store's flat_0001
    assert header["S_FLAT"] == "COMPLETE" and header["S_PHOTOM"] == "SKIPPED"
    sci = fits.getdata(out / "jw01234001001_01101_00001_nrcb1_cal.fits", "SCI")
    flat = fits.getdata(other_flat, "SCI")[200:200 + SHAPE[0], 100:100 + SHAPE[1]]
    expected = fits.getdata(science, "SCI") / flat
    good = np.isfinite(sci)
    assert good.sum() > 0.9 * sci.size and (sci[good] == expected[good]).all()


def test_a_gap_in_the_choices_it_is_given_fails_the_exposure(tmp_path: Path, refs: Path) -> None:
    science = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=SHAPE, primary=SUBARRAY)
    options = RunOptions(output_dir=tmp_path / "out", reference_dirs=[refs],
                         references={str(science): {reftype: Choice(reftype) for reftype in (
                             "distortion", "filteroffset", "flat", "photom", "area")}})
    [result] = process_input(science, options)
    assert result.status == "failed"
    assert "no DISTORTION, FILTEROFFSET, FLAT, PHOTOM, AREA reference found" in result.error


def test_dask_asked_for_but_not_installed_is_a_usage_error_naming_the_extra(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without it gives
    monkeypatch.delitem(sys.modules, "image2.run.dask_cluster", raising=False)
    science = make_rate(tmp_path / "a_rate.fits")
    result = CliRunner().invoke(cli, ["process", str(science), "-o", str(tmp_path / "out"), "--executor", "dask"])
    assert result.exit_code == 2
    assert "pip install 'image2[dask]'" in result.output
    assert not (tmp_path / "out").exists()


def test_a_scheduler_without_the_dask_executor_is_a_usage_error(tmp_path: Path) -> None:
    science = make_rate(tmp_path / "a_rate.fits")
    result = CliRunner().invoke(cli, ["process", str(science), "--scheduler", "tcp://head:8786"])
    assert result.exit_code == 2 and "--scheduler needs --executor dask" in result.output


IMPORTS = """
import sys
from click.testing import CliRunner
import image2
from image2.cli.main import cli
declined = [arg for reftype in ("distortion", "filteroffset", "flat", "photom", "area")
            for arg in ("--ref", f"{reftype}=N/A")]
result = CliRunner().invoke(cli, ["process", *sys.argv[1:3], *declined, "-o", sys.argv[3], "--jobs", "2", "-q"])
assert result.exit_code == 0, result.output
print(sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed")))
"""


def test_image2_and_a_default_process_run_never_import_dask(tmp_path: Path) -> None:
    inputs = [make_rate(tmp_path / f"jw0{i}_rate.fits", seed=i) for i in (1, 2)]
    proc = subprocess.run([sys.executable, "-c", IMPORTS, *map(str, inputs), str(tmp_path / "out")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert len(list((tmp_path / "out").glob("*_cal.fits"))) == 2


def _killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_worker_exits_say_how_a_dead_worker_ended() -> None:
    pool = process_pool(2)
    try:
        assert worker_exits(pool, wait=0.0) == []
        with pytest.raises(BrokenProcessPool):
            pool.submit(_killed).result(timeout=120)
        assert worker_exits(pool) == ["killed by SIGKILL"]
    finally:
        stop_executor(pool, abandon=True)
    assert worker_exits(concurrent.futures.ThreadPoolExecutor(1)) == []
