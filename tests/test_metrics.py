"""Streaming metrics against counts done by hand."""

from __future__ import annotations

import pytest
import torch

from geodefect.metrics.segmentation import (
    BinarySegmentationMetric,
    ConfusionMatrix,
    RoadMetrics,
    binary_scores,
)
from geodefect.models.outputs import RoadOutput


def test_binary_scores_by_hand():
    s = binary_scores(tp=3, fp=1, fn=2, tn=4, name="road")
    assert s["road_iou"] == pytest.approx(3 / 6)
    assert s["background_iou"] == pytest.approx(4 / 7)
    assert s["miou"] == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert s["dice"] == pytest.approx(6 / 9)
    assert s["precision"] == pytest.approx(3 / 4) and s["recall"] == pytest.approx(3 / 5)
    assert s["pixel_accuracy"] == pytest.approx(7 / 10)
    empty = binary_scores(0, 0, 0, 5, name="road")
    assert empty["road_iou"] == 1.0 and empty["precision"] == 1.0 and empty["recall"] == 1.0
    missed = binary_scores(0, 0, 3, 5, name="road")
    assert missed["road_iou"] == 0.0 and missed["precision"] == 0.0 and missed["recall"] == 0.0


def test_confusion_matrix_counts_and_masks():
    cm = ConfusionMatrix(3)
    cm.update_labels(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]), valid=torch.tensor([1, 1, 1, 0]))
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    out = cm.compute()
    assert out["pixel_accuracy"] == pytest.approx(2 / 3)
    assert out["iou_1"] == pytest.approx(0.5) and out["iou_2"] == 0.0


def test_streaming_equals_whole_and_state_sums_like_ddp():
    logits = torch.randn(4, 1, 8, 8)
    truth = (torch.rand(4, 1, 8, 8) > 0.5).float()
    whole = BinarySegmentationMetric(name="road")
    whole.update_logits(logits, truth)
    a, b = BinarySegmentationMetric(name="road"), BinarySegmentationMetric(name="road")
    a.update_logits(logits[:1], truth[:1])
    b.update_logits(logits[1:], truth[1:])
    a.load_state(a.state() + b.state())  # what all_reduce(sum) does across ranks
    assert a.compute() == whole.compute()
    tp = float(((logits > 0) & (truth > 0.5)).sum())
    fp_fn = float(((logits > 0) != (truth > 0.5)).sum())
    assert whole.compute()["road_iou"] == pytest.approx(tp / (tp + fp_fn))


def test_road_metrics_orientation_accuracy_on_road_pixels_only():
    truth_bins = torch.tensor([[[0, 1, 2, 18]]])  # 18 bins (19 classes): 18 neighbours 1 circularly
    road = (truth_bins > 0).float()[:, None]
    pred_bins = torch.tensor([[[5, 1, 3, 1]]])  # background pixel ignored; exact 1/3; within one bin 3/3
    logits = torch.nn.functional.one_hot(pred_bins, 19).permute(0, 3, 1, 2).float()
    m = RoadMetrics(n_classes=19)
    m.update(RoadOutput(road * 20 - 10, logits), {"road": road, "orientation": truth_bins})
    out = m.compute()
    assert out["orientation_accuracy"] == pytest.approx(1 / 3)
    assert out["orientation_accuracy_1bin"] == pytest.approx(1.0)
    assert out["orientation_accuracy_undirected"] == pytest.approx(1 / 3)
    assert out["road_iou"] == 1.0
    m2 = RoadMetrics(n_classes=19)
    m2.load_state(m.state())
    assert m2.compute() == out


def test_undirected_orientation_accepts_the_opposite_bin():
    truth_bins = torch.tensor([[[1, 5, 10]]])  # 18 bins: opposite of bin 1 is 10, of 5 is 14
    road = torch.ones(1, 1, 1, 3)
    pred_bins = torch.tensor([[[10, 14, 2]]])
    logits = torch.nn.functional.one_hot(pred_bins, 19).permute(0, 3, 1, 2).float()
    m = RoadMetrics(n_classes=19)
    m.update(RoadOutput(road * 10, logits), {"road": road, "orientation": truth_bins})
    out = m.compute()
    assert out["orientation_accuracy"] == 0.0
    assert out["orientation_accuracy_undirected"] == pytest.approx(2 / 3)
