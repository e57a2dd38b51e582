"""Atomic writes and their staging files: names that say whose they are, and debris removed at once."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image2.io.atomic import (
    Staging,
    abandoned_staging,
    atomic_write,
    host_tag,
    pid_alive,
    remove_abandoned_staging,
    temporary_name,
)


def _touch(path: Path, age: float = 0.0) -> Path:
    path.write_bytes(b"x")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def _dead_pid() -> int:
    """The pid of a process that ran here and is gone (reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_staging_name_says_which_process_on_which_host_writes_it(tmp_path: Path) -> None:
    name = temporary_name(tmp_path / "a_cal.fits").name
    assert name.startswith(f".a_cal.fits.{os.getpid()}-{host_tag()}.") and name.endswith(".tmp")
    assert temporary_name(tmp_path / "a_cal.fits") != temporary_name(tmp_path / "a_cal.fits")


def test_staging_of_a_dead_writer_is_debris_at_once_and_a_live_ones_is_kept(tmp_path: Path) -> None:
    dead = _touch(tmp_path / f".a_cal.fits.{_dead_pid()}-{host_tag()}.0123456789ab.tmp")
    live = _touch(tmp_path / f".b_cal.fits.{os.getpid()}-{host_tag()}.0123456789ab.tmp")
    elsewhere = _touch(tmp_path / f".c_cal.fits.{_dead_pid()}-{'0' * 8 if host_tag() != '0' * 8 else '1' * 8}"
                                  ".0123456789ab.tmp")
    old_style_fresh = _touch(tmp_path / ".d_cal.fits.0123456789ab.tmp")
    old_style_stale = _touch(tmp_path / ".e_cal.fits.ba9876543210.tmp", age=3600)
    _touch(tmp_path / ".f_cal.fits.tmp", age=3600)
    _touch(tmp_path / "g_cal.fits", age=3600)
    assert sorted(abandoned_staging(tmp_path, 900)) == sorted([dead, old_style_stale])
    assert sorted(remove_abandoned_staging(tmp_path)) == sorted([dead, old_style_stale])
    assert live.exists() and elsewhere.exists() and old_style_fresh.exists()
    assert abandoned_staging(tmp_path / "absent") == []


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.01)
    assert not pid_alive(child.pid)  # exited, not yet reaped
    child.wait()
    assert not pid_alive(child.pid)
    assert pid_alive(os.getpid())


def test_a_write_that_fails_leaves_no_staging(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a_cal.fits") as handle:
        handle.write(b"partial")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with Staging() as staging, staging.open(tmp_path / "b_cal.fits") as handle:
        handle.write(b"staged, never published")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_masked_by_the_writer_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    """numpy reports a short write without errno, and astropy then fails on its own while handling it."""
    final = tmp_path / "a_i2d.fits"
    with pytest.raises(OSError) as raised, atomic_write(final) as handle:
        handle.write(b"part")
        try:
            raise OSError("65536 requested and 17920 written")
        except OSError:
            raise AttributeError("'list' object has no attribute '_file'") from None
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(final))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(AttributeError), atomic_write(final) as handle:
        raise AttributeError("a defect, not a full disk")


def test_image2_process_removes_the_staging_its_dead_workers_left_at_its_end(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from image2.cli.main import cli

    out = tmp_path / "out"
    out.mkdir()
    dead = _touch(out / f".a_cal.fits.{_dead_pid()}-{host_tag()}.0123456789ab.tmp")
    live = _touch(out / f".b_cal.fits.{os.getpid()}-{host_tag()}.0123456789ab.tmp")
    junk = tmp_path / "x_rate.fits"
    junk.write_text("not FITS")
    result = CliRunner().invoke(cli, ["process", str(junk), "-o", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert not dead.exists() and live.exists()


def test_the_file_staged_last_is_published_last_whenever_it_was_staged(tmp_path: Path) -> None:
    order: list[str] = []
    real_replace = os.replace

    def replace(source, target) -> None:
        order.append(Path(target).name)
        real_replace(source, target)

    with Staging(overwrite=True) as staging:
        with staging.open(tmp_path / "x_cal.fits", last=True) as handle:
            handle.write(b"cal")
        with pytest.raises(ValueError, match="already staged to be published last"):
            with staging.open(tmp_path / "y_cal.fits", last=True) as handle:
                handle.write(b"other")
        with staging.open(tmp_path / "x_i2d.fits") as handle:
            handle.write(b"i2d")
        os.replace = replace
        try:
            staging.publish()
        finally:
            os.replace = real_replace
    assert order == ["x_i2d.fits", "x_cal.fits"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_cal.fits", "x_i2d.fits"]


def test_a_withdrawn_last_file_leaves_nothing_behind(tmp_path: Path) -> None:
    with Staging() as staging:
        with staging.open(tmp_path / "x_cal.fits", last=True) as handle:
            handle.write(b"draft")
        staging.withdraw_last()
        with staging.open(tmp_path / "x_cal.fits", last=True) as handle:
            handle.write(b"final")
        assert staging.publish() == [tmp_path / "x_cal.fits"]
    assert (tmp_path / "x_cal.fits").read_bytes() == b"final" and len(list(tmp_path.iterdir())) == 1
