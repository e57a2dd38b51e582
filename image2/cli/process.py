"""``image2 process``: calibrate rate files and associations into cal/calints/i2d products."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from image2.cli.crds_options import check_crds_options, crds_options
from image2.cli.logs import configure, get_logger
from image2.cli.options import executor_options, preview_option, reference_options, step_options
from image2.errors import Image2Error
from image2.run.executors import finished, make_executor

if TYPE_CHECKING:
    from image2.run.options import RunOptions
    from image2.run.results import ProductResult


def _results(inputs: tuple[Path, ...], options: RunOptions, jobs: int | None, log_setup: tuple[str, str],
             executor: str = "local", scheduler: str | None = None) -> Iterator[list[ProductResult]]:
    """Yield each input's results as they finish: here, in local worker processes, or on a Dask cluster.

    Locally, ``jobs`` > 1 runs inputs in that many worker processes; on a cluster every path is
    made absolute (workers run elsewhere). With workers, the references are chosen here, once
    per exposure, and handed to them; an input whose worker was lost is run again (see
    image2.run.executors).
    """
    from image2.run.process import process_input
    from image2.run.references import with_reference_choices
    from image2.run.results import FAILED, ProductResult, failure_of

    if executor == "local" and ((jobs or 1) <= 1 or len(inputs) <= 1):
        for path in inputs:
            yield process_input(path, options)
        return
    if executor == "dask":
        options = _absolute(options)
        inputs = tuple(path.absolute() for path in inputs)
    calls = ((path, with_reference_choices(path, options)) for path in inputs)
    with make_executor(executor, jobs, scheduler, initializer=configure, initargs=log_setup) as pool:
        for end in finished(pool, process_input, calls):
            if end.error is None:
                yield end.result
            else:
                path = end.args[0]
                yield [ProductResult(path, path.name, FAILED, (),
                                     f"{path}: {executor} executor: {end.error!r} (after {end.attempts} attempts)",
                                     failure=failure_of(end.error))]


def _absolute(options: RunOptions) -> RunOptions:
    """Return ``options`` with every path absolute, as workers on other machines need them."""
    return attrs.evolve(options, output_dir=options.output_dir.absolute(),
                        reference_dirs=[folder.absolute() for folder in options.reference_dirs],
                        crds_path=options.crds_path.absolute() if options.crds_path else None,
                        config_file=options.config_file.absolute() if options.config_file else None)


def product_names(folder: Path) -> frozenset[str]:
    """Return the names of the files in ``folder`` (none when it does not exist yet)."""
    try:
        return frozenset(entry.name for entry in os.scandir(folder))
    except FileNotFoundError:
        return frozenset()


def settled(results: list[ProductResult], before: frozenset[str]) -> list[ProductResult]:
    """Return ``results`` with products made by a lost attempt of this very run counted as done.

    A task whose worker died after publishing is run again and finds its products there:
    ``skipped``. When those products were not in the output folder when the run began
    (``before``) and no other input of the run made them, they are this input's work: ``done``,
    listing the product's files that are new.
    """
    made = {output for result in results if result.status == "done" for output in result.outputs}
    out = []
    for result in results:
        if (result.status == "skipped" and result.outputs
                and not any(path.name in before or path in made for path in result.outputs)):
            folder = result.outputs[0].parent
            new = tuple(sorted(path for path in folder.glob(f"{result.product}_*") if path.name not in before))
            result = attrs.evolve(result, status="done", outputs=new or result.outputs, error=None)
        out.append(result)
    return out


def outcome_text(result: ProductResult) -> str:
    """Return one product's outcome in a few words: its status, and why it was skipped, failed or partial."""
    if result.status == "done":
        return "done" + (f" ({'; '.join(result.skipped_steps)})" if result.skipped_steps else "")
    reason = (result.error or "").removeprefix(f"{result.input}: ")
    return f"{result.status}: {reason}"


def report_result(log: Any, result: ProductResult) -> None:
    """Log one product's outcome as one event (JSON with ``--log-format json``): failures as errors."""
    fields = {"file": str(result.input), "product": result.product, "status": result.status,
              "seconds": round(result.seconds, 2)}
    if result.status == "failed":
        log.error("failed", reason=result.error, **fields)
    elif result.status == "skipped":
        log.info("skipped", reason=result.error, **fields)
    else:
        log.info("done", outputs=[str(path) for path in result.outputs], skipped_steps=list(result.skipped_steps),
                 **fields)


def exit_code(results: list[ProductResult]) -> int:
    """0 when nothing failed; 2 when every input was invalid; 1 when some failed."""
    from image2.run.results import FAILED, FailureKind

    failed = [r for r in results if r.status == FAILED]
    if not failed:
        return 0
    if len(failed) == len(results) and all(r.failure is not None and r.failure.kind is FailureKind.INVALID_INPUT
                                           for r in failed):
        return 2
    return 1


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where products go.")
@reference_options
@crds_options
@step_options
@executor_options
@click.option("--save-bsub", is_flag=True, help="Also write the background-subtracted _bsub/_bsubints product.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Inputs processed in parallel: local worker processes (default 1), or the workers of the "
                   "LocalCluster that --executor dask starts without --scheduler (default one per core).")
@click.option("--overwrite", is_flag=True, help="Replace existing products (kept by default).")
@click.option("--strict", is_flag=True, help="Fail on any missing reference, optional ones too (a required one always fails; "
                   "--ref TYPE=N/A runs without it on purpose).")
@preview_option
@click.option("--allow-outside", is_flag=True, help="Accept association members outside the association's folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def process(ctx: click.Context, inputs: tuple[Path, ...], output_dir: Path, reference_dirs: tuple[Path, ...],
            overrides: dict[str, str], crds_path: Path | None, crds_context: str | None, config_file: Path | None,
            step_overrides: tuple[str, ...], save_bsub: bool, jobs: int | None, executor: str,
            scheduler: str | None, overwrite: bool, strict: bool, preview: str | None, allow_outside: bool,
            quiet: bool) -> None:
    """Calibrate rate/rateints files and Level-2 associations."""
    if scheduler is not None and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    log = get_logger("image2.cli.process")
    # Said before the pipeline is imported (a few seconds), so a run shows life at once.
    log.info("start", inputs=len(inputs), output_dir=str(output_dir), jobs=jobs or 1, executor=executor)
    from image2.run.options import RunOptions, configuration

    options = RunOptions(output_dir=output_dir, reference_dirs=reference_dirs, overrides=overrides,
                         crds_path=crds_path, crds_context=crds_context, config_file=config_file,
                         step_overrides=step_overrides, overwrite=overwrite, strict=strict, save_bsub=save_bsub,
                         preview=preview or False, allow_outside=allow_outside)
    check_crds_options(crds_path, crds_context)
    try:
        configuration(options)  # configuration errors are usage errors: report before any work
    except Image2Error as error:
        raise click.UsageError(str(error)) from None
    root_logger = logging.getLogger("image2")
    log_setup = (ctx.obj.get("log_format", "console"), logging.getLevelName(root_logger.level))
    started = time.perf_counter()
    before = product_names(output_dir) if executor == "dask" else frozenset()
    results: list[ProductResult] = []
    show_bar = not quiet and sys.stderr.isatty()
    with click.progressbar(length=len(inputs), label="calibrating", file=sys.stderr,
                           hidden=not show_bar) as bar:
        for batch in _results(inputs, options, jobs, log_setup, executor, scheduler):
            results.extend(batch)
            bar.update(1)
    if executor == "dask":
        results = settled(results, before)
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    elapsed = time.perf_counter() - started
    for result in results:
        report_result(log, result)
    click.echo(f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} "
               f"in {elapsed:.1f} s")
    for result in results:
        click.echo(f"  {result.input}{'' if result.product == result.input.name else f' [{result.product}]'}: "
                   f"{outcome_text(result)}")
        for output in result.outputs if result.status == "done" else ():
            click.echo(f"    {output}")
    ctx.exit(exit_code(results))
