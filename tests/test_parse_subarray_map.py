"""parse_subarray_map (Liger/IRIS, steps.md §2): subarray records from SUBARR_MAP, DQ bit 16, invalid maps."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.exposure import Exposure, Extension
from image2.core.parse_subarray_map import parse_subarray_map
from image2.errors import StepError

OUTLIER = 16


def _exposure(ids, nints=None, dq=0) -> Exposure:
    ids = np.asarray(ids)
    shape = ids.shape if nints is None else (nints, *ids.shape)
    return Exposure(sci=np.ones(shape), err=np.ones(shape), dq=np.full(shape, dq, np.uint32),
                    extensions={"SUBARR_MAP": Extension(ids)})


MAP = np.array([
    [0, 1, 1, 0, 0, 0],
    [0, 1, 1, 0, 2, 0],
    [0, 0, 0, 0, 2, 0],
    [0, 0, 0, 0, 0, 0],
], np.uint16)


def test_records_each_rectangle_and_flags_its_pixels():
    out = parse_subarray_map(_exposure(MAP, dq=4))
    assert out.meta.tree["subarray_map"] == [
        {"id": 1, "xstart": 2, "ystart": 1, "xsize": 2, "ysize": 2, "detxsiz": 6, "detysiz": 4,
         "fastaxis": 0, "slowaxis": 1},
        {"id": 2, "xstart": 5, "ystart": 2, "xsize": 1, "ysize": 2, "detxsiz": 6, "detysiz": 4,
         "fastaxis": 0, "slowaxis": 1},
    ]
    assert out.dq.tolist() == np.where(MAP != 0, 4 | OUTLIER, 4).tolist()
    assert out.meta.status == {} and out.meta.provenance[-1].status == "COMPLETE"


def test_cube_flags_every_integration():
    out = parse_subarray_map(_exposure(MAP, nints=3))
    assert out.dq.shape == (3, 4, 6) and (out.dq == (MAP != 0) * OUTLIER).all()


def test_without_the_extension_nothing_changes():
    exposure = Exposure(sci=np.ones((2, 2)), err=np.ones((2, 2)), dq=np.zeros((2, 2)))
    out = parse_subarray_map(exposure)
    assert out.meta.status == {} and "subarray_map" not in out.meta.tree
    assert out.meta.provenance[-1].notes == ("no SUBARR_MAP extension",)


def test_ids_stop_at_the_first_missing_one_but_their_pixels_are_flagged():
    ids = MAP.copy()
    ids[3, 0] = 4  # no id 3: id 4 is not described
    out = parse_subarray_map(_exposure(ids))
    assert [r["id"] for r in out.meta.tree["subarray_map"]] == [1, 2]
    assert out.dq[3, 0] == OUTLIER
    assert out.meta.provenance[-1].notes[0].startswith("SUBARR_MAP ids [4] are not described")


def test_non_rectangular_region_is_invalid():
    ids = MAP.copy()
    ids[0, 1] = 0
    with pytest.raises(StepError, match=r"parse_subarray_map: SUBARR_MAP subarray 1 \(rows 0:2, columns 1:3\) "
                                        r"does not fill its bounding box"):
        parse_subarray_map(_exposure(ids))


def test_overlapping_regions_are_invalid():
    ids = MAP.copy()
    ids[1, 4], ids[1, 3] = 1, 2  # id 1's bounding box now covers columns 1..4 and holds id 2
    with pytest.raises(StepError, match="subarray 1 .* overlaps subarray 2"):
        parse_subarray_map(_exposure(ids))


def test_map_must_be_an_integer_image_of_the_plane_shape():
    with pytest.raises(StepError, match="must be an integer image"):
        parse_subarray_map(_exposure(MAP.astype(np.float32)))
    exposure = _exposure(MAP).evolve(extensions={"SUBARR_MAP": Extension(MAP[:3])})
    with pytest.raises(StepError, match=r"shape \(4, 6\), not uint16 array of shape \(3, 6\)"):
        parse_subarray_map(exposure)
