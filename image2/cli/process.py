"""``image2 process``: calibrate rate files and associations into cal/calints/i2d products."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
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
             on_event: Callable[[tuple], object], executor: str = "local",
             scheduler: str | None = None) -> Iterator[tuple[Path, list[ProductResult]]]:
    """Yield each input (as given) and its results as they finish: here, in local worker processes,
    or on a Dask cluster.

    Locally, ``jobs`` > 1 runs inputs in that many worker processes, which send their log records
    (at ``log_setup``'s level) and step events back here as they happen: the records go to this
    process's logging, the events (image2.run.events) to ``on_event``, as do this process's own.
    With workers, the references are chosen here, once per exposure, and handed to them; on a cluster
    every path is made absolute (workers run elsewhere); an input whose worker was lost is run again (see
    image2.run.executors).
    """
    import multiprocessing

    from image2.io.refs.readers import references_kept
    from image2.run.events import QueueReader, forward_to, report_to
    from image2.run.executors import START_METHOD
    from image2.run.process import process_input, products_before
    from image2.run.references import with_reference_choices
    from image2.run.results import FAILED, ProductResult, failure_of

    taken = products_before(inputs, options.allow_outside)
    if executor == "local" and ((jobs or 1) <= 1 or len(inputs) <= 1):
        report_to(on_event)
        try:  # one input: no later input reuses the reference records (each product reads its own)
            with references_kept(len(inputs) > 1):
                for path, before in zip(inputs, taken, strict=True):
                    yield path, process_input(path, options, before)
        finally:
            report_to(None)
        return
    reader: QueueReader | None = None
    setup: tuple[Callable[..., object], tuple]
    if executor == "dask":
        options = _absolute(options)
        setup = (configure, log_setup)
    else:
        queue = multiprocessing.get_context(START_METHOD).SimpleQueue()
        setup = (forward_to, (queue, log_setup[1]))
        reader = QueueReader(queue, on_event)
    paths = (path.absolute() if executor == "dask" else path for path in inputs)
    calls = ((path, with_reference_choices(path, options), before) for path, before in zip(paths, taken, strict=True))
    with reader or contextlib.nullcontext(), make_executor(executor, jobs, scheduler, initializer=setup[0],
                                                           initargs=setup[1]) as pool:
        for end in finished(pool, process_input, calls):
            path = end.args[0]
            given = next((original for original in inputs if path in (original, original.absolute())), path)
            if reader is not None:  # the worker's last lines about it come first
                reader.wait_for(str(path), timeout=0 if end.error is not None else 5.0)
            if end.error is None:
                yield given, end.result
            else:
                yield given, [ProductResult(
                    path, path.name, FAILED, (), f"{path}: {executor} executor: {end.error!r} "
                    f"(after {end.attempts} attempts)", failure=failure_of(end.error))]


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """Make SIGTERM end the run as an exit (status 143) that removes its staging files, not a silent death."""
    def leave(number: int, frame: object) -> None:
        raise SystemExit(128 + number)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def report_result(log: Any, result: ProductResult, with_reason: bool) -> None:
    """Log one product's outcome as one event: failures as errors, with their reason when ``with_reason``
    (JSON, where the event is the one record of it; on a console the summary gives the reason)."""
    fields = {"file": str(result.input), "product": result.product, "seconds": round(result.seconds, 2)}
    if result.status == "failed":
        kind = None if result.failure is None else str(result.failure.kind)
        log.error("failed", kind=kind, **({"reason": result.error} if with_reason else {}), **fields)
    elif result.status == "skipped":
        log.info("skipped", reason=result.error, **fields)
    else:
        log.info("done", outputs=[str(path) for path in result.outputs], skipped_steps=list(result.skipped_steps),
                 **fields)


def show_summary(log: Any, results: list[ProductResult], elapsed: float, as_json: bool) -> None:
    """Tell the run's outcome: as JSON, a ``summary`` event and the product paths alone on stdout, one a
    line; on a console, the counts and each input's outcome with its products, on stdout."""
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    if as_json:
        log.info("summary", **counts, seconds=round(elapsed, 2),
                 outputs=[str(output) for result in results if result.status == "done" for output in result.outputs])
        for result in results:
            for output in result.outputs if result.status == "done" else ():
                click.echo(str(output))
        return
    click.echo(f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']} in {elapsed:.1f} s")
    for result in results:
        click.echo(f"  {result.input}{'' if result.product == result.input.name else f' [{result.product}]'}: "
                   f"{outcome_text(result)}")
        for output in result.outputs if result.status == "done" else ():
            click.echo(f"    {output}")


def overall_status(results: list[ProductResult]) -> str:
    """One input's status from its products': failed if any failed, skipped if all were, else done."""
    statuses = {result.status for result in results}
    return "failed" if "failed" in statuses or not statuses else "skipped" if statuses == {"skipped"} else "done"


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
@click.option("--quiet", "-q", is_flag=True, help="No live progress display (there is none off a terminal either).")
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
    from image2.run.options import RunOptions, configuration, output_problem

    options = RunOptions(output_dir=output_dir, reference_dirs=reference_dirs, overrides=overrides,
                         crds_path=crds_path, crds_context=crds_context, config_file=config_file,
                         step_overrides=step_overrides, overwrite=overwrite, strict=strict, save_bsub=save_bsub,
                         preview=preview, allow_outside=allow_outside)
    check_crds_options(crds_path, crds_context)
    try:
        configuration(options)  # configuration errors are usage errors: report before any work
    except Image2Error as error:
        raise click.UsageError(str(error)) from None
    problem = output_problem(output_dir)
    if problem is not None:
        raise click.UsageError(problem)
    log_format = ctx.obj.get("log_format", "console")
    log_setup = (log_format, logging.getLevelName(logging.getLogger("image2").level))
    started = time.perf_counter()
    before = product_names(output_dir) if executor == "dask" else frozenset()
    results: list[ProductResult] = []
    from image2.cli.progress import BatchProgress
    from image2.core.steps import JWST, steps_for

    display = BatchProgress([str(path) for path in inputs], [step.name for step in steps_for(JWST)],
                            workers=min(jobs or 1, len(inputs)),
                            enabled=False if quiet or log_format == "json" else None)
    try:
        with _terminated_as_exit(), display:
            for path, batch in _results(inputs, options, jobs, log_setup, display.event, executor, scheduler):
                if executor != "dask":  # there, a product's status is settled at the end
                    for result in batch:
                        report_result(log, result, with_reason=log_format == "json")
                display.input_finished(str(path), overall_status(batch))
                results.extend(batch)
    finally:
        from image2.io.atomic import remove_abandoned_staging

        remove_abandoned_staging(output_dir)  # what workers that died (or this run, stopped) left behind
    if executor == "dask":
        results = settled(results, before)
        for result in results:
            report_result(log, result, with_reason=log_format == "json")
    show_summary(log, results, time.perf_counter() - started, as_json=log_format == "json")
    ctx.exit(exit_code(results))
