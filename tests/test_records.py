"""Exposure records: immutability, shape rules, integration slicing and reassembly."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from image2.core.cards import Cards
from image2.core.exposure import Exposure, stack_integrations
from image2.core.meta import Instrument, Meta


def _cube(nints: int = 5, shape: tuple[int, int] = (3, 4)) -> Exposure:
    sci = np.arange(nints * shape[0] * shape[1], dtype=np.float32).reshape(nints, *shape)
    return Exposure(sci=sci, err=sci / 10, dq=np.zeros(sci.shape, np.uint32), var_poisson=sci / 100,
                    var_rnoise=np.ones_like(sci), area=np.ones(shape, np.float32),
                    meta=Meta(instrument=Instrument(name="NIRCAM")))


def test_arrays_are_read_only_and_typed():
    source = np.ones((3, 4), dtype=np.float64)
    exposure = Exposure(sci=source, err=source, dq=np.zeros((3, 4), np.int64))
    assert exposure.sci.dtype == np.float32 and exposure.dq.dtype == np.uint32
    with pytest.raises(ValueError, match="read-only"):
        exposure.sci[0, 0] = 5.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        exposure.sci = np.zeros((3, 4))  # type: ignore[misc]


def test_a_step_cannot_mutate_its_input():
    exposure = _cube()

    def careless_step(exp: Exposure) -> Exposure:
        exp.sci *= 2  # what a buggy step would try
        return exp

    before = exposure.sci.copy()
    with pytest.raises(ValueError, match="read-only"):
        careless_step(exposure)
    np.testing.assert_array_equal(exposure.sci, before)


def test_views_made_read_only_also_protect_the_record_from_writes_through_it():
    exposure = _cube()
    with pytest.raises(ValueError):
        exposure.integrations(0, 2).sci[...] = 0
    with pytest.raises(TypeError):
        exposure.meta.status["S_FLAT"] = "COMPLETE"  # type: ignore[index]


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="ERR shape"):
        Exposure(sci=np.zeros((3, 4)), err=np.zeros((3, 5)), dq=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="AREA shape"):
        Exposure(sci=np.zeros((2, 3, 4)), err=np.zeros((2, 3, 4)), dq=np.zeros((2, 3, 4)), area=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        Exposure(sci=np.zeros(4), err=np.zeros(4), dq=np.zeros(4))


def test_slicing_and_stacking_integrations_round_trip():
    exposure = _cube(7)
    parts = [exposure.integrations(i, min(i + 3, 7)) for i in range(0, 7, 3)]
    assert [p.nints for p in parts] == [3, 3, 1]
    assert parts[0].area.shape == (3, 4)
    whole = stack_integrations(parts)
    for name in ("sci", "err", "dq", "var_poisson", "var_rnoise"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(exposure, name))
    assert whole.var_flat is None and whole.meta == exposure.meta


def test_2d_exposure_has_no_integrations_to_slice():
    exposure = Exposure(sci=np.zeros((3, 4)), err=np.zeros((3, 4)), dq=np.zeros((3, 4)))
    assert exposure.nints == 1 and not exposure.is_cube
    with pytest.raises(ValueError):
        exposure.integrations(0, 1)


def test_meta_updates_return_new_records():
    meta = Meta(cards={"SCI": Cards((("S_REGION", "POLYGON"),))})
    changed = meta.with_cards("SCI", {"CRPIX1": 10.0}, drop=("S_REGION",)).with_status("S_FLAT", "COMPLETE")
    assert "S_REGION" in meta.header("SCI") and "S_REGION" not in changed.header("SCI")
    assert changed.header("SCI").get("CRPIX1") == 10.0
    assert changed.status == {"S_FLAT": "COMPLETE"} and meta.status == {}


def test_cards_keep_order_and_comments_when_updated():
    cards = Cards((("A", 1, "first"), ("B", 2, "second"), ("HISTORY", "one")))
    updated = cards.updated({"B": 3, "C": 4, "HISTORY": "two"})
    assert updated.keywords() == ["A", "B", "HISTORY", "C", "HISTORY"]
    assert updated.card("B").comment == "second" and updated.get("B") == 3
    assert updated.updated({"A": None}).keywords() == ["B", "HISTORY", "C", "HISTORY"]


def test_records_pickle_for_worker_processes():
    import pickle

    exposure = _cube(2).evolve(meta=Meta(status={"S_FLAT": "COMPLETE"}, cards={"SCI": Cards((("A", 1),))}))
    back = pickle.loads(pickle.dumps(exposure))
    assert back.meta == exposure.meta
    np.testing.assert_array_equal(back.sci, exposure.sci)
    with pytest.raises(TypeError):
        back.meta.status["S_FLAT"] = "SKIPPED"  # type: ignore[index]
    assert not back.sci.flags.writeable
