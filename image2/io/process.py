"""Process one input (a rate file or an association): read, calibrate, write every product.

This is the seam shared by ``image2 process``, the watch daemon and distributed executors:
``process_input(path, options)`` is picklable in both arguments, never raises for bad data
(it returns failed results naming the problem), and publishes each product's files
together, the cal product last, so a product is either complete or absent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

from image2.core.association import Association, Product
from image2.core.config import Config
from image2.core.exposure import Exposure
from image2.core.meta import Meta
from image2.core.naming import product_filename, product_root
from image2.core.pipeline import background_for, calibrate_steps, prepare
from image2.core.references import References
from image2.core.provenance import SKIPPED
from image2.errors import Image2Error, InvalidInputError, MissingReferenceError
from image2.io.association import load_input
from image2.io.atomic import Staging
from image2.io.config_file import load_config
from image2.io.cube_writer import CubeWriter
from image2.io.fits import ExposureFile, open_exposure, read_exposure
from image2.io.i2d import read_output_wcs
from image2.io.products import preview_of, stage_products
from image2.io.refs.choices import ChosenReferences, reference_choices
from image2.io.refs.needs import REFTYPE_STEPS, needed_reftypes, required_reftypes
from image2.io.refs.resolution import Resolution, resolve_references
from image2.io.refs.store import ReferenceStore

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 2**20
"""Bytes of one float32 array per chunk of a 3-D exposure. Measured peak memory is about
250 MB plus 33 times this (≈ 0.8 GB), whatever the number of integrations."""


@attrs.frozen
class RunOptions:
    """How to process inputs; plain values only, so it crosses process boundaries."""

    output_dir: Path = attrs.field(converter=Path)
    reference_dirs: tuple[Path, ...] = attrs.field(default=(), converter=lambda v: tuple(map(Path, v)))
    overrides: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    config_file: Path | None = None
    step_overrides: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    overwrite: bool = False
    strict: bool = False
    save_bsub: bool = False
    preview: bool = False
    allow_outside: bool = False
    references: Mapping[str, Mapping[str, str]] = attrs.field(
        factory=dict, converter=lambda m: {str(k): dict(v) for k, v in m.items()})
    """References chosen beforehand by a coordinator, {science path: {reftype: path or "N/A"}};
    an exposure not listed has its references chosen where it runs."""


@attrs.frozen
class ProductResult:
    """The outcome of one product: ``done``, ``skipped`` (products exist) or ``failed``."""

    input: Path
    product: str
    status: str
    outputs: tuple[Path, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    invalid_input: bool = False
    skipped_steps: tuple[str, ...] = ()
    """For a done product, each step it skipped and why (e.g. ``flat_field SKIPPED: --ref flat=N/A``)."""


@functools.lru_cache(maxsize=8)
def _store(folders: tuple[Path, ...]) -> ReferenceStore:
    """One reference store per set of folders and process (its index is built once)."""
    return ReferenceStore(folders)


def configuration(options: RunOptions) -> Config:
    """Return the step configuration the options describe (``save_bsub`` included)."""
    overrides = list(options.step_overrides)
    if options.save_bsub:
        overrides.append("bkg_subtract.save_results=true")
    return step_configuration(load_config(options.config_file, overrides))


def choose_references(meta: Meta, options: RunOptions, science: Path,
                      config: Config) -> tuple[References, Mapping[str, Resolution]]:
    """Return the references for an exposure and where each came from: overrides first, then the store.

    A type the exposure requires (a missing one would leave it partly calibrated) and that was
    not found fails the exposure, unless its step is skipped by configuration or the type was
    set to N/A on purpose; ``--strict`` makes every needed type required.
    """
    chosen = options.references.get(str(science))
    store = _store(options.reference_dirs) if chosen is None else ChosenReferences(chosen)
    references, plan = resolve_references(meta, store, options.overrides)
    required = set(needed_reftypes(meta) if options.strict else required_reftypes(meta))
    missing = tuple(reftype for reftype, item in plan.items()
                    if item.origin == "none" and reftype in required and not config.skipped(REFTYPE_STEPS[reftype]))
    if missing:
        raise MissingReferenceError(science, missing, exposure_label(meta))
    return references, plan


def exposure_label(meta: Meta) -> str:
    """Return the keys references are chosen by, in a few words (e.g. ``NIRCAM NRCB1 F150W/CLEAR NRC_IMAGE``)."""
    ins = meta.instrument
    optics = "/".join(value for value in (ins.filter, ins.pupil) if value)
    return " ".join(value for value in (ins.name, ins.detector, optics, meta.exposure.type, meta.subarray.name)
                    if value)


def skipped_steps(cal: Exposure, plan: Mapping[str, Resolution]) -> tuple[str, ...]:
    """Return ``"<step> SKIPPED: <why>"`` for each step the cal product skipped, naming ``--ref TYPE=N/A``
    when the user declined the reference it needed."""
    declined: dict[str, list[str]] = {}
    for reftype, item in plan.items():
        if item.origin == "override" and item.path is None:
            declined.setdefault(REFTYPE_STEPS[reftype], []).append(f"--ref {reftype}=N/A")
    return tuple(f"{record.step} SKIPPED: {', '.join(declined.get(record.step, ())) or '; '.join(record.notes)}"
                 for record in cal.meta.provenance if record.status == SKIPPED)


def with_reference_choices(path: Path | str, options: RunOptions) -> RunOptions:
    """Return ``options`` carrying the references of every science exposure of ``path``, chosen here
    from headers only, for a worker elsewhere to read; unchanged when the store cannot be opened."""
    try:
        store = _store(options.reference_dirs)
    except (Image2Error, OSError):
        return options
    return attrs.evolve(options, references=reference_choices(Path(path), store, options.overrides,
                                                              options.allow_outside))


def step_configuration(config: Config) -> Config:
    """Return ``config`` with file-valued parameters loaded: resample's ``output_wcs`` file gives
    the gwcs, and its pixel scale when the file states one and ``pixel_scale`` is not set."""
    path = config.value("resample", "output_wcs")
    if not isinstance(path, str) or not path:
        return config
    shape = config.value("resample", "output_shape")
    wcs, pixel_scale = read_output_wcs(path, tuple(shape) if shape else None)
    steps = {name: dict(params) for name, params in config.steps.items()}
    steps["resample"]["output_wcs"] = wcs
    if steps["resample"]["pixel_scale"] is None:
        steps["resample"]["pixel_scale"] = pixel_scale
    return Config(steps)


def _with_association(meta: Meta, association: Association) -> Meta:
    return meta.with_cards("PRIMARY", {"ASNPOOL": association.asn_pool, "ASNTABLE": association.table_name})


def _log_notes(exposure: Exposure, path: Path) -> None:
    for record in exposure.meta.provenance:
        for note in record.notes:
            level = logging.WARNING if record.status == "SKIPPED" else logging.INFO
            log.log(level, "%s: %s", record.step, note, extra={"file": str(path), "step": record.step,
                                                               "status": record.status})


def _calibrate_cube(handle: ExposureFile, meta: Meta, references: References, config: Config,
                    backgrounds: list[Exposure], root: str, options: RunOptions, staging: Staging) -> Exposure:
    """Calibrate a 3-D exposure chunk by chunk, writing calints (and bsubints) progressively; return the
    first chunk's calints record (its metadata and provenance are those of the whole product)."""
    nints, ny, nx = handle.shape
    step = max(1, CHUNK_BYTES // (ny * nx * 4))
    first = handle.read(0, min(step, nints)).evolve(meta=meta)
    prepared = prepare(references, first, config)
    background = background_for(first, backgrounds, config)
    products = calibrate_steps(first, prepared, config, background, len(backgrounds))
    _log_notes(products.cal, handle.path)
    out = options.output_dir
    cal_name = product_filename(root, "cal", cube=True)
    bsub_name = product_filename(root, "bsub", cube=True)
    with contextlib.ExitStack() as stack:
        cal_writer = CubeWriter(stack.enter_context(staging.open(out / cal_name)), products.cal, nints, cal_name)
        bsub_writer = None
        if products.bsub is not None:
            bsub_writer = CubeWriter(stack.enter_context(staging.open(out / bsub_name, True)), products.bsub, nints,
                                     bsub_name)
        for start in range(first.nints, nints, step):
            chunk = handle.read(start, min(start + step, nints)).evolve(meta=meta)
            chunk_products = calibrate_steps(chunk, prepared, config, background, len(backgrounds))
            cal_writer.write(start, chunk_products.cal)
            if bsub_writer is not None:
                bsub_writer.write(start, chunk_products.bsub)
    if options.preview:
        with staging.open(out / (Path(cal_name).stem + ".png"), True) as png_handle:
            png_handle.write(preview_of(products.cal, cal_name))
    return products.cal


def process_product(association: Association, product: Product, options: RunOptions,
                    source: Path | None = None) -> ProductResult:
    """Calibrate one product of ``association`` and publish its files; failures are returned, not raised."""
    started = time.perf_counter()
    source = source or product.science[0].path
    root = product_root(product.name)
    science = product.science[0].path
    try:
        config = configuration(options)
        with open_exposure(science) as handle:
            cal_path = options.output_dir / product_filename(root, "cal", handle.is_cube)
            if cal_path.exists() and not options.overwrite:
                return ProductResult(source, root, "skipped", (cal_path,),
                                     f"{cal_path.name} exists (use --overwrite to replace it)",
                                     time.perf_counter() - started)
            meta = _with_association(handle.meta, association)
            references, plan = choose_references(meta, options, science, config)
            backgrounds = [read_exposure(member.path) for member in product.background]
            options.output_dir.mkdir(parents=True, exist_ok=True)
            with Staging(options.overwrite) as staging:
                if handle.is_cube:
                    cal = _calibrate_cube(handle, meta, references, config, backgrounds, root, options, staging)
                else:
                    exposure = handle.read().evolve(meta=meta)
                    background = background_for(exposure, backgrounds, config)
                    products = calibrate_steps(exposure, prepare(references, exposure, config), config, background,
                                               len(backgrounds))
                    _log_notes(products.cal, science)
                    stage_products(staging, products, options.output_dir, root, preview=options.preview,
                                   replace_companions=True,
                                   save_combined_background=config.value("bkg_subtract", "save_combined_background"))
                    cal = products.cal
                outputs = tuple(staging.publish())
    except Image2Error as error:
        log.error("%s", error, extra={"file": str(science)})
        return ProductResult(source, root, "failed", (), str(error), time.perf_counter() - started,
                             isinstance(error, InvalidInputError))
    except OSError as error:  # disk full, permissions, a file vanishing: worth retrying later
        log.error("%s: %s", science, error, extra={"file": str(science)})
        return ProductResult(source, root, "failed", (), f"{science}: {error}", time.perf_counter() - started)
    except Exception as error:  # a defect of ours must not stop the other inputs
        log.exception("internal error", extra={"file": str(science)})
        return ProductResult(source, root, "failed", (), f"{science}: internal error: {error!r}",
                             time.perf_counter() - started)
    for path in outputs:
        log.info("wrote %s", path.name, extra={"file": str(science), "product": str(path)})
    return ProductResult(source, root, "done", outputs, None, time.perf_counter() - started,
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
    """Calibrate every product of one input file; never raises for bad input data."""
    path = Path(path)
    try:
        association = load_input(path, allow_outside=options.allow_outside)
    except Image2Error as error:
        log.error("%s", error, extra={"file": str(path)})
        return [ProductResult(path, path.name, "failed", (), str(error), 0.0, isinstance(error, InvalidInputError))]
    return [process_product(association, product, options, path) for product in association.products]
