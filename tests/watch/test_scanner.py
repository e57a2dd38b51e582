"""Scans: what the watched folders hold that the ledger does not account for."""

from __future__ import annotations

from pathlib import Path

from image2.watch.identity import FileStat, stat_of
from image2.watch.ledger import EXPOSURE, QUEUED, Ledger
from image2.watch.readiness import Selector
from image2.watch.scanner import inputs_in, is_accounted


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_inputs_in_lists_inputs_only(tmp_path: Path) -> None:
    root = tmp_path / "in"
    wanted = [_touch(root / "a_rate.fits"), _touch(root / "b_asn.json"), _touch(root / "c_rateints.fits")]
    _touch(root / "a_cal.fits")
    _touch(root / ".d_rate.fits.Xy12Ab")
    _touch(root / "e_rate.fits.part")
    _touch(root / "sub" / "f_rate.fits")
    selector = Selector(excluded=(root / "out",))
    assert sorted(inputs_in([root], selector, recursive=False)) == sorted(wanted)


def test_recursive_scan_skips_hidden_and_excluded_folders(tmp_path: Path) -> None:
    root = tmp_path / "in"
    deep = _touch(root / "night1" / "x" / "f_rate.fits")
    top = _touch(root / "a_rate.fits")
    _touch(root / ".staging" / "g_rate.fits")
    _touch(root / "out" / "h_rate.fits")
    _touch(root / "quarantine" / "bad_rate.fits")
    selector = Selector(excluded=(root / "out", root / "quarantine"))
    assert sorted(inputs_in([root], selector, recursive=True)) == sorted([top, deep])


def test_missing_root_yields_nothing(tmp_path: Path) -> None:
    assert list(inputs_in([tmp_path / "absent"], Selector(), recursive=True)) == []


def test_accounted_means_the_newest_row_is_this_version(tmp_path: Path) -> None:
    path = _touch(tmp_path / "a_rate.fits", b"abc")
    ledger = Ledger.in_folder(tmp_path)
    stat = stat_of(path)
    assert not is_accounted(None, stat)
    item = ledger.add(path, EXPOSURE, stat, "d", QUEUED, "event")
    assert is_accounted(item, stat)
    assert not is_accounted(item, FileStat(stat.size, stat.mtime_ns + 1, stat.inode))
    quarantined = ledger.fail(item.id, "bad", quarantine=str(tmp_path / "q" / "a_rate.fits"))
    assert not is_accounted(quarantined, stat)
    ledger.close()
