"""Reference choices made once by a coordinator and handed to the workers that calibrate.

A coordinator (``image2 process`` with several workers or on a cluster, or the watch daemon)
chooses each science exposure's references from headers only, by the rules of a CRDS context
or by header matching, and passes the choices, {reftype: Choice}, along with the task. The
worker reads exactly those files and records them as the coordinator's source would have
(``crds://<basename>``, the context in CRDS_CTX), and a type the rules declare N/A stays not
applicable rather than missing, so products do not depend on where they were made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import attrs

from image2.core.meta import Meta
from image2.io.association import load_input
from image2.io.fits import open_exposure
from image2.io.refs.resolution import plan_references
from image2.io.refs.selection import Choice, ReferenceSource

log = logging.getLogger(__name__)


class ChosenReferences:
    """A reference source replaying choices made earlier, {reftype: Choice}, in place of a store or rules."""

    def __init__(self, chosen: Mapping[str, Choice]) -> None:
        self.chosen = dict(chosen)

    def select(self, meta: Meta, reftype: str) -> Choice:
        """Return the earlier choice for ``reftype`` (none when it was not made)."""
        choice = self.chosen.get(reftype)
        if choice is None:
            return Choice(reftype, note=f"no {reftype.upper()} reference was chosen for this exposure")
        return choice


def reference_choices(path: Path, source: ReferenceSource, overrides: Mapping[str, str],
                      allow_outside: bool = False) -> dict[str, dict[str, Choice]]:
    """Return {science exposure path: {reftype: Choice}} for every product of the input ``path``.

    Only headers are read. Types given as overrides are left out (the worker applies those
    itself), and so is any exposure whose choice is ambiguous or cannot be made: its worker
    then chooses, and reports the problem, as a local run would. The refused candidates are
    not passed on (the worker has no use for them).
    """
    try:
        association = load_input(path, allow_outside=allow_outside)
    except Exception as error:  # noqa: BLE001 - left to the worker, which meets and reports the same problem
        log.debug("references not chosen here: %s", error, extra={"file": str(path)})
        return {}
    choices: dict[str, dict[str, Choice]] = {}
    for product in association.products:
        science = product.science[0].path
        try:
            with open_exposure(science, headers_only=True) as handle:
                plan = plan_references(handle.meta, source, overrides)
        except Exception as error:  # noqa: BLE001 - left to the worker, which meets and reports the same problem
            log.debug("references not chosen here: %s", error, extra={"file": str(science)})
            continue
        if any(item.choice is not None and item.choice.ambiguous for item in plan.values()):
            continue
        choices[str(science)] = {reftype: attrs.evolve(item.choice, rejected=())
                                 for reftype, item in plan.items() if item.choice is not None}
    return choices
