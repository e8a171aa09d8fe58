"""Inspection metrics on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.evaluation.inspection import (
    MaskEvaluation,
    box_hits,
    classification_scores,
    segmentation_scores,
)


def test_segmentation_scores_by_hand():
    s = segmentation_scores(tp=6, fp=2, fn=4, tn=88)
    assert s["iou"] == pytest.approx(6 / 12)
    assert s["f1"] == pytest.approx(12 / 18)
    assert s["precision"] == pytest.approx(6 / 8) and s["recall"] == pytest.approx(6 / 10)
    empty = segmentation_scores(0, 0, 0, 100)
    assert empty["iou"] == 1.0 and empty["precision"] == 1.0


def test_classification_scores_by_hand():
    s = classification_scores(tp=3, fp=1, fn=1, tn=5)
    assert s["accuracy"] == pytest.approx(0.8) and s["f1"] == pytest.approx(0.75)


def test_box_hits_and_overall_vs_mean():
    pred = np.zeros((20, 20), bool)
    pred[2:4, 2:4] = True      # inside box 1
    pred[15:17, 15:17] = True  # a false alarm
    boxes = [(1, 1, 5, 5), (10, 0, 3, 3)]
    hits = box_hits(pred, boxes)
    assert hits == {"n_boxes": 2, "boxes_found": 1, "n_components": 2, "components_on_box": 1}
    ev = MaskEvaluation()
    truth = np.zeros((20, 20), bool)
    truth[2:4, 2:6] = True
    ev.add("a", pred, truth, boxes=boxes)
    ev.add("b", np.zeros((10, 10), bool), np.zeros((10, 10), bool), boxes=[])
    s = ev.summary()
    assert s["overall"]["iou"] == pytest.approx(4 / 12)
    assert s["mean"]["iou"] == pytest.approx((4 / 12 + 1.0) / 2)
    assert s["boxes"]["box_recall"] == 0.5 and s["boxes"]["box_precision"] == 0.5
