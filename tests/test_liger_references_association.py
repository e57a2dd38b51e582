"""Liger/IRIS reference files and Liger-form associations read into image2's records."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from image2.core.references import DarkReference, FlatReference
from image2.errors import InvalidInputError, ReferenceFileError
from image2.io.association import load_association, load_input
from image2.io.refs.selection import reference_date
from image2.io.refs.readers import read_reference
from image2.synthetic.liger import Region, reference_keywords, write_liger_file

SHAPE = (30, 40)


def _reference(tmp_path, reftype: str, dq_dtype, **keywords):
    rng = np.random.default_rng(1)
    dq = np.zeros(SHAPE, dq_dtype)
    dq[1, 2] = 2048 if dq_dtype == np.uint16 else (1 << 20) | 1
    arrays = {"data": rng.normal(1, 0.1, SHAPE).astype(np.float32), "err": np.full(SHAPE, 0.01, np.float32), "dq": dq}
    keys = {**reference_keywords(reftype, shape=SHAPE, placement=Region(11, 21, 40, 30)), **keywords}
    return write_liger_file(tmp_path / f"Liger_IMG_{reftype.upper()}.fits", arrays, keys), arrays


def test_a_liger_dark_reads_from_data_with_its_placement(tmp_path):
    path, arrays = _reference(tmp_path, "dark", np.uint16)
    dark = read_reference("dark", path)
    assert isinstance(dark, DarkReference)
    assert (dark.sci == arrays["data"]).all() and (dark.err == arrays["err"]).all() and dark.dq[1, 2] == 2048
    assert (dark.subarray.name, dark.subarray.xstart, dark.subarray.ystart) == ("CUSTOM", 11, 21)


def test_a_liger_flat_keeps_its_uint32_dq(tmp_path):
    path, arrays = _reference(tmp_path, "flat", np.uint32)
    flat = read_reference("flat", path)
    assert isinstance(flat, FlatReference) and flat.instrument == "Liger"
    assert flat.dq.dtype == np.uint32 and flat.dq[1, 2] == (1 << 20) | 1


def test_a_liger_reference_of_the_wrong_type_is_refused(tmp_path):
    path, _ = _reference(tmp_path, "flat", np.uint32)
    with pytest.raises(ReferenceFileError, match="REFTYPE is 'flat', not a DARK reference"):
        read_reference("dark", path)


def test_reference_dates_come_from_expdtst_else_expjdst():
    assert reference_date({"EXPDTST": "20241017061500"}) == dt.datetime(2024, 10, 17, 6, 15)
    assert reference_date({"EXPJDST": 2460600.75}) == dt.datetime(2024, 10, 17, 6, 0)
    assert reference_date({"EXPDTST": "soon"}) is None


def test_a_liger_form_association_gives_one_product_per_sci_frame_with_the_sky_frames(tmp_path):
    asn = tmp_path / "liger_asn.json"
    asn.write_text(json.dumps({"SCI": ["a_LVL1_0001.fits", "b_LVL1_0002.fits"], "SKY": ["s1.fits", "s2.fits"]}))
    association = load_association(asn)
    assert [p.name for p in association.products] == ["a_LVL1_0001", "b_LVL1_0002"]
    first = association.products[0]
    assert first.science[0].path == tmp_path / "a_LVL1_0001.fits"
    assert [m.path.name for m in first.background] == ["s1.fits", "s2.fits"]
    assert load_input(asn).products == association.products


def test_without_sky_frames_the_sky_comes_from_every_sci_frame(tmp_path):
    asn = tmp_path / "liger_asn.json"
    asn.write_text(json.dumps({"SCI": ["a.fits", "b.fits"]}))
    products = load_association(asn).products
    assert [m.path.name for m in products[1].background] == ["a.fits", "b.fits"]


@pytest.mark.parametrize("content, message", [
    ({"SCI": []}, "no SCI frame"),
    ({"SCI": ["a.fits"], "DARK": ["d.fits"]}, "keys must be SCI and SKY"),
    ({"SCI": "a.fits"}, "SCI must be a list"),
    ({"SCI": ["../elsewhere/a.fits"]}, "leaves the association's folder"),
])
def test_malformed_liger_associations_are_refused(tmp_path, content, message):
    asn = tmp_path / "liger_asn.json"
    asn.write_text(json.dumps(content))
    with pytest.raises(InvalidInputError, match=message):
        load_association(asn)
