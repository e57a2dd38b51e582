"""Command-line options shared by several commands (references, overrides).

Nothing heavy is imported at module level: every command's ``--help`` goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from image2.errors import Image2Error

if TYPE_CHECKING:
    from image2.core.association import Association, Product
    from image2.io.fits import ExposureFile

REFERENCE_TYPES_HELP = "flat, photom, area, distortion, filteroffset, dark"
"""The reference types named in ``--ref``'s help (image2.core.references.REFTYPES, which needs
numpy, is checked against it in the tests and used for validation)."""


def parse_ref_overrides(ctx: click.Context | None, param: click.Parameter | None,
                        values: tuple[str, ...]) -> dict[str, str]:
    """Turn ``--ref TYPE=PATH`` values into {reftype: absolute path or "N/A"}; bad ones are usage errors."""
    from image2.core.references import REFTYPES

    overrides: dict[str, str] = {}
    for text in values:
        reftype, sep, target = text.partition("=")
        reftype = reftype.strip().lower()
        if not sep or not target.strip():
            raise click.BadParameter(f"{text!r}: expected TYPE=PATH or TYPE=N/A", ctx=ctx, param=param)
        if reftype not in REFTYPES:
            raise click.BadParameter(f"unknown reference type {reftype!r} (known: {', '.join(REFTYPES)})",
                                     ctx=ctx, param=param)
        target = target.strip()
        if target.upper() == "N/A":
            overrides[reftype] = "N/A"
            continue
        path = Path(target).expanduser()
        if not path.is_file():
            raise click.BadParameter(f"{reftype}: no such file {target}", ctx=ctx, param=param)
        overrides[reftype] = str(path.resolve())
    return overrides


def reference_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--refs DIR`` (repeatable) and ``--ref TYPE=PATH`` (repeatable) to a command."""
    command = click.option(
        "--ref", "overrides", multiple=True, metavar="TYPE=PATH", callback=parse_ref_overrides,
        help=f"Use this reference file (or N/A for none); TYPE is one of {REFERENCE_TYPES_HELP}.")(command)
    return click.option(
        "--refs", "reference_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Folder of reference files to choose from (repeatable); $CRDS_PATH is searched too.")(command)


def step_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config FILE`` and ``--step STEP.PARAM=VALUE`` (repeatable) to a command."""
    command = click.option(
        "--step", "step_overrides", multiple=True, metavar="STEP.PARAM=VALUE",
        help="Override one step parameter, e.g. resample.pixfrac=0.8 or flat_field.skip=true.")(command)
    return click.option(
        "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="TOML file of step parameters ([steps.<step>] tables).")(command)


PREVIEW_ORIENTATIONS = ("native", "north-up")
"""image2.io.preview.ORIENTATIONS (that module needs numpy; the tests check the two agree)."""


def preview_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--preview[=native|north-up]``: a PNG quick-look, in the file's orientation or North up."""
    return click.option(
        "--preview", type=click.Choice(PREVIEW_ORIENTATIONS), is_flag=False, flag_value="native", default=None,
        metavar="[native|north-up]",
        help="Write a PNG quick-look next to each i2d (or cal), in the file's own orientation or North up, "
             "East left. Write --preview=north-up, or put it after the inputs.")(command)


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--executor local|dask`` and ``--scheduler ADDRESS`` to a command."""
    from image2.run.executors import EXECUTORS

    command = click.option(
        "--scheduler", metavar="ADDRESS",
        help="With --executor dask: the scheduler of the cluster to use, e.g. tcp://head:8786 "
             "(default: start a LocalCluster).")(command)
    return click.option(
        "--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
        help="Calibrate in local processes, or on a Dask cluster (needs the image2[dask] extra; inputs, "
             "references and the output folder must be on storage shared with every worker).")(command)


def for_each_science_exposure(ctx: click.Context, inputs: Iterable[Path],
                              action: Callable[[Path, Association, Product, ExposureFile], bool | None]) -> None:
    """Call ``action`` on the science exposure of every product of every input; exit 2 if any failed.

    An input that cannot be read is reported on one stderr line (a traceback with --debug) and
    the others still run; ``action`` returns True to mark its input as failed. Exposures are
    opened for their headers only (no WCS), which is all these reports need and much quicker.
    """
    from image2.io.association import load_input
    from image2.io.fits import open_exposure

    failed = False
    for path in inputs:
        try:
            association = load_input(path)
            for product in association.products:
                with open_exposure(product.science[0].path, headers_only=True) as handle:
                    failed = bool(action(path, association, product, handle)) or failed
        except Image2Error as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            failed = True
    if failed:
        ctx.exit(2)
