"""assign_wcs parity with jwst 3.0.0: world coordinates on a pixel grid, S_REGION and the SIP keywords.

Each case is one rate file and its DISTORTION (+ FILTEROFFSET) references, given to jwst's
AssignWcsStep as overrides and to image2's assign_wcs through image2's own readers. jwst runs
once for the module. The gwcs of both products are evaluated here, in image2's environment,
so equal means the two transform chains are the same models with the same parameters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asdf
import numpy as np
import pytest
from astropy.io import fits

from image2.core.assign_wcs import assign_wcs
from image2.io.fits import read_exposure, write_exposure
from image2.io.refs.readers import read_distortion, read_filteroffset
from tests.parity.jwst_harness import JwstBatch, assert_arrays_equal
from image2.synthetic.references import default_distortion_model, make_distortion, make_filteroffset
from image2.synthetic.exposures import make_rate

pytestmark = pytest.mark.slow

SIP_PREFIXES = ("A_", "B_", "AP_", "BP_")
WCS_CARDS = ("WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2",
             "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "S_REGION")
ASDF_ONLY = ("lonpole", "latpole", "mjdref", "radesys", "wcsname", "sipmxerr", "sipiverr",
             "ap_1_0", "ap_0_1", "bp_1_0", "bp_0_1")


@dataclass(frozen=True)
class Case:
    """One exposure: its shape, header overrides and which references it gets."""

    name: str
    shape: tuple[int, ...]
    primary: dict[str, Any] = field(default_factory=dict)
    sci: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    instrument: str = "NIRCAM"
    filteroffset: bool = True


CASES = (
    Case("nircam_subarray", (200, 240), {"SUBARRAY": "SUB320", "SUBSTRT1": 1001, "SUBSTRT2": 901}),
    Case("nircam_full_frame", (2048, 2048)),
    Case("nircam_no_offset_match", (64, 80), {"PUPIL": "F162M", "SUBSTRT1": 33, "SUBSTRT2": 1},
         sci={"VPARITY": 1, "ROLL_REF": 287.25}, drop=("VA_SCALE",)),
    Case("nircam_tso_cube", (3, 64, 2048), {"EXP_TYPE": "NRC_TSIMAGE", "TSOVISIT": True, "SUBARRAY": "SUBGRISM64",
                                            "SUBSTRT2": 1985, "DATAMODL": "CubeModel"}),
    Case("miri_subarray", (256, 256), {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "FILTER": "F770W",
                                       "EXP_TYPE": "MIR_IMAGE", "SUBARRAY": "SUB256", "SUBSTRT1": 413,
                                       "SUBSTRT2": 51}, drop=("PUPIL", "MODULE", "CHANNEL"), instrument="MIRI"),
    Case("fgs_without_filteroffset", (128, 128), {"INSTRUME": "FGS", "DETECTOR": "GUIDER1", "EXP_TYPE": "FGS_IMAGE",
                                                  "SUBSTRT1": 1, "SUBSTRT2": 1},
         drop=("FILTER", "PUPIL", "MODULE", "CHANNEL"), instrument="FGS", filteroffset=False),
)


@dataclass
class Runs:
    """Per case: image2's product and jwst's."""

    ours: dict[str, Path]
    jwst: dict[str, Path]


@pytest.fixture(scope="module")
def runs(jwst_python: str, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("assign_wcs_parity")
    batch = JwstBatch(root / "jwst")
    ours, jwst = {}, {}
    detectors = {"NIRCAM": "NRCB1", "MIRI": "MIRIMAGE", "FGS": "GUIDER1"}
    for case in CASES:
        rate = make_rate(root / f"{case.name}_rate.fits", shape=case.shape, primary=case.primary, sci=case.sci,
                         drop=case.drop)
        detector = detectors[case.instrument]
        full = (1024, 1032) if case.instrument == "MIRI" else (2048, 2048)
        distortion = make_distortion(root / f"{case.name}_distortion.asdf", default_distortion_model(full),
                                     detector=detector)
        overrides: dict[str, Any] = {"distortion": distortion, "filteroffset": "N/A"}
        filteroffset = None
        if case.filteroffset:
            overrides["filteroffset"] = make_filteroffset(root / f"{case.name}_filteroffset.asdf", detector=detector)
            filteroffset = read_filteroffset(overrides["filteroffset"])
        jwst[case.name] = batch.step(case.name, "assign_wcs", rate, overrides=overrides)
        out = assign_wcs(read_exposure(rate), read_distortion(distortion), filteroffset)
        ours[case.name] = write_exposure(out, root / f"{case.name}_assign_wcs.fits")
    results = batch.run(jwst_python)
    for case in CASES:
        results[case.name].check()
    return Runs(ours, jwst)


def _tree_meta(path: Path) -> dict[str, Any]:
    with fits.open(path) as hdul:
        raw = hdul["ASDF"].data["ASDF_METADATA"][0].tobytes()
    with asdf.open(io.BytesIO(raw), lazy_load=False) as handle:
        return dict(handle.tree["meta"])


def _pixel_grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres every few pixels plus points on and beyond the box edges."""
    ny, nx = shape[-2:]
    xs = np.concatenate([np.linspace(0, nx - 1, 23), [-0.5, -0.6, nx - 0.5, nx - 0.4]])
    ys = np.concatenate([np.linspace(0, ny - 1, 19), [-0.5, -0.6, ny - 0.5, ny - 0.4]])
    y, x = np.meshgrid(ys, xs, indexing="ij")
    return x.ravel(), y.ravel()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_world_coordinates_equal_jwst(runs: Runs, case: Case):
    ours, theirs = _tree_meta(runs.ours[case.name])["wcs"], _tree_meta(runs.jwst[case.name])["wcs"]
    assert ours.available_frames == theirs.available_frames
    assert ours.bounding_box.bounding_box(order="F") == theirs.bounding_box.bounding_box(order="F")
    x, y = _pixel_grid(case.shape)
    for frame in ("v2v3", "v2v3vacorr", "world"):
        a, b = ours.get_transform("detector", frame)(x, y), theirs.get_transform("detector", frame)(x, y)
        for axis in range(2):
            assert_arrays_equal(np.asarray(a[axis]), np.asarray(b[axis]), f"{case.name} {frame} axis {axis}")
    ra, dec = theirs(x, y)  # with the bounding box: NaN at the same pixels
    mine = ours(x, y)
    assert_arrays_equal(mine[0], ra, f"{case.name} RA")
    assert_arrays_equal(mine[1], dec, f"{case.name} Dec")
    inverse_ours = ours.invert(ra[np.isfinite(ra)], dec[np.isfinite(dec)])
    inverse_jwst = theirs.invert(ra[np.isfinite(ra)], dec[np.isfinite(dec)])
    assert_arrays_equal(np.asarray(inverse_ours), np.asarray(inverse_jwst), f"{case.name} inverse")
    read_back = read_exposure(runs.jwst[case.name]).wcs  # a jwst product's gwcs comes back on read
    assert_arrays_equal(read_back(x, y)[0], ra, f"{case.name} RA of jwst's file read by image2")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_s_region_and_sip_cards_equal_jwst(runs: Runs, case: Case):
    with fits.open(runs.ours[case.name]) as ours, fits.open(runs.jwst[case.name]) as theirs:
        a, b = ours["SCI"].header, theirs["SCI"].header
        keys = set(WCS_CARDS) | {k for k in (*a.keys(), *b.keys()) if k.startswith(SIP_PREFIXES)}
        differences = [f"{k}: image2 {a.get(k)!r} != jwst {b.get(k)!r}" for k in sorted(keys) if a.get(k) != b.get(k)]
        assert not differences, "\n".join(differences)
        assert b["S_REGION"].startswith("POLYGON ICRS  ")
        assert (ours[0].header["S_WCS"], theirs[0].header["S_WCS"]) == ("COMPLETE", "COMPLETE")
        for key in ("R_DISTOR", "R_FILOFF"):
            assert Path(str(ours[0].header[key])).name == Path(str(theirs[0].header[key])).name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_asdf_only_wcsinfo_equals_jwst(runs: Runs, case: Case):
    ours, theirs = _tree_meta(runs.ours[case.name])["wcsinfo"], _tree_meta(runs.jwst[case.name])["wcsinfo"]
    differences = [f"{k}: image2 {ours.get(k)!r} != jwst {theirs.get(k)!r}" for k in ASDF_ONLY
                   if ours.get(k) != theirs.get(k)]
    assert not differences, "\n".join(differences)
    assert "sipmxerr" in theirs
