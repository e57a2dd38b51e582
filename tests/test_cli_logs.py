"""Console log lines (image2.cli.logs.ConsoleLines): short, the file named once above its block."""

from __future__ import annotations

from image2.cli.logs import ConsoleLines


def render(lines: ConsoleLines, **event) -> list[str]:
    return lines(None, "info", {"timestamp": "2026-11-30T12:00:01.5Z", "level": "info", **event}).split("\n")


def test_the_file_is_named_once_per_block_and_steps_read_as_sentences():
    lines = ConsoleLines()
    first = render(lines, event="step", file="/data/in/a_rate.fits", step="assign_wcs", status="COMPLETE",
                   seconds=0.4123, logger="image2.run")
    assert first == ["12:00:01 a_rate.fits", "12:00:01   assign_wcs complete 0.41 s"]
    note = render(lines, event="no FLAT reference", file="/data/in/a_rate.fits", step="flat_field",
                  status="SKIPPED", level="warning")
    assert note == ["12:00:01   warning: flat_field: no FLAT reference"]
    done = render(lines, event="done", file="/data/in/a_rate.fits", outputs=["/out/a_i2d.fits", "/out/a_cal.fits"],
                  skipped_steps=["flat_field SKIPPED: --ref flat=N/A"], seconds=2.5)
    assert done == ["12:00:01   done outputs=a_i2d.fits,a_cal.fits skipped_steps=flat_field SKIPPED: --ref flat=N/A "
                    "seconds=2.5"]
    assert render(lines, event="step", file="/data/in/b_rate.fits", step="photom", status="COMPLETE",
                  seconds=0.0)[0] == "12:00:01 b_rate.fits"
    # an event about no file ends the block: the next one about a file names it again
    assert render(lines, event="start", inputs=2, output_dir="out/x") == ["12:00:01 start inputs=2 output_dir=out/x"]
    assert render(lines, event="failed", file="/data/in/b_rate.fits", kind="io", level="error") == [
        "12:00:01 b_rate.fits", "12:00:01   error: failed kind=io"]
