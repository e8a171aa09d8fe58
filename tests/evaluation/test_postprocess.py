"""Segment post-processing: threshold + minimum component size chosen on validation chips."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.errors import InputError
from geodefect.evaluation.postprocess import (
    apply_postprocess,
    choose_postprocess,
    grid_counts,
    remove_small_components,
)


def chip_with_speckles(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 2-px wide crack at 0.7 on a 0.2 background, plus 3-px speckles at 0.9 off the crack."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((64, 64), bool)
    truth[10:54, 30:32] = True
    prob = np.full((64, 64), 0.2, np.float32)
    prob[truth] = 0.7
    for r, c in rng.integers(0, 60, size=(6, 2)):
        if c > 24:
            c = c % 20  # keep speckles left of the crack
        prob[r, c:c + 3] = 0.9
    return prob, truth


def test_small_components_are_dropped_and_large_kept():
    mask = np.zeros((20, 20), bool)
    mask[0, 0:3] = True      # 3 px
    mask[5:10, 5:10] = True  # 25 px
    mask[15, 15] = mask[16, 16] = True  # diagonal pair: one 8-connected component of 2 px
    assert remove_small_components(mask, 3).sum() == 28
    assert remove_small_components(mask, 4).sum() == 25
    assert remove_small_components(mask, 0).sum() == mask.sum()
    assert apply_postprocess(mask * 0.8, threshold=0.9).sum() == 0


def test_small_components_on_the_defects_bounding_box_are_those_of_the_whole_mask():
    from scipy.ndimage import label

    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = np.zeros((90, 120), bool)
        r, c = rng.integers(0, 60, 2)
        mask[r:r + 30, c:c + 60] = rng.random((30, 60)) < 0.3  # speckles away from the edges
        labels, _ = label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())
        for min_px in (2, 4, 9):
            expected = (sizes >= min_px)[labels] & mask  # the whole-mask definition
            assert np.array_equal(remove_small_components(mask, min_px), expected)


def test_choice_removes_speckles_and_keeps_the_crack():
    pairs = [chip_with_speckles(s) for s in range(4)]
    choice = choose_postprocess(pairs)
    # any threshold in 0.2..0.7 separates crack from background (tie -> nearest 0.5); 5 px removes 3-px speckles
    assert (choice.threshold, choice.min_component_px) == (0.5, 5)
    assert choice.score == pytest.approx(1.0) and choice.n_chips == 4
    plain = [row for row in choice.table if row["threshold"] == 0.5 and row["min_component_px"] == 0][0]
    assert plain["iou"] < 0.9  # without the size rule the speckles cost IoU
    stored = choice.to_recipe()
    assert stored["mask_threshold"] == 0.5 and stored["min_component_px"] == 5
    assert stored["postprocess"]["chosen_on"] == "validation chips"
    for prob, truth in pairs:
        assert np.array_equal(apply_postprocess(prob, threshold=0.5, min_component_px=5), truth)


def test_grid_counts_match_direct_counts():
    prob, truth = chip_with_speckles(1)
    counts, n = grid_counts([(prob, truth)], thresholds=[0.5, 0.8], min_sizes=[0, 5])
    for i, t in enumerate([0.5, 0.8]):
        for j, s in enumerate([0, 5]):
            pred = apply_postprocess(prob, threshold=t, min_component_px=s)
            assert counts[i, j].tolist() == [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]
    assert n == 1


def test_no_chips_or_unknown_metric_is_refused():
    with pytest.raises(InputError, match="validation chips"):
        choose_postprocess([])
    with pytest.raises(InputError, match="metric"):
        choose_postprocess([chip_with_speckles(0)], metric="accuracy")
