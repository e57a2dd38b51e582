"""``image2 info``: what an exposure or association holds and which steps would run."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import click

from image2.cli.options import for_each_science_exposure

if TYPE_CHECKING:
    from image2.core.association import Association, Product
    from image2.core.meta import Meta
    from image2.io.fits import ExposureFile


def describe(path: Path, meta: Meta, shape: tuple[int, ...], extensions: Collection[str], n_background: int) -> str:
    """Return the human-readable summary of one exposure and its stage-2 plan."""
    from image2.core.plan import is_tso, plan_steps

    ins, exp, sub = meta.instrument, meta.exposure, meta.subarray
    cube = len(shape) == 3
    extra = ", ".join(f"{k} {v}" for k, v in (("module", ins.module), ("channel", ins.channel)) if v)
    placement = ""
    if sub.xstart is not None and sub.ystart is not None:
        placement = f"  start ({sub.xstart}, {sub.ystart})"
    if sub.xsize is not None and sub.ysize is not None:
        placement += f"  size {sub.xsize} x {sub.ysize}"
    lines = [
        str(path),
        f"  instrument    {ins.name or '?'} {ins.detector or ''}" + (f"  ({extra})" if extra else ""),
        f"  filter/pupil  {ins.filter or '-'} / {ins.pupil or '-'}",
        f"  exp_type      {exp.type}",
        f"  shape         {' x '.join(map(str, shape))} ({'3-D rateints' if cube else '2-D rate'})",
        f"  subarray      {sub.name or '-'}{placement}",
        f"  tso           {'yes' if is_tso(meta) else 'no'}",
        f"  integrations  {shape[0] if cube else (exp.nints or 1)}",
        "  stage-2 steps:",
    ]
    for step in plan_steps(meta, cube=cube, n_background=n_background, extensions=extensions):
        lines.append(f"    {step.name:<20} {'runs' if step.runs else 'skip':<5} {step.reason}")
    return "\n".join(lines)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def info(ctx: click.Context, inputs: tuple[Path, ...]) -> None:
    """Show instrument, shape, subarray, TSO and the stage-2 plan of rate files or associations."""

    def show(path: Path, association: Association, product: Product, handle: ExposureFile) -> None:
        text = describe(handle.path, handle.meta, handle.shape, handle.extensions, len(product.background))
        click.echo(text if association.is_singleton else f"{path} product {product.name}:\n{text}")

    for_each_science_exposure(ctx, inputs, show)
