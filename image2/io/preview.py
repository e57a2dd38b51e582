"""PNG quick-looks of a calibrated image that an astronomer can read at a glance.

The image is block-averaged to at most MAX_DISPLAY pixels a side and shown with an asinh
stretch whose limits are printed; a colorbar in the data's units (MJy/sr, DN/s), RA/Dec
ticks and a light coordinate grid drawn from the FITS WCS of the SCI header (astropy
WCSAxes), an N/E compass and a scale bar; the caption gives the instrument, filter,
exposure time, date and orientation.

Two orientations: ``native`` (the file's pixel grid: the detector's for a cal, the resampled
grid's for an i2d; North is wherever the compass says) and ``north-up`` (North up, East left). The north-up view is resampled, not reprojected: the
displayed pixels are mapped through the exact WCS on a coarse grid of output pixels, the
map is interpolated bilinearly in between (sub-pixel accurate: the WCS is smooth on that
scale), and each output pixel takes its nearest displayed pixel. That costs a few tens of
milliseconds where a flux-conserving reprojection costs seconds, which a quick-look does not
need. matplotlib is imported only when a quick-look is drawn.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from image2.io.fits import merged_cards, to_header

ORIENTATIONS = ("native", "north-up")
"""``native``: the file's pixel grid (the detector's for a cal); ``north-up``: North up, East left."""
NAN_COLOUR = "#7f7f7f"
NICE_ARCSEC = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
MAX_DISPLAY = 640
"""Pixels a side at most of the shown image: about the panel's size in the PNG, so nothing is drawn twice."""
MAP_STEP = 32
"""Output pixels between the points where the north-up view evaluates the WCS exactly."""


@attrs.frozen
class Stretch:
    """The asinh stretch: linear over the sky noise, logarithmic above; ``low`` shows black, ``high`` white."""

    low: float
    high: float
    softening: float

    def __call__(self, values: Any) -> np.ndarray:
        """Map data values to display levels (0 at ``low``, 1 at ``high``; beyond, unclipped)."""
        scaled = (np.asarray(values, dtype=np.float64) - self.low) / (self.high - self.low)
        return np.arcsinh(scaled / self.softening) / np.arcsinh(1.0 / self.softening)

    def inverse(self, levels: Any) -> np.ndarray:
        """Map display levels back to data values."""
        scaled = self.softening * np.sinh(np.asarray(levels, dtype=np.float64) * np.arcsinh(1.0 / self.softening))
        return self.low + scaled * (self.high - self.low)


def asinh_stretch(image: np.ndarray) -> Stretch:
    """Return the stretch for ``image``: black two noise sigmas below the sky, white at its brightest
    0.03 % (at least 50 sigmas up), asinh softening at three sigmas: faint sources show, bright ones
    do not saturate."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return Stretch(0.0, 1.0, 1.0)
    sky = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - sky))) or float(np.std(finite)) or 1.0
    low = sky - 2.0 * sigma
    high = max(float(np.percentile(finite, 99.97)), sky + 50.0 * sigma)
    return Stretch(low, high, 3.0 * sigma / (high - low))


def block_average(image: np.ndarray, limit: int = MAX_DISPLAY) -> tuple[np.ndarray, int]:
    """Return ``image`` block-averaged to at most ``limit`` pixels a side (NaNs ignored), and the factor."""
    factor = max(1, math.ceil(max(image.shape) / limit))
    if factor == 1:
        return np.asarray(image, dtype=np.float32), 1
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = np.asarray(image[:ny, :nx], dtype=np.float32).reshape(ny // factor, factor, nx // factor, factor)
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


def scale_bar(pixel_scale: float, width_pixels: float) -> tuple[float, str]:
    """Return a round bar length in arcsec near a fifth of the width, with its label."""
    target = width_pixels * pixel_scale / 5.0
    length = min(NICE_ARCSEC, key=lambda v: abs(math.log(v / target)))
    label = f"{length / 60:g}'" if length >= 60 else f'{length:g}"'
    return length, label


def _interpolation_matrix(coarse: np.ndarray, fine: int) -> np.ndarray:
    """Return the (fine, len(coarse)) matrix interpolating linearly from samples at ``coarse`` to 0..fine-1."""
    positions = np.arange(fine, dtype=np.float64)
    right = np.clip(np.searchsorted(coarse, positions, side="right"), 1, len(coarse) - 1)
    left = right - 1
    weight = (positions - coarse[left]) / (coarse[right] - coarse[left])
    matrix = np.zeros((fine, len(coarse)))
    matrix[np.arange(fine), left] = 1.0 - weight
    matrix[np.arange(fine), right] = weight
    return matrix


def north_up(display: np.ndarray, factor: int, wcs: Any) -> tuple[np.ndarray, Any]:
    """Return ``display`` (``wcs``'s image block-averaged by ``factor``) resampled North up, East left,
    and the TAN WCS of the result (same pixel size, centred on the image centre)."""
    from astropy.wcs import WCS

    ny, nx = display.shape
    full_y, full_x = ny * factor, nx * factor
    centre = wcs.pixel_to_world_values((full_x - 1) / 2, (full_y - 1) / 2)
    _, _, arcsec = sky_directions(wcs.pixel_to_world_values, wcs.world_to_pixel_values,
                                  (full_x - 1) / 2, (full_y - 1) / 2)
    out = WCS(naxis=2)
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out.wcs.crval = [float(centre[0]), float(centre[1])]
    out.wcs.cdelt = [-arcsec * factor / 3600.0, arcsec * factor / 3600.0]
    out.wcs.crpix = [1.0, 1.0]
    # The input's outline in the new frame gives the output's extent.
    along_x, along_y = np.linspace(-0.5, full_x - 0.5, 17), np.linspace(-0.5, full_y - 0.5, 17)
    border_x = np.concatenate([along_x, np.full(17, full_x - 0.5), along_x, np.full(17, -0.5)])
    border_y = np.concatenate([np.full(17, -0.5), along_y, np.full(17, full_y - 0.5), along_y])
    bx, by = out.world_to_pixel_values(*wcs.pixel_to_world_values(border_x, border_y))
    x0, y0 = math.floor(np.nanmin(bx)), math.floor(np.nanmin(by))
    width, height = math.ceil(np.nanmax(bx)) - x0 + 1, math.ceil(np.nanmax(by)) - y0 + 1
    out.wcs.crpix = [1.0 - x0, 1.0 - y0]
    out.pixel_shape = (width, height)
    # Exact mapping on a coarse grid of output pixels, bilinear in between.
    grid_x = np.unique(np.r_[np.arange(0, width, MAP_STEP), width - 1]).astype(np.float64)
    grid_y = np.unique(np.r_[np.arange(0, height, MAP_STEP), height - 1]).astype(np.float64)
    mesh_x, mesh_y = np.meshgrid(grid_x, grid_y)
    with np.errstate(invalid="ignore"):
        source_x, source_y = wcs.world_to_pixel_values(*out.pixel_to_world_values(mesh_x, mesh_y))
    across, up = _interpolation_matrix(grid_x, width), _interpolation_matrix(grid_y, height)
    column = np.rint((up @ np.asarray(source_x) @ across.T - (factor - 1) / 2) / factor)
    row = np.rint((up @ np.asarray(source_y) @ across.T - (factor - 1) / 2) / factor)
    inside = (column >= 0) & (column < nx) & (row >= 0) & (row < ny)
    image = np.full((height, width), np.nan, dtype=np.float32)
    image[inside] = display[row[inside].astype(np.intp), column[inside].astype(np.intp)]
    return image, out


@attrs.frozen
class QuickLook:
    """What a quick-look shows: the image, its celestial FITS WCS (astropy; None without one) and its words."""

    image: np.ndarray
    title: str
    unit: str | None = None
    details: str = ""
    wcs: Any = None
    grid: str = "detector"
    """What the native pixel grid is: ``detector`` (cal) or ``resampled`` (i2d)."""


def celestial_wcs(record: Any) -> Any:
    """Return the astropy WCS of ``record``'s SCI header when it is celestial, else None."""
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(to_header(merged_cards(record.meta, "SCI")), naxis=2)
        except Exception:  # noqa: BLE001 - a header WCS astropy cannot read: the quick-look goes without
            return None
    return wcs if wcs.has_celestial else None


def details_of(meta: Any) -> str:
    """Return the caption's line of instrument, filter, exposure time and date of observation."""
    ins, exp = meta.instrument, meta.exposure
    parts = [" ".join(v for v in (ins.name, ins.detector) if v),
             "/".join(v for v in (ins.filter, ins.pupil) if v and v != "CLEAR") or ins.filter or "",
             f"{exp.effexptm:g} s" if exp.effexptm else "",
             " ".join(v for v in (exp.date_obs, (exp.time_obs or "")[:8]) if v)]
    return "   ".join(part for part in parts if part)


def quick_look(record: Any, name: str) -> QuickLook:
    """Return the quick-look of a cal or i2d record (the first integration of a cube), titled ``name``."""
    from image2.core.exposure import Exposure

    image = record.sci[0] if record.sci.ndim == 3 else record.sci
    return QuickLook(np.asarray(image), name, record.meta.units.data, details_of(record.meta), celestial_wcs(record),
                     "detector" if isinstance(record, Exposure) else "resampled")


def _sky_axes(figure: Any, rect: tuple[float, ...], wcs: Any) -> Any:
    axes = figure.add_axes(rect, projection=wcs)
    ra, dec = axes.coords[0], axes.coords[1]
    ra.set_major_formatter("hh:mm:ss.s")
    dec.set_major_formatter("dd:mm:ss")
    for coord, label in ((ra, "RA"), (dec, "Dec")):
        coord.set_ticks(number=5, color="white")
        coord.set_ticklabel(size=8)
        coord.set_axislabel(label, size=9)
        coord.grid(color="white", alpha=0.3, linestyle="solid", linewidth=0.5)
    return axes


def _compass_and_bar(axes: Any, wcs: Any, width: float, height: float) -> None:
    """Draw the N/E arrows at the lower right and a scale bar at the lower left (data = pixel coordinates)."""
    north, east, scale = sky_directions(wcs.pixel_to_world_values, wcs.world_to_pixel_values,
                                        (width - 1) / 2, (height - 1) / 2)
    size = 0.1 * min(width, height)
    tips = np.array([north, east]) * size * 1.35
    origin = np.array([0.94 * width - max(tips[:, 0].max(), 0.0), 0.06 * height - min(tips[:, 1].min(), 0.0)])
    for vector, label in ((north, "N"), (east, "E")):
        axes.annotate("", xy=origin + vector * size, xytext=origin,
                      arrowprops={"arrowstyle": "->", "color": "white", "lw": 1.6})
        axes.text(*(origin + vector * size * 1.3), label, color="white", ha="center", va="center",
                  fontsize=10, fontweight="bold")
    length, label = scale_bar(scale, width)
    start = np.array([0.06 * width, 0.06 * height])
    axes.plot([start[0], start[0] + length / scale], [start[1], start[1]], color="white", lw=3)
    axes.text(start[0] + length / scale / 2, start[1] + 0.025 * height, label, color="white", ha="center",
              fontsize=9)


def render(look: QuickLook, orientation: str = "native") -> bytes:
    """Return the PNG bytes of ``look`` in ``orientation`` (see ORIENTATIONS; north-up needs a WCS)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation {orientation!r}: expected one of {', '.join(ORIENTATIONS)}")
    display, factor = block_average(look.image)
    stretch = asinh_stretch(display)
    wcs = look.wcs
    height, width = look.image.shape
    extent = (-0.5, display.shape[1] * factor - 0.5, -0.5, display.shape[0] * factor - 0.5)
    if orientation == "north-up" and wcs is not None:
        display, wcs = north_up(display, factor, wcs)
        height, width = display.shape
        extent = (-0.5, width - 0.5, -0.5, height - 0.5)
        where = "North up, East left (resampled from the WCS)"
    elif wcs is not None:
        where = f"{look.grid} orientation: North as the compass shows"
    else:
        where = f"{look.grid} orientation (no celestial WCS)"
    figure = Figure(figsize=(7.4, 7.0), dpi=100)
    FigureCanvasAgg(figure)
    panel = (0.13, 0.2, 0.68, 0.68 * 7.4 / 7.0)
    axes = _sky_axes(figure, panel, wcs) if wcs is not None else figure.add_axes(panel)
    # The stretch is applied here, once; matplotlib then maps levels 0..1 linearly onto the colours.
    shown = axes.imshow(stretch(display), origin="lower", extent=extent, interpolation="nearest", vmin=0.0,
                        vmax=1.0, cmap=colormaps["magma"].with_extremes(bad=NAN_COLOUR), aspect="equal")
    if wcs is None:
        axes.set_axis_off()
    else:
        _compass_and_bar(axes, wcs, width, height)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    bar = figure.colorbar(shown, cax=figure.add_axes((0.85, panel[1], 0.025, panel[3])))
    bar.set_ticks(levels, labels=[f"{value:.3g}" for value in stretch.inverse(levels)], fontsize=8)
    unit = look.unit or "unknown unit"
    bar.set_label(f"{unit} (asinh stretch)", fontsize=9)
    figure.text(0.5, 0.1, look.title, ha="center", fontsize=10, fontweight="bold")
    figure.text(0.5, 0.067, look.details, ha="center", fontsize=9)
    figure.text(0.5, 0.035, f"black {stretch.low:.3g} to white {stretch.high:.3g} {unit};  {where}",
                ha="center", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def preview_of(record: Any, name: str, orientation: str = "native") -> bytes:
    """Return the quick-look PNG of a cal or i2d record (first integration of a cube), titled ``name``."""
    return render(quick_look(record, name), orientation)
