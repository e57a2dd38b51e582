"""An exposure read as core calibrates it (a 3-D one in chunks of integrations), and a 3-D one written chunk
by chunk, so memory holds one chunk at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from image2.core.exposure import Exposure
from image2.core.meta import Meta
from image2.core.naming import product_filename
from image2.core.pipeline import Products
from image2.io.atomic import Staging
from image2.io.cube_writer import CubeWriter
from image2.io.fits import ExposureFile
from image2.io.preview import preview_of

CHUNK_BYTES = 16 * 2**20
"""Bytes of one float32 array per chunk of a 3-D exposure. Measured peak memory is about 0.6 GB
whatever the number of integrations (580 MiB for 50 and for 200 integrations of 256×2048,
benchmarks/bench_process.py)."""


def exposure_chunks(handle: ExposureFile, meta: Meta) -> Iterator[Exposure]:
    """Yield the exposure of ``handle`` with ``meta`` as core calibrates it: a 2-D one whole, a 3-D one in chunks
    of integrations (CHUNK_BYTES a float32 array), each read only when asked for and then held by the asker alone."""
    if not handle.is_cube:
        yield handle.read().evolve(meta=meta)
        return
    nints, ny, nx = handle.shape
    step = max(1, CHUNK_BYTES // (ny * nx * 4))
    for start in range(0, nints, step):
        yield handle.read(start, min(start + step, nints)).evolve(meta=meta)


def stage_cube(calibrated: Iterator[Products], nints: int, output_dir: Path, root: str, staging: Staging, *,
               preview: str | None = None) -> Exposure:
    """Stage calints (and bsubints) of a 3-D exposure of ``nints`` integrations as core's ``calibrate_chunks``
    yields the products of its chunks (``calibrated``); return the first chunk's calints record, whose
    metadata and provenance are those of the whole product."""
    first = next(calibrated)
    cal_name = product_filename(root, "cal", cube=True)
    bsub_name = product_filename(root, "bsub", cube=True)
    with contextlib.ExitStack() as stack:
        cal_writer = CubeWriter(stack.enter_context(staging.open(output_dir / cal_name)), first.cal, nints, cal_name)
        bsub_writer = None
        if first.bsub is not None:
            bsub_writer = CubeWriter(stack.enter_context(staging.open(output_dir / bsub_name, True)), first.bsub,
                                     nints, bsub_name)
        start = first.cal.nints
        for products in calibrated:
            cal_writer.write(start, products.cal)
            if bsub_writer is not None:
                bsub_writer.write(start, products.bsub)
            start += products.cal.nints
    if preview is not None:
        with staging.open(output_dir / (Path(cal_name).stem + ".png"), True) as png_handle:
            png_handle.write(preview_of(first.cal, cal_name, preview))
    return first.cal
