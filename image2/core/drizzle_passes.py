"""The drizzle passes of one exposure (SCI/WHT/CON, then each variance as a standard deviation), on two cores.

When the compiled one-pass kernel (:mod:`image2.core.coadd`) reproduces the call, SCI and every
deviation are co-added from one overlap computation, on output-row bands over threads.
Otherwise drizzle's own passes run: its compiled ``tdriz`` holds the GIL, so passes in threads
run one after the other, and splitting one pass by rows would change the order of the sums
(and the bits). Whole passes are independent, though: half of them run in a forked child,
which sees the inputs copy-on-write and writes its outputs into shared memory, while this
process runs the other half. Either way each output is bit-identical to the same pass run
alone. Without ``os.fork`` or a second usable core, or while another thread of the process runs
(a fork copies only the calling thread), the passes run here, one after the other.
"""

from __future__ import annotations

import mmap
import os
import pickle
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from drizzle.resample import Drizzle

from image2.core import coadd
from image2.core.parallel import usable_cores

_STATUS_BYTES = 4096
"""Room in the shared block for the child's pickled error, if it fails."""


@attrs.frozen
class Drizzled:
    """The outputs of the passes: SCI-pass arrays, the drizzled deviations, and the SCI pass's warnings."""

    sci: np.ndarray
    wht: np.ndarray
    con: np.ndarray | None
    dq: np.ndarray | None
    sci2: tuple[np.ndarray, ...] | None
    deviations: tuple[np.ndarray | None, ...]
    warnings: tuple[str, ...]


def sci_pass(data: np.ndarray, common: Mapping[str, Any], *, kernel: str, fillval: str, enable_ctx: bool,
             dq: np.ndarray | None = None, data2: Sequence[np.ndarray | None] | None = None,
             fillval2: str | None = None, shape: tuple[int, int]) -> tuple[Drizzle, tuple[str, ...]]:
    """Drizzle SCI (and DQ, and ``data2`` with squared weights) as resample does; the Drizzle and its warnings."""
    driz = Drizzle(kernel=kernel, fillval=fillval, out_shape=shape, begin_ctx_id=0, max_ctx_id=0,
                   disable_ctx=not enable_ctx, fillval2=fillval2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        driz.add_image(data, dq=dq, data2=data2, **common)
    return driz, tuple(dict.fromkeys(str(w.message) for w in caught))


def deviation_pass(variance: np.ndarray, common: Mapping[str, Any], *, kernel: str,
                   shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Drizzle √variance alone (NaN fill, no context), as jwst 3.0 propagates a variance; into ``out`` if given."""
    driz = Drizzle(out_shape=shape, kernel=kernel, fillval=np.nan, disable_ctx=True,
                   out_img=None if out is None else out)
    if out is not None:
        out.fill(np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(invalid="ignore"):
            deviation = np.sqrt(variance)
        driz.add_image(data=deviation, **common)
    return driz.out_img


def drizzle_passes(data: np.ndarray, variances: Sequence[np.ndarray | None], common: Mapping[str, Any], *,
                   kernel: str, fillval: str, enable_ctx: bool, shape: tuple[int, int],
                   dq: np.ndarray | None = None, data2: Sequence[np.ndarray | None] | None = None,
                   fillval2: str | None = None, processes: int | None = None, fused: bool = True,
                   threads: int | None = None) -> Drizzled:
    """Run the SCI pass and one deviation pass per variance (None: no pass), in one fused pass or on processes.

    ``common`` are the ``add_image`` keywords shared by every pass (pixel map, weights, ranges,
    scales). The fused pass runs on ``threads`` output-row bands (default: 2 when two cores are
    usable; 1 suits a worker that shares the cores with others). ``fused=False`` forces
    drizzle's own passes, on up to ``processes`` processes (default as ``threads``, and only
    where ``os.fork`` exists and no other thread of this process is running).
    """
    present = [index for index, variance in enumerate(variances) if variance is not None]
    if fused and coadd.supports(common, data2):
        return _one_pass(data, variances, common, kernel=kernel, fillval=fillval, enable_ctx=enable_ctx,
                         shape=shape, dq=dq, threads=threads or (2 if usable_cores() >= 2 else 1))
    if processes is None:  # a fork copies only this thread: never fork while another one may hold a lock
        processes = 2 if usable_cores() >= 2 and hasattr(os, "fork") and threading.active_count() == 1 else 1
    away = present[len(present) // 2:] if processes >= 2 and len(present) >= 2 else []
    child = _fork_passes([variances[index] for index in away], common, kernel, shape) if away else None
    deviations: list[np.ndarray | None] = [None] * len(variances)
    try:
        driz, caught = sci_pass(data, common, kernel=kernel, fillval=fillval, enable_ctx=enable_ctx, dq=dq,
                                data2=data2, fillval2=fillval2, shape=shape)
        for index in present:
            if index not in away:
                deviations[index] = deviation_pass(variances[index], common, kernel=kernel, shape=shape)
    finally:
        results = child.collect() if child is not None else []
    for index, result in zip(away, results, strict=True):
        deviations[index] = result
    return Drizzled(sci=driz.out_img, wht=driz.out_wht, con=driz.out_ctx if enable_ctx else None,
                    dq=driz.out_dq if dq is not None else None,
                    sci2=tuple(driz.out_img2) if data2 is not None else None,
                    deviations=tuple(deviations), warnings=caught)


def _one_pass(data: np.ndarray, variances: Sequence[np.ndarray | None], common: Mapping[str, Any], *, kernel: str,
              fillval: str, enable_ctx: bool, shape: tuple[int, int], dq: np.ndarray | None,
              threads: int) -> Drizzled:
    """SCI and every deviation co-added in one pass of the compiled kernel (same outputs as the passes); the
    kernel takes each variance's square roots pixel by pixel."""
    present = [index for index, variance in enumerate(variances) if variance is not None]
    context = np.zeros((1, *shape), dtype=np.int32) if enable_ctx else None
    out_dq = np.zeros(shape, dtype=np.uint32) if dq is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs, counts = coadd.coadd([data], common, kernel=kernel, fills=[fillval, *([np.nan] * len(present))],
                                      shape=shape, context=None if context is None else context[0], dq=dq,
                                      out_dq=out_dq, threads=threads, variances=[variances[i] for i in present])
    drizzled: list[np.ndarray | None] = [None] * len(variances)
    for index, output in zip(present, outputs[1:], strict=True):
        drizzled[index] = output
    return Drizzled(sci=outputs[0], wht=counts, con=context, dq=out_dq, sci2=None, deviations=tuple(drizzled),
                    warnings=tuple(dict.fromkeys(str(w.message) for w in caught)))


@attrs.define
class _Child:
    """A forked child drizzling deviations into a shared block: its pid, the block and the output views.

    The views keep the block alive as long as they are referenced.
    """

    pid: int
    block: mmap.mmap
    outputs: list[np.ndarray]

    def collect(self) -> list[np.ndarray]:
        """Wait for the child; return its outputs (views of the shared block) or raise the error it reported."""
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise _reported_error(self.block)
        return self.outputs


def _reported_error(block: mmap.mmap) -> BaseException:
    length = int.from_bytes(block[:4], "little")
    if 0 < length <= _STATUS_BYTES - 4:
        try:
            return pickle.loads(block[4:4 + length])
        except Exception:  # noqa: BLE001 - an error that does not unpickle is reported by its absence
            pass
    return RuntimeError("the drizzle child process failed without a reported error")


def _fork_passes(variances: Sequence[np.ndarray], common: Mapping[str, Any], kernel: str,
                 shape: tuple[int, int]) -> _Child:
    """Fork a child that drizzles each variance's deviation into shared memory; return its handle."""
    size = int(np.prod(shape)) * 4
    block = mmap.mmap(-1, _STATUS_BYTES + size * len(variances))
    outputs = [np.frombuffer(block, dtype=np.float32, count=size // 4, offset=_STATUS_BYTES + k * size).reshape(shape)
               for k in range(len(variances))]
    pid = os.fork()
    if pid == 0:  # the child: compute, report, and leave without running any of the parent's exit handlers
        code = 0
        try:
            for variance, out in zip(variances, outputs, strict=True):
                deviation_pass(variance, common, kernel=kernel, shape=shape, out=out)
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
            code = 1
            try:
                message = pickle.dumps(error)
            except Exception:  # noqa: BLE001
                message = pickle.dumps(RuntimeError(f"drizzle child: {error!r}"))
            if len(message) <= _STATUS_BYTES - 4:
                block[:4] = len(message).to_bytes(4, "little")
                block[4:4 + len(message)] = message
        finally:
            os._exit(code)
    return _Child(pid, block, outputs)
