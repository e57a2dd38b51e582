"""Liger/IRIS imager arrays laid out and scaled like real frames: science and SKY frames, darks, flats.

Science frames are a field of stars and galaxies on a sky with a gradient, seen through the
flat, plus dark current, with Poisson and read noise, in e-/s; ERR is their 1-σ noise. A full
frame read while subarrays were read concurrently has 0 inside them and a SUBARR_MAP with
their ids. The Liger demo writes them in the Liger/IRIS layout (:func:`write_liger_file`),
the parity tests through the Liger pipeline's own datamodels.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
from astropy.io import fits

from image2.synthetic.demo import Demo
from image2.synthetic.scene import observe, random_sources, render

EXPTIME = 60.0
READ_NOISE = 5.0  # e- per frame
DARK_RATE = 0.05  # e-/s
HOT = 2048
DEAD = 1024
DO_NOT_USE = 1


@attrs.frozen
class Region:
    """A rectangle of pixels, FITS-style: 1-based start (x, y) and size."""

    xstart: int
    ystart: int
    xsize: int
    ysize: int

    def slices(self, origin: tuple[int, int] = (1, 1)) -> tuple[slice, slice]:
        """The (rows, columns) slices of the region in an array whose first pixel is ``origin`` (x, y)."""
        x0, y0 = self.xstart - origin[0], self.ystart - origin[1]
        return slice(y0, y0 + self.ysize), slice(x0, x0 + self.xsize)


def subarray_map(shape: tuple[int, int], regions: Sequence[Region]) -> np.ndarray:
    """Return a uint16 SUBARR_MAP: 0 outside the regions, ``k`` inside the k-th (1-based)."""
    ids = np.zeros(shape, np.uint16)
    for k, region in enumerate(regions, start=1):
        ids[region.slices()] = k
    return ids


def flat_arrays(shape: tuple[int, int], seed: int = 3, *, nan_pixels: int = 6, zero_pixels: int = 6,
                flagged_pixels: int = 40) -> dict[str, np.ndarray]:
    """Return a flat (DATA ~1 with vignetting and pixel-to-pixel QE, ERR, uint32 DQ) with NaN, 0 and flagged pixels."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    r2 = ((xx - nx / 2) / nx) ** 2 + ((yy - ny / 2) / ny) ** 2
    data = (1.0 - 0.1 * r2) * rng.normal(1.0, 0.02, shape)
    data = data.astype(np.float32)
    dq = np.zeros(shape, np.uint32)
    flat_index = rng.choice(ny * nx, nan_pixels + zero_pixels + flagged_pixels, replace=False)
    rows, cols = np.unravel_index(flat_index, shape)
    data[rows[:nan_pixels], cols[:nan_pixels]] = np.nan
    data[rows[nan_pixels:nan_pixels + zero_pixels], cols[nan_pixels:nan_pixels + zero_pixels]] = 0.0
    dq[rows[nan_pixels + zero_pixels:], cols[nan_pixels + zero_pixels:]] = DO_NOT_USE | DEAD
    err = np.full(shape, 0.002, np.float32)
    return {"data": data, "err": err, "dq": dq}


def dark_arrays(shape: tuple[int, int], seed: int = 5, *, hot_fraction: float = 2e-4) -> dict[str, np.ndarray]:
    """Return a dark rate (DATA e-/s with hot pixels, ERR, uint16 DQ flagging the hot ones)."""
    rng = np.random.default_rng(seed)
    data = rng.normal(DARK_RATE, 0.002, shape).astype(np.float32)
    hot = rng.random(shape) < hot_fraction
    data[hot] += rng.uniform(1.0, 20.0, int(hot.sum())).astype(np.float32)
    dq = np.where(hot, HOT, 0).astype(np.uint16)
    err = np.full(shape, 0.001, np.float32)
    err[hot] = 0.05
    return {"data": data, "err": err, "dq": dq}


def frame_arrays(shape: tuple[int, int], *, seed: int, sky: float, dark: np.ndarray, flat: np.ndarray,
                 gradient: float = 0.3, stars: int = 150, galaxies: int = 30,
                 concurrent: Sequence[Region] = ()) -> dict[str, np.ndarray]:
    """Return an L1 frame (DATA e-/s float32, ERR, uint16 DQ, and SUBARR_MAP when ``concurrent`` is given).

    ``dark`` and ``flat`` are the frame-sized detector dark rate and response (NaN/0 taken as 1);
    ``stars = galaxies = 0`` makes a blank SKY frame. The sky rises by ``gradient`` across the rows.
    """
    ny, nx = shape
    scene = render(shape, random_sources(shape, stars, galaxies, seed=seed) if stars or galaxies else [], sky)
    scene *= 1.0 + gradient * (np.arange(ny, dtype=np.float64)[:, np.newaxis] / ny - 0.5)
    response = np.where(np.isfinite(flat) & (flat != 0), flat, 1.0)
    observed = observe(scene * response + dark, EXPTIME, READ_NOISE, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    dq = np.zeros(shape, np.uint16)
    dq[rng.random(shape) < 1e-4] = 2  # saturated
    arrays = {"data": observed.sci, "err": observed.err, "dq": dq}
    if concurrent:
        ids = subarray_map(shape, concurrent)
        arrays["data"] = np.where(ids != 0, np.float32(0.0), observed.sci)
        arrays["subarr_map"] = ids
    return arrays


def frame_keywords(*, instrument: str = "Liger", detector: str = "IMG", filter: str = "J", imtype: str = "SCI",
                   number: int = 1, jd_start: float = 2460600.75, shape: tuple[int, int] = (2048, 2048),
                   placement: Region | None = None, ra: float = 150.1, dec: float = 2.2,
                   scale: float = 0.01) -> dict[str, object]:
    """Return the PRIMARY keywords of a Liger/IRIS frame as the pipeline's datamodels write them."""
    ny, nx = shape
    full = 4096 if instrument.upper() == "IRIS" else 2048
    region = placement or Region(1, 1, nx, ny)
    start = dt.datetime(1970, 1, 1) + dt.timedelta(days=jd_start - 2440587.5)

    def stamp(seconds: float) -> str:
        return (start + dt.timedelta(seconds=seconds)).strftime("%Y%m%d%H%M%S")

    return {
        "INSTRUME": instrument, "DETECTOR": detector, "FILTER": filter, "SCALE": scale,
        "IMTYPE": imtype, "EXPTIME": EXPTIME, "EXPNUM": number, "EXPJDST": jd_start,
        "EXPJDMID": jd_start + EXPTIME / 172800, "EXPJDEND": jd_start + EXPTIME / 86400,
        "EXPDTST": stamp(0), "EXPDTMID": stamp(EXPTIME / 2), "EXPDTEND": stamp(EXPTIME), "READMODE": "DEFAULT",
        "NFRAMES": 1, "RA": ra, "DEC": dec,
        "SUBARRAY": "FULL" if placement is None else "CUSTOM", "SUBARRID": 0 if placement is None else 1,
        "SUBSTRT1": region.xstart, "SUBSTRT2": region.ystart, "SUBSIZE1": region.xsize, "SUBSIZE2": region.ysize,
        "FASTAXIS": 0, "SLOWAXIS": 1, "DETXSIZE": full, "DETYSIZE": full,
        "TELESCOP": "TMT" if instrument.upper() == "IRIS" else "Keck-I", "DATAMODL": "ImagerModel",
        "CRPIX1": (nx + 1) / 2, "CRPIX2": (ny + 1) / 2, "CRVAL1": ra, "CRVAL2": dec,
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
        "CDELT1": -scale / 3600, "CDELT2": scale / 3600,
    }


def reference_keywords(reftype: str, **frame: object) -> dict[str, object]:
    """Return the PRIMARY keywords of a Liger/IRIS DarkModel or FlatModel (lower-case REFTYPE, REFVER)."""
    keys = {k: v for k, v in frame_keywords(**frame).items()
            if not k.startswith(("CRPIX", "CRVAL", "CTYPE", "CUNIT", "CDELT")) and k not in ("RA", "DEC", "SCALE")}
    return {**keys, "DATAMODL": {"dark": "DarkModel", "flat": "FlatModel"}[reftype], "REFTYPE": reftype,
            "REFVER": "0.0.1"}


def write_liger_file(path: Path, arrays: dict[str, np.ndarray], keywords: dict[str, object]) -> Path:
    """Write ``arrays`` (data, err, dq, subarr_map) in the Liger/IRIS layout with ``keywords`` in PRIMARY."""
    primary = fits.PrimaryHDU()
    for keyword, value in keywords.items():
        primary.header[keyword] = value
    hdus = [primary]
    for key, name in (("data", "DATA"), ("err", "ERR"), ("dq", "DQ"), ("subarr_map", "SUBARR_MAP")):
        if key in arrays:
            hdus.append(fits.ImageHDU(arrays[key], name=name, ver=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def build_demo(folder: Path) -> Demo:
    """Write a Liger demo under ``folder``: a 2048² science frame read with two concurrent subarrays
    (SUBARR_MAP), two SKY frames, a dark and a flat, and a Liger-form association of them."""
    shape = (2048, 2048)
    inputs, references = folder / "inputs", folder / "references"
    dark, flat = dark_arrays(shape), flat_arrays(shape)
    write_liger_file(references / "Liger_IMG_DARK_20241017000000_0.0.1.fits", dark, reference_keywords("dark"))
    write_liger_file(references / "Liger_IMG_FLAT_20241017000000_0.0.1.fits", flat, reference_keywords("flat"))
    frames = []
    for number, (imtype, level, seed, stars) in enumerate(
            (("SCI", 40.0, 11, 150), ("SKY", 42.0, 101, 0), ("SKY", 38.0, 111, 0)), start=1):
        concurrent = (Region(201, 301, 128, 96), Region(1501, 1101, 256, 256)) if imtype == "SCI" else ()
        arrays = frame_arrays(shape, seed=seed, sky=level, dark=dark["data"], flat=flat["data"], stars=stars,
                              galaxies=stars // 5, concurrent=concurrent)
        name = f"2024B-P001-001_Liger_IMG_{imtype}_LVL1_{number:04d}.fits"
        keywords = frame_keywords(imtype=imtype, number=number, jd_start=2460600.75 + number / 1440)
        frames.append(write_liger_file(inputs / name, arrays, keywords))
    association = inputs / "liger_asn.json"
    association.write_text(json.dumps({"SCI": [frames[0].name], "SKY": [f.name for f in frames[1:]]}, indent=1))
    return Demo(association, references, tuple(frames))
