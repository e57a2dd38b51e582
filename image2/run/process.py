"""Process one input (a rate file or an association): read, calibrate, publish every product.

This is the seam shared by ``image2 process``, the watch daemon and distributed executors:
``process_input(path, options)`` is picklable in both arguments, never raises for bad data (it
returns failed results naming the problem and its kind), and publishes each product's files
together, the cal product last, so a product is either complete or absent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from image2.core.association import Association, Product
from image2.core.config import Config
from image2.core.exposure import Exposure
from image2.core.meta import Meta
from image2.core.naming import product_filename, product_root
from image2.core.pipeline import Products, StepObserver, calibrate_chunks
from image2.core.scope import refusal
from image2.errors import Image2Error, InvalidInputError, OutputConflictError
from image2.io.association import load_input
from image2.io.atomic import Staging
from image2.io.asdf_manifests import use_libyaml_for_manifests
from image2.io.fits import ExposureFile, open_exposure, read_exposure
from image2.io.refs.resolution import Resolution
from image2.run.cube import exposure_chunks, stage_cube
from image2.run.events import StepClock, report
from image2.run.options import RunOptions, configuration
from image2.run.publish import SettledCal, destination_problem, stage_products
from image2.run.references import choose_references, reference_cards, skipped_steps
from image2.run.results import DONE, FAILED, SKIPPED, Failure, FailureKind, ProductResult, failure_of

log = logging.getLogger(__name__)


def _with_association(meta: Meta, association: Association) -> Meta:
    return meta.with_cards("PRIMARY", {"ASNPOOL": association.asn_pool, "ASNTABLE": association.table_name})


def process_product(association: Association, product: Product, options: RunOptions,
                    source: Path | None = None) -> ProductResult:
    """Calibrate one product of ``association`` and publish its files; failures are returned, not raised.

    Each step is logged as it ends (image2.run.events); the outcome is the caller's to report.
    """
    started = time.perf_counter()
    source = source or product.science[0].path
    root = product_root(product.name)
    science = product.science[0].path
    clock = StepClock(str(source), str(science))

    def failed(message: str, failure: Failure) -> ProductResult:
        return ProductResult(source, root, FAILED, (), message, time.perf_counter() - started, failure)

    try:
        config = configuration(options)
    except (Image2Error, OSError) as error:
        return failed(str(error), Failure(FailureKind.CONFIGURATION, str(error)))
    try:
        with open_exposure(science) as handle:
            admissible(handle)
            cal_path = options.output_dir / product_filename(root, "cal", handle.is_cube)
            if cal_path.exists() and not cal_path.is_symlink() and not options.overwrite:
                return ProductResult(source, root, SKIPPED, (cal_path,),
                                     f"{cal_path.name} exists (use --overwrite to replace it)",
                                     time.perf_counter() - started)
            problem = destination_problem(options.output_dir, root, handle.meta, handle.is_cube, options.overwrite)
            if problem is not None:
                raise OutputConflictError(science, problem)
            staging = Staging(options.overwrite)
            settled = SettledCal(staging, cal_path)  # a 2-D cal is staged while resample runs
            calibrated, plan = calibration(handle, _with_association(handle.meta, association), product, options,
                                           config, clock, None if handle.is_cube else settled.stage)
            options.output_dir.mkdir(parents=True, exist_ok=True)
            with staging, settled:
                if handle.is_cube:
                    cal = stage_cube(calibrated, handle.shape[0], options.output_dir, root, staging,
                                     preview=options.preview)
                else:
                    products = next(calibrated)
                    stage_products(staging, products, options.output_dir, root, preview=options.preview,
                                   replace_companions=True, cal_staged=settled.finished(products.cal),
                                   save_combined_background=config.value("bkg_subtract", "save_combined_background"))
                    cal = products.cal
                outputs = tuple(staging.publish())
    except Image2Error as error:
        clock.failed()
        return failed(str(error), failure_of(error))
    except OSError as error:  # disk full, permissions, a file vanishing: worth retrying later
        clock.failed()
        return failed(f"{science}: {error}", failure_of(error))
    except Exception as error:  # a defect of ours must not stop the other inputs
        clock.failed()
        log.debug("internal error", exc_info=True, extra={"file": str(science)})  # the traceback, with --log-level DEBUG
        return failed(f"{science}: internal error: {error!r}", failure_of(error))
    return ProductResult(source, root, DONE, outputs, None, time.perf_counter() - started,
                         skipped_steps=skipped_steps(cal, plan))


def calibration(handle: ExposureFile, meta: Meta, product: Product, options: RunOptions, config: Config,
                observer: StepObserver, settled: Callable[[Exposure], None] | None = None,
                ) -> tuple[Iterator[Products], Mapping[str, Resolution]]:
    """Start calibrating the exposure of ``handle`` (``meta`` its metadata so far): choose its references,
    read the background members of ``product`` and return core's ``calibrate_chunks`` over its chunks
    (``observer`` and ``settled`` as there), with the reference plan.

    The references and members are handed over as this function returns: only core's generator
    holds them then, and it lets each go as soon as no step needs it (the chunks too, read as it asks).
    """
    references, plan = choose_references(meta, options, handle.path, config)
    meta = meta.with_cards("PRIMARY", reference_cards(plan))
    backgrounds = [read_exposure(member.path, optional=False) for member in product.background]
    return calibrate_chunks(exposure_chunks(handle, meta), references, config, backgrounds, observer,
                            settled), plan


def admissible(handle: ExposureFile) -> None:
    """Raise InvalidInputError when stage-2 imaging must not calibrate the opened exposure (image2.core.scope)."""
    problem = refusal(handle.meta, handle.shape)
    if problem is not None:
        raise InvalidInputError(handle.path, problem)


def validate_input(path: Path) -> None:
    """Check cheaply that ``path`` is an exposure or association stage 2 may calibrate, without calibrating.

    Headers only: the embedded ASDF tree and the arrays are left to the worker that calibrates,
    so a crafted file costs the caller (the watch daemon's coordinator) a few header blocks.
    """
    association = load_input(path)
    for product in association.products:
        for member in product.members:
            if member.exptype in ("science", "background"):
                with open_exposure(member.path, headers_only=True) as handle:
                    if member.exptype == "science":
                        admissible(handle)


def clashing(association: Association, taken: dict[str, str]) -> list[str | None]:
    """Return, per product of ``association``, the problem when its product name is already in ``taken``
    (root → what makes it) or None, when it is added to ``taken``."""
    problems: list[str | None] = []
    for product in association.products:
        root = product_root(product.name)
        owner = str(association.path or product.science[0].path) + (
            "" if association.is_singleton else f" [{product.name} (#{len(problems) + 1})]")
        if root in taken:
            problems.append(f"makes the same products ({root}_*) as {taken[root]} in this run; rename one of them")
        else:
            problems.append(None)
            taken[root] = owner
    return problems


def process_input(path: Path | str, options: RunOptions, taken: dict[str, str] | None = None) -> list[ProductResult]:
    """Calibrate every product of one input file; never raises for bad input data.

    ``taken`` maps the product names made by earlier inputs of the same run to their input: a
    product of this input with one of those names fails (it would be skipped, its data never
    calibrated); names of this input's products are added. Its step events (image2.run.events)
    end with ``("finished", path)``.
    """
    use_libyaml_for_manifests()  # before asdf's first use in this process; then a no-op
    try:
        return _products_of(Path(path), options, {} if taken is None else taken)
    finally:
        report(("finished", str(path)))


def _products_of(path: Path, options: RunOptions, taken: dict[str, str]) -> list[ProductResult]:
    try:
        association = load_input(path, allow_outside=options.allow_outside)
    except Image2Error as error:
        return [ProductResult(path, path.name, FAILED, (), str(error), 0.0, failure_of(error))]
    clashes = clashing(association, taken)
    results = []
    for product, clash in zip(association.products, clashes, strict=True):
        if clash is not None:
            label = "" if association.is_singleton else f"product {product.name} (#{len(results) + 1}): "
            error = InvalidInputError(path, label + clash)
            results.append(ProductResult(path, product_root(product.name), FAILED, (), str(error), 0.0,
                                         failure_of(error)))
        else:
            results.append(process_product(association, product, options, path))
    return results


def products_before(inputs: Sequence[Path], allow_outside: bool = False) -> list[dict[str, str]]:
    """Return, for each input of one run, the product names the inputs before it make (see
    :func:`process_input`'s ``taken``); an unreadable input makes none."""
    taken: dict[str, str] = {}
    before = []
    for path in inputs:
        before.append(dict(taken))
        try:
            clashing(load_input(path, allow_outside=allow_outside), taken)
        except Image2Error:
            continue
    return before