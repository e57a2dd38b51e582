"""A sky scene in count rate: stars and galaxies on a sky background, observed with noise."""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen
class Source:
    """One source: position (0-based pixels), total rate (DN/s), shape (FWHM pixels, axis ratio, angle)."""

    x: float
    y: float
    flux: float
    fwhm: float
    axis_ratio: float = 1.0
    angle: float = 0.0
    profile: str = "star"  # "star" (Gaussian PSF) or "galaxy" (exponential disc convolved-ish)


def random_sources(shape: tuple[int, int], n_stars: int, n_galaxies: int, seed: int = 7) -> list[Source]:
    """Return a field of stars (power-law fluxes) and galaxies (larger, elongated) inside ``shape``."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    stars = [Source(float(x), float(y), float(f), 1.7)
             for x, y, f in zip(rng.uniform(8, nx - 8, n_stars), rng.uniform(8, ny - 8, n_stars),
                                30.0 * rng.pareto(1.3, n_stars) + 5.0)]
    galaxies = [Source(float(x), float(y), float(f), float(w), float(q), float(a), "galaxy")
                for x, y, f, w, q, a in zip(rng.uniform(30, nx - 30, n_galaxies), rng.uniform(30, ny - 30, n_galaxies),
                                            rng.lognormal(5.0, 0.8, n_galaxies), rng.uniform(4, 14, n_galaxies),
                                            rng.uniform(0.3, 1.0, n_galaxies), rng.uniform(0, np.pi, n_galaxies))]
    return stars + galaxies


def _stamp(source: Source) -> tuple[np.ndarray, int, int]:
    """Return the normalised profile of ``source`` on a local grid and the grid's lower-left corner."""
    half = int(np.ceil(4 * source.fwhm)) + 2
    x0, y0 = int(np.floor(source.x)) - half, int(np.floor(source.y)) - half
    yy, xx = np.mgrid[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1]
    dx, dy = xx - source.x, yy - source.y
    cos, sin = np.cos(source.angle), np.sin(source.angle)
    u = (dx * cos + dy * sin)
    v = (-dx * sin + dy * cos) / source.axis_ratio
    r = np.hypot(u, v)
    if source.profile == "galaxy":
        profile = np.exp(-1.678 * r / (source.fwhm / 2))  # exponential disc, fwhm ~ twice the half-light radius
    else:
        profile = np.exp(-0.5 * (r / (source.fwhm / 2.3548)) ** 2)
    return profile / profile.sum(), x0, y0


def render(shape: tuple[int, int], sources: list[Source], sky: float) -> np.ndarray:
    """Return the noiseless rate image (float64): ``sky`` everywhere plus every source."""
    image = np.full(shape, sky, dtype=np.float64)
    ny, nx = shape
    for source in sources:
        stamp, x0, y0 = _stamp(source)
        ys, xs = slice(max(y0, 0), min(y0 + stamp.shape[0], ny)), slice(max(x0, 0), min(x0 + stamp.shape[1], nx))
        image[ys, xs] += source.flux * stamp[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return image


@attrs.frozen
class Observed:
    """A simulated count-rate exposure: SCI and its variances (float32), DN/s."""

    sci: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray

    @property
    def err(self) -> np.ndarray:
        """Total 1-σ uncertainty."""
        return np.sqrt(self.var_poisson + self.var_rnoise).astype(np.float32)


def observe(rate: np.ndarray, exptime: float, read_noise: float, seed: int = 11) -> Observed:
    """Return ``rate`` (DN/s, gain 1) observed for ``exptime`` seconds with Poisson and read noise."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.clip(rate, 0, None) * exptime).astype(np.float64)
    counts += rng.normal(0.0, read_noise, rate.shape)
    sci = (counts / exptime).astype(np.float32)
    var_poisson = (np.clip(rate, 0, None) / exptime).astype(np.float32)
    var_rnoise = np.full(rate.shape, read_noise**2 / exptime**2, dtype=np.float32)
    return Observed(sci, var_poisson, var_rnoise)
