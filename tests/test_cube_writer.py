"""Chunked writing of 3-D products equals writing the whole cube at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from image2.io.atomic import Staging
from image2.io.cube_writer import CubeWriter
from image2.io.fits import read_exposure, write_exposure


def test_chunked_file_reads_back_identical_to_a_whole_write(rateints_file: Path, tmp_path: Path):
    exposure = read_exposure(rateints_file)
    exposure = exposure.evolve(dq=exposure.dq | np.uint32(2**31), var_flat=exposure.sci * 0.5,
                               area=np.full(exposure.shape, 1.5, np.float32))
    whole = write_exposure(exposure, tmp_path / "whole_calints.fits")
    target = tmp_path / "chunked_calints.fits"
    with Staging() as staging:
        with staging.open(target) as handle:
            writer = CubeWriter(handle, exposure.integrations(0, 3), exposure.nints, target.name)
            writer.write(3, exposure.integrations(3, 4))
        staging.publish()
    back = read_exposure(target)
    for name in ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat", "area"):
        assert getattr(back, name).tobytes() == getattr(exposure, name).tobytes(), name
    with fits.open(whole) as a, fits.open(target) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b):
            skip = {"DATE", "FILENAME"}
            assert {k: v for k, v in ha.header.items() if k not in skip} == \
                   {k: v for k, v in hb.header.items() if k not in skip}, ha.name
        assert np.array_equal(np.asarray(a["INT_TIMES"].data), np.asarray(b["INT_TIMES"].data))
    assert target.stat().st_size == whole.stat().st_size
