"""The live batch display (image2.cli.progress): through a real pseudo-terminal, read back with a
terminal emulator, the display and the log lines printed meanwhile are both intact on screen."""

from __future__ import annotations

import io
import os
import pty
import struct
import subprocess
import sys
import termios
import fcntl
from pathlib import Path

import pytest

from image2.cli.progress import BatchProgress, _Input, eta_seconds

pyte = pytest.importorskip("pyte", reason="pyte (test extra) reads the pseudo-terminal's screen")

REPO = Path(__file__).resolve().parents[1]
STEPS = ("assign_wcs", "flat_field", "photom", "resample")
INPUTS = ("jw01_rate.fits", "jw02_rate.fits", "jw03_rate.fits")

BATCH = f'''
import logging, time
from image2.cli.logs import configure, get_logger
from image2.cli.progress import BatchProgress

configure("console", "INFO")
log = get_logger("image2.test")
inputs, steps = {INPUTS!r}, {STEPS!r}
with BatchProgress(inputs, steps, workers=2) as display:
    for name in inputs:
        display.input_started(name)
        for step in steps:
            display.step_started(name, step)
            time.sleep(0.15)
            display.step_ended(name, step, "complete", 0.15)
            log.info("step-" + step, file=name)
        logging.getLogger("image2.io").warning("library line for %s", name)
        print("stdout line for " + name)
        display.input_finished(name, "done")
    time.sleep(0.3)
'''


def _run_in_terminal(arguments: list[str], rows: int, columns: int, cwd: Path = REPO) -> bytes:
    """Run Python with ``arguments`` in a child whose stdin/stdout/stderr are a pseudo-terminal; return what it wrote."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": str(columns),
           "LINES": str(rows)}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, *arguments], stdin=child, stdout=child, stderr=child, env=env,
                               cwd=cwd, close_fds=True)
    os.close(child)
    output = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(300) == 0, output.decode(errors="replace")
    return bytes(output)


def _screen(output: bytes, rows: int, columns: int) -> list[str]:
    """The lines a terminal of this size shows after receiving ``output``."""
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display]


def test_the_display_and_log_lines_share_the_terminal_without_mixing() -> None:
    rows, columns = 60, 120
    lines = _screen(_run_in_terminal(["-c", BATCH], rows, columns), rows, columns)
    text = "\n".join(lines)
    for name in INPUTS:
        # the file is named on a line of its own above the lines about it
        assert any(line.endswith(f" {name}") and line.count(" ") == 1 for line in lines), text
        assert sum(f"library line for {name}" in line for line in lines) == 1, text
    for step in STEPS:
        matching = [line for line in lines if line.endswith(f"  step-{step}")]
        assert len(matching) == len(INPUTS), f"{step} not once per input on a line of its own:\n{text}"
        assert sum(line == f"stdout line for {name}" for line in lines) == 1, text
    summary = [line for line in lines if "3/3 inputs" in line]
    assert len(summary) == 1 and "elapsed" in summary[0] and "ETA" in summary[0], text
    # the display stays below every line printed while it ran
    last_log = max(i for i, line in enumerate(lines) if "step-" in line or " line for " in line)
    assert lines.index(summary[0]) > last_log


def test_no_display_off_a_terminal_or_when_disabled() -> None:
    stream = io.StringIO()
    with BatchProgress(INPUTS, STEPS, stream=stream) as display:
        assert not display.enabled
        display.input_started(INPUTS[0])
        display.step_started(INPUTS[0], STEPS[0])
        display.step_ended(INPUTS[0], STEPS[0], "complete", 1.0)
        display.input_finished(INPUTS[0], "done")
    assert stream.getvalue() == ""
    with BatchProgress(INPUTS, STEPS, stream=sys.__stderr__, enabled=False) as display:
        assert display._live is None


def test_summary_counts_steps_and_inputs() -> None:
    display = BatchProgress(INPUTS, STEPS, enabled=False)
    display.input_started(INPUTS[0])
    display.step_started(INPUTS[0], "assign_wcs")
    display.step_ended(INPUTS[0], "assign_wcs", "complete", 0.5)
    display.step_started(INPUTS[0], "flat_field")
    state = display.summary()
    assert (state["finished"], state["inputs"], state["steps_done"], state["steps"]) == (0, 3, 1, 12)
    assert [(name, step, done) for name, step, done, _, _ in state["running"]] == [(INPUTS[0], "flat_field", 1)]
    display.input_finished(INPUTS[0], "failed")
    state = display.summary()
    assert (state["finished"], state["steps_done"], state["running"]) == (1, 4, [])


def test_eta_from_finished_inputs_then_from_partial_progress() -> None:
    assert eta_seconds(100.0, [_Input("a"), _Input("b")], 4, 2) is None
    # nothing finished: one input half-way after 10 s -> 20 s each; 10 s left for it, 20 s for the other
    running = _Input("a", started_at=90.0, steps_done=2)
    assert eta_seconds(100.0, [running, _Input("b")], 4, 1) == pytest.approx(30.0)
    assert eta_seconds(100.0, [running, _Input("b")], 4, 2) == pytest.approx(15.0)
    # one finished in 30 s; another running for 10 s; two waiting: (2 * 30 + 20) / 2 workers
    inputs = [_Input("a", 40.0, 70.0, None, 4), _Input("b", 90.0, None, "photom", 3), _Input("c"), _Input("d")]
    assert eta_seconds(100.0, inputs, 4, 2) == pytest.approx(40.0)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """A folder with three small NIRCam rate files and their references (refs/)."""
    from image2.synthetic import references as rf
    from image2.synthetic.exposures import make_rate

    folder = tmp_path_factory.mktemp("batch")
    refs = folder / "refs"
    refs.mkdir()
    rf.make_flat(refs / "jwst_nircam_flat_0001.fits", detector="NRCB1")
    rf.make_photom(refs / "jwst_nircam_photom_0001.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_area(refs / "jwst_nircam_area_0001.fits", detector="NRCB1")
    rf.make_distortion(refs / "jwst_nircam_distortion_0001.asdf", detector="NRCB1")
    rf.make_filteroffset(refs / "jwst_nircam_filteroffset_0001.asdf", detector="NRCB1")
    for index in range(3):
        make_rate(folder / f"p{index}_rate.fits", shape=(128, 160), seed=index,
                  primary={"SUBSTRT1": 101, "SUBSTRT2": 201, "SUBARRAY": "SUB160"})
    return folder


@pytest.mark.slow
def test_a_batch_in_two_workers_shows_steps_live_and_log_lines_above(batch: Path, tmp_path: Path) -> None:
    rows, columns = 80, 120
    names = [f"p{index}_rate.fits" for index in range(3)]
    output = _run_in_terminal(["-m", "image2", "process", *names, "--refs", "refs", "-o", str(tmp_path / "out"),
                               "--jobs", "2"], rows, columns, cwd=batch)
    lines = _screen(output, rows, columns)
    text = "\n".join(lines)
    # the display went through the steps while inputs ran (not only as inputs finished)
    raw = output.decode(errors="replace")
    assert "assign_wcs (0/4)" in raw or "flat_field (1/4)" in raw or "resample (3/4)" in raw, raw[-3000:]
    for name in names:
        assert any(line.endswith(f" {name}") and line.count(" ") == 1 for line in lines), text
        stem = name.removesuffix("_rate.fits")
        assert sum(f"  done outputs={stem}_i2d.fits,{stem}_cal.fits " in line for line in lines) == 1, text
    for step in ("assign_wcs", "flat_field", "photom", "resample"):
        matching = [line for line in lines if f"  {step} complete " in line and line.endswith(" s")]
        assert len(matching) == len(names), f"{step}: not once per input on a line of its own\n{text}"
        assert not any("━" in line or "inputs" in line for line in matching)
    display = [line for line in lines if "3/3 inputs" in line]
    assert len(display) == 1 and "elapsed" in display[0] and "ETA" in display[0], text
    summary = next(i for i, line in enumerate(lines) if line.startswith("done 3, skipped 0, failed 0 in "))
    last_log = max(i for i, line in enumerate(lines) if " complete " in line or "done outputs=" in line)
    assert last_log < lines.index(display[0]) < summary, text
