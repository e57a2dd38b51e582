"""``image2 process`` end to end: associations, cubes in chunks, TSO, Liger/IRIS, batches, reruns."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import weakref
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
from image2.synthetic import references as rf
from image2.synthetic.exposures import make_rate, write_association

SUBARRAY = {"SUBSTRT1": 101, "SUBSTRT2": 201, "SUBARRAY": "SUB160"}
SHAPE = (128, 160)


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    """A folder of full-frame NIRCam NRCB1 references, as a user or a CRDS cache holds them."""
    folder = tmp_path_factory.mktemp("refs")
    rf.make_flat(folder / "jwst_nircam_flat_0001.fits", detector="NRCB1", nan_pixels=[(210, 110)],
                 zero_pixels=[(220, 120)])
    rf.make_photom(folder / "jwst_nircam_photom_0001.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_area(folder / "jwst_nircam_area_0001.fits", detector="NRCB1")
    rf.make_distortion(folder / "jwst_nircam_distortion_0001.asdf", detector="NRCB1")
    rf.make_filteroffset(folder / "jwst_nircam_filteroffset_0001.asdf", detector="NRCB1")
    return folder


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _association(folder: Path, science: dict | None = None) -> Path:
    make_rate(folder / "sci_rate.fits", shape=SHAPE, primary={**SUBARRAY, **(science or {})})
    make_rate(folder / "bkg1_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=2)
    make_rate(folder / "bkg2_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=3)
    return write_association(folder / "jw01234_image2_asn.json", [{"name": "jw01234001001_01101_00001_nrcb1", "members": [
        {"expname": "sci_rate.fits", "exptype": "science"},
        {"expname": "bkg1_rate.fits", "exptype": "background"},
        {"expname": "bkg2_rate.fits", "exptype": "background"}]}])


def test_association_with_background_gives_hand_checkable_cal_i2d_and_bsub(tmp_path: Path, refs: Path):
    asn = _association(tmp_path)
    out = tmp_path / "out"
    result = invoke("process", asn, "--refs", refs, "-o", out, "--save-bsub", "--preview")
    assert result.exit_code == 0, result.output
    root = out / "jw01234001001_01101_00001_nrcb1"
    for suffix in ("_cal.fits", "_i2d.fits", "_bsub.fits", "_i2d.png"):
        assert Path(f"{root}{suffix}").exists(), suffix
    assert Path(f"{root}_i2d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = fits.getheader(f"{root}_cal.fits")
    for keyword in ("S_BKDSUB", "S_WCS", "S_FLAT", "S_PHOTOM"):
        assert header[keyword] == "COMPLETE", keyword
    assert header["R_FLAT"] == "crds://jwst_nircam_flat_0001.fits" and header["R_DISTOR"].startswith("crds://")
    assert header["ASNTABLE"] == asn.name and header["CAL_VER"] and "S_RESAMP" not in header
    assert fits.getheader(f"{root}_i2d.fits")["S_RESAMP"] == "COMPLETE"
    cal = read_exposure(f"{root}_cal.fits")
    assert [r.step for r in cal.meta.provenance] == ["bkg_subtract", "assign_wcs", "flat_field", "photom"]
    assert cal.meta.provenance[-1].parameters["apply_time_correction"] is True

    # By hand: two background members (no clipping with two values), flat cut at SUBSTRT, photom row.
    sci, b1, b2 = (fits.getdata(tmp_path / f"{n}_rate.fits") for n in ("sci", "bkg1", "bkg2"))
    background = ((b1.astype(np.float64) + b2) / 2).astype(np.float32)
    flat = fits.getdata(refs / "jwst_nircam_flat_0001.fits", "SCI")[200:200 + SHAPE[0], 100:100 + SHAPE[1]]
    photmjsr = np.float32(cal.meta.photometry.photmjsr)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ((sci - background) / flat).astype(np.float32) * np.float64(photmjsr)
    good = np.isfinite(cal.sci)
    assert good.sum() > 0.95 * good.size
    np.testing.assert_allclose(cal.sci[good], expected.astype(np.float32)[good], rtol=1e-6)
    assert np.isnan(cal.sci[10, 10]) and cal.dq[10, 10] & 1  # flat NaN at (210, 110) full frame
    bsub = read_exposure(f"{root}_bsub.fits")
    np.testing.assert_array_equal(bsub.sci, (sci - background).astype(np.float32))


def test_rateints_are_calibrated_in_chunks_identically(tmp_path: Path, refs: Path, monkeypatch):
    monkeypatch.setattr("image2.run.cube.CHUNK_BYTES", SHAPE[0] * SHAPE[1] * 4 * 2)  # two integrations a chunk
    path = make_rate(tmp_path / "jw01_nrcb1_rateints.fits", shape=(5, *SHAPE), primary=SUBARRAY,
                     int_times=True)
    out = tmp_path / "out"
    result = invoke("process", path, "--refs", refs, "-o", out)
    assert result.exit_code == 0, result.output
    written = read_exposure(out / "jw01_nrcb1_calints.fits")
    references = References(**{t: read_reference(t, p, f"crds://{p.name}") for t, p in (
        ("flat", refs / "jwst_nircam_flat_0001.fits"), ("photom", refs / "jwst_nircam_photom_0001.fits"),
        ("area", refs / "jwst_nircam_area_0001.fits"), ("distortion", refs / "jwst_nircam_distortion_0001.asdf"),
        ("filteroffset", refs / "jwst_nircam_filteroffset_0001.asdf"))})
    whole = calibrate(read_exposure(path), references, Config()).cal
    for name in ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat", "area"):
        assert getattr(written, name).tobytes() == getattr(whole, name).tobytes(), name
    assert written.meta.status["S_FLAT"] == "COMPLETE" and written.meta.status["S_PHOTOM"] == "COMPLETE"
    assert "INT_TIMES" in written.extensions and not (out / "jw01_nrcb1_i2d.fits").exists()


def test_tso_exposures_skip_background_and_resample(tmp_path: Path, refs: Path):
    asn = _association(tmp_path, {"TSOVISIT": True})
    out = tmp_path / "out"
    result = invoke("process", asn, "--refs", refs, "-o", out)
    assert result.exit_code == 0, result.output
    header = fits.getheader(out / "jw01234001001_01101_00001_nrcb1_cal.fits")
    assert header["S_BKDSUB"] == "SKIPPED" and header["S_RESAMP"] == "SKIPPED"
    assert header["S_FLAT"] == "COMPLETE" and not list(out.glob("*_i2d.fits"))
    cube = make_rate(tmp_path / "tso_rateints.fits", shape=(3, *SHAPE),
                     primary={**SUBARRAY, "EXP_TYPE": "NRC_TSIMAGE", "TSOVISIT": True})
    assert invoke("process", cube, "--refs", refs, "-o", out).exit_code == 0
    cube_header = fits.getheader(out / "tso_calints.fits")
    assert cube_header["S_PHOTOM"] == "COMPLETE" and "S_RESAMP" not in cube_header and "S_BKDSUB" not in cube_header


def test_liger_iris_exposure_with_subarray_map_and_dark(tmp_path: Path):
    shape = (64, 64)
    path = make_rate(tmp_path / "iris_rate.fits", shape=shape, primary={
        "INSTRUME": "IRIS", "DETECTOR": "IMG1", "EXP_TYPE": "IRIS_IMAGE", "FILTER": "KN3", "PUPIL": "NONE"})
    subarray_map = np.zeros(shape, np.uint16)
    subarray_map[10:20, 30:45] = 1
    subarray_map[40:50, 5:9] = 2
    with fits.open(path, mode="update") as hdul:
        hdul.insert(len(hdul) - 1, fits.ImageHDU(subarray_map, name="SUBARR_MAP"))
    dark = rf.make_dark(tmp_path / "iris_dark.fits", shape=shape, instrument="IRIS", detector="IMG1", level=0.25)
    out = tmp_path / "out"
    result = invoke("process", path, "--ref", f"dark={dark}", "--ref", "flat=N/A", "-o", out)
    assert result.exit_code == 0, result.output
    assert "flat_field SKIPPED: --ref flat=N/A" in result.stdout
    cal = read_exposure(out / "iris_cal.fits")
    assert cal.meta.status["S_DARK"] == "COMPLETE" and cal.meta.refs["R_DARK"] == str(dark.resolve())
    assert cal.meta.status["S_FLAT"] == "SKIPPED" and cal.meta.status["S_WCS"] == "COMPLETE"
    assert [item["xstart"] for item in cal.meta.tree["subarray_map"]] == [31, 6]
    assert np.all(cal.dq[10:20, 30:45] & 16) and not np.any(cal.dq[0:5, 0:5] & 16)
    rate, dark_sci = fits.getdata(path), fits.getdata(dark)
    good = np.isfinite(cal.sci)
    np.testing.assert_array_equal(cal.sci[good], (rate - np.nan_to_num(dark_sci))[good])


def test_batch_with_a_corrupt_input_completes_the_others(tmp_path: Path, refs: Path):
    good = [make_rate(tmp_path / f"g{i}_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=i) for i in range(2)]
    bad = tmp_path / "corrupt_rate.fits"
    bad.write_bytes(good[0].read_bytes()[:5000])
    out = tmp_path / "out"
    result = invoke("process", good[0], bad, good[1], "--refs", refs, "-o", out)
    assert result.exit_code == 1
    assert "done 2, skipped 0, failed 1" in result.stdout
    assert f"{bad} [corrupt]: failed: " in result.stdout and "Traceback" not in result.output
    reason = result.stdout.split(f"{bad} [corrupt]: failed: ", 1)[1].splitlines()[0]
    assert reason and result.output.count(reason) == 1  # each error told once
    assert "corrupt_rate.fits" in result.stderr and "error: failed kind=invalid-input" in result.stderr
    assert sorted(p.name for p in out.glob("*_cal.fits")) == ["g0_cal.fits", "g1_cal.fits"]
    assert not list(out.glob("corrupt*")) and not list(out.glob(".*"))


def test_existing_products_are_kept_unless_overwrite(tmp_path: Path, refs: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    assert invoke("process", path, "--refs", refs, "-o", out).exit_code == 0
    stamp = (out / "x_cal.fits").stat().st_mtime_ns
    again = invoke("process", path, "--refs", refs, "-o", out)
    assert again.exit_code == 0 and "skipped 1" in again.stdout
    assert f"{path} [x]: skipped: x_cal.fits exists (use --overwrite to replace it)" in again.stdout
    assert (out / "x_cal.fits").stat().st_mtime_ns == stamp
    assert invoke("process", path, "--refs", refs, "-o", out, "--overwrite").exit_code == 0
    assert (out / "x_cal.fits").stat().st_mtime_ns != stamp


def test_missing_references_fail_the_input_naming_each_type_and_leave_no_product(tmp_path: Path, refs: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    result = invoke("process", path, "-o", out)
    assert result.exit_code == 1, result.output
    assert "no DISTORTION, FILTEROFFSET, FLAT, PHOTOM, AREA reference found" in result.stdout
    assert "--refs DIR" in result.stdout and "--ref flat=N/A" in result.stdout and "Traceback" not in result.output
    assert not out.exists() or not list(out.iterdir())
    only_flat = invoke("process", path, "--refs", refs, "--ref", f"flat={tmp_path / 'missing'}", "-o", out)
    assert only_flat.exit_code == 2  # a reference path that does not exist is a usage error


def test_references_declined_on_purpose_run_and_the_summary_says_so(tmp_path: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    declined = [arg for reftype in ("distortion", "filteroffset", "flat", "photom", "area")
                for arg in ("--ref", f"{reftype}=N/A")]
    result = invoke("process", path, *declined, "-o", out)
    assert result.exit_code == 0, result.output
    assert "flat_field SKIPPED: --ref flat=N/A" in result.stdout
    assert "photom SKIPPED: --ref photom=N/A, --ref area=N/A" in result.stdout
    header = fits.getheader(out / "x_cal.fits")
    assert header["S_FLAT"] == "SKIPPED" and header["R_FLAT"] == "N/A" and header["S_PHOTOM"] == "SKIPPED"


def test_a_step_skipped_by_configuration_needs_no_reference(tmp_path: Path, refs: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    flatless = tmp_path / "flatless"
    shutil.copytree(refs, flatless, ignore=shutil.ignore_patterns("*flat*"))
    out = tmp_path / "out"
    assert invoke("process", path, "--refs", flatless, "-o", out).exit_code == 1
    result = invoke("process", path, "--refs", flatless, "--step", "flat_field.skip=true", "-o", out)
    assert result.exit_code == 0, result.output
    assert "flat_field SKIPPED: skipped by configuration" in result.stdout


def test_json_summary_states_each_inputs_outcome_and_skips(tmp_path: Path, refs: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    first = invoke("--log-format", "json", "process", path, "--refs", refs, "--ref", "flat=N/A", "-o", out)
    again = invoke("--log-format", "json", "process", path, "--refs", refs, "-o", out)
    events = [json.loads(line) for result in (first, again) for line in result.stderr.splitlines()
              if line.startswith("{")]
    done = [e for e in events if e["event"] == "done" and e["product"] == "x"]
    skipped = [e for e in events if e["event"] == "skipped"]
    assert done and done[0]["skipped_steps"] == ["flat_field SKIPPED: --ref flat=N/A"]
    assert skipped and "use --overwrite" in skipped[0]["reason"] and skipped[0]["file"] == str(path)


def test_strict_fails_on_an_optional_reference_too(tmp_path: Path, refs: Path):
    shape = (64, 64)
    path = make_rate(tmp_path / "iris_rate.fits", shape=shape, primary={
        "INSTRUME": "IRIS", "DETECTOR": "IMG1", "EXP_TYPE": "IRIS_IMAGE", "FILTER": "KN3", "PUPIL": "NONE"})
    flat = rf.make_flat(tmp_path / "iris_flat.fits", shape=shape, instrument="IRIS", detector="IMG1", filter="KN3")
    out = tmp_path / "out"
    assert invoke("process", path, "--ref", f"flat={flat}", "-o", out).exit_code == 0
    strict = invoke("process", path, "--ref", f"flat={flat}", "-o", tmp_path / "strict", "--strict")
    assert strict.exit_code == 1 and "no DISTORTION, DARK, PHOTOM, AREA reference found" in strict.stdout


def test_usage_errors_exit_2(tmp_path: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE)
    result = invoke("process", path, "--step", "resample.pixfrc=0.5")
    assert result.exit_code == 2 and "did you mean 'pixfrac'" in result.output
    result = invoke("process", path, "--ref", "flatt=/nowhere")
    assert result.exit_code == 2 and "unknown reference type" in result.output
    result = invoke("process", tmp_path / "missing_rate.fits")
    assert result.exit_code == 2


@pytest.mark.slow
def test_parallel_jobs_in_worker_processes(tmp_path: Path, refs: Path):
    inputs = [make_rate(tmp_path / f"p{i}_rate.fits", shape=SHAPE, primary=SUBARRAY, seed=i) for i in range(3)]
    out = tmp_path / "out"
    bad = tmp_path / "bad_rate.fits"
    bad.write_text("not a FITS file")
    proc = subprocess.run([sys.executable, "-m", "image2", "--log-format", "json", "process", *map(str, inputs),
                           str(bad), "--refs", str(refs), "-o", str(out), "--jobs", "2"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in out.glob("*_cal.fits")) == ["p0_cal.fits", "p1_cal.fits", "p2_cal.fits"]
    _assert_json_mode(proc.stdout, proc.stderr, inputs, bad, out)


def _assert_json_mode(stdout: str, stderr: str, inputs: list[Path], bad: Path, out: Path) -> None:
    """stdout: the product paths alone, one a line; stderr: only JSON events, among them one per step of
    each input, one outcome per input, the failure once with its reason, and the summary."""
    products = sorted(str(path) for path in out.iterdir() if path.suffix == ".fits")
    assert sorted(stdout.splitlines()) == products
    events = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    for path in inputs:
        steps = [e for e in events if e["event"] == "step" and e["file"] == str(path)]
        assert [e["step"] for e in steps] == ["assign_wcs", "flat_field", "photom", "resample"]
        assert all(e["status"] == "COMPLETE" and e["seconds"] >= 0 for e in steps)
        done = [e for e in events if e["event"] == "done" and e["file"] == str(path)]
        assert len(done) == 1 and len(done[0]["outputs"]) == 2 and done[0]["seconds"] > 0
    failed = [e for e in events if e.get("level") == "error"]
    assert len(failed) == 1 and failed[0]["file"] == str(bad) and failed[0]["kind"] == "invalid-input"
    assert sum(failed[0]["reason"] in line for line in stderr.splitlines()) == 1
    summary = [e for e in events if e["event"] == "summary"]
    assert len(summary) == 1 and (summary[0]["done"], summary[0]["failed"]) == (len(inputs), 1)
    assert sorted(summary[0]["outputs"]) == products


def test_json_mode_in_one_process(tmp_path: Path, refs: Path):
    inputs = [make_rate(tmp_path / "j_rate.fits", shape=SHAPE, primary=SUBARRAY)]
    bad = tmp_path / "bad_rate.fits"
    bad.write_text("not a FITS file")
    out = tmp_path / "out"
    result = invoke("--log-format", "json", "process", *inputs, bad, "--refs", refs, "-o", out)
    assert result.exit_code == 1, result.output
    _assert_json_mode(result.stdout, result.stderr, inputs, bad, out)


def test_rerun_after_an_interrupted_publish_replaces_the_orphaned_companions(tmp_path: Path, refs: Path):
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    out = tmp_path / "out"
    assert invoke("process", path, "--refs", refs, "-o", out).exit_code == 0
    (out / "x_cal.fits").unlink()  # as if killed between publishing the i2d and the cal (cal goes last)
    stale = (out / "x_i2d.fits").stat().st_mtime_ns
    result = invoke("process", path, "--refs", refs, "-o", out)
    assert result.exit_code == 0 and "done 1" in result.stdout, result.output
    assert (out / "x_cal.fits").exists() and (out / "x_i2d.fits").stat().st_mtime_ns != stale


def test_an_internal_error_is_told_once_and_its_traceback_only_with_debug(tmp_path: Path, refs: Path, monkeypatch):
    import image2.run.process as run_process

    def broken(*args, **kwargs):
        raise RuntimeError("a defect")

    monkeypatch.setattr(run_process, "calibrate_chunks", broken)
    path = make_rate(tmp_path / "x_rate.fits", shape=SHAPE, primary=SUBARRAY)
    plain = invoke("process", path, "--refs", refs, "-o", tmp_path / "a")
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    assert plain.output.count("RuntimeError('a defect')") == 1
    debug = invoke("--debug", "process", path, "--refs", refs, "-o", tmp_path / "b")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr and 'raise RuntimeError("a defect")' in debug.stderr


def test_the_run_layer_hands_the_exposure_and_members_to_core_and_keeps_neither(tmp_path: Path, refs: Path,
                                                                                monkeypatch):
    """While the steps run, the exposure read is freed by the first step and the background members (read
    without VAR_* or AREA) once combined: the run layer keeps no reference to either."""
    import image2.run.process as run_process

    alive: dict[str, weakref.ref] = {}
    after: dict[str, set[str]] = {}

    def tracked(name: str, record):
        alive[name] = weakref.ref(record)
        return record

    read, chunks = run_process.read_exposure, run_process.exposure_chunks
    monkeypatch.setattr(run_process, "read_exposure", lambda path, **kw: tracked(Path(path).name, read(path, **kw)))
    monkeypatch.setattr(run_process, "exposure_chunks",
                        lambda handle, meta: map(functools.partial(tracked, "science"), chunks(handle, meta)))

    class Clock(run_process.StepClock):
        def ended(self, step, status, notes=()):
            super().ended(step, status, notes)
            after[step] = {name for name, ref in alive.items() if ref() is not None}

    monkeypatch.setattr(run_process, "StepClock", Clock)
    result = invoke("process", _association(tmp_path), "--refs", refs, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert set(alive) == {"science", "bkg1_rate.fits", "bkg2_rate.fits"}
    assert after["bkg_subtract"] == after["resample"] == set()
