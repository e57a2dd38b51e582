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


def _run_in_terminal(code: str, rows: int, columns: int) -> bytes:
    """Run ``code`` in a Python child whose stdin/stdout/stderr are a pseudo-terminal; return what it wrote."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": str(columns),
           "LINES": str(rows)}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=child, stdout=child, stderr=child, env=env,
                               cwd=REPO, close_fds=True)
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
    assert process.wait(60) == 0, output.decode(errors="replace")
    return bytes(output)


def test_the_display_and_log_lines_share_the_terminal_without_mixing() -> None:
    rows, columns = 60, 120
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(_run_in_terminal(BATCH, rows, columns))
    lines = [line.rstrip() for line in screen.display]
    text = "\n".join(lines)
    for name in INPUTS:
        for step in STEPS:
            matching = [line for line in lines if f"step-{step}" in line and f"file={name}" in line]
            assert len(matching) == 1, f"{step} of {name} not once on a line of its own:\n{text}"
            assert "━" not in matching[0] and "inputs" not in matching[0]
        assert sum(f"library line for {name}" in line for line in lines) == 1, text
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
    assert [(name, step, done) for name, step, done, _ in state["running"]] == [(INPUTS[0], "flat_field", 1)]
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
