"""PNG quick-looks: asinh-stretched image, NaNs in a neutral colour, compass, scale bar, caption."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib import colormaps


NAN_COLOUR = "#7f7f7f"
NICE_ARCSEC = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
MAX_DISPLAY = 1024


def asinh_stretch(image: np.ndarray) -> np.ndarray:
    """Return ``image`` mapped to [0, 1] (NaN kept): linear over the sky noise, logarithmic above.

    Black is two noise sigmas below the sky, white the brightest 0.03 % of pixels; the asinh
    softening is three sigmas, so faint sources show while bright ones do not saturate.
    """
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.full(image.shape, np.nan)
    sky = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - sky))) or float(np.std(finite)) or 1.0
    low = sky - 2.0 * sigma
    high = max(float(np.percentile(finite, 99.97)), sky + 50.0 * sigma)
    softening = 3.0 * sigma / (high - low)
    scaled = np.clip((image.astype(np.float64) - low) / (high - low), 0.0, 1.0)
    return np.arcsinh(scaled / softening) / np.arcsinh(1.0 / softening)


def _display(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Return ``image`` block-averaged to at most MAX_DISPLAY pixels a side, and the factor used."""
    factor = max(1, math.ceil(max(image.shape) / MAX_DISPLAY))
    if factor == 1:
        return image, 1
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(1, 3)), factor


def sky_directions(
    pixel_to_sky: Callable, sky_to_pixel: Callable, x: float, y: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return unit pixel vectors towards North and East at ``(x, y)`` and the pixel scale in arcsec."""
    ra, dec = (float(v) for v in pixel_to_sky(x, y))
    step = 1.0 / 3600.0
    north = np.subtract(sky_to_pixel(ra, dec + step), (x, y))
    east = np.subtract(sky_to_pixel(ra + step / math.cos(math.radians(dec)), dec), (x, y))
    scale = 1.0 / float(np.hypot(*north))  # arcsec per pixel along North
    return north / np.hypot(*north), east / np.hypot(*east), scale


def _scale_bar(pixel_scale: float, width_pixels: int) -> tuple[float, str]:
    """Return a round bar length in arcsec near a fifth of the width, with its label."""
    target = width_pixels * pixel_scale / 5.0
    length = min(NICE_ARCSEC, key=lambda v: abs(math.log(v / target)))
    label = f"{length / 60:g}'" if length >= 60 else f'{length:g}"'
    return length, label


def render_preview(
    image: np.ndarray,
    caption: str,
    pixel_to_sky: Callable | None = None,
    sky_to_pixel: Callable | None = None,
) -> bytes:
    """Return PNG bytes of a quick-look of ``image`` (2-D); WCS callables add compass and scale bar."""
    shown, factor = _display(asinh_stretch(image))
    cmap: Colormap = colormaps["magma"].with_extremes(bad=NAN_COLOUR)
    figure = Figure(figsize=(7.0, 7.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.02, 0.07, 0.96, 0.91))
    axes.imshow(np.ma.masked_invalid(shown), origin="lower", cmap=cmap, vmin=0, vmax=1,
                interpolation="nearest")
    axes.set_axis_off()
    figure.text(0.5, 0.025, caption, ha="center", va="center", fontsize=10)
    if pixel_to_sky is not None and sky_to_pixel is not None:
        ny, nx = image.shape
        north, east, scale = sky_directions(pixel_to_sky, sky_to_pixel, (nx - 1) / 2, (ny - 1) / 2)
        height, width = shown.shape
        size = 0.12 * min(height, width)
        tips = np.array([north, east]) * size * 1.35
        origin = np.array([0.95 * width - max(tips[:, 0].max(), 0.0), 0.05 * height - min(tips[:, 1].min(), 0.0)])
        for vector, label in ((north, "N"), (east, "E")):
            axes.annotate("", xy=origin + vector * size, xytext=origin,
                          arrowprops={"arrowstyle": "->", "color": "white", "lw": 1.8})
            axes.text(*(origin + vector * size * 1.3), label, color="white", ha="center", va="center",
                      fontsize=11, fontweight="bold")
        length, label = _scale_bar(scale * factor, width)
        bar = length / (scale * factor)
        start = np.array([0.06 * width, 0.06 * height])
        axes.plot([start[0], start[0] + bar], [start[1], start[1]], color="white", lw=3)
        axes.text(start[0] + bar / 2, start[1] + 0.025 * height, label, color="white", ha="center",
                  fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def preview_png(image: np.ndarray, caption: str, wcs: object | None = None) -> bytes:
    """Return the quick-look PNG of ``image``; a gwcs ``wcs`` adds the compass and scale bar."""
    if wcs is None:
        return render_preview(np.asarray(image), caption)
    return render_preview(np.asarray(image), caption,
                          lambda x, y: wcs(x, y, with_bounding_box=False),
                          lambda ra, dec: wcs.invert(ra, dec, with_bounding_box=False))


def preview_of(record: Any, name: str) -> bytes:
    """Return the quick-look PNG of a cal or i2d record (first integration of a cube), captioned ``name``."""
    image = record.sci[0] if record.sci.ndim == 3 else record.sci
    meta = record.meta
    caption = f"{name}   {meta.instrument.name or ''} {meta.instrument.filter or ''}".rstrip()
    return preview_png(image, caption, record.wcs)
