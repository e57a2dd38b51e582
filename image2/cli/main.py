"""The ``image2`` command: a thin click layer over image2.io and image2.core."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from image2._version import __version__
from image2.cli.logs import configure
from image2.errors import Image2Error


class Image2Group(click.Group):
    """A click group that turns image2's own errors into one stderr line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Image2Error as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(2)


@click.group(cls=Image2Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="image2")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console",
              show_default=True, help="Log lines for people, or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="INFO", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str, debug: bool) -> None:
    """Stage-2 imaging calibration of infrared count-rate exposures (JWST, Liger/IRIS)."""
    configure(log_format, log_level)
    ctx.obj = {"debug": debug}


def _register() -> None:
    from image2.cli import info

    cli.add_command(info.info)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="image2")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
