"""Rail post-processing chosen by box scores: region counts per (threshold, min size) and the rule."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.errors import InputError
from geodefect.evaluation.postprocess import apply_postprocess
from geodefect.evaluation.postprocess_boxes import (
    choose_postprocess_boxes,
    iter_val_frames,
    region_grid_counts,
    region_scores,
)
from geodefect.metrics.defects import region_counts


def strip_with_marks(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 100 x 200 strip: one filled defect box (prob 0.8 on a dark spot inside it, 0.3 elsewhere in the
    box) and three small dark marks off it (prob 0.9, 4-12 px)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((100, 200), bool)
    truth[20:80, 120:180] = True
    prob = np.full(truth.shape, 0.05, np.float32)
    prob[truth] = 0.3
    prob[35:65, 135:165] = 0.8
    for k in range(3):
        r, c = rng.integers(5, 90), rng.integers(5, 100)
        prob[r:r + 2, c:c + 2 + 2 * k] = 0.9
    return prob, truth


def test_region_counts_match_the_training_metric():
    pairs = [strip_with_marks(s) for s in range(4)]
    thresholds, sizes = (0.2, 0.5, 0.85), (0, 10, 500)
    counts, n = region_grid_counts(pairs, thresholds=thresholds, min_sizes=sizes)
    assert n == 4 and counts.shape == (3, 3, 7)
    torch = pytest.importorskip("torch")
    for i, t in enumerate(thresholds):
        for j, s in enumerate(sizes):
            preds = np.stack([apply_postprocess(p, threshold=t, min_component_px=s) for p, _ in pairs])
            truths = np.stack([tr for _, tr in pairs])
            expected = region_counts(torch.from_numpy(preds), torch.from_numpy(truths)).numpy()
            assert counts[i, j, 3:].tolist() == expected.tolist()
            tp = float((preds & truths).sum())
            assert counts[i, j, :3].tolist() == [tp, preds.sum() - tp, truths.sum() - tp]


def test_rule_drops_the_marks_and_keeps_the_defect():
    choice = choose_postprocess_boxes([strip_with_marks(s) for s in range(4)], min_box_recall=0.85)
    assert choice.scores["box_recall"] == 1.0 and choice.scores["box_precision"] == 1.0
    # marks (<= 12 px at 0.9) go by size; ties on box scores go to pixel IoU: the whole box (0.3) kept
    assert choice.min_component_px > 12 and choice.threshold < 0.3 and choice.n_chips == 4
    assert choice.scores["iou"] == 1.0
    recipe = choice.to_recipe()
    assert recipe["mask_threshold"] == choice.threshold and recipe["min_component_px"] == choice.min_component_px
    # untuned (0.5, keep all): 1 of 4 components right
    untuned = region_scores(region_grid_counts([strip_with_marks(0)], thresholds=(0.5,), min_sizes=(0,))[0][0, 0])
    assert untuned["box_precision"] == pytest.approx(0.25)


def test_recall_floor_wins_over_precision():
    # a faint small defect (30 px at 0.6) beside a strong big one: dropping small components would
    # raise precision to 1 but lose half the boxes; the floor keeps them
    truth = np.zeros((60, 200), bool)
    truth[10:50, 10:50] = truth[20:26, 150:155] = True
    prob = np.full(truth.shape, 0.05, np.float32)
    prob[10:50, 10:50] = 0.9
    prob[20:26, 150:155] = 0.6
    prob[5:7, 90:93] = 0.7                       # a 6-px false mark
    choice = choose_postprocess_boxes([(prob, truth)], min_box_recall=0.85, min_sizes=(0, 10, 100))
    assert choice.scores["box_recall"] == 1.0 and choice.min_component_px == 10
    strict = choose_postprocess_boxes([(prob, truth)], min_box_recall=0.0, min_sizes=(0, 10, 100))
    assert strict.scores["box_precision"] == 1.0


def test_bad_input():
    with pytest.raises(InputError, match="min_box_recall"):
        choose_postprocess_boxes([strip_with_marks(0)], min_box_recall=1.5)
    with pytest.raises(InputError, match="no validation chips"):
        choose_postprocess_boxes([])


def test_strips_are_pasted_back_into_their_frames():
    frame_prob = np.random.default_rng(0).random((250, 40)).astype(np.float32)
    frame_truth = frame_prob > 0.7
    rows, pairs = [], []
    for src in ("a", "b"):
        for r0 in (0, 100, 150):                      # the last strip snapped to the edge overlaps
            rows.append({"source": src, "row_off": r0, "col_off": 30, "height": 100, "width": 40})
            pairs.append((frame_prob[r0:r0 + 100], frame_truth[r0:r0 + 100]))
    frames = list(iter_val_frames(pairs, rows))
    assert len(frames) == 2
    for prob, truth in frames:
        assert np.array_equal(prob, frame_prob) and np.array_equal(truth, frame_truth)
    # a box cut by a strip border is one region of the frame, two of the strips
    truth = np.zeros((200, 40), bool)
    truth[80:120, 10:20] = True
    prob = truth.astype(np.float32)
    strips = [(prob[:100], truth[:100]), (prob[100:], truth[100:])]
    rows = [{"source": "f", "row_off": r, "col_off": 0, "height": 100, "width": 40} for r in (0, 100)]
    by_strip = region_grid_counts(strips, thresholds=(0.5,), min_sizes=(0,))[0][0, 0]
    by_frame = region_grid_counts(iter_val_frames(strips, rows), thresholds=(0.5,), min_sizes=(0,))[0][0, 0]
    assert by_strip[3] == 2 and by_frame[3] == 1 and by_frame[5] == 1
