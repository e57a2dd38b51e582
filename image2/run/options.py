"""How to process inputs: the run options, and the step configuration they describe."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from image2.core.config import Config
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
    path = config.value("resample", "output_wcs")
    if not isinstance(path, str) or not path:
        return config
    shape = config.value("resample", "output_shape")
    wcs, pixel_scale = read_output_wcs(path, tuple(shape) if shape else None)
    steps = {name: dict(params) for name, params in config.steps.items()}
    steps["resample"]["output_wcs"] = wcs
    if steps["resample"]["pixel_scale"] is None:
        steps["resample"]["pixel_scale"] = pixel_scale
    return Config(steps)
