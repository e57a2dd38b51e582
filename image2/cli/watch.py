"""``image2 watch``: calibrate every rate file or association that lands in the watched folders, once."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import attrs
import click

from image2.cli.crds_options import check_crds_options, crds_options
from image2.cli.logs import configure, get_logger
from image2.cli.options import executor_options, parse_ref_overrides, preview_option, step_options
from image2.errors import Image2Error
from image2.run.executors import make_executor
from image2.watch.readiness import DEFAULT_PATTERNS

_SECONDS = click.FloatRange(min=0.0)


def watched_output_problem(folder: Path, output_dir: Path) -> str | None:
    """Return why products written to ``output_dir`` would never be seen to land in the watched ``folder``
    (it is the output folder, or inside it: the daemon's own files), or None."""
    watched, output = os.path.realpath(folder), os.path.realpath(output_dir)
    if watched == output:
        return f"the output folder {output_dir} is the watched folder {folder}; give another -o"
    if os.path.commonpath((watched, output)) == output:
        return f"the watched folder {folder} lies inside the output folder {output_dir}; give another -o"
    return None


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where products go; the ledger (image2-watch.sqlite) is kept there too, unless --ledger.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the ledger (an SQLite file) here instead, e.g. on a disk that does not fill up with "
                   "products; give it to image2 status too.")
@click.option("--refs", "reference_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of reference files (repeatable). While one is missing, items wait and retry.")
@click.option("--ref", "overrides", multiple=True, metavar="TYPE=PATH", callback=parse_ref_overrides,
              help="Use this reference file (or N/A for none).")
@crds_options
@step_options
@executor_options
@click.option("--pattern", "patterns", multiple=True, metavar="GLOB",
              help=f"File names to take (repeatable; default {' '.join(DEFAULT_PATTERNS)}).")
@click.option("--recursive", is_flag=True, help="Watch subfolders too.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Inputs calibrated at once: worker processes (default 1), or tasks on the Dask cluster "
                   "(default: its worker threads; without --scheduler, a LocalCluster of N worker processes).")
@click.option("--poll", type=click.FloatRange(min=0.05), is_flag=False, flag_value=1.0, default=None,
              metavar="[SECONDS]", help="Poll the folders (every SECONDS, default 1) instead of using native "
              "events; for network filesystems. Write --poll=SECONDS or put it after the folders.")
@click.option("--settle", type=_SECONDS, default=5.0, show_default=True, metavar="SECONDS",
              help="A file without a close-after-write event is taken once its size and mtime stayed "
                   "unchanged this long; an invalid file is judged corrupt only after it.")
@click.option("--quarantine", type=click.Path(file_okay=False, path_type=Path),
              help="Move invalid inputs here, each with a <name>.reason.json.")
@click.option("--reconcile", type=click.FloatRange(min=0.1), default=60.0, show_default=True, metavar="SECONDS",
              help="Seconds between rescans of the watched folders (events are only hints).")
@click.option("--heartbeat", type=click.FloatRange(min=0.1), default=30.0, show_default=True, metavar="SECONDS",
              help="Seconds between heartbeats in the log and the ledger.")
@click.option("--grace", type=_SECONDS, default=30.0, show_default=True, metavar="SECONDS",
              help="On SIGINT/SIGTERM, seconds running items get to finish before being put back in the queue.")
@click.option("--member-wait", type=_SECONDS, default=600.0, show_default=True, metavar="SECONDS",
              help="Seconds an association waits for its members to exist and be complete.")
@click.option("--members-as-singletons", is_flag=True,
              help="Also process members of associations on their own.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="Runs of an input hitting transient errors (disk full, missing reference folder) before "
                   "it fails.")
@click.option("--retry-delay", type=_SECONDS, default=10.0, show_default=True, metavar="SECONDS",
              help="Seconds before the first retry; doubled at each further attempt.")
@click.option("--save-bsub", is_flag=True, help="Also write the background-subtracted _bsub product.")
@click.option("--overwrite", is_flag=True, help="Replace existing products (kept by default).")
@click.option("--strict", is_flag=True, help="Fail on any missing reference, optional ones too (a required one always fails; "
                   "--ref TYPE=N/A runs without it on purpose).")
@preview_option
@click.option("--allow-outside", is_flag=True, help="Accept association members outside the association's folder.")
@click.option("--http", metavar="[HOST:]PORT",
              help="Serve a read-only status page there while watching, e.g. 127.0.0.1:8765 (the host defaults "
                   "to 127.0.0.1, this machine only; 0.0.0.0 shows it to the network).")
@click.pass_context
def watch(ctx: click.Context, folders: tuple[Path, ...], output_dir: Path, ledger_path: Path | None,
          reference_dirs: tuple[Path, ...], overrides: dict[str, str], crds_path: Path | None,
          crds_context: str | None, config_file: Path | None, step_overrides: tuple[str, ...],
          patterns: tuple[str, ...], recursive: bool, workers: int | None, executor: str, scheduler: str | None,
          poll: float | None, settle: float,
          quarantine: Path | None, reconcile: float, heartbeat: float, grace: float, member_wait: float,
          members_as_singletons: bool, max_attempts: int, retry_delay: float, save_bsub: bool,
          overwrite: bool, strict: bool, preview: str | None, allow_outside: bool, http: str | None) -> None:
    """Calibrate every rate file or association that lands in FOLDERS, exactly once, until stopped.

    Stop with SIGINT or SIGTERM (running items get --grace seconds; exit 0). SIGHUP rescans the
    folders now. `image2 status OUTPUT_DIR` shows progress.
    """
    from image2.run.executors import process_pool
    from image2.run.options import RunOptions, configuration
    from image2.run.references import with_reference_choices
    from image2.watch.daemon import Daemon, WatchConfig
    from image2.watch.status_page import serving

    options = RunOptions(output_dir=output_dir.absolute(), reference_dirs=[d.absolute() for d in reference_dirs],
                         overrides=overrides, crds_path=crds_path.absolute() if crds_path else None,
                         crds_context=crds_context, config_file=config_file.absolute() if config_file else None,
                         step_overrides=step_overrides,
                         overwrite=overwrite, strict=strict, save_bsub=save_bsub, preview=preview,
                         allow_outside=allow_outside)
    if scheduler is not None and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    check_crds_options(crds_path, crds_context)
    try:
        configuration(options)
    except Image2Error as error:
        raise click.UsageError(str(error)) from None
    for folder in folders:
        problem = watched_output_problem(folder, output_dir)
        if problem is not None:
            raise click.UsageError(problem)
    config = WatchConfig(
        roots=folders, output_dir=output_dir, options=options, patterns=patterns or DEFAULT_PATTERNS,
        recursive=recursive, workers=workers or 1, poll=poll, settle=settle, quarantine=quarantine,
        reconcile=reconcile, heartbeat=heartbeat, grace=grace, member_wait=member_wait,
        members_as_singletons=members_as_singletons, max_attempts=max_attempts, retry_delay=retry_delay,
        ledger=ledger_path)
    log = get_logger("image2.watch")
    for folder in options.reference_dirs:
        if not folder.is_dir():
            log.warning("folder-missing", folder=str(folder), reason="reference folder does not exist (yet); "
                        "items wait for it")
    page = ctx.with_resource(serving(output_dir, http, config.ledger))  # stopped when the command ends
    if page is not None:
        log.info("status-page", url=page.url)
    log_setup = ((ctx.obj or {}).get("log_format", "console"),
                 logging.getLevelName(logging.getLogger("image2").level))
    try:
        # The daemon is the coordinator: it chooses each input's references and hands them to the workers.
        if executor == "local":
            daemon = Daemon(config, executor=lambda n: process_pool(n, configure, log_setup), log=log,
                            prepare=with_reference_choices)
            ctx.exit(daemon.run())
        with make_executor(executor, workers, scheduler, initializer=configure, initargs=log_setup) as cluster:
            daemon = Daemon(attrs.evolve(config, workers=workers or cluster.capacity()), executor=lambda n: cluster,
                            log=log, prepare=with_reference_choices)
            status = daemon.run()
    except sqlite3.DatabaseError as error:  # a ledger that is no SQLite database, or a damaged one
        if (ctx.obj or {}).get("debug"):
            raise
        raise click.ClickException(f"the ledger {config.ledger_file} cannot be used ({error}); move it aside to "
                                   "start a new one") from None
    ctx.exit(status)
