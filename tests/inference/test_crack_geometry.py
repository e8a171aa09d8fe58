"""Crack length (skeleton) and maximum width on synthetic cracks of known size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodefect.inference.crack_geometry import measure_cracks, skeleton_length_px


def test_straight_crack_of_known_length_and_width():
    mask = np.zeros((60, 200), bool)
    mask[28:33, 20:180] = True  # 160 px long, 5 px wide
    got = measure_cracks(mask, pixel_size_mm=0.5)
    assert got["max_width_px"] == 5
    assert 160 - 5 - 2 <= got["crack_length_px"] <= 160  # the skeleton stops ~w/2 short of each end
    assert got["crack_length_mm"] == pytest.approx(got["crack_length_px"] * 0.5, abs=0.01)
    assert got["max_width_mm"] == 2.5


def test_diagonal_crack_counts_diagonal_steps_as_sqrt2():
    mask = np.zeros((120, 120), bool)
    for k in range(10, 110):
        mask[k, k - 1:k + 2] = True  # 3 px thick 45-degree crack, 100 steps along the diagonal
    length = measure_cracks(mask)["crack_length_px"]
    assert 100 * math.sqrt(2) * 0.95 <= length <= 100 * math.sqrt(2) * 1.02


def test_staircase_is_not_counted_twice():
    sk = np.zeros((5, 5), bool)
    sk[0, 0] = sk[0, 1] = sk[1, 1] = True  # an L: two side steps, no extra diagonal
    assert skeleton_length_px(sk) == 2
    sk2 = np.zeros((5, 5), bool)
    sk2[0, 0] = sk2[1, 1] = sk2[2, 2] = True
    assert skeleton_length_px(sk2) == pytest.approx(2 * math.sqrt(2))


def test_two_cracks_add_up_and_width_is_the_widest():
    mask = np.zeros((100, 100), bool)
    mask[10:13, 10:90] = True  # 3 px wide
    mask[50:59, 10:90] = True  # 9 px wide
    got = measure_cracks(mask)
    assert got["max_width_px"] == 9
    assert 2 * 80 - 3 - 9 - 4 <= got["crack_length_px"] <= 160
    assert measure_cracks(np.zeros((10, 10), bool)) == {"crack_length_px": 0.0, "max_width_px": 0.0,
                                                        "crack_length_mm": "", "max_width_mm": ""}
