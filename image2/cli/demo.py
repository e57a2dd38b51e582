"""``image2 demo``: build a realistic synthetic NIRCam dataset and calibrate it end to end."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command()
@click.argument("folder", required=False, default="image2-demo", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def demo(ctx: click.Context, folder: Path) -> None:
    """Make a NIRCam full-frame field with two background exposures and calibrate it into FOLDER."""
    from image2.run.options import RunOptions
    from image2.run.process import process_input
    from image2.synthetic.demo import build

    started = time.perf_counter()
    click.echo(f"building the demo dataset in {folder}/ ...")
    dataset = build(folder)
    built = time.perf_counter() - started
    click.echo(f"  inputs: {', '.join(p.name for p in dataset.inputs)}, {dataset.association.name}")
    click.echo(f"  references: {dataset.references}/ ({len(list(dataset.references.iterdir()))} files) "
               f"in {built:.1f} s")
    options = RunOptions(output_dir=folder / "products", reference_dirs=(dataset.references,), overwrite=True,
                         preview="native")
    click.echo("calibrating: background, assign_wcs, flat_field, photom, resample ...")
    results = process_input(dataset.association, options)
    for result in results:
        if result.status != "done":
            raise click.ClickException(f"{result.product}: {result.error}")
        click.echo(f"  {result.product}: {result.seconds:.1f} s")
        for output in result.outputs:
            click.echo(f"    {output}")
    click.echo(f"done in {time.perf_counter() - started:.1f} s. Next: image2 info {dataset.association}")
