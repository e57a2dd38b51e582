"""Convex clipping and vertex simplification of footprint polygons (image2.core.polygon)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull, QhullError

from image2.core.polygon import clip_convex, clockwise, signed_area, simplified

SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])  # counter-clockwise


def as_set(vertices: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(x), 9), round(float(y), 9)) for x, y in vertices}


def test_signed_area_is_positive_counter_clockwise():
    assert signed_area(SQUARE) == 4.0
    assert signed_area(SQUARE[::-1]) == -4.0
    assert signed_area([[0, 0], [3, 0], [0, 1]]) == 1.5


def test_overlapping_squares_clip_to_their_intersection():
    window = SQUARE + 1.0
    result = clip_convex(SQUARE, window)
    assert as_set(result) == {(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)}
    assert signed_area(result) == pytest.approx(1.0)


def test_window_orientation_does_not_matter_and_subject_orientation_is_kept():
    window = SQUARE + [1.0, 0.5]
    forward = clip_convex(SQUARE, window)
    backward = clip_convex(SQUARE, window[::-1])
    assert as_set(forward) == as_set(backward) == {(1, 0.5), (2, 0.5), (2, 2), (1, 2)}
    assert signed_area(clip_convex(SQUARE[::-1], window)) == pytest.approx(-1.5)


def test_subject_inside_the_window_is_unchanged_and_disjoint_polygons_give_nothing():
    triangle = np.array([[0.5, 0.5], [1.5, 0.5], [1.0, 1.5]])
    np.testing.assert_array_equal(clip_convex(triangle, SQUARE), triangle)
    assert clip_convex(triangle + 10.0, SQUARE).shape == (0, 2)


def test_triangle_crossing_one_edge_is_cut_along_it():
    triangle = np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 3.0]])
    result = clip_convex(triangle, SQUARE)
    # the hypotenuse x + y = 4 leaves the square at (2, 2); the cut runs along x = 2 and y = 2
    assert as_set(result) == {(1, 1), (2, 1), (2, 2), (1, 2)}


def test_diamond_clipped_by_its_inscribed_box_is_the_box_without_repeated_corners():
    diamond = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    box = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    clipped = clip_convex(diamond, box)  # the box corners lie on the diamond's edges
    assert len(clipped) == 4 and as_set(clipped) == as_set(box)
    assert as_set(simplified(clipped)) == as_set(box)


def test_a_repeated_window_vertex_is_ignored():
    window = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    assert as_set(clip_convex(SQUARE, window)) == {(1, 1), (2, 1), (2, 2), (1, 2)}


def test_a_vertex_followed_by_its_repeat_is_kept_once():
    repeated = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    assert as_set(simplified(repeated)) == {(0, 0), (2, 0), (2, 2), (0, 2)}
    assert len(simplified(repeated)) == 4


def test_simplified_drops_collinear_and_near_duplicate_vertices_only():
    outline = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 2.0], [2.03, 2.02], [0.0, 2.0], [0.0, 1.0]])
    result = simplified(outline)
    # (1,0) and (0,1) are collinear; (2.03, 2.02) is within 0.05 of (2, 2)
    assert as_set(result) == {(0, 0), (2, 0), (2, 2), (0, 2)}
    kept = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.001], [0.0, 1.0]])  # a real (if small) turn is kept
    assert len(simplified(kept)) == 4


def test_simplified_treats_a_reversal_as_collinear_like_jwst():
    spike = np.array([[0.0, 0.0], [2.0, 0.0], [3.0, 0.0], [2.5, 0.0], [2.0, 2.0]])
    assert (3.0, 0.0) not in as_set(simplified(spike))


def test_clockwise_orders_like_shapely():
    assert signed_area(clockwise(SQUARE)) == -4.0
    same = clockwise(SQUARE[::-1])
    np.testing.assert_array_equal(same, SQUARE[::-1])


def convex_polygon(points: list[tuple[float, float]]) -> np.ndarray:
    cloud = np.array(points)
    hull = ConvexHull(cloud)
    return cloud[hull.vertices]


coordinate = st.floats(-10, 10, allow_subnormal=False)
points = st.lists(st.tuples(coordinate, coordinate), min_size=6, max_size=12)


@settings(max_examples=60, deadline=None)
@given(points, points)
def test_intersection_area_is_symmetric_and_inside_both(a_points, b_points):
    try:
        a, b = convex_polygon(a_points), convex_polygon(b_points)
    except QhullError:  # degenerate (collinear) clouds have no hull
        return
    for polygon in (a, b):
        edges = np.hypot(*(np.roll(polygon, -1, axis=0) - polygon).T)
        if abs(signed_area(polygon)) < 1e-3 or edges.min() < 1e-3:
            return  # slivers and vanishing edges are ill-conditioned, not footprint cases
    ab, ba = clip_convex(a, b), clip_convex(b, a)
    area_ab = abs(signed_area(ab)) if len(ab) >= 3 else 0.0
    area_ba = abs(signed_area(ba)) if len(ba) >= 3 else 0.0
    assert area_ab == pytest.approx(area_ba, abs=1e-7)
    assert area_ab <= min(abs(signed_area(a)), abs(signed_area(b))) + 1e-7
    for vertex in ab:
        for polygon in (a, b):
            edges = np.roll(polygon, -1, axis=0) - polygon
            cross = edges[:, 0] * (vertex[1] - polygon[:, 1]) - edges[:, 1] * (vertex[0] - polygon[:, 0])
            assert (cross >= -1e-7 * (1 + np.abs(edges).sum(axis=1))).all()  # hulls are counter-clockwise
