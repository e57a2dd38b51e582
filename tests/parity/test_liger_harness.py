"""The Liger parity harness itself (no Liger environment needed): comparisons catch differences, jobs are JSON."""

from __future__ import annotations

import json

import numpy as np

from tests.parity.liger_harness import LigerBatch, dq_difference, float_difference, relative_difference


def test_float_difference_requires_the_same_finite_pixels_and_a_relative_tolerance():
    a = np.array([1.0, np.nan, np.inf, 4.0], np.float32)
    assert float_difference(a, a.copy()) is None
    assert float_difference(np.array([1.0, -np.inf, np.nan, 4.0], np.float32), a) is None  # NaN and inf alike
    assert "finite masks differ" in float_difference(np.array([1.0, 2.0, np.inf, 4.0], np.float32), a)
    off = a.copy()
    off[3] *= 1 + 2e-5
    assert "max rel 2e-05" in float_difference(off, a)
    assert float_difference(off, a, rtol=1e-4) is None
    assert relative_difference(off, a) == np.float32(4.0 * (1 + 2e-5)) / 4.0 - 1


def test_dq_difference_ignores_only_the_allowed_pixels():
    ours, theirs = np.array([0, 1, 2], np.uint32), np.array([0, 1, 3], np.uint16)
    assert "1 of 3 DQ values differ; first at (2,): 2 != 3" in dq_difference(ours, theirs)
    assert dq_difference(ours, theirs, allowed=np.array([False, False, True])) is None


def test_jobs_are_written_as_json_with_the_arrays_saved_beside(tmp_path):
    batch = LigerBatch(tmp_path)
    path = batch.write("sci", "ImagerModel", tmp_path / "sci.fits", {"data": np.zeros((2, 3), np.float32)},
                       {"instrument.name": "Liger"})
    batch.pipeline("run", [path], tmp_path / "d.fits", tmp_path / "f.fits", pixels=[(1, 2)])
    jobs = json.loads(json.dumps(batch.jobs))
    assert jobs[0]["kind"] == "write" and np.load(jobs[0]["arrays"]["data"]).shape == (2, 3)
    assert jobs[1]["SCI"] == [str(path)] and jobs[1]["pixels"] == [[1.0, 2.0]]
