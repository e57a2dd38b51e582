"""The hostile corpus (tests/hostile/corpus.py) through ``image2 process`` and ``image2 info``.

Each case must end within a timeout with its exit code and a one-line message naming the
problem, never a traceback; every bomb also runs in a subprocess whose peak memory is measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli
from image2.synthetic import references as rf
from tests.hostile.corpus import CASES, TRACEBACK, Case

TIMEOUT = 60
"""Seconds any case may take (a hang fails the test instead of stalling the suite)."""

BOMB_RSS_LIMIT = 2**30
"""Peak resident memory (bytes) of a command given a bomb."""


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    """Full-frame NIRCam NRCB1 references, so the valid cases calibrate completely."""
    folder = tmp_path_factory.mktemp("refs")
    rf.make_flat(folder / "jwst_nircam_flat_0001.fits", detector="NRCB1")
    rf.make_photom(folder / "jwst_nircam_photom_0001.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_area(folder / "jwst_nircam_area_0001.fits", detector="NRCB1")
    rf.make_distortion(folder / "jwst_nircam_distortion_0001.asdf", detector="NRCB1")
    rf.make_filteroffset(folder / "jwst_nircam_filteroffset_0001.asdf", detector="NRCB1")
    return folder


class Hung(Exception):
    """A command ran past its timeout."""


def _alarm(signum, frame):  # noqa: ANN001 - a signal handler
    raise Hung(f"no answer within {TIMEOUT} s")


def invoke(*args: object) -> tuple[int, str]:
    """Run the command in this process (CliRunner) under a timeout; return its exit code and output."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    try:
        result = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, Hung):
        pytest.fail(f"{args[0]} hung: {result.exception}")
    return result.exit_code, result.output


def process_args(case: Case, inputs: list[Path], folder: Path, refs: Path) -> list[object]:
    return ["process", *inputs, "--refs", refs, "-o", folder / "out", *case.args]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def assert_answer(case: Case, command: str, code: int, output: str, expected) -> None:
    assert TRACEBACK not in output, f"{case.name}: {command} printed a traceback:\n{output}"
    assert code == expected.exit_code, f"{case.name}: {command} exited {code}, not {expected.exit_code}:\n{output}"
    assert expected.fragment.lower() in output.lower(), f"{case.name}: {command} did not say {expected.fragment!r}:\n{output}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_process_answers_in_one_line(case: Case, folder: Path, refs: Path) -> None:
    inputs = case.make(folder)
    code, output = invoke(*process_args(case, inputs, folder, refs))
    assert_answer(case, "process", code, output, case.process)
    if code != 0:
        errors = [line for line in output.splitlines() if case.process.fragment.lower() in line.lower()]
        assert errors, output
        assert len({line for line in errors if "error" in line.lower()}) <= 1, f"an error printed twice:\n{output}"


INFO_CASES = [case for case in CASES if case.info is not None]


@pytest.mark.parametrize("case", INFO_CASES, ids=[case.name for case in INFO_CASES])
def test_info_answers_in_one_line(case: Case, folder: Path) -> None:
    inputs = case.make(folder)
    code, output = invoke("info", *inputs)
    assert_answer(case, "info", code, output, case.info)


def test_the_corpus_is_large_and_named_once() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


def run_measured(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """Run ``python -m image2 ARGS`` in a subprocess; return its exit code, output and peak RSS in bytes."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen([sys.executable, "-m", "image2", *args], cwd=cwd, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        timer = threading.Timer(TIMEOUT, child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return child.returncode, out.read().decode("utf-8", "replace"), usage.ru_maxrss * 1024


BOMBS = [case for case in CASES if case.bomb]


@pytest.mark.parametrize("case", BOMBS, ids=[case.name for case in BOMBS])
def test_bombs_fail_within_bounded_memory(case: Case, folder: Path, refs: Path) -> None:
    inputs = case.make(folder)
    for command, args, expected in (("process", process_args(case, inputs, folder, refs), case.process),
                                    ("info", ["info", *inputs], case.info)):
        code, output, peak = run_measured([str(a) for a in args], folder)
        assert_answer(case, command, code, output, expected)
        assert peak < BOMB_RSS_LIMIT, f"{case.name}: {command} peaked at {peak / 2**20:.0f} MiB"


def test_names_fits_cannot_hold_are_written_escaped(folder: Path, refs: Path) -> None:
    from tests.hostile.corpus import rate

    path = rate(folder, "caf\u00e9\nx_rate.fits")
    code, output = invoke("process", path, "--refs", refs, "-o", folder / "out")
    assert code == 0, output
    cal = folder / "out" / "caf\u00e9\nx_cal.fits"
    assert fits.getheader(cal)["FILENAME"] == "caf\\xe9\\nx_cal.fits"
