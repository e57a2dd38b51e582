"""Step-by-step parity with jwst 3.0.0 (pipeline.md §7): background, flat_field, photom.

One small NIRCam NRCB1 F150W/CLEAR subarray exposure (SUBSTRT 101/201) and a 3-integration
cube, with NaN and DQ-flagged pixels, go through each jwst step and the matching image2
function with the same reference files (photom also with each TIMECOEFF table alone: their
float32 ``**`` and ``exp`` round per CPU, so only jwst run on the same machine can judge them);
SCI/ERR/DQ/VAR_*/AREA must be bit-identical and the step's header keywords equal. jwst runs
once for the whole module (one subprocess).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from image2.core.background import bkg_subtract, combine_backgrounds
from image2.core.dq import NO_FLAT_FIELD
from image2.core.exposure import Exposure
from image2.core.flat_field import flat_field
from image2.core.photom import photom
from image2.io.fits import read_exposure, write_exposure
from image2.io.refs.readers import read_area, read_flat, read_photom
from tests.parity.jwst_harness import CAL_ARRAYS, JwstBatch, assert_arrays_equal, assert_products_match
from image2.synthetic.references import make_area, make_flat, make_photom
from image2.synthetic.exposures import exposure_arrays, make_rate, write_association

pytestmark = pytest.mark.slow

START = (101, 201)  # SUBSTRT1/2: the science lies at full-frame x 100..123, y 200..215
SHAPE = (16, 24)
NINTS = 3
SUBARRAY = {"SUBARRAY": "SUB160"}
TIME_KINDS = ("linear", "exponential", "powerlaw")
"""The PHOTOM time-dependence tables (TIMECOEFF_*), each compared alone and all three together."""

PHOTOM_KEYWORDS = {"PRIMARY": ("S_PHOTOM", "R_PHOTOM", "R_AREA"),
                   "SCI": ("BUNIT", "PHOTMJSR", "PHOTUJA2", "PIXAR_SR", "PIXAR_A2"), "ERR": ("BUNIT",)}
FLAT_KEYWORDS = {"PRIMARY": ("S_FLAT", "R_FLAT"), "SCI": ("BUNIT",)}
BKG_KEYWORDS = {"PRIMARY": ("S_BKDSUB",), "SCI": ("BUNIT",)}


def full_frame(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Science (y, x) positions as full-frame (y, x) positions."""
    return [(y + START[1] - 1, x + START[0] - 1) for y, x in points]


def science_arrays(shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    """Sky-like arrays with NaN in SCI and in a variance, and DO_NOT_USE/NON_SCIENCE/JUMP_DET pixels."""
    arrays = exposure_arrays(shape, seed)
    arrays["SCI"][..., 3, 5] = np.nan
    arrays["VAR_POISSON"][..., 7, 2] = np.nan
    arrays["DQ"][..., 0, :] |= 512  # a NON_SCIENCE row
    arrays["DQ"][..., 9, 9] |= 1
    arrays["DQ"][..., 10, 11] |= 4
    return arrays


def background_arrays(shape: tuple[int, ...], seed: int, outliers: bool = False) -> dict[str, np.ndarray]:
    """Background arrays; ``outliers`` puts a +10 spike at a few pixels (of the first integration)."""
    arrays = exposure_arrays(shape, seed)
    if outliers:
        spike = arrays["SCI"][0] if len(shape) == 3 else arrays["SCI"]
        spike[2:4, 6:9] += 10.0
    if seed % 3 == 0:
        arrays["SCI"][..., 5, 5] = np.nan
    arrays["DQ"][..., 4, seed % shape[-1]] |= 2048
    return arrays


def rate(path: Path, shape: tuple[int, ...], start: tuple[int, int], arrays: dict[str, np.ndarray],
         **primary: object) -> Path:
    cards = {"SUBSTRT1": start[0], "SUBSTRT2": start[1], **SUBARRAY,
             "DATAMODL": "CubeModel" if len(shape) == 3 else "ImageModel", **primary}
    return make_rate(path, shape=shape, primary=cards, arrays=arrays)


@dataclass
class Inputs:
    """Every input and reference file of the module."""

    rate: Path
    cube: Path
    backgrounds: dict[str, list[Path]]
    flat: Path
    photoms: dict[str, Path]
    area: Path
    association: Path


def build_inputs(root: Path) -> Inputs:
    root.mkdir(parents=True, exist_ok=True)
    name = "jw01234001001_01101_{:05d}_nrcb1_{}.fits"
    sci = rate(root / name.format(1, "rate"), SHAPE, START, science_arrays(SHAPE, 1))
    cube = rate(root / name.format(2, "rateints"), (NINTS, *SHAPE), START, science_arrays((NINTS, *SHAPE), 2),
                EXP_TYPE="NRC_TSIMAGE", TSOVISIT=True)
    same = rate(root / name.format(11, "rate"), SHAPE, START, background_arrays(SHAPE, 11))
    cover = rate(root / name.format(12, "rate"), (40, 44), (91, 191), background_arrays((40, 44), 12))
    partial = rate(root / name.format(13, "rate"), (10, 12), START, background_arrays((10, 12), 13))
    far = rate(root / name.format(14, "rate"), SHAPE, (1001, 1001), background_arrays(SHAPE, 14))
    many = [rate(root / name.format(20 + i, "rate"), SHAPE, START, background_arrays(SHAPE, 20 + i, i == 4))
            for i in range(10)]
    cube_a = rate(root / name.format(31, "rateints"), (3, *SHAPE), START, background_arrays((3, *SHAPE), 31))
    cube_b = rate(root / name.format(32, "rateints"), (10, *SHAPE), START,
                  background_arrays((10, *SHAPE), 32, outliers=True))
    cube_partial = rate(root / name.format(33, "rateints"), (4, 10, 12), START, background_arrays((4, 10, 12), 33))
    flat = make_flat(root / "flat.fits", nan_pixels=full_frame([(2, 3), (12, 20)]), zero_pixels=full_frame([(4, 4)]),
                     flagged={"NO_FLAT_FIELD": full_frame([(5, 6)]), "DO_NOT_USE": full_frame([(6, 7)]),
                              "UNRELIABLE_FLAT": full_frame([(7, 8), (8, 8)])})
    rows = [{"filter": "F150W", "pupil": "CLEAR", "photmjsr": 0.2538, "uncertainty": 0.0038},
            {"filter": "F200W", "pupil": "CLEAR", "photmjsr": 0.2167, "uncertainty": 0.0032}]
    timecoeff = {"linear": [{"t0": 59700.0, "lossperyear": 0.0123}, {"t0": 59700.0, "lossperyear": 0.02}],
                 "exponential": [{"t0": 59650.0, "amplitude": 0.03, "tau": 210.0, "const": 0.97},
                                 {"t0": 59650.0, "amplitude": 0.01, "tau": 100.0, "const": 0.99}],
                 "powerlaw": [{"t0": 59600.0, "year1value": 0.995, "tsoft": 30.0, "alpha": -0.01},
                              {"t0": 59600.0, "year1value": 0.99, "tsoft": 10.0, "alpha": -0.02}]}
    photoms = {"plain": make_photom(root / "photom.fits", rows=rows),
               "time": make_photom(root / "photom_time.fits", rows=rows, timecoeff=timecoeff)}
    for kind in TIME_KINDS:  # one table alone: its float32 arithmetic cannot hide in the product
        photoms[kind] = make_photom(root / f"photom_{kind}.fits", rows=rows, timecoeff={kind: timecoeff[kind]})
    area = make_area(root / "area.fits")
    asn = write_association(root / "jw01234-o001_image2_asn.json", [{
        "name": "jw01234001001_01101_00001_nrcb1",
        "members": [{"expname": str(sci), "exptype": "science"},
                    {"expname": str(same), "exptype": "background"},
                    {"expname": str(cover), "exptype": "background"}]}])
    return Inputs(sci, cube, {"2d": [same, cover], "2d_partial": [same, partial, far], "2d_clip": many,
                              "3d": [cube_a, cube_b], "3d_partial": [cube_a, cube_partial]},
                  flat, photoms, area, asn)


BACKGROUND_SCIENCE = {"2d": "rate", "2d_partial": "rate", "2d_clip": "rate", "3d": "cube", "3d_partial": "cube"}
PHOTOM_CASES = {  # job: (input flat job, key of Inputs.photoms, with area)
    "photom_2d": ("flat_2d", "plain", True),
    "photom_2d_time": ("flat_2d", "time", True),
    "photom_2d_no_area": ("flat_2d", "time", False),
    "photom_3d": ("flat_3d", "time", True),
    **{f"photom_2d_{kind}": ("flat_2d", kind, True) for kind in TIME_KINDS},
}


@dataclass
class Runs:
    inputs: Inputs
    jwst: dict
    workdir: Path


@pytest.fixture(scope="module")
def runs(jwst_python: str, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("parity_steps")
    inputs = build_inputs(root / "inputs")
    batch = JwstBatch(root / "jwst")
    for case, members in inputs.backgrounds.items():
        batch.step(f"bkg_{case}", "bkg_subtract", getattr(inputs, BACKGROUND_SCIENCE[case]), args=[members],
                   parameters={"save_combined_background": True})
    flat_outputs = {"flat_2d": batch.step("flat_2d", "flat_field", inputs.rate, overrides={"flat": inputs.flat}),
                    "flat_3d": batch.step("flat_3d", "flat_field", inputs.cube, overrides={"flat": inputs.flat})}
    for job, (flat_job, photom_file, with_area) in PHOTOM_CASES.items():
        batch.step(job, "photom", flat_outputs[flat_job],
                   overrides={"photom": inputs.photoms[photom_file], "area": inputs.area if with_area else "N/A"})
    batch.pipeline("image2", inputs.association,
                   overrides={"flat_field": {"flat": inputs.flat},
                              "photom": {"photom": inputs.photoms["time"], "area": inputs.area}},
                   step_parameters={"bkg_subtract": {"save_results": True}, "assign_wcs": {"skip": True},
                                    "resample": {"skip": True}})
    return Runs(inputs, batch.run(jwst_python), root / "image2")


def written(runs: Runs, name: str, exposure: Exposure) -> Path:
    """Write an image2 result next to jwst's, for a file-to-file comparison."""
    runs.workdir.mkdir(exist_ok=True)
    return write_exposure(exposure, runs.workdir / f"{name}.fits", overwrite=True)


def completed(exposure: Exposure, keyword: str) -> Exposure:
    """Guard: the step really ran (so equal arrays are not merely two untouched inputs)."""
    assert exposure.meta.status.get(keyword) == "COMPLETE", exposure.meta.provenance[-1]
    return exposure


@pytest.mark.parametrize("case", list(BACKGROUND_SCIENCE))
def test_background_matches_jwst(runs: Runs, case: str):
    result = runs.jwst[f"bkg_{case}"]
    science = read_exposure(getattr(runs.inputs, BACKGROUND_SCIENCE[case]))
    members = [read_exposure(p) for p in runs.inputs.backgrounds[case]]
    combined = combine_backgrounds(science, members)
    with fits.open(result.named("_combinedbackground.fits")) as theirs:
        for name, ours in (("SCI", combined.data), ("ERR", combined.err), ("DQ", combined.dq)):
            assert_arrays_equal(ours, theirs[name].data, f"combined background {name} ({case})")
    ours = written(runs, f"bkg_{case}", completed(bkg_subtract(science, combined), "S_BKDSUB"))
    assert_products_match(ours, result.output, arrays=CAL_ARRAYS, keywords=BKG_KEYWORDS)
    # guards that each case exercises what it is meant to
    if case in ("2d_clip", "3d"):
        assert (combined.data[2:4, 6:9] < 1.5).all()  # the +10 spikes were clipped
    if case == "2d_partial":  # rows 10+ are covered by the same-geometry member only
        np.testing.assert_array_equal(combined.data[10:], np.nan_to_num(members[0].sci[10:]))
        assert (combined.data[:10, :12] != members[0].sci[:10, :12]).any()
    if case == "3d_partial":  # outside its overlap the partial cube member counts as 0 (jwst)
        alone = combine_backgrounds(science, members[:1])
        np.testing.assert_array_equal(combined.data[10:], (alone.data[10:].astype(np.float64) / 2).astype(np.float32))
    assert combined.dq.any()


@pytest.mark.parametrize("job", ["flat_2d", "flat_3d"])
def test_flat_field_matches_jwst(runs: Runs, job: str):
    science = read_exposure(runs.inputs.rate if job == "flat_2d" else runs.inputs.cube)
    result = completed(flat_field(science, read_flat(runs.inputs.flat)), "S_FLAT")
    assert np.count_nonzero(result.dq & NO_FLAT_FIELD) == 4 * science.nints  # NaN, zero and NO_FLAT_FIELD flat pixels
    ours = written(runs, job, result)
    assert_products_match(ours, runs.jwst[job].output, arrays=CAL_ARRAYS, keywords=FLAT_KEYWORDS)


@pytest.mark.parametrize("job", list(PHOTOM_CASES))
def test_photom_matches_jwst(runs: Runs, job: str):
    flat_job, photom_file, with_area = PHOTOM_CASES[job]
    science = read_exposure(runs.jwst[flat_job].output)  # jwst's flat output: photom is compared alone
    area = read_area(runs.inputs.area) if with_area else None
    result = completed(photom(science, read_photom(runs.inputs.photoms[photom_file]), area), "S_PHOTOM")
    assert (result.area is not None) == with_area
    ours = written(runs, job, result)
    assert_products_match(ours, runs.jwst[job].output, arrays=CAL_ARRAYS, keywords=PHOTOM_KEYWORDS)


@pytest.mark.parametrize("job", ["photom_2d_time", *(f"photom_2d_{kind}" for kind in TIME_KINDS)])
def test_time_dependent_photom_changes_the_factor(runs: Runs, job: str):
    """Guard: each TIMECOEFF case really exercises the time correction (the factors differ)."""
    with fits.open(runs.jwst["photom_2d"].output) as plain, fits.open(runs.jwst[job].output) as timed:
        assert plain["SCI"].header["PHOTMJSR"] != timed["SCI"].header["PHOTMJSR"]


def test_pipeline_background_flat_photom_chain_matches_jwst(runs: Runs):
    """jwst's Image2Pipeline (assign_wcs and resample skipped) against image2's steps chained."""
    result = runs.jwst["image2"]
    association = json.loads(runs.inputs.association.read_text())
    members = association["products"][0]["members"]
    science = read_exposure(members[0]["expname"])
    combined = combine_backgrounds(science, [read_exposure(m["expname"]) for m in members[1:]])
    bsub = bkg_subtract(science, combined)
    assert_products_match(written(runs, "image2_bsub", bsub), result.named("_bsub.fits"),
                          arrays=CAL_ARRAYS, keywords=BKG_KEYWORDS)
    cal = photom(flat_field(bsub, read_flat(runs.inputs.flat)), read_photom(runs.inputs.photoms["time"]),
                 read_area(runs.inputs.area))
    assert {k: cal.meta.status[k] for k in ("S_BKDSUB", "S_FLAT", "S_PHOTOM")} == dict.fromkeys(
        ("S_BKDSUB", "S_FLAT", "S_PHOTOM"), "COMPLETE")
    keywords = {hdu: (*FLAT_KEYWORDS.get(hdu, ()), *PHOTOM_KEYWORDS.get(hdu, ()), *BKG_KEYWORDS.get(hdu, ()))
                for hdu in ("PRIMARY", "SCI", "ERR")}
    assert_products_match(written(runs, "image2_cal", cal), result.named("_cal.fits"),
                          arrays=CAL_ARRAYS, keywords=keywords)
