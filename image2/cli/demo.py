"""``image2 demo``: build a realistic synthetic dataset (NIRCam, or Liger) and calibrate it end to end."""

from __future__ import annotations

import time
from pathlib import Path

import click

STEPS = {"nircam": "background, assign_wcs, flat_field, photom, resample",
         "liger": "parse_subarray_map, dark_current, flat_field, sky_sub (photutils), assign_wcs"}
"""What each demo calibrates, in words."""


@click.command()
@click.argument("folder", required=False, default="image2-demo", type=click.Path(file_okay=False, path_type=Path))
@click.option("--instrument", type=click.Choice(sorted(STEPS)), default="nircam", show_default=True,
              help="nircam: a full-frame field with two background exposures; liger: a Liger frame read with "
                   "two concurrent subarrays, two SKY frames, a dark and a flat (needs image2[liger]).")
@click.pass_context
def demo(ctx: click.Context, folder: Path, instrument: str) -> None:
    """Make a synthetic field (NIRCam by default) with its references and calibrate it into FOLDER."""
    from image2.io.refs.readers import references_kept
    from image2.run.options import RunOptions
    from image2.run.process import process_input

    if instrument == "liger":
        from image2.synthetic.liger import build_demo as build
    else:
        from image2.synthetic.demo import build

    started = time.perf_counter()
    click.echo(f"building the {instrument} demo dataset in {folder}/ ...")
    dataset = build(folder)
    built = time.perf_counter() - started
    click.echo(f"  inputs: {', '.join(p.name for p in dataset.inputs)}, {dataset.association.name}")
    click.echo(f"  references: {dataset.references}/ ({len(list(dataset.references.iterdir()))} files) "
               f"in {built:.1f} s")
    options = RunOptions(output_dir=folder / "products", reference_dirs=(dataset.references,), overwrite=True,
                         preview="native")
    click.echo(f"calibrating: {STEPS[instrument]} ...")
    with references_kept(False):  # one input: nothing later reuses the reference records
        results = process_input(dataset.association, options)
    for result in results:
        if result.status != "done":
            raise click.ClickException(f"{result.product}: {result.error}")
        click.echo(f"  {result.product}: {result.seconds:.1f} s")
        for output in result.outputs:
            click.echo(f"    {output}")
    click.echo(f"done in {time.perf_counter() - started:.1f} s. Next: image2 info {dataset.association}")
