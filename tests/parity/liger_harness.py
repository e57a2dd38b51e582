"""Run liger_iris_pipeline 3d0ac2e offline in its own environment and compare its results with image2's.

The Liger/IRIS pipeline needs Python >= 3.12 and jwst 1.18 (with numpy 1.x), so it lives in a
separate virtual environment (built by ``tests/parity/liger_env.sh``) whose python is named by
``IMAGE2_LIGER_PYTHON``. A :class:`LigerBatch` collects jobs and runs them in ONE subprocess
via ``liger_driver.py``: files written by the pipeline's own datamodels, its
``ImagerStage2Pipeline``, its step chain without background, and its ``datamodels.open`` on
image2's products. Results come back as :class:`LigerDump` (arrays, metadata, gWCS samples).

Comparison (issue 14): the same finite mask, and finite values within a relative difference
``rtol`` (1e-5); DQ exactly, except where a documented difference is named by the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tests.parity.batch import JobBatch, JobResult

ENV_VAR = "IMAGE2_LIGER_PYTHON"
LIGER_COMMIT = "3d0ac2e"
DRIVER = Path(__file__).with_name("liger_driver.py")
RTOL = 1e-5


def liger_python() -> str | None:
    """Return the Liger environment's python named by IMAGE2_LIGER_PYTHON, or None when unset."""
    return os.environ.get(ENV_VAR) or None


def skip_reason() -> str:
    """The reason shown (``pytest -ra``) when the Liger parity tests cannot run."""
    return (f"{ENV_VAR} is not set: Liger parity tests need the python of a separate environment with "
            f"liger_iris_pipeline {LIGER_COMMIT} (build it with tests/parity/liger_env.sh)")


@dataclass(frozen=True)
class LigerDump:
    """What the driver dumped of one Liger model: its arrays, class, metadata and gWCS samples."""

    arrays: Mapping[str, np.ndarray]
    model_class: str
    meta: Mapping[str, Any]
    dtypes: Mapping[str, str]
    world: list[list[float]] | None

    @classmethod
    def load(cls, stem: Path) -> LigerDump:
        """Read the ``.npz``/``.json`` pair written by the driver's ``dump``."""
        with np.load(f"{stem}.npz") as npz:
            arrays = {name: npz[name] for name in npz.files}
        info = json.loads(Path(f"{stem}.json").read_text())
        return cls(arrays, info["class"], info["meta"], info["dtypes"], info["world"])


@dataclass(frozen=True)
class LigerResult(JobResult):
    """The outcome of one Liger job: its output files, or the traceback the pipeline raised."""

    label: ClassVar[str] = "Liger"

    def dump(self, stem: str) -> LigerDump:
        """The dump named ``stem`` (``sci0``, ``background``, ``opened``) of this job."""
        self.check()
        found = [p for p in self.outputs if p.name == f"{stem}.npz"]
        if not found:
            raise AssertionError(f"Liger job {self.name!r} dumped no {stem!r} (outputs {self.outputs})")
        return LigerDump.load(found[0].with_suffix(""))


@dataclass
class LigerBatch(JobBatch):
    """Jobs for the Liger pipeline, run together in one subprocess by :meth:`run`."""

    label: ClassVar[str] = "Liger"

    def write(self, name: str, model: str, path: Path, arrays: Mapping[str, np.ndarray],
              meta: Mapping[str, Any]) -> Path:
        """Queue a file written by the pipeline's datamodels (``ImagerModel``, ``DarkModel``, ``FlatModel``).

        ``arrays`` maps data/err/dq/subarr_map to arrays (saved here as .npy for the driver);
        ``meta`` is passed to the pipeline's ``tests.utils.get_meta`` (dotted keys, set before it
        fills the defaults, so e.g. a CUSTOM subarray's placement is kept).
        """
        folder = self.workdir / "arrays" / name
        folder.mkdir(parents=True, exist_ok=True)
        saved = {}
        for key, array in arrays.items():
            saved[key] = str(folder / f"{key}.npy")
            np.save(saved[key], array)
        self._add({"name": name, "kind": "write", "model": model, "path": str(path), "arrays": saved,
                   "meta": dict(meta)})
        return Path(path)

    def pipeline(self, name: str, sci: Sequence[Path], dark: Path, flat: Path, sky: Sequence[Path] = (),
                 pixels: Sequence[Sequence[float]] = (),
                 step_parameters: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
        """Queue ImagerStage2Pipeline on ``{"SCI": sci, "SKY": sky}``; returns its output folder."""
        output_dir = self.workdir / name
        self._add({"name": name, "kind": "pipeline", "SCI": [str(p) for p in sci], "SKY": [str(p) for p in sky],
                   "dark": str(dark), "flat": str(flat), "output_dir": str(output_dir),
                   "pixels": [list(map(float, p)) for p in pixels],
                   "step_parameters": {k: dict(v) for k, v in (step_parameters or {}).items()}})
        return output_dir

    def chain(self, name: str, sci: Sequence[Path], dark: Path, flat: Path,
              pixels: Sequence[Sequence[float]] = ()) -> Path:
        """Queue the step chain without background (parse → dark → flat → assign_wcs) on each SCI file."""
        output_dir = self.workdir / name
        self._add({"name": name, "kind": "chain", "SCI": [str(p) for p in sci], "dark": str(dark),
                   "flat": str(flat), "output_dir": str(output_dir), "pixels": [list(map(float, p)) for p in pixels]})
        return output_dir

    def open(self, name: str, path: Path) -> Path:
        """Queue ``datamodels.open(path)``; its dump is ``opened``."""
        output_dir = self.workdir / name
        self._add({"name": name, "kind": "open", "path": str(path), "output_dir": str(output_dir)})
        return output_dir

    def run(self, python: str, timeout: float = 3600.0) -> dict[str, LigerResult]:
        """Run every queued job in one subprocess of the Liger environment (its CRDS server unreachable);
        results by job name. The queue is emptied."""
        results = self._run(python, DRIVER, [], {"CRDS_SERVER_URL": "https://crds-offline.invalid"}, timeout,
                            LigerResult)
        self.jobs = []
        return results


# ---- comparison ---------------------------------------------------------------------------

def relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest ``|a - e| / |e|`` over pixels finite in both (0 where both are 0; inf where only e is)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    both = np.isfinite(a) & np.isfinite(e)
    a, e = a[both], e[both]
    if a.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(e != 0, np.abs(a - e) / np.abs(e), np.where(a != e, np.inf, 0.0))
    return float(relative.max())


def float_difference(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> str | None:
    """Describe how ``actual`` differs from ``expected`` beyond ``rtol`` (None when within it).

    Within means: same shape, the same pixels finite (NaN and ±inf are both "not finite"),
    and every finite value within ``rtol`` of the expected one, relatively.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    fin_a, fin_e = np.isfinite(actual), np.isfinite(expected)
    if (fin_a != fin_e).any():
        where = tuple(int(i) for i in np.argwhere(fin_a != fin_e)[0])
        return (f"finite masks differ at {int((fin_a != fin_e).sum())} pixels; first at {where}: "
                f"{actual[where]!r} vs {expected[where]!r}")
    worst = relative_difference(actual, expected)
    if worst <= rtol:
        return None
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(fin_e & (e != 0), np.abs(a - e) / np.abs(e), 0.0)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(relative)), a.shape))
    return (f"{int((relative > rtol).sum())} of {int(fin_e.sum())} finite values differ by more than {rtol:g} "
            f"(max rel {worst:.3g}); worst at {where}: {actual[where]!r} != {expected[where]!r}")


def dq_difference(actual: np.ndarray, expected: np.ndarray, allowed: np.ndarray | None = None) -> str | None:
    """Describe DQ values that differ outside ``allowed`` (a boolean mask of documented differences)."""
    actual, expected = np.asarray(actual, np.int64), np.asarray(expected, np.int64)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    unequal = actual != expected
    if allowed is not None:
        unequal &= ~allowed
    if not unequal.any():
        return None
    where = tuple(int(i) for i in np.argwhere(unequal)[0])
    return f"{int(unequal.sum())} of {actual.size} DQ values differ; first at {where}: {actual[where]} != {expected[where]}"
