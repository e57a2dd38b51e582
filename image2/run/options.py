"""How to process inputs: the run options, and the step configuration they describe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from image2.core.config import Config, ConfigError
from image2.io.bounds import Limits
from image2.io.config_file import load_config
from image2.io.i2d import read_output_wcs
from image2.io.preview import ORIENTATIONS

if TYPE_CHECKING:
    from image2.io.refs.selection import Choice


@attrs.frozen
class RunOptions:
    """How to process inputs; plain values and frozen records only, so it crosses process boundaries."""

    output_dir: Path = attrs.field(converter=Path)
    reference_dirs: tuple[Path, ...] = attrs.field(default=(), converter=lambda v: tuple(map(Path, v)))
    overrides: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    config_file: Path | None = None
    step_overrides: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    overwrite: bool = False
    strict: bool = False
    save_bsub: bool = False
    preview: str | None = attrs.field(default=None,
                                      validator=attrs.validators.optional(attrs.validators.in_(ORIENTATIONS)))
    """The quick-look PNG's orientation (one of image2.io.preview.ORIENTATIONS), or None for no quick-look."""
    allow_outside: bool = False
    crds_path: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """A CRDS cache whose rules choose the references (else $CRDS_PATH when it has rules)."""
    crds_context: str | None = None
    """The CRDS context (.pmap) whose rules choose (else $CRDS_CONTEXT, else the cache's newest)."""
    references: Mapping[str, Mapping[str, Choice]] = attrs.field(
        factory=dict, converter=lambda m: {str(k): dict(v) for k, v in m.items()})
    """References chosen beforehand by a coordinator, {science path: {reftype: Choice}};
    an exposure not listed has its references chosen where it runs."""


def configuration(options: RunOptions) -> Config:
    """Return the step configuration the options describe (``save_bsub`` included)."""
    overrides = list(options.step_overrides)
    if options.save_bsub:
        overrides.append("bkg_subtract.save_results=true")
    return step_configuration(load_config(options.config_file, overrides))


def step_configuration(config: Config) -> Config:
    """Return ``config`` with file-valued parameters loaded: resample's ``output_wcs`` file gives
    the gwcs, and its pixel scale when the file states one and ``pixel_scale`` is not set."""
    shape = config.value("resample", "output_shape")
    limit = Limits.from_environment().max_plane_pixels
    if shape and all(isinstance(n, int) for n in shape) and shape[0] * shape[-1] > limit:
        raise ConfigError(f"resample.output_shape={list(shape)}: {shape[0] * shape[-1]} pixels exceed the limit of "
                          f"{limit} (IMAGE2_MAX_PLANE_PIXELS)")
    path = config.value("resample", "output_wcs")
    if not isinstance(path, str) or not path:
        return config
    wcs, pixel_scale = read_output_wcs(path, tuple(shape) if shape else None)
    steps = {name: dict(params) for name, params in config.steps.items()}
    steps["resample"]["output_wcs"] = wcs
    if steps["resample"]["pixel_scale"] is None:
        steps["resample"]["pixel_scale"] = pixel_scale
    return Config(steps)


def output_problem(folder: Path) -> str | None:
    """Return why products cannot be written in ``folder`` (None when they can): it, or the nearest
    existing folder it would be made in, must be a folder this process may write."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            return f"output folder {folder}: {existing} is a dangling symlink"
        existing = existing.parent
    if not existing.is_dir():
        return f"output folder {folder}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"output folder {folder}: {existing} is not writable"
    return None