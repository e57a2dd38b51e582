"""Exact evaluation of astropy compound models without astropy's per-call overhead, and the pixel map over threads.

Calling a compound model makes astropy re-validate, broadcast and reshape the inputs of every
leaf model on every call (about a fifth of a full-frame pixel map). :func:`evaluate` walks the
tree once into a plan of the same leaf ``evaluate`` calls, with the same parameter arrays, in
the same order and float64 dtype, so every value is bit-identical to ``model(*inputs)``. Leaves
it does not know how to call directly (units, model sets, ``fix_inputs``, operators other than
``|``, ``&`` and arithmetic) are called the plain way, so any model still evaluates exactly.

:func:`mapped_pixels` evaluates input WCS → output pixels block by block — the same blocks,
bounding-box handling and leaf calls as a serial loop — on several threads: numpy releases the
GIL inside each leaf's array arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from astropy.modeling import CompoundModel, Model
from astropy.modeling.mappings import Mapping

from image2.core.parallel import usable_cores

Plan = Callable[..., tuple[np.ndarray, ...]]

_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "**": np.power}


def _plain(model: Model) -> Plan:
    """Call ``model`` as a compound model calls its parts (no bounding box), outputs as a tuple."""

    def call(*inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        outputs = model(*inputs)
        return outputs if model.n_outputs > 1 else (outputs,)

    return call


def _direct_leaf(model: Model) -> bool:
    """True when a leaf's ``evaluate`` can be called directly with the values ``__call__`` would give it.

    That is a single model without units whose class keeps astropy's own call path, and whose
    declared input units (if any) accept plain numbers, so astropy would pass them unchanged.
    """
    cls = type(model)
    if len(model) != 1 or model._has_units or cls.__call__ is not Model.__call__:
        return False
    if cls._pre_evaluate is not Model._pre_evaluate or cls.prepare_outputs is not Model.prepare_outputs:
        return False
    if model.input_units is None:
        return True
    allowed = model.input_units_allow_dimensionless
    return all(allowed.values()) if isinstance(allowed, dict) else bool(allowed)


def _leaf(model: Model) -> Plan:
    """The leaf's own ``evaluate`` with its raw parameter arrays, outputs shaped like ``__call__`` shapes them."""
    if isinstance(model, Mapping):
        mapping = model.mapping

        def mapped(*inputs: np.ndarray) -> tuple[np.ndarray, ...]:
            arrays = [np.asanyarray(value, dtype=float) for value in inputs]
            return tuple(arrays[index] for index in mapping)

        return mapped
    if not _direct_leaf(model):
        return _plain(model)
    parameters = tuple(model._param_sets(raw=True, units=False))
    evaluate, single = model.evaluate, model.n_outputs == 1

    def call(*inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        arrays = [np.asanyarray(value, dtype=float) for value in inputs]
        shape = np.broadcast_shapes(*(array.shape for array in arrays))
        if not shape:
            return _plain(model)(*inputs)
        outputs = evaluate(*arrays, *parameters)
        outputs = (outputs,) if single else tuple(outputs)
        return tuple(np.reshape(output, shape) if np.shape(output) != shape else output for output in outputs)

    return call


def plan(model: Model) -> Plan:
    """Return a function of the model's inputs giving the tuple of its outputs, as ``model(*inputs)`` gives them."""
    if not isinstance(model, CompoundModel):
        return _leaf(model)
    if model.op == "|":
        left, right = plan(model.left), plan(model.right)
        return lambda *inputs: right(*left(*inputs))
    if model.op == "&":
        left, right = plan(model.left), plan(model.right)
        split = model.left.n_inputs
        return lambda *inputs: (*left(*inputs[:split]), *right(*inputs[split:]))
    if model.op in _ARITHMETIC:
        left, right = plan(model.left), plan(model.right)
        operator = _ARITHMETIC[model.op]
        return lambda *inputs: tuple(operator(a, b) for a, b in zip(left(*inputs), right(*inputs), strict=True))
    return _plain(model)


def evaluate(model: Model, *inputs: Any, with_bounding_box: bool = False,
             fill_value: float = np.nan, compiled: Plan | None = None) -> tuple[np.ndarray, ...]:
    """Return ``model(*inputs, with_bounding_box=..., fill_value=...)`` as a tuple, bit for bit, faster.

    The bounding box (when asked for) is applied by astropy's own code around the fast plan,
    so the points evaluated and the fill are the same. ``compiled`` is ``plan(model)`` when the
    caller evaluates the same model many times.
    """
    if any(hasattr(value, "unit") or not np.ndim(value) for value in inputs):  # units, scalars: astropy's way
        outputs = model(*inputs, with_bounding_box=with_bounding_box, fill_value=fill_value)
        return outputs if model.n_outputs > 1 else (outputs,)
    run = compiled if compiled is not None else plan(model)
    arrays = [np.asanyarray(value, dtype=float) for value in inputs]
    box = model.get_bounding_box(with_bounding_box)
    if with_bounding_box and box is not None:
        outputs = box.evaluate(lambda values: run(*values), arrays, fill_value)
    else:
        outputs = run(*arrays)
    return tuple(outputs)


def mapped_pixels(forward: Model, backward: Model, shape: tuple[int, int], rows: int,
                  boxed: Callable[[int, int], bool], *, threads: int | None = None) -> np.ndarray:
    """Return the ``(ny, nx, 2)`` output pixel (x, y) of every input pixel centre, ``rows`` rows per block.

    Each block of rows is evaluated exactly as ``backward(*forward(xx, yy, with_bounding_box=
    boxed(start, stop), fill_value=nan))`` would evaluate it; blocks run on ``threads`` threads
    (default: up to two of the usable cores).
    """
    ny, nx = shape
    pixmap = np.empty((ny, nx, 2), dtype=np.float64)
    forward_plan, backward_plan = plan(forward), plan(backward)
    x = np.arange(nx, dtype=np.float64)

    def block(start: int) -> None:
        stop = min(ny, start + rows)
        xx, yy = np.meshgrid(x, np.arange(start, stop, dtype=np.float64))
        world = evaluate(forward, xx, yy, with_bounding_box=boxed(start, stop), compiled=forward_plan)
        pixmap[start:stop, :, 0], pixmap[start:stop, :, 1] = evaluate(backward, *world, compiled=backward_plan)

    starts = range(0, ny, rows)
    workers = min(threads or min(2, usable_cores()), math.ceil(ny / rows) if rows else 1)
    if workers <= 1:
        for start in starts:
            block(start)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(block, starts):
                del done
    return pixmap

