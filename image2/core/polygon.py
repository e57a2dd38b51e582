"""Plane polygons for the i2d footprint: convex clipping and vertex simplification (steps.md §7.4).

jwst builds the resampled S_REGION with shapely (union, intersection with the output box,
then removal of near-duplicate and collinear vertices). For the single convex footprint of
one exposure a Sutherland–Hodgman clip against the (convex) output box gives the same
vertex set, so no geometry library is needed.
"""

from __future__ import annotations

import numpy as np

POINT_TOLERANCE = 0.05
"""Vertices closer than this (pixels, per axis) to the previous vertex are dropped."""

ANGLE_TOLERANCE = 1e-6
"""Vertices where the outline turns by less than this (radians, modulo π) are dropped."""


def signed_area(vertices: np.ndarray) -> float:
    """Return the shoelace area of a polygon: positive when counter-clockwise (y up)."""
    x, y = np.asarray(vertices, dtype=float).T
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _inside(points: np.ndarray, a: np.ndarray, b: np.ndarray, sense: float) -> np.ndarray:
    """True for points on the inner side of the directed edge a→b of a polygon of orientation ``sense``."""
    cross = (b[0] - a[0]) * (points[:, 1] - a[1]) - (b[1] - a[1]) * (points[:, 0] - a[0])
    return sense * cross >= 0.0


def _crossing(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return where segment p→q meets the line through a and b."""
    d = q - p
    e = b - a
    denominator = d[0] * e[1] - d[1] * e[0]
    if denominator == 0.0:
        return q  # parallel within rounding: the end point is on the line already
    t = ((a[0] - p[0]) * e[1] - (a[1] - p[1]) * e[0]) / denominator
    return p + t * d


def clip_convex(subject: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Return ``subject`` clipped to the convex polygon ``window`` (Sutherland–Hodgman).

    Both are ``(n, 2)`` vertex arrays without a repeated closing vertex, in either
    orientation. The result keeps the subject's orientation; it is empty ``(0, 2)`` when the
    two do not overlap.
    """
    window = np.asarray(window, dtype=float)
    output = np.asarray(subject, dtype=float)
    sense = 1.0 if signed_area(window) >= 0.0 else -1.0
    shortest = 1e-12 * float(np.ptp(window, axis=0).max()) if len(window) else 0.0
    for k in range(len(window)):
        if len(output) == 0:
            break
        a, b = window[k], window[(k + 1) % len(window)]
        if np.hypot(*(b - a)) <= shortest:
            continue  # a repeated window vertex has no edge to clip against
        inside = _inside(output, a, b, sense)
        kept: list[np.ndarray] = []
        for i in range(len(output)):
            current, previous = output[i], output[i - 1]
            if inside[i]:
                if not inside[i - 1]:
                    kept.append(_crossing(previous, current, a, b))
                kept.append(current)
            elif inside[i - 1]:
                kept.append(_crossing(previous, current, a, b))
        output = np.array(kept, dtype=float).reshape(-1, 2)
    return _without_repeats(output)


def _without_repeats(vertices: np.ndarray) -> np.ndarray:
    """Drop vertices equal to their predecessor (clipping at a vertex on the window repeats it)."""
    if len(vertices) < 2:
        return vertices
    repeated = np.all(vertices == np.roll(vertices, 1, axis=0), axis=1)
    return vertices[~repeated] if not repeated.all() else vertices[:1]


def simplified(vertices: np.ndarray, point_tolerance: float = POINT_TOLERANCE,
               angle_tolerance: float = ANGLE_TOLERANCE) -> np.ndarray:
    """Return ``vertices`` without near-duplicates of their predecessor and collinear points.

    A vertex is dropped when it lies within ``point_tolerance`` of the previous vertex on both
    axes, or when the outline turns there by less than ``angle_tolerance`` (a reversal counts
    as no turn), as jwst does after its shapely operations. A vertex followed by a repeat of
    itself is kept (the repeat goes).
    """
    coords = np.asarray(vertices, dtype=float)
    if len(coords) < 3:
        return coords
    incoming = coords - np.roll(coords, 1, axis=0)
    outgoing = np.roll(coords, -1, axis=0) - coords
    close = np.all(np.abs(incoming) < point_tolerance, axis=1)
    cross = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]
    dot = np.sum(incoming * outgoing, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        turn = np.abs(np.arctan(cross / dot))
    moving = np.any(incoming != 0.0, axis=1) & np.any(outgoing != 0.0, axis=1)
    collinear = moving & (turn < angle_tolerance)
    return coords[~(close | collinear)]


def clockwise(vertices: np.ndarray) -> np.ndarray:
    """Return ``vertices`` ordered clockwise (y up), the orientation shapely gives its results."""
    coords = np.asarray(vertices, dtype=float)
    return coords[::-1].copy() if signed_area(coords) > 0.0 else coords
