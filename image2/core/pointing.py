"""Whether an exposure's pointing keywords (RA_REF/DEC_REF) agree with its header WCS.

RA_REF/DEC_REF place the aperture reference point on the sky; the header's FITS WCS (CRVAL,
CRPIX, PC·CDELT or CD) places the image. On real data the two agree to a fraction of a
detector; when they disagree by degrees one of them is wrong, and everything derived from
RA_REF (the resampled pixel scale, the distortion WCS) lands somewhere else than the header
says. The check is cheap: the header WCS is taken as its linear TAN part (SIP terms and other
zenithal projections differ from it by far less than a detector width near the image).
"""

from __future__ import annotations

import attrs
import numpy as np

from image2.core.cards import Cards
from image2.core.meta import Meta, full_frame_shape

MAX_WIDTHS = 3.0
"""How many detector widths RA_REF/DEC_REF may lie from the image centre of the header WCS.

A subarray read through a full-frame aperture has its reference point up to ~0.7 detector
widths away, so 3 leaves room for any real layout and still catches a wrong pointing."""


@attrs.frozen
class PointingMismatch:
    """RA_REF/DEC_REF far from the image of the header WCS.

    ``reference`` is (RA_REF, DEC_REF) and ``centre`` the header WCS at the image centre, both
    (RA, Dec) in degrees; ``separation`` is their distance in degrees and ``widths`` in detector
    widths; ``hdu`` holds the header WCS (SCI or PRIMARY).
    """

    reference: tuple[float, float]
    centre: tuple[float, float]
    separation: float
    widths: float
    hdu: str


def _number(cards: Cards, keyword: str, default: float | None = None) -> float | None:
    value = cards.get(keyword, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value) if np.isfinite(value) else None


def _linear_matrix(cards: Cards) -> np.ndarray | None:
    """Return the header's CD matrix (deg/pixel): CD*_*, else diag(CDELT)·PC; None when incomplete."""
    if any(f"CD{i}_{j}" in cards for i in (1, 2) for j in (1, 2)):
        values = [_number(cards, f"CD{i}_{j}", 0.0) for i in (1, 2) for j in (1, 2)]
    else:
        cdelt = [_number(cards, f"CDELT{i}") for i in (1, 2)]
        pc = [_number(cards, f"PC{i}_{j}", 1.0 if i == j else 0.0) for i in (1, 2) for j in (1, 2)]
        if None in cdelt or None in pc:
            return None
        values = [cdelt[0] * pc[0], cdelt[0] * pc[1], cdelt[1] * pc[2], cdelt[1] * pc[3]]
    if None in values:
        return None
    return np.reshape(values, (2, 2))


def _unit_vector(ra: float, dec: float) -> np.ndarray:
    a, d = np.deg2rad(ra), np.deg2rad(dec)
    return np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])


def _sky(vector: np.ndarray) -> tuple[float, float]:
    x, y, z = vector
    return float(np.rad2deg(np.arctan2(y, x)) % 360.0), float(np.rad2deg(np.arctan2(z, np.hypot(x, y))))


def _separation(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (deg) between two unit vectors, accurate at all angles."""
    return float(np.rad2deg(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b))))


def _header_centre(cards: Cards, shape: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """Return the unit vector of the image centre under the header's linear TAN WCS and its scale (deg/pixel).

    None when the header has no complete celestial FITS WCS.
    """
    ctype1, ctype2 = (str(cards.get(k, "")).strip().upper() for k in ("CTYPE1", "CTYPE2"))
    if not (ctype1.startswith("RA--") and ctype2.startswith("DEC-")):
        return None
    crpix = [_number(cards, f"CRPIX{i}") for i in (1, 2)]
    crval = [_number(cards, f"CRVAL{i}") for i in (1, 2)]
    matrix = _linear_matrix(cards)
    if None in crpix or None in crval or matrix is None:
        return None
    scale = float(np.sqrt(abs(np.linalg.det(matrix))))
    if not scale > 0:
        return None
    ny, nx = shape
    xi, eta = np.deg2rad(matrix @ np.array([(nx + 1) / 2.0 - crpix[0], (ny + 1) / 2.0 - crpix[1]]))
    a, d = np.deg2rad(crval)
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.array([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    direction = _unit_vector(*crval) + xi * east + eta * north  # the gnomonic (TAN) tangent plane
    return direction / np.linalg.norm(direction), scale


def pointing_mismatch(meta: Meta, shape: tuple[int, int], max_widths: float = MAX_WIDTHS) -> PointingMismatch | None:
    """Return where RA_REF/DEC_REF and the header WCS's image centre are when more than ``max_widths`` apart.

    A detector width is the larger of the instrument's full frame and the array, in pixels of
    the header's scale. The header WCS is the SCI header's, else PRIMARY's (Liger/IRIS), as in
    assign_wcs. None when they agree, or when either is missing or malformed (assign_wcs
    reports those).
    """
    ra_ref, dec_ref = meta.pointing.ra_ref, meta.pointing.dec_ref
    if ra_ref is None or dec_ref is None or not (np.isfinite(ra_ref) and np.isfinite(dec_ref)):
        return None
    hdu = next((name for name in ("SCI", "PRIMARY") if "CTYPE1" in meta.header(name)), "SCI")
    found = _header_centre(meta.header(hdu), shape)
    if found is None:
        return None
    centre, scale = found
    separation = _separation(_unit_vector(ra_ref, dec_ref), centre)
    width = scale * max(*shape, *full_frame_shape(meta.instrument.name))
    widths = separation / width
    if widths <= max_widths:
        return None
    return PointingMismatch((float(ra_ref), float(dec_ref)), _sky(centre), separation, widths, hdu)


def describe(mismatch: PointingMismatch) -> str:
    """Return a one-line account of ``mismatch`` naming both positions."""
    (ra, dec), (ra_c, dec_c) = mismatch.reference, mismatch.centre
    return (f"RA_REF/DEC_REF ({ra:.6f}, {dec:.6f}) lie {mismatch.separation:.4g} deg "
            f"({mismatch.widths:.3g} detector widths) from the centre of the {mismatch.hdu} header WCS "
            f"({ra_c:.6f}, {dec_c:.6f}); the pointing keywords contradict the WCS keywords")

