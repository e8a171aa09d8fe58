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


def _whole_image_reference(mask):
    """Length and width computed on the whole image at once (the definition; measure_cracks works
    per component on cropped boxes)."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    skeleton = skeletonize(mask)
    if not mask.any():
        return 0.0, 0.0
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    width = max(2 * float(dist[skeleton].max()) - 1, 1.0) if skeleton.any() else 1.0
    return round(skeleton_length_px(skeleton), 2), round(width, 2)


@pytest.mark.parametrize("seed", range(4))
def test_per_component_crops_measure_what_the_whole_image_does(seed):
    from scipy.ndimage import binary_dilation, gaussian_filter

    rng = np.random.default_rng(seed)
    masks = [rng.random((90, 70)) < 0.3,  # many tiny components, some touching the border
             gaussian_filter(rng.random((120, 150)), 2.0) > 0.5,  # blobs with holes
             binary_dilation(rng.random((100, 100)) < 0.01, iterations=3)]  # separate wide spots
    for mask in masks:
        got = measure_cracks(mask)
        assert (got["crack_length_px"], got["max_width_px"]) == _whole_image_reference(mask)


def test_overlay_paints_only_the_mask_and_leaves_the_image_alone():
    from geodefect.plots.inspection import DEFECT_RGB, mask_overlay

    rng = np.random.default_rng(0)
    for bands in (1, 3):
        hwc = rng.integers(0, 256, (20, 30, bands), dtype=np.uint8)
        before = hwc.copy()
        mask = rng.random((20, 30)) < 0.2
        out = mask_overlay(hwc.transpose(2, 0, 1), mask, alpha=0.6)  # a channels-first view of an HWC photo
        rgb = np.repeat(before, 3, axis=2) if bands == 1 else before
        assert np.array_equal(out[~mask], rgb[~mask]) and np.array_equal(hwc, before)
        expected = (rgb[mask].astype(np.float32) * 0.4 + np.float32(0.6) * np.asarray(DEFECT_RGB, np.float32)).astype(np.uint8)
        assert np.array_equal(out[mask], expected)
