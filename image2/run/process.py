"""Process one input (a rate file or an association): read, calibrate, publish every product.

This is the seam shared by ``image2 process``, the watch daemon and distributed executors:
``process_input(path, options)`` is picklable in both arguments, never raises for bad data (it
returns failed results naming the problem and its kind), and publishes each product's files
together, the cal product last, so a product is either complete or absent.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from image2.core.association import Association, Product
from image2.core.meta import Meta
from image2.core.naming import product_filename, product_root
from image2.core.pipeline import calibrate
from image2.errors import Image2Error
from image2.io.association import load_input
from image2.io.atomic import Staging
from image2.io.asdf_manifests import use_libyaml_for_manifests
from image2.io.fits import open_exposure, read_exposure
from image2.run.cube import stage_cube
from image2.run.events import StepClock, report
from image2.run.options import RunOptions, configuration
from image2.run.publish import stage_products
from image2.run.references import choose_references, skipped_steps
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
            cal_path = options.output_dir / product_filename(root, "cal", handle.is_cube)
            if cal_path.exists() and not options.overwrite:
                return ProductResult(source, root, SKIPPED, (cal_path,),
                                     f"{cal_path.name} exists (use --overwrite to replace it)",
                                     time.perf_counter() - started)
            meta = _with_association(handle.meta, association)
            references, plan = choose_references(meta, options, science, config)
            backgrounds = [read_exposure(member.path) for member in product.background]
            options.output_dir.mkdir(parents=True, exist_ok=True)
            with Staging(options.overwrite) as staging:
                if handle.is_cube:
                    cal = stage_cube(handle, meta, references, config, backgrounds, options.output_dir, root,
                                     staging, preview=options.preview, observer=clock)
                else:
                    products = calibrate(handle.read().evolve(meta=meta), references, config, backgrounds, clock)
                    stage_products(staging, products, options.output_dir, root, preview=options.preview,
                                   replace_companions=True,
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


def validate_input(path: Path) -> None:
    """Check cheaply that ``path`` is a readable exposure or association, without calibrating."""
    association = load_input(path)
    for product in association.products:
        for member in product.members:
            if member.exptype in ("science", "background"):
                with open_exposure(member.path):
                    pass


def process_input(path: Path | str, options: RunOptions) -> list[ProductResult]:
    """Calibrate every product of one input file; never raises for bad input data.

    Its step events (image2.run.events) end with ``("finished", path)``.
    """
    use_libyaml_for_manifests()  # before asdf's first use in this process; then a no-op
    try:
        return _products_of(Path(path), options)
    finally:
        report(("finished", str(path)))


def _products_of(path: Path, options: RunOptions) -> list[ProductResult]:
    try:
        association = load_input(path, allow_outside=options.allow_outside)
    except Image2Error as error:
        return [ProductResult(path, path.name, FAILED, (), str(error), 0.0, failure_of(error))]
    return [process_product(association, product, options, path) for product in association.products]
