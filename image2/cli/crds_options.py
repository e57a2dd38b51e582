"""Command-line options choosing references by the rules of a CRDS cache (``--crds-path``, ``--crds-context``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def crds_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--crds-path DIR`` and ``--crds-context NAME`` to a command (passed as ``crds_path``, ``crds_context``)."""
    command = click.option(
        "--crds-context", "crds_context", metavar="NAME",
        help="CRDS context (e.g. jwst_1322.pmap) whose rules choose the references "
             "(default: $CRDS_CONTEXT, else the newest .pmap in the cache).")(command)
    return click.option(
        "--crds-path", "crds_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="CRDS cache (mappings/jwst, references/jwst) whose rules choose the references, offline "
             "(default: $CRDS_PATH; needs the image2[crds] extra).")(command)


def check_crds_options(crds_path: Path | None, crds_context: str | None) -> None:
    """Raise a usage error before any work when ``--crds-path``/``--crds-context`` cannot choose (no rules
    there, a context the cache does not have, crds not installed); nothing when neither is given."""
    if crds_path is None and crds_context is None:
        return
    from image2.errors import Image2Error
    from image2.io.refs.crds import reference_selector

    try:
        reference_selector((), crds_path=crds_path, crds_context=crds_context)
    except Image2Error as error:
        raise click.UsageError(str(error)) from None
