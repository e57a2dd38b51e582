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
