"""Thresholding with smoothing (strip-wise, NaN-aware) and mirror-padded thinning."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.errors import InputError
from geodefect.graph.skeleton import skeletonize_mask, threshold_probability


def test_smoothing_in_strips_equals_smoothing_the_whole_raster():
    rng = np.random.default_rng(0)
    prob = rng.random((400, 60)).astype(np.float32)
    prob[50:120, 10:30] = np.nan
    whole = threshold_probability(prob, threshold=0.5, smooth_sigma_px=1.5, strip_rows=10_000)
    strips = threshold_probability(prob, threshold=0.5, smooth_sigma_px=1.5, strip_rows=37)
    np.testing.assert_array_equal(whole, strips)
    assert not strips[50:120, 10:30].any()  # nodata is background


def test_smoothing_keeps_a_road_that_touches_nodata():
    prob = np.full((40, 40), 0.02, np.float32)
    prob[:, 18:23] = 0.9  # a 5 px road running north-south
    prob[30:, :] = np.nan  # the AOI ends at row 30
    mask = threshold_probability(prob, threshold=0.5, smooth_sigma_px=1.0)
    assert mask[29, 19:22].all()  # not eaten by zeros blurred in from the nodata side


def test_threshold_validation():
    with pytest.raises(InputError, match="threshold"):
        threshold_probability(np.zeros((2, 2)), threshold=1.0)
    with pytest.raises(InputError, match="H, W"):
        threshold_probability(np.zeros((2, 2, 2)), threshold=0.5)


def test_mirror_padding_lets_the_skeleton_reach_the_border():
    mask = np.zeros((30, 80), bool)
    mask[10:20, :] = True
    plain = skeletonize_mask(mask, border_pad_px=0)
    padded = skeletonize_mask(mask, border_pad_px=8)
    assert padded[:, 0].any() and padded[:, -1].any()
    assert not plain[:, 0].any()  # without padding thinning pulls the line back from the edge
