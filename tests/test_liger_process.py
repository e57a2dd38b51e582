"""Liger/IRIS files through the application: ``image2 process``/``refs`` on real files, references chosen
from a folder by Liger's own dates and windows, associations in both forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli
from image2.core.config import Config
from image2.core.pipeline import calibrate
from image2.core.references import References
from image2.io.fits import read_exposure
from image2.io.refs.readers import read_reference
from image2.io.refs.store import ReferenceStore
from image2.synthetic.exposures import write_association
from image2.synthetic.liger import Region, dark_arrays, flat_arrays, frame_arrays, frame_keywords
from image2.synthetic.liger import reference_keywords, write_liger_file

SHAPE = (128, 136)
JD = 2460600.75


def _frame(folder: Path, imtype: str, number: int, **keywords) -> Path:
    arrays = frame_arrays(SHAPE, seed=7 * number, sky=40.0 + number, dark=dark_arrays(SHAPE)["data"],
                          flat=flat_arrays(SHAPE)["data"], stars=0 if imtype == "SKY" else 20, galaxies=2)
    keys = {**frame_keywords(imtype=imtype, number=number, jd_start=JD + number / 1440, shape=SHAPE), **keywords}
    return write_liger_file(folder / f"2024B-P001-001_Liger_IMG_{imtype}_LVL1_{number:04d}.fits", arrays, keys)


def _reference(folder: Path, name: str, reftype: str, jd: float, shape: tuple[int, int] = SHAPE,
               placement: Region | None = None) -> Path:
    arrays = dark_arrays(shape) if reftype == "dark" else flat_arrays(shape)
    keys = reference_keywords(reftype, shape=shape, jd_start=jd, placement=placement)
    return write_liger_file(folder / name, arrays, keys)


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    folder = tmp_path / "refs"
    _reference(folder, "dark_old.fits", "dark", JD - 30)
    _reference(folder, "dark_new.fits", "dark", JD - 1)
    _reference(folder, "dark_future.fits", "dark", JD + 30)
    _reference(folder, "flat.fits", "flat", JD - 5)
    return folder


def test_liger_references_are_chosen_by_their_own_dates(tmp_path: Path, refs: Path):
    frame = read_exposure(_frame(tmp_path, "SCI", 1))
    choice = ReferenceStore([refs], cache_dir=tmp_path / "cache").select(frame.meta, "dark")
    assert choice.path == refs / "dark_new.fits"
    assert any(how.startswith("EXPDTST ") for how in choice.matched)
    reasons = {rejection.path.name: rejection.reason for rejection in choice.rejected}
    assert reasons["dark_old.fits"].startswith("EXPDTST ") and "older than dark_new.fits" in reasons["dark_old.fits"]
    assert "later than the exposure start" in reasons["dark_future.fits"]


def test_a_subarray_reference_serves_the_exposures_inside_its_window(tmp_path: Path):
    folder = tmp_path / "refs"
    window = Region(101, 201, 400, 300)
    _reference(folder, "flat_window.fits", "flat", JD - 1, (300, 400), window)
    store = ReferenceStore([folder], cache_dir=tmp_path / "cache")
    inside = read_exposure(_frame(tmp_path, "SCI", 1, SUBARRAY="CUSTOM", SUBSTRT1=151, SUBSTRT2=251))
    choice = store.select(inside.meta, "flat")
    assert choice.path == folder / "flat_window.fits"
    assert "SUBARRAY window 101:500×201:500 contains the exposure's" in choice.matched
    outside = read_exposure(_frame(tmp_path, "SCI", 2, SUBARRAY="CUSTOM", SUBSTRT1=451, SUBSTRT2=251))
    choice = store.select(outside.meta, "flat")
    assert choice.path is None
    assert "does not contain the exposure's 451:586×251:378" in choice.rejected[0].reason


def test_process_calibrates_a_liger_frame_with_references_from_a_folder(tmp_path: Path, refs: Path):
    pytest.importorskip("photutils")
    science = _frame(tmp_path, "SCI", 1)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", "process", str(science), "--refs", str(refs),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    cal = out / science.name.replace(".fits", "_cal.fits")
    references = References(dark=read_reference("dark", refs / "dark_new.fits"),
                            flat=read_reference("flat", refs / "flat.fits"))
    expected = calibrate(read_exposure(science), references, Config()).cal  # the sky of the frame itself
    with fits.open(cal) as hdul:
        assert hdul[0].header["R_DARK"].endswith("dark_new.fits") and hdul[0].header["S_SKYSUB"] == "COMPLETE"
        assert (hdul["DATA"].data.dtype.name, hdul["DQ"].data.dtype.name) == ("float32", "uint16")
        assert np.array_equal(hdul["DATA"].data, expected.sci, equal_nan=True)
        assert np.array_equal(hdul["ERR"].data, expected.err, equal_nan=True)
    refs_output = CliRunner().invoke(cli, ["refs", str(science), "--refs", str(refs)]).output
    assert "dark_new.fits" in refs_output and "EXPDTST" in refs_output


def test_background_members_of_either_association_form_are_the_sky_frames(tmp_path: Path, refs: Path):
    pytest.importorskip("photutils")
    science, sky = _frame(tmp_path, "SCI", 1), _frame(tmp_path, "SKY", 2)
    ours = write_association(tmp_path / "ours_asn.json", [{"name": "liger_sci1", "members": [
        {"expname": science.name, "exptype": "science"}, {"expname": sky.name, "exptype": "background"}]}])
    liger = tmp_path / "liger_asn.json"
    liger.write_text(json.dumps({"SCI": [science.name], "SKY": [sky.name]}))
    written = []
    for association, out in ((ours, tmp_path / "ours"), (liger, tmp_path / "liger")):
        result = CliRunner().invoke(cli, ["--log-level", "WARNING", "process", str(association), "--refs", str(refs),
                                          "-o", str(out)])
        assert result.exit_code == 0, result.output
        (cal,) = out.glob("*_cal.fits")
        written.append(read_exposure(cal))
    references = References(dark=read_reference("dark", refs / "dark_new.fits"),
                            flat=read_reference("flat", refs / "flat.fits"))
    expected = calibrate(read_exposure(science), references, Config(), [read_exposure(sky)])
    assert expected.background.source == "background" and len(expected.background.scales) == 1
    for cal in written:
        assert np.array_equal(cal.sci, expected.cal.sci, equal_nan=True)
        assert "sky from 1 background frame(s)" in cal.meta.provenance[-1].notes[0]


def test_a_liger_frame_without_a_flat_fails_with_a_clear_message(tmp_path: Path):
    folder = tmp_path / "refs"
    _reference(folder, "dark.fits", "dark", JD - 1)
    science = _frame(tmp_path, "SCI", 1)
    result = CliRunner().invoke(cli, ["process", str(science), "--refs", str(folder), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "flat" in result.output.lower() and science.name in result.output
    assert not (tmp_path / "out" / science.name.replace(".fits", "_cal.fits")).exists()


def test_a_liger_frame_is_resampled_only_on_request_conserving_its_flux(tmp_path: Path, refs: Path):
    pytest.importorskip("photutils")
    science = _frame(tmp_path, "SCI", 1)
    plain, asked = tmp_path / "plain", tmp_path / "asked"
    # without the sky, the frame's total is far from 0, so a relative comparison of totals means something
    for out, extra in ((plain, []), (asked, ["--step", "resample.liger_i2d=true", "--step", "sky_sub.skip=true"])):
        result = CliRunner().invoke(cli, ["--log-level", "WARNING", "process", str(science), "--refs", str(refs),
                                          "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
    i2d_name = science.name.replace(".fits", "_i2d.fits")
    assert not (plain / i2d_name).exists()
    cal = read_exposure(asked / science.name.replace(".fits", "_cal.fits"))
    with fits.open(asked / i2d_name) as hdul:
        assert "DATAMODL" not in hdul[0].header and "CRPIX1" not in hdul[0].header
        assert hdul[0].header["INSTRUME"] == "Liger" and hdul["SCI"].header["CTYPE1"] == "RA---TAN"
        assert "VAR_POISSON" not in hdul
        sci, err = hdul["SCI"].data, hdul["ERR"].data
    # north up, east left at the input's scale: the same pixels in another orientation; edges lose a little
    assert np.nansum(sci) == pytest.approx(np.nansum(cal.sci), rel=0.01)
    assert np.nanmedian(sci) == pytest.approx(np.nanmedian(cal.sci), rel=0.01)
    assert np.nanmedian(err) == pytest.approx(np.nanmedian(cal.err), rel=0.01)


def test_the_plan_says_how_to_ask_for_a_liger_i2d(tmp_path: Path):
    from image2.core.config import build_config
    from image2.core.pipeline import plan

    frame = read_exposure(_frame(tmp_path, "SCI", 1))
    planned = {s.name: s for s in plan(frame, References(), Config())}
    assert not planned["resample"].applies and "resample.liger_i2d=true" in planned["resample"].reason
    asked = {s.name: s for s in plan(frame, References(), build_config(overrides=["resample.liger_i2d=true"]))}
    assert asked["resample"].runs and "on request" in asked["resample"].reason
