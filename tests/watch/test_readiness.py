"""Readiness: temporary names, FITS completeness, and the settle/close-write rules (with a fake clock)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from image2.io.fits_blocks import BLOCK
from image2.watch.readiness import (
    GONE,
    INVALID,
    READY,
    WAITING,
    Readiness,
    Selector,
    fits_problem,
    is_temporary_name,
    kind_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("name", [".jw1_rate.fits.Xa91bQ", ".hidden_rate.fits", "jw1_rate.fits.part",
                                  "jw1_rate.fits.tmp", "jw1_rate.fits.PARTIAL", "a.filepart"])
def test_temporary_names(name: str) -> None:
    assert is_temporary_name(name)


@pytest.mark.parametrize("name", ["jw1_rate.fits", "jw1_asn.json", "part_rate.fits", "tmp_rate.fits"])
def test_final_names(name: str) -> None:
    assert not is_temporary_name(name)


def test_selector_matches_patterns_and_skips_excluded_folders() -> None:
    selector = Selector(("*_rate.fits", "*_asn.json"), (Path("/in/out"), Path("/q")))
    assert selector.wants(Path("/in/a_rate.fits"))
    assert selector.wants(Path("/in/sub/x_asn.json"))
    assert not selector.wants(Path("/in/a_cal.fits"))
    assert not selector.wants(Path("/in/a_rate.fits.part"))
    assert not selector.wants(Path("/in/.a_rate.fits.x1Y2z3"))
    assert not selector.wants(Path("/in/out/a_rate.fits"))
    assert not selector.wants(Path("/in/out/deeper/a_rate.fits"))
    assert selector.wants(Path("/in/outside/a_rate.fits"))
    assert not selector.wants(Path("/q/a_rate.fits"))


def test_kind_of() -> None:
    assert kind_of(Path("a_rate.fits")) == "exposure"
    assert kind_of(Path("a_asn.json")) == "association"


def test_whole_fits_file_has_no_problem(rate_file: Path) -> None:
    assert rate_file.stat().st_size % BLOCK == 0
    assert fits_problem(rate_file) is None


@pytest.mark.parametrize("cut", [1, BLOCK - 1, BLOCK, BLOCK + 80, 3 * BLOCK + 17])
def test_cut_files_are_truncated(tmp_path: Path, rate_file: Path, cut: int) -> None:
    data = rate_file.read_bytes()
    assert len(data) > 3 * BLOCK + 17
    cut_file = tmp_path / "cut_rate.fits"
    cut_file.write_bytes(data[:cut])
    assert fits_problem(cut_file).startswith("truncated or corrupt FITS file")


def test_last_hdu_one_byte_short_is_truncated(tmp_path: Path, rate_file: Path) -> None:
    from astropy.io import fits

    with fits.open(rate_file) as hdul:
        last = hdul[-1].header
        assert (last["XTENSION"], last["BITPIX"], last["PCOUNT"]) == ("BINTABLE", 8, 0)
        data_end = hdul[-1].fileinfo()["datLoc"] + last["NAXIS1"] * last["NAXIS2"]
        count = len(hdul)
    cut_file = tmp_path / "cut_rate.fits"
    cut_file.write_bytes(rate_file.read_bytes()[:data_end - 1])
    assert fits_problem(cut_file) == (f"truncated or corrupt FITS file: ASDF declares {last['NAXIS1'] * last['NAXIS2']} "
                                      f"bytes of data but the file holds {last['NAXIS1'] * last['NAXIS2'] - 1} after its header")
    assert count > 1


def test_missing_final_padding_is_accepted(tmp_path: Path) -> None:
    import numpy as np
    from astropy.io import fits

    path = tmp_path / "small_rate.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3), np.int16))]).writeto(path)
    data = path.read_bytes()
    assert len(data) == 3 * BLOCK  # primary header, image header, 18 bytes of data padded to a block
    path.write_bytes(data[:2 * BLOCK + 18])
    assert fits_problem(path) is None
    path.write_bytes(data[:2 * BLOCK + 17])
    assert fits_problem(path) == ("truncated or corrupt FITS file: HDU 1 declares 18 bytes of data but the file "
                                  "holds 17 after its header")


def _appended_one_hdu_at_a_time(source: Path, target: Path) -> list[list[str]]:
    """Write ``source``'s HDUs to ``target`` as a writer closing the file after each does (``fits.append``);
    return the HDU names on disk after each close together with what fits_problem says then."""
    from astropy.io import fits

    seen = []
    with fits.open(source) as hdul:
        hdul[0].writeto(target)
        seen.append(fits_problem(target, finished=True))
        for hdu in hdul[1:]:
            fits.append(target, hdu.data, hdu.header)
            seen.append(fits_problem(target, finished=True))
    return seen


def test_a_file_is_finished_only_with_science_err_dq_and_the_asdf_extension_last(tmp_path: Path,
                                                                                  rate_file: Path) -> None:
    seen = _appended_one_hdu_at_a_time(rate_file, tmp_path / "a_rate.fits")
    assert seen[-1] is None and all(problem is not None for problem in seen[:-1])
    assert seen[0] == "incomplete: no SCI or DATA, ERR, DQ, ASDF as its last extension yet"
    assert seen[-2] == "incomplete: no ASDF as its last extension yet"  # SCI ... VAR_RNOISE: the ASDF to come
    assert fits_problem(tmp_path / "a_rate.fits") is None


def test_a_liger_layout_is_finished_too(tmp_path: Path) -> None:
    import numpy as np
    from astropy.io import fits

    path = tmp_path / "l_rate.fits"
    hdus = [fits.PrimaryHDU(), *(fits.ImageHDU(np.zeros((4, 4), np.float32), name=n)
                                 for n in ("DATA", "ERR", "DQ", "SUBARR_MAP"))]
    fits.HDUList(hdus).writeto(path)
    assert fits_problem(path, finished=True) == "incomplete: no ASDF as its last extension yet"
    table = fits.BinTableHDU.from_columns([fits.Column("ASDF_METADATA", "B", array=np.zeros(3, np.uint8))],
                                          name="ASDF")
    fits.HDUList([*hdus, table]).writeto(path, overwrite=True)
    assert fits_problem(path, finished=True) is None


def test_a_closed_unfinished_file_waits_to_settle_and_then_the_validator_decides(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x" * 10)
    asked = []

    def check(p: Path, settled: bool) -> str | None:
        asked.append(settled)
        return None if settled else "incomplete: no ASDF as its last extension yet"

    clock = Clock()
    readiness = Readiness(3.0, check, clock)
    readiness.note(path, closed=True)
    assert readiness.evaluate(path).kind == WAITING
    clock.now += 3.0
    assert readiness.evaluate(path).kind == READY
    assert asked == [False, True]


def test_not_fits_and_empty(tmp_path: Path) -> None:
    text = tmp_path / "x_rate.fits"
    text.write_text("hello world" * 500)
    assert fits_problem(text) == "not a readable FITS file (no SIMPLE card)"
    empty = tmp_path / "e_rate.fits"
    empty.write_bytes(b"")
    assert fits_problem(empty) == "not a readable FITS file (an empty file)"


def _tracker(settle: float, problems: dict[Path, str | None] | None = None) -> tuple[Readiness, Clock]:
    clock = Clock()
    problems = problems if problems is not None else {}
    return Readiness(settle, lambda p, settled: problems.get(p), clock), clock


def test_without_close_a_file_is_ready_after_settling(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x" * 10)
    readiness, clock = _tracker(2.0)
    readiness.note(path)
    assert readiness.due() == []
    assert readiness.next_due() == pytest.approx(1002.0)
    clock.now = 1001.9
    assert readiness.evaluate(path).kind == WAITING
    clock.now = 1002.0
    assert readiness.due() == [path]
    verdict = readiness.evaluate(path)
    assert verdict.kind == READY and verdict.stat.size == 10
    assert path not in readiness


def test_a_growing_file_restarts_the_settle_interval(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x" * 10)
    readiness, clock = _tracker(2.0)
    readiness.note(path)
    clock.now += 1.5
    with open(path, "ab") as handle:
        handle.write(b"more")
    readiness.note(path)
    clock.now += 1.5
    assert readiness.evaluate(path).kind == WAITING
    clock.now += 0.5
    assert readiness.evaluate(path).kind == READY


def test_close_write_makes_a_valid_file_ready_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x")
    readiness, _ = _tracker(30.0)
    readiness.note(path)
    readiness.note(path, closed=True)
    assert readiness.due() == [path]
    assert readiness.evaluate(path).kind == READY


def test_close_write_of_an_invalid_file_waits_for_settle_then_judges(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x")
    readiness, clock = _tracker(5.0, {path: "truncated FITS file"})
    readiness.note(path, closed=True)
    verdict = readiness.evaluate(path)
    assert (verdict.kind, verdict.problem) == (WAITING, "truncated FITS file")
    assert readiness.next_due() == pytest.approx(1005.0)
    clock.now += 5.0
    verdict = readiness.evaluate(path)
    assert (verdict.kind, verdict.problem) == (INVALID, "truncated FITS file")


def test_an_old_mtime_does_not_skip_the_settle_interval(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x")
    os.utime(path, ns=(10**9, 10**9))
    readiness, clock = _tracker(2.0)
    readiness.note(path)
    assert readiness.evaluate(path).kind == WAITING
    clock.now += 2.0
    assert readiness.evaluate(path).kind == READY


def test_unreadable_for_now_means_wait(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x")

    def locked(_: Path, settled: bool) -> None:
        raise PermissionError(13, "Permission denied")

    clock = Clock()
    readiness = Readiness(1.0, locked, clock)
    readiness.note(path, closed=True)
    clock.now += 5.0
    verdict = readiness.evaluate(path)
    assert verdict.kind == WAITING and "cannot read it yet" in verdict.problem
    assert path in readiness


def test_a_vanished_file_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x")
    readiness, _ = _tracker(1.0)
    readiness.note(path)
    path.unlink()
    assert readiness.evaluate(path).kind == GONE
    assert len(readiness) == 0
    readiness.note(path)
    assert len(readiness) == 0


def test_an_mtime_set_after_close_keeps_the_file_closed(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x" * 10)
    readiness, _ = _tracker(30.0)
    readiness.note(path, closed=True)
    os.utime(path, ns=(10**9, 10**9))  # cp -p: the old mtime is set after the data is closed
    readiness.note(path)
    verdict = readiness.evaluate(path)
    assert verdict.kind == READY and verdict.stat.mtime_ns == 10**9


def test_a_file_growing_after_close_is_no_longer_closed(tmp_path: Path) -> None:
    path = tmp_path / "a_rate.fits"
    path.write_bytes(b"x" * 10)
    readiness, _ = _tracker(30.0)
    readiness.note(path, closed=True)
    with open(path, "ab") as handle:
        handle.write(b"y")
    readiness.note(path)
    assert readiness.evaluate(path).kind == WAITING
