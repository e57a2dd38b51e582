"""``image2 refs``: which reference file each needed type would come from, and why."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from image2.cli.options import for_each_science_exposure, reference_options

if TYPE_CHECKING:
    from image2.core.association import Association, Product
    from image2.core.meta import Meta
    from image2.io.fits import ExposureFile
    from image2.io.refs.resolution import Resolution


def describe_plan(path: Path, meta: Meta, plan: Mapping[str, Resolution]) -> str:
    """Return the per-reftype report of ``image2 refs`` for one exposure."""
    ins = meta.instrument
    lines = [f"{path}",
             f"  {ins.name or '?'} {ins.detector or ''} {ins.filter or '-'}/{ins.pupil or '-'} "
             f"{meta.exposure.type or '?'} {meta.subarray.name or ''} "
             f"{meta.exposure.date_obs or ''} {meta.exposure.time_obs or ''}".rstrip()]
    for item in plan.values():
        head = f"  {item.reftype:<13}"
        if item.origin == "override":
            lines.append(f"{head}{item.source}  (--ref override)")
        elif item.origin == "store" and item.choice is not None:
            lines.append(f"{head}{item.source}  ({item.path})")
            lines.append(f"  {'':<13}matched: {', '.join(item.choice.matched)}")
        else:
            choice = item.choice
            lines.append(f"{head}{'AMBIGUOUS' if choice and choice.ambiguous else 'none'}: "
                         f"{choice.explanation() if choice else 'no reference'}")
            for rejection in choice.rejected if choice else ():
                lines.append(f"  {'':<13}- {rejection.path.name}: {rejection.reason}")
            if choice and choice.other_detectors:
                lines.append(f"  {'':<13}- {choice.other_detectors} more for other detectors")
    return "\n".join(lines)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@reference_options
@click.pass_context
def refs(ctx: click.Context, inputs: tuple[Path, ...], reference_dirs: tuple[Path, ...],
         overrides: dict[str, str]) -> None:
    """Show, per reference type an exposure needs, the file that would be used and why.

    Files are chosen offline from the --refs folders and $CRDS_PATH by their header keywords
    (REFTYPE, INSTRUME, DETECTOR, EXP_TYPE, FILTER, PUPIL, SUBARRAY, P_* patterns, USEAFTER).
    Exits with 2 when an input cannot be read or a selection is ambiguous.
    """
    from image2.io.refs.resolution import plan_references
    from image2.io.refs.store import ReferenceStore

    store = ReferenceStore(reference_dirs)

    def show(path: Path, association: Association, product: Product, handle: ExposureFile) -> bool:
        plan = plan_references(handle.meta, store, overrides)
        click.echo(describe_plan(handle.path, handle.meta, plan))
        return any(item.choice is not None and item.choice.ambiguous for item in plan.values())

    for_each_science_exposure(ctx, inputs, show)
