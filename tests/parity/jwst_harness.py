"""Run jwst 3.0.0 offline in its own environment and compare its products with image2's.

jwst pins drizzle<2.3 and can never be imported next to image2, so it runs in a separate
virtual environment whose python is named by ``IMAGE2_JWST_PYTHON``. A :class:`JwstBatch`
collects jobs (single steps, or the whole Image2Pipeline) and runs them all in ONE
subprocess (importing jwst costs seconds) via ``jwst_driver.py``, which answers every CRDS
lookup with "N/A" so only the reference files given as overrides are used.

Typical use in a test module::

    @pytest.fixture(scope="module")
    def jwst_runs(jwst_python, tmp_path_factory):
        batch = JwstBatch(tmp_path_factory.mktemp("jwst"))
        out = batch.step("flat", "flat_field", rate, overrides={"flat": flat_path})
        results = batch.run(jwst_python)
        ...
    assert_products_match(results["flat"].output, image2_cal_path, arrays=CAL_ARRAYS)

The comparison helpers implement pipeline.md §7: exact equality (NaN positions included)
for the arrays, exact header values for the keywords asked for; tolerances only when a test
explicitly asks for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits

from tests.parity.batch import JobBatch, JobResult

ENV_VAR = "IMAGE2_JWST_PYTHON"
JWST_VERSION = "3.0.0"
DRIVER = Path(__file__).with_name("jwst_driver.py")

CAL_ARRAYS = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "AREA")
"""Array extensions of cal/calints/bsub products compared bit for bit (pipeline.md §7.3)."""

I2D_ARRAYS = ("SCI", "WHT", "CON", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
"""Array extensions of i2d products compared bit for bit."""

UNCOMPARED_CARDS = frozenset({"DATE", "CAL_VER", "CAL_VCS", "CRDS_VER", "CRDS_CTX", "FILENAME"})
"""Header cards that legitimately differ between the two implementations."""


def jwst_python() -> str | None:
    """Return the jwst environment's python named by IMAGE2_JWST_PYTHON, or None when unset."""
    return os.environ.get(ENV_VAR) or None


def skip_reason() -> str:
    """The reason shown (``pytest -ra``) when parity tests cannot run."""
    return (f"{ENV_VAR} is not set: parity tests need the python of a separate environment with "
            f"jwst=={JWST_VERSION} (pip install -r tests/parity/requirements.txt)")


@dataclass(frozen=True)
class JwstResult(JobResult):
    """The outcome of one jwst job: its output files, or the traceback jwst raised."""

    label: ClassVar[str] = "jwst"

    @property
    def output(self) -> Path:
        """The result file of a step job (fails the test with jwst's traceback if the job failed)."""
        self.check()
        if not self.outputs:
            raise AssertionError(f"jwst job {self.name!r} produced no file")
        return self.outputs[0]

    def named(self, suffix: str) -> Path:
        """The output of a pipeline job whose name ends with ``suffix`` (e.g. ``_cal.fits``)."""
        self.check()
        found = [p for p in self.outputs if p.name.endswith(suffix)]
        if len(found) != 1:
            raise AssertionError(f"jwst job {self.name!r}: expected one *{suffix} among {self.outputs}")
        return found[0]


@dataclass
class JwstBatch(JobBatch):
    """Jobs for jwst, run together in one subprocess by :meth:`run`; outputs go under ``workdir``."""

    label: ClassVar[str] = "jwst"

    def step(self, name: str, step: str, input: Path | str, *, overrides: Mapping[str, Path | str] | None = None,
             parameters: Mapping[str, Any] | None = None, args: Sequence[Any] = ()) -> Path:
        """Queue ``step`` (alias such as ``flat_field``, or a dotted class path) on ``input``.

        ``overrides`` maps reftype → file (or ``"N/A"``); ``parameters`` are step parameters;
        ``args`` extra positional arguments of ``process`` (e.g. the background file list of
        ``bkg_subtract``). Returns the path the result model will be saved to; files the step
        saves itself land in the same directory and are listed in the result's ``outputs``.
        """
        output = self.workdir / name / f"{name}.fits"
        self._add({"name": name, "kind": "step", "step": step, "input": _plain(input), "output": str(output),
                   "overrides": {k: _plain(v) for k, v in (overrides or {}).items()},
                   "parameters": _plain(dict(parameters or {})), "args": _plain(list(args))})
        return output

    def pipeline(self, name: str, input: Path | str, *,
                 overrides: Mapping[str, Mapping[str, Path | str]] | None = None,
                 step_parameters: Mapping[str, Mapping[str, Any]] | None = None,
                 parameters: Mapping[str, Any] | None = None, pipeline: str = "image2") -> Path:
        """Queue the whole Image2Pipeline on a rate file or an association, saving every product.

        ``overrides`` maps step alias → {reftype: file}; ``step_parameters`` step alias →
        parameters (e.g. ``{"bkg_subtract": {"save_results": True}}``); ``parameters`` are
        pipeline-level. Returns the output directory (products keep jwst's names).
        """
        output_dir = self.workdir / name
        self._add({"name": name, "kind": "pipeline", "step": pipeline, "input": _plain(input),
                   "output_dir": str(output_dir),
                   "overrides": {a: {k: _plain(v) for k, v in refs.items()} for a, refs in (overrides or {}).items()},
                   "step_parameters": _plain({a: dict(p) for a, p in (step_parameters or {}).items()}),
                   "parameters": _plain(dict(parameters or {}))})
        return output_dir

    def run(self, python: str, timeout: float = 1800.0) -> dict[str, JwstResult]:
        """Run every queued job in one jwst subprocess; return the results by job name."""
        return self._run(python, DRIVER, [JWST_VERSION], {}, timeout, JwstResult)


def _plain(value: Any) -> Any:
    """Paths as strings, recursively, so a job is JSON."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---- comparison ---------------------------------------------------------------------------

def array_difference(actual: np.ndarray, expected: np.ndarray, rtol: float = 0.0) -> str | None:
    """Describe how ``actual`` differs from ``expected`` (None when equal).

    Equal means: same shape and dtype, NaN at the same places, and every other value equal
    (``rtol=0``: bit for bit apart from NaN payloads and the sign of zero) or within ``rtol``.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    if actual.dtype.newbyteorder("=") != expected.dtype.newbyteorder("="):
        return f"dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind != "f":
        unequal = actual != expected
        if not unequal.any():
            return None
        where = tuple(int(i) for i in np.argwhere(unequal)[0])
        return f"{int(unequal.sum())} of {actual.size} values differ; first at {where}: {actual[where]} != {expected[where]}"
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    if (nan_a != nan_e).any():
        where = tuple(int(i) for i in np.argwhere(nan_a != nan_e)[0])
        return (f"NaN positions differ at {int((nan_a != nan_e).sum())} pixels; first at {where}: "
                f"{actual[where]} vs {expected[where]}")
    a, e = actual[~nan_a].astype(np.float64), expected[~nan_e].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(e != 0, np.abs(a - e) / np.abs(e), np.where(a != e, np.inf, 0.0))
    bad = relative > rtol if rtol else a != e
    if not bad.any():
        return None
    index = np.flatnonzero(~nan_a.ravel())[np.argmax(np.where(bad, relative, -1))]
    where = tuple(int(i) for i in np.unravel_index(index, actual.shape))
    return (f"{int(bad.sum())} of {a.size} finite values differ (max |diff| {np.max(np.abs(a - e)):.3g}, "
            f"max rel {np.max(relative):.3g}); worst at {where}: {actual[where]!r} != {expected[where]!r}")


def assert_arrays_equal(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = 0.0) -> None:
    """Fail with a precise description unless the arrays are equal (see :func:`array_difference`)."""
    problem = array_difference(actual, expected, rtol)
    if problem:
        raise AssertionError(f"{what}: {problem}")


def _hdu_arrays(hdul: fits.HDUList, names: Iterable[str]) -> dict[str, np.ndarray]:
    present = {hdu.name.upper(): hdu for hdu in hdul[1:]}
    return {name: np.asarray(present[name].data) for name in names
            if name in present and present[name].data is not None}


def product_differences(image2_path: Path | str, jwst_path: Path | str, *, arrays: Iterable[str] = CAL_ARRAYS,
                        keywords: Mapping[str, Iterable[str]] | None = None, rtol: float = 0.0) -> list[str]:
    """List every difference between an image2 product and jwst's (empty when they match).

    Each array extension in ``arrays`` must be present in both or in neither and be equal;
    ``keywords`` maps HDU name → keywords whose values must be equal (absent in both is equal).
    """
    problems = []
    with fits.open(image2_path) as ours, fits.open(jwst_path) as theirs:
        names = list(arrays)
        mine, jwst = _hdu_arrays(ours, names), _hdu_arrays(theirs, names)
        for name in names:
            if (name in mine) != (name in jwst):
                problems.append(f"{name}: present in {'image2' if name in mine else 'jwst'} only")
            elif name in mine:
                problem = array_difference(mine[name], jwst[name], rtol)
                if problem:
                    problems.append(f"{name}: {problem}")
        for hdu, keys in (keywords or {}).items():
            for key in keys:
                a, b = ours[hdu].header.get(key), theirs[hdu].header.get(key)
                if a != b:
                    problems.append(f"{hdu} {key}: image2 {a!r} != jwst {b!r}")
    return problems


def assert_products_match(image2_path: Path | str, jwst_path: Path | str, **kwargs: Any) -> None:
    """Fail listing every difference found by :func:`product_differences`."""
    problems = product_differences(image2_path, jwst_path, **kwargs)
    if problems:
        raise AssertionError(f"{Path(image2_path).name} vs jwst {Path(jwst_path).name}:\n  " + "\n  ".join(problems))


def header_differences(image2_path: Path | str, jwst_path: Path | str, hdu: str,
                       ignore: Iterable[str] = UNCOMPARED_CARDS) -> list[str]:
    """List the cards of ``hdu`` whose values differ, or that only one file has, except ``ignore``."""
    skip = set(ignore)
    with fits.open(image2_path) as ours, fits.open(jwst_path) as theirs:
        a, b = ours[hdu].header, theirs[hdu].header
        keys = [k for k in dict.fromkeys([*a.keys(), *b.keys()]) if k not in skip and k not in ("COMMENT", "HISTORY", "")]
        return [f"{hdu} {k}: image2 {a.get(k)!r} != jwst {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]

