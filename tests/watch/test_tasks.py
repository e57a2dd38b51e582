"""Task outcomes (done, failed, invalid, transient) and worker processes that die with the daemon."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from image2.run.options import RunOptions
from image2.run.process import process_input
from image2.run.results import Failure, FailureKind, ProductResult
from image2.synthetic.exposures import make_rate
from image2.watch import tasks
from image2.watch.tasks import BLOCKED, DONE, FAILED, INVALID, TRANSIENT, Task, run_task

REPO = Path(__file__).resolve().parents[2]


def _done(path: Path, options: RunOptions) -> list[ProductResult]:
    out = options.output_dir
    return [ProductResult(path, "a", "done", (out / "a_cal.fits", out / "a_i2d.fits")),
            ProductResult(path, "b", "skipped", (out / "b_cal.fits",), "exists already")]


def _fails(path: Path, options: RunOptions) -> list[ProductResult]:
    return [ProductResult(path, "a", "failed", (), "flat_field: reference does not fit",
                          failure=Failure(FailureKind.REFERENCE, "flat_field: reference does not fit"))]


def _invalid(path: Path, options: RunOptions) -> list[ProductResult]:
    return [ProductResult(path, "a", "failed", (), f"{path}: no SCI extension",
                          failure=Failure(FailureKind.INVALID_INPUT, "no SCI extension"))]


def _disk_full(path: Path, options: RunOptions) -> list[ProductResult]:
    return [ProductResult(path, "a", "failed", (), f"{path}: [Errno 28] No space left on device: 'x'",
                          failure=Failure(FailureKind.IO, "[Errno 28] No space left on device: 'x'", errno.ENOSPC))]


def _raises_enospc(path: Path, options: RunOptions) -> list[ProductResult]:
    raise OSError(errno.ENOSPC, "No space left on device")


def _stale(path: Path, options: RunOptions) -> list[ProductResult]:
    return [ProductResult(path, "a", "failed", (), f"{path}: [Errno 116] Stale file handle",
                          failure=Failure(FailureKind.IO, "[Errno 116] Stale file handle", errno.ESTALE))]


def _fails_and_vanishes(path: Path, options: RunOptions) -> list[ProductResult]:
    path.unlink()
    return _fails(path, options)


def _bug(path: Path, options: RunOptions) -> list[ProductResult]:
    raise KeyError("oops")


def _nothing(path: Path, options: RunOptions) -> list[ProductResult]:
    return []


@pytest.fixture
def task_for(tmp_path: Path):
    source = tmp_path / "a_rate.fits"
    source.write_bytes(b"x" * 100)
    out = tmp_path / "out"
    out.mkdir()

    def make(process, **options) -> Task:
        return Task(7, source, RunOptions(output_dir=out, **options), process)

    return make


def test_done_and_skipped_products_make_done(task_for) -> None:
    outcome = run_task(task_for(_done))
    assert (outcome.item_id, outcome.verdict, outcome.error) == (7, DONE, None)
    assert [Path(p).name for p in outcome.products] == ["a_cal.fits", "a_i2d.fits", "b_cal.fits"]


def test_a_failure_of_a_valid_input_is_final(task_for) -> None:
    outcome = run_task(task_for(_fails))
    assert (outcome.verdict, outcome.error) == (FAILED, "a: flat_field: reference does not fit")


def test_a_real_input_without_its_references_fails_with_the_missing_types_named(tmp_path: Path) -> None:
    source = make_rate(tmp_path / "a_rate.fits", shape=(64, 64))
    out = tmp_path / "out"
    out.mkdir()
    outcome = run_task(Task(3, source, RunOptions(output_dir=out), process_input))
    assert outcome.verdict == FAILED and outcome.products == ()
    assert "no DISTORTION, FILTEROFFSET, FLAT, PHOTOM, AREA reference found" in outcome.error
    assert outcome.kind is FailureKind.MISSING_REFERENCE
    assert not list(out.iterdir())


def test_a_real_corrupt_input_is_invalid_from_its_typed_result(tmp_path: Path) -> None:
    source = tmp_path / "a_rate.fits"
    source.write_bytes(make_rate(tmp_path / "whole_rate.fits", shape=(64, 64)).read_bytes()[:5000])
    out = tmp_path / "out"
    out.mkdir()
    outcome = run_task(Task(3, source, RunOptions(output_dir=out), process_input))
    assert outcome.verdict == INVALID and outcome.kind is FailureKind.INVALID_INPUT


def test_a_broken_configuration_file_fails_without_blaming_the_input(tmp_path: Path) -> None:
    source = make_rate(tmp_path / "a_rate.fits", shape=(64, 64))
    config = tmp_path / "steps.toml"
    config.write_text("[steps.resample\n")
    out = tmp_path / "out"
    out.mkdir()
    outcome = run_task(Task(3, source, RunOptions(output_dir=out, config_file=config), process_input))
    assert outcome.verdict == FAILED and outcome.kind is FailureKind.CONFIGURATION
    assert "not valid TOML" in outcome.error


def test_a_failure_of_an_input_that_cannot_be_processed_is_invalid(task_for) -> None:
    outcome = run_task(task_for(_invalid))
    assert (outcome.verdict, outcome.error, outcome.kind) == (INVALID, "no SCI extension", FailureKind.INVALID_INPUT)


@pytest.mark.parametrize("process", [_disk_full, _raises_enospc])
def test_a_full_disk_blocks_the_run(task_for, process) -> None:
    outcome = run_task(task_for(process))
    assert outcome.verdict == BLOCKED and "No space left on device" in outcome.error


def test_operating_system_errors_of_the_transient_kind(task_for) -> None:
    outcome = run_task(task_for(_stale))
    assert outcome.verdict == TRANSIENT and "Stale file handle" in outcome.error


def test_a_missing_reference_folder_blocks_and_nothing_runs(task_for, tmp_path: Path) -> None:
    outcome = run_task(task_for(_bug, reference_dirs=[tmp_path / "refs"]))
    assert (outcome.verdict, outcome.error) == (BLOCKED, f"reference folder {tmp_path / 'refs'} is missing")


def test_a_full_output_disk_blocks(task_for, monkeypatch) -> None:
    monkeypatch.setattr(tasks.shutil, "disk_usage", lambda _: types.SimpleNamespace(free=250))
    outcome = run_task(task_for(_fails))
    assert outcome.verdict == BLOCKED and outcome.error == "output disk is full (250 bytes free, 300 wanted)"


def test_an_input_unreadable_after_a_failure_is_transient(task_for) -> None:
    task = task_for(_fails_and_vanishes)
    outcome = run_task(task)
    assert outcome.verdict == TRANSIENT and outcome.error.endswith("(input not readable ([Errno 2] No such file or "
                                                                   f"directory: '{task.path}'))")


def test_a_bug_in_the_run_is_a_plain_failure(task_for) -> None:
    outcome = run_task(task_for(_bug))
    assert (outcome.verdict, outcome.error) == (FAILED, "KeyError: 'oops'")
    assert run_task(task_for(_nothing)).error == "the run produced no product"


_ORPHAN_CHECK = """
import os, time
from image2.run.executors import process_pool
pool = process_pool(1)
worker = pool.submit(os.getpid).result()
pool.submit(time.sleep, 120)
time.sleep(0.5)
print(worker, flush=True)
time.sleep(120)
"""
"""A daemon stand-in whose only worker is busy (sleeping) when the daemon is killed."""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_workers_die_with_a_killed_daemon() -> None:
    daemon = subprocess.Popen([sys.executable, "-c", _ORPHAN_CHECK], cwd=REPO, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, text=True)
    worker = int(daemon.stdout.readline())
    os.kill(worker, 0)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived the daemon")
