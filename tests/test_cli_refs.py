"""``image2 refs`` and the reusable ``--ref TYPE=PATH`` parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from image2.cli.main import cli
from image2.synthetic.references import make_distortion, make_filteroffset, make_flat, make_photom
from image2.synthetic.exposures import make_rate


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("CRDS_PATH", "CRDS_PATH_SINGLE", "CRDS_REFPATH", "CRDS_REFPATH_SINGLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def setup(tmp_path) -> tuple[Path, Path]:
    refs = tmp_path / "refs"
    refs.mkdir()
    make_flat(refs / "jwst_nircam_flat_0001.fits", (16, 16), detector="NRCB1")
    make_flat(refs / "jwst_nircam_flat_0002.fits", (16, 16), detector="NRCB2")
    make_photom(refs / "jwst_nircam_photom_0001.fits")
    make_distortion(refs / "jwst_nircam_distortion_0001.asdf")
    make_filteroffset(refs / "jwst_nircam_filteroffset_0001.asdf", detector="NRCB4")
    rate = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits")
    return rate, refs


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_refs_prints_choice_and_matched_keys_per_needed_type(setup):
    rate, refs = setup
    result = run("refs", str(rate), "--refs", str(refs))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == str(rate)
    flat = next(i for i, line in enumerate(lines) if line.lstrip().startswith("flat "))
    assert lines[flat] == "  flat         crds://jwst_nircam_flat_0001.fits  (from header match)"
    assert lines[flat + 1].strip() == str(refs / "jwst_nircam_flat_0001.fits")
    assert "matched: REFTYPE=FLAT, INSTRUME=NIRCAM, DETECTOR=NRCB1" in lines[flat + 2]
    assert "FILTER=F150W" in lines[flat + 2] and "USEAFTER 2022-01-01T00:00:00 <= 2023-02-25T12:00:00" in lines[
        flat + 2]
    assert "crds://jwst_nircam_distortion_0001.asdf" in result.output
    assert [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")][1:] == [
        "distortion", "filteroffset", "flat", "photom", "area"]


def test_refs_explains_why_nothing_matched(setup):
    rate, refs = setup
    result = run("refs", str(rate), "--refs", str(refs))
    assert f"area         none: no AREA reference for NIRCAM in {refs}" in result.output
    assert "filteroffset none: none of 1 FILTEROFFSET reference(s) for NIRCAM NRCB1 matched" in result.output
    assert "- jwst_nircam_filteroffset_0001.asdf: DETECTOR NRCB4 does not match the exposure's DETECTOR NRCB1" \
        in result.output


def test_refs_counts_files_of_other_detectors(setup):
    rate, refs = setup
    make_flat(refs / "jwst_nircam_flat_0009.fits", (16, 16), detector="NRCB1", filter="F444W")
    f200w = make_rate(rate.with_name("jw01234001001_01101_00002_nrcb1_rate.fits"), primary={"FILTER": "F200W"})
    result = run("refs", str(f200w), "--refs", str(refs))
    assert result.exit_code == 0
    assert "flat         none: none of 2 FLAT reference(s) for NIRCAM NRCB1 matched" in result.output
    assert "- jwst_nircam_flat_0009.fits: FILTER F444W does not match the exposure's FILTER F200W" in result.output
    assert "- jwst_nircam_flat_0001.fits: FILTER F150W does not match" in result.output
    assert "- 1 more refused" in result.output  # the NRCB2 flat


def test_refs_overrides_and_na(setup, tmp_path):
    rate, refs = setup
    mine = make_flat(tmp_path / "mine.fits", (16, 16))
    result = run("refs", str(rate), "--refs", str(refs), "--ref", f"FLAT={mine}", "--ref", "area=N/A",
                 "--ref", f"dark={mine}")
    assert result.exit_code == 0, result.output
    assert f"flat         {mine.resolve()}  (from --ref)" in result.output
    assert "area         N/A  (from --ref area=N/A)" in result.output
    assert "dark " in result.output


def test_refs_ambiguity_exits_2(setup):
    rate, refs = setup
    make_flat(refs / "jwst_nircam_flat_0003.fits", (16, 16), seed=5)
    result = run("refs", str(rate), "--refs", str(refs))
    assert result.exit_code == 2
    assert "flat         AMBIGUOUS: jwst_nircam_flat_0001.fits, jwst_nircam_flat_0003.fits match equally well" \
        in result.output


def test_refs_without_any_folder_says_so(setup):
    rate, _ = setup
    result = run("refs", str(rate))
    assert result.exit_code == 0
    assert "none: no reference folders (give --refs DIR or set CRDS_PATH)" in result.output


@pytest.mark.parametrize("value, message", [
    ("gain=x.fits", "unknown reference type 'gain'"),
    ("flat", "expected TYPE=PATH or TYPE=N/A"),
    ("flat=", "expected TYPE=PATH or TYPE=N/A"),
    ("flat=/no/such/file.fits", "no such file /no/such/file.fits"),
])
def test_bad_ref_option_is_a_usage_error(setup, value, message):
    rate, refs = setup
    result = run("refs", str(rate), "--refs", str(refs), "--ref", value)
    assert result.exit_code == 2
    assert message in result.output
    if "unknown" in message:
        assert "flat, photom, area, distortion, filteroffset, dark" in result.output


def test_unreadable_input_is_reported(tmp_path, setup):
    _, refs = setup
    result = run("refs", str(tmp_path / "missing_rate.fits"), "--refs", str(refs))
    assert result.exit_code == 2
    assert "error:" in result.output
