"""``image2 --version`` and ``image2 info`` through click's runner and a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from image2 import __version__
from image2.cli.main import cli
from image2.synthetic.exposures import make_rate, write_association


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_info_on_rate_file(rate_file: Path):
    result = run("info", str(rate_file))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "NIRCAM NRCB1" in out and "F150W / CLEAR" in out and "NRC_IMAGE" in out
    assert "64 x 80 (2-D rate)" in out and "SUBCUSTOM  start (1, 1)  size 80 x 64" in out
    assert "tso           no" in out
    assert "resample             runs" in out and "bkg_subtract         skip  no background members" in out


def test_info_on_tso_cube(rateints_file: Path):
    result = run("info", str(rateints_file))
    assert result.exit_code == 0, result.output
    assert "tso           yes" in result.output and "integrations  4" in result.output
    assert "resample             skip  3-D exposure" in result.output


def test_info_on_association_counts_background(tmp_path: Path):
    make_rate(tmp_path / "sci_rate.fits")
    make_rate(tmp_path / "bkg_rate.fits", seed=2)
    asn = write_association(tmp_path / "asn.json", [{"name": "prod1", "members": [
        {"expname": "sci_rate.fits", "exptype": "science"},
        {"expname": "bkg_rate.fits", "exptype": "background"}]}])
    result = run("info", str(asn))
    assert result.exit_code == 0, result.output
    assert "product prod1" in result.output and "bkg_subtract         runs  1 background member(s)" in result.output


BAD_INPUTS = {
    "not_fits": (lambda p: p.write_text("hello"), "not a readable FITS file"),
    "truncated": (lambda p: p.write_bytes(make_rate(p).read_bytes()[:-4000]), "truncated"),
    "no_sci": (lambda p: make_rate(p, arrays={"SCI": None}), "no SCI extension"),
    "wrong_dims": (lambda p: make_rate(p, shape=(2, 2, 8, 8)), "SCI is 4-D"),
    "no_keyword": (lambda p: make_rate(p, drop=("INSTRUME",)), "required keyword INSTRUME"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, case: str):
    make, message = BAD_INPUTS[case]
    path = tmp_path / f"{case}_rate.fits"
    make(path)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0]
    assert "Traceback" not in result.output


def test_bad_association_gives_exit_2(tmp_path: Path):
    asn = tmp_path / "broken_asn.json"
    asn.write_text('{"products": "nope"')
    result = CliRunner().invoke(cli, ["info", str(asn)])
    assert result.exit_code == 2 and str(asn) in result.stderr and "not a valid association" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path):
    path = tmp_path / "x_rate.fits"
    path.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "image2", "--debug", "info", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "InvalidInputError" in proc.stderr


def test_good_and_bad_inputs_together(tmp_path: Path, rate_file: Path):
    bad = tmp_path / "bad_rate.fits"
    bad.write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "image2", "info", str(rate_file), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "NIRCAM NRCB1" in proc.stdout and str(bad) in proc.stderr and "Traceback" not in proc.stderr
