"""The ``image2`` command: a thin click layer over image2.io and image2.core."""

from __future__ import annotations

import gc
import importlib
import os
import sys

import click

from image2._version import __version__
from image2.cli.logs import configure
from image2.errors import Image2Error

COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("image2.cli.config:config", "Inspect step configuration (replaces pars-image2pipeline files)."),
    "demo": ("image2.cli.demo:demo", "Build a synthetic NIRCam field and calibrate it end to end."),
    "info": ("image2.cli.info:info", "Show instrument, shape, subarray, TSO and the stage-2 plan of inputs."),
    "process": ("image2.cli.process:process", "Calibrate rate/rateints files and Level-2 associations."),
    "refs": ("image2.cli.refs:refs", "Show which reference file each needed type would come from, and why."),
    "status": ("image2.cli.status:status", "Show what the watch daemon writing to a folder has done."),
    "watch": ("image2.cli.watch:watch", "Calibrate every input that lands in watched folders, exactly once."),
}
"""Sub-commands by name: where each lives and its one-line help. A module is imported only when
its command runs or shows its own help, so ``image2 --help`` imports none of them."""


_process_entry = False
"""True once :func:`main` runs: the process is the command (not a test runner invoking it), so freezing is safe."""


class Image2Group(click.Group):
    """A click group with lazily imported commands that turns image2's errors into exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, _, attribute = COMMANDS[name][0].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if _process_entry:
                gc.freeze()  # the imported modules live as long as the process: keep them out of every collection
            return command
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with the help of the table above (nothing imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])

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
@click.option("--debug", is_flag=True, help="Show tracebacks of errors (and log at DEBUG level).")
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str, debug: bool) -> None:
    """Stage-2 imaging calibration of infrared count-rate exposures (JWST, Liger/IRIS)."""
    configure(log_format, "DEBUG" if debug else log_level)
    ctx.obj = {"debug": debug, "log_format": log_format}


def main() -> None:
    """Console-script entry point."""
    # One BLAS thread per process: the pixel maps' small matrix products only contend otherwise,
    # and --jobs already spreads work over the cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    global _process_entry
    _process_entry = True
    try:
        cli(prog_name="image2")
    finally:
        # Exit without the collector walking every object left (0.3-0.5 s after a full-frame run):
        # the process ends, the memory goes back to the system anyway.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
