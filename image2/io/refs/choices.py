"""Reference choices made once by a coordinator and handed to the workers that calibrate.

A coordinator (``image2 process`` or the watch daemon on a cluster) chooses each science
exposure's reference files from their headers only, and passes {reftype: path or ``N/A``}
along with the task. The worker reads exactly those files and records them as the store
would have (``crds://<basename>``), so products do not depend on where they were made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from image2.core.meta import Meta
from image2.core.references import NOT_APPLICABLE
from image2.io.association import load_input
from image2.io.fits import open_exposure
from image2.io.refs.resolution import plan_references
from image2.io.refs.selection import Choice
from image2.io.refs.store import ReferenceStore

log = logging.getLogger(__name__)


class ChosenReferences:
    """A reference source replaying choices made earlier, {reftype: path or "N/A"}, in place of a ReferenceStore."""

    def __init__(self, chosen: Mapping[str, str]) -> None:
        self.chosen = dict(chosen)

    def select(self, meta: Meta, reftype: str) -> Choice:
        """Return the earlier choice for ``reftype`` (none when it was none or was not made)."""
        value = self.chosen.get(reftype)
        if value is None:
            return Choice(reftype, note=f"no {reftype.upper()} reference was chosen for this exposure")
        if value == NOT_APPLICABLE:
            return Choice(reftype, note=f"no {reftype.upper()} reference matched")
        return Choice(reftype, path=Path(value))


def reference_choices(path: Path, store: ReferenceStore, overrides: Mapping[str, str],
                      allow_outside: bool = False) -> dict[str, dict[str, str]]:
    """Return {science exposure path: {reftype: path or "N/A"}} for every product of the input ``path``.

    Only headers are read. Types given as overrides are left out (the worker applies those
    itself), and so is any exposure whose choice is ambiguous or cannot be made: its worker
    then chooses, and reports the problem, as a local run would.
    """
    try:
        association = load_input(path, allow_outside=allow_outside)
    except Exception as error:  # noqa: BLE001 - left to the worker, which meets and reports the same problem
        log.debug("references not chosen here: %s", error, extra={"file": str(path)})
        return {}
    choices: dict[str, dict[str, str]] = {}
    for product in association.products:
        science = product.science[0].path
        try:
            with open_exposure(science) as handle:
                plan = plan_references(handle.meta, store, overrides)
        except Exception as error:  # noqa: BLE001 - left to the worker, which meets and reports the same problem
            log.debug("references not chosen here: %s", error, extra={"file": str(science)})
            continue
        if any(item.choice is not None and item.choice.ambiguous for item in plan.values()):
            continue
        choices[str(science)] = {reftype: str(item.path) if item.path is not None else NOT_APPLICABLE
                                 for reftype, item in plan.items() if item.origin != "override"}
    return choices
