"""The Liger/IRIS imager stage 2 of one association, in the order of the pipeline's ImagerStage2Pipeline.

Every science and SKY frame: parse_subarrays → dark_current → flat_field. Then the sky from the
SKY frames, or from the science frames themselves when there are none, subtracted from each
science frame (sky_sub), and assign_wcs from the FITS keywords; the result is level 2 (DATALVL).
Liger has neither photom nor resample.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from image2.core.exposure import Exposure
from image2.core.liger.dark import subtract_dark
from image2.core.liger.flat import apply_flat
from image2.core.liger.sky import STEP as SKY_STEP
from image2.core.liger.sky import SkyBackground, sky_background, subtract_sky
from image2.core.liger.subarray_map import parse_subarrays
from image2.core.liger.wcs import assign_header_wcs
from image2.core.provenance import skip
from image2.core.references import References

DATA_LEVEL = 2


@attrs.frozen
class LigerProducts:
    """The level-2 science frames of one association and the sky subtracted from them (None: none was)."""

    science: tuple[Exposure, ...] = attrs.field(converter=tuple)
    background: SkyBackground | None = None


def calibrate_frame(exposure: Exposure, references: References) -> Exposure:
    """Return a science or SKY frame after parse_subarrays, dark_current and flat_field."""
    return apply_flat(subtract_dark(parse_subarrays(exposure), references.dark), references.flat)


def finish_frame(exposure: Exposure, background: SkyBackground | None, *, subtract_background: bool = True) -> Exposure:
    """Return a dark/flat-corrected science frame after sky_sub and assign_wcs, at level 2."""
    if subtract_background:
        exposure = subtract_sky(exposure, background)
    else:
        exposure = skip(exposure, SKY_STEP, "skipped by configuration")
    exposure = assign_header_wcs(exposure)
    return exposure.evolve(meta=exposure.meta.with_cards("PRIMARY", {"DATALVL": DATA_LEVEL}))


def calibrate_liger(science: Sequence[Exposure], references: References, sky: Iterable[Exposure] = (), *,
                    subtract_background: bool = True, sky_parameters: Mapping[str, Any] | None = None) -> LigerProducts:
    """Calibrate the science frames of one Liger/IRIS association, with its SKY frames if any.

    ``references`` (dark, flat) apply to every frame, each cut to the frame's subarray.
    ``sky`` may be a generator (e.g. of files being read): each SKY frame is then held only
    while its own sky is estimated. ``sky_parameters`` are
    :func:`~image2.core.liger.sky.sky_background`'s (box_size, ...). Without
    ``subtract_background`` the sky is neither computed nor subtracted (S_SKYSUB SKIPPED).
    """
    frames = [calibrate_frame(frame, references) for frame in science]
    background = None
    if subtract_background:
        parameters = dict(sky_parameters or {})
        sky = iter(sky)
        first = next(sky, None)
        if first is not None:
            background = sky_background((calibrate_frame(frame, references) for frame in itertools.chain([first], sky)),
                                        source="SKY", **parameters)
        else:
            background = sky_background(frames, source="science", **parameters)
    return LigerProducts([finish_frame(frame, background, subtract_background=subtract_background)
                          for frame in frames], background)
