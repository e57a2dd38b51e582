"""``image2 refs``: which reference file each needed type would come from, where that choice came from, and why."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from image2.cli.crds_options import check_crds_options, crds_options
from image2.cli.options import for_each_science_exposure, reference_options

if TYPE_CHECKING:
    from image2.core.association import Association, Product
    from image2.io.fits import ExposureFile


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@reference_options
@crds_options
@click.pass_context
def refs(ctx: click.Context, inputs: tuple[Path, ...], reference_dirs: tuple[Path, ...],
         overrides: dict[str, str], crds_path: Path | None, crds_context: str | None) -> None:
    """Show, per reference type an exposure needs, the file that would be used, where the choice came
    from (an rmap of a CRDS context, a header match, or --ref) and, for a type left unfilled, the
    closest candidates and why each was refused.

    With a CRDS cache that has rules (--crds-path, or $CRDS_PATH with mappings/jwst), the rules of
    its context choose, offline; otherwise files are chosen from the --refs folders and $CRDS_PATH by
    their header keywords (REFTYPE, INSTRUME, DETECTOR, EXP_TYPE, FILTER, PUPIL, SUBARRAY, P_* patterns,
    USEAFTER). Exits with 2 when an input cannot be read or a selection is ambiguous.
    """
    from image2.io.refs.crds import reference_selector
    from image2.io.refs.origins import describe_origins, reference_origins

    check_crds_options(crds_path, crds_context)
    source = reference_selector(reference_dirs, crds_path=crds_path, crds_context=crds_context)

    def show(path: Path, association: Association, product: Product, handle: ExposureFile) -> bool:
        origins = reference_origins(handle.meta, source, overrides)
        click.echo(describe_origins(handle.path, handle.meta, origins))
        return any(origin.ambiguous for origin in origins.values())

    for_each_science_exposure(ctx, inputs, show)
