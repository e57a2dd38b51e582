"""``image2 config show``: the effective step configuration, defaults included."""

from __future__ import annotations

from pathlib import Path

import click

from image2.errors import Image2Error


@click.group()
def config() -> None:
    """Inspect step configuration (replaces pars-image2pipeline reference files)."""


@config.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--step", "step_overrides", multiple=True, metavar="STEP.PARAM=VALUE")
def show(config_file: Path | None, step_overrides: tuple[str, ...]) -> None:
    """Print the effective configuration as TOML (parameters without a value are shown commented)."""
    from image2.core.config import to_toml
    from image2.io.config_file import load_config

    try:
        effective = load_config(config_file, step_overrides)
    except Image2Error as error:
        raise click.UsageError(str(error)) from None
    click.echo(to_toml(effective), nl=False)
