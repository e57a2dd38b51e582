"""S_REGION text: jwst's exact format, and parsing it (and multi-polygon variants) back."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.sky_region import parse_s_region, s_region


def test_format_matches_jwst_byte_for_byte():
    text = s_region([80.457415399, 80.468959948, 80.517917542, 80.506695484],
                    [-69.504056791, -69.486982168, -69.490844177, -69.508170860])
    assert text == ("POLYGON ICRS  80.457415399 -69.504056791 80.468959948 -69.486982168 "
                    "80.517917542 -69.490844177 80.506695484 -69.508170860")


def test_ra_is_wrapped_and_rounded_to_nine_decimals():
    text = s_region([-0.5, 360.25, 1.0000000004, 1.0000000006], [1.0, 2.0, -3.0, 4.0])
    assert text == ("POLYGON ICRS  359.500000000 1.000000000 0.250000000 2.000000000 "
                    "1.000000000 -3.000000000 1.000000001 4.000000000")


@pytest.mark.parametrize("ra, dec", [([1.0, np.nan, 2.0, 3.0], [0.0, 0.0, 1.0, 1.0]),
                                     ([1.0, 2.0, 3.0, 4.0], [0.0, np.inf, 1.0, 1.0])])
def test_non_finite_vertices_are_refused(ra, dec):
    with pytest.raises(ValueError, match="non-finite"):
        s_region(ra, dec)


def test_shape_errors():
    with pytest.raises(ValueError, match="equal length"):
        s_region([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 3"):
        s_region([1.0, 2.0], [1.0, 2.0])


def test_round_trip_through_text():
    ra = np.array([10.123456789, 10.2, 10.25, 10.1])
    dec = np.array([-5.5, -5.45, -5.5, -5.55])
    (polygon,) = parse_s_region(s_region(ra, dec))
    assert polygon.shape == (4, 2)
    np.testing.assert_array_equal(polygon, np.column_stack([ra, dec]))


def test_several_polygons_and_other_spellings():
    text = "POLYGON ICRS  1 2 3 4 5 6  polygon icrs 7.5 8 9 10 11 12 13 14  POLYGON 1e1 2 3 4 5 6"
    polygons = parse_s_region(text)
    assert [p.shape for p in polygons] == [(3, 2), (4, 2), (3, 2)]
    np.testing.assert_array_equal(polygons[1][0], [7.5, 8.0])
    assert polygons[2][0, 0] == 10.0  # exponent notation is a number, not letters to drop


def test_frame_words_with_digits_are_not_numbers():
    (polygon,) = parse_s_region("POLYGON FK5 1 2 3 4 5 6")
    np.testing.assert_array_equal(polygon, [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("text, message", [
    ("", "does not start with POLYGON"),
    ("CIRCLE ICRS 1 2 3", "does not start with POLYGON"),
    ("POLYGON ICRS 1 2 3 4 5", "3 or more"),
    ("POLYGON ICRS 1 2 3 4", "3 or more"),
    ("POLYGON ICRS 1 2 3 4 5 6  POLYGON ICRS", "3 or more"),
    ("POLYGON ICRS 1 2 3 4 5 6,7", "malformed"),
])
def test_malformed_text(text, message):
    with pytest.raises(ValueError, match=message):
        parse_s_region(text)
