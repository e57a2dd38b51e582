"""The demo dataset: a NIRCam full-frame field with two background exposures and its references.

Everything is synthetic but laid out and scaled like real data: a 2048×2048 NRCB1 F150W
exposure of stars and galaxies on sky, with Poisson and read noise, the flat-field imprinted,
bad pixels and cosmic-ray flags, a realistic pointing, two background exposures, a Level-2
association, and the flat (with structure), photom, area, distortion and filteroffset references.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from image2.synthetic import references as refs
from image2.synthetic.exposures import make_rate, write_association
from image2.synthetic.scene import observe, random_sources, render

SHAPE = (2048, 2048)
PRODUCT = "jw02736001001_02101_00001_nrcb1"
POINTING = {"RA_REF": 53.1625, "DEC_REF": -27.7914, "ROLL_REF": 293.1, "V2_REF": -63.0, "V3_REF": -490.0,
            "V3I_YANG": -0.55, "VPARITY": -1, "VA_SCALE": 1.000012}
SKY_RATE = 0.35  # DN/s in F150W
EXPTIME = 1030.73
READ_NOISE = 12.0  # DN per exposure


@attrs.frozen
class Demo:
    """Where the demo's inputs are."""

    association: Path
    references: Path
    inputs: tuple[Path, ...]


def flat_pattern(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Return a flat's large-scale structure: vignetting towards the corners and a gentle tilt."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    r2 = ((xx - nx / 2) / nx) ** 2 + ((yy - ny / 2) / ny) ** 2
    return (1.0 - 0.12 * r2 + 0.03 * (xx / nx - 0.5)).astype(np.float32)


def _bad_pixels(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return DQ flags and a mask of unusable pixels: hot, dead, a bad column, cosmic-ray jumps."""
    dq = np.zeros(shape, np.uint32)
    hot = rng.random(shape) < 4e-4
    dead = rng.random(shape) < 2e-4
    dq[hot] |= 1 | 2048
    dq[dead] |= 1 | 1024
    dq[:, 1377] |= 1 | 2048
    dq[rng.random(shape) < 2e-3] |= 4  # jumps detected and corrected upstream
    return dq, (dq & 1) != 0


def _exposure(path: Path, rate: np.ndarray, flat: np.ndarray, seed: int, date_offset: float) -> Path:
    rng = np.random.default_rng(seed)
    observed = observe(rate * flat, EXPTIME, READ_NOISE, seed=seed)
    dq, unusable = _bad_pixels(rng, rate.shape)
    sci = observed.sci.copy()
    sci[unusable] = np.nan
    start = 60000.5 + date_offset
    return make_rate(path, shape=rate.shape, sci={f: v for f, v in POINTING.items()}, arrays={
        "SCI": sci, "ERR": observed.err, "DQ": dq, "VAR_POISSON": observed.var_poisson,
        "VAR_RNOISE": observed.var_rnoise,
    }, primary={"EXPSTART": start, "EXPMID": start + 0.00621, "EXPEND": start + 0.01242,
                "PROGRAM": "02736", "TARGNAME": "HUDF-DEMO"})


def build(folder: Path) -> Demo:
    """Write the demo inputs and references under ``folder`` and return where they are."""
    inputs = folder / "inputs"
    reference_dir = folder / "references"
    inputs.mkdir(parents=True, exist_ok=True)
    reference_dir.mkdir(parents=True, exist_ok=True)
    flat = flat_pattern()
    rng = np.random.default_rng(3)
    dead_flat = np.argwhere(rng.random(SHAPE) < 5e-5)
    refs.make_flat(reference_dir / "jwst_nircam_flat_9001.fits", detector="NRCB1", value=flat,
                   nan_pixels=dead_flat[: len(dead_flat) // 2], zero_pixels=dead_flat[len(dead_flat) // 2:])
    refs.make_photom(reference_dir / "jwst_nircam_photom_9001.fits", instrument="NIRCAM", detector="NRCB1",
                     pixar_sr=2.29e-14, pixar_a2=0.000967)
    area = (1.0 + 0.02 * (flat_pattern() - 1.0)).astype(np.float32)
    refs.make_area(reference_dir / "jwst_nircam_area_9001.fits", detector="NRCB1", values=area,
                   pixar_sr=2.29e-14, pixar_a2=0.000967)
    refs.make_distortion(reference_dir / "jwst_nircam_distortion_9001.asdf", detector="NRCB1")
    refs.make_filteroffset(reference_dir / "jwst_nircam_filteroffset_9001.asdf", detector="NRCB1")

    scene = render(SHAPE, random_sources(SHAPE, n_stars=450, n_galaxies=90, seed=7), SKY_RATE)
    science = _exposure(inputs / f"{PRODUCT}_rate.fits", scene, flat, seed=11, date_offset=0.0)
    backgrounds = []
    for number in (2, 3):
        sky = render(SHAPE, [], SKY_RATE * (1 + 0.01 * number))  # dedicated blank-sky pointings
        name = f"jw02736001001_02101_0000{number}_nrcb1_rate.fits"
        backgrounds.append(_exposure(inputs / name, sky, flat, seed=20 + number, date_offset=0.02 * number))
    association = write_association(inputs / "jw02736-o001_image2_asn.json", [{
        "name": PRODUCT,
        "members": [{"expname": science.name, "exptype": "science"},
                    *({"expname": b.name, "exptype": "background"} for b in backgrounds)],
    }], program="02736", asn_id="o001", target="t001")
    return Demo(association, reference_dir, (science, *backgrounds))
