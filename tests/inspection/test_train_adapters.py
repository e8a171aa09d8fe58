"""Inspection training pieces: losses, streaming metrics, k-fold groups, model options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geodefect.errors import ConfigError
from geodefect.losses.defects import defect_logit
from geodefect.metrics.defects import ClassificationCounts, DefectSegmentationCounts
from geodefect.tasks import get_task
from geodefect.tasks.inspection import DefectSegmentAdapter, InspectionOptions, fold_groups
from geodefect.training.config import resolve_train_config


def resolved(task: str, **options):
    """``(loop, task options)`` of ``task`` as ``geodefect train`` resolves them."""
    t = get_task(task)
    cfg = resolve_train_config(t.Options, t.loop_defaults, None, options)
    return cfg.loop, t.options_for_run(cfg.task)


def model_spec(task: str, opts, meta):
    return get_task(task).model_spec(opts, meta)


def test_weighted_cross_entropy_for_two_class_models():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 5)
    mask = (torch.rand(2, 1, 4, 5) > 0.7).float()
    loss, _ = DefectSegmentAdapter(loss="ce", defect_weight=3.0).compute_loss(logits, {"mask": mask})
    expected = F.cross_entropy(logits, mask[:, 0].long(), weight=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError):
        DefectSegmentAdapter(loss="dice").compute_loss(logits, {"mask": mask})


def test_dice_loss_is_zero_for_a_perfect_prediction():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:4, :] = 1
    logits = (mask * 2 - 1) * 50
    loss, _ = DefectSegmentAdapter(loss="dice").compute_loss(logits, {"mask": mask})
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_defect_logit_matches_softmax_decision():
    logits = torch.randn(3, 2, 6, 6)
    assert torch.equal(defect_logit(logits)[:, 0] > 0, logits.softmax(1)[:, 1] > 0.5)


def test_streaming_metrics_by_hand():
    m = ClassificationCounts()
    m.update(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), {"label": torch.tensor([1, 1, 0])})
    scores = m.compute()
    assert scores["accuracy"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(0.5)
    seg = DefectSegmentationCounts()
    out = torch.full((1, 1, 2, 2), -5.0)
    out[0, 0, 0, 0] = 5.0
    truth = torch.zeros(1, 1, 2, 2)
    truth[0, 0, 0, :] = 1
    seg.update(out, {"mask": truth})
    s = seg.compute()
    assert s["iou"] == pytest.approx(0.5) and s["f1"] == pytest.approx(2 / 3)


def test_fold_groups_partition_sources():
    rows = [{"source": f"img{i}"} for i in range(7) for _ in range(3)]
    groups = fold_groups(rows, folds=3, seed=1)
    flat = [s for g in groups for s in g]
    assert sorted(flat) == sorted({r["source"] for r in rows}) and len(flat) == 7
    with pytest.raises(ConfigError, match="at least 8"):
        fold_groups(rows, folds=8, seed=0)


def test_model_options_are_checked_per_model():
    meta = {"channels": 1}
    _, opts = resolved("rail_segment", model="rail_vgg_fcn", width_mult=0.5)
    assert model_spec("rail_segment", opts, meta) == {
        "name": "rail_vgg_fcn", "kwargs": {"in_channels": 1, "width_mult": 0.5, "batch_norm": True, "num_classes": 2}}
    _, paper = resolved("rail_segment", model="rail_vgg_fcn", batch_norm=False)
    assert model_spec("rail_segment", paper, meta)["kwargs"]["batch_norm"] is False
    _, bad = resolved("crack_classify", width_mult=0.5)
    with pytest.raises(ConfigError, match="width_mult"):
        model_spec("crack_classify", bad, {"channels": 3})
    loop, rail = resolved("rail_segment", model="rail_vgg_fcn")  # deviations from the paper, see DESIGN.md 13
    assert (loop.lr, loop.lr_schedule, rail.loss, rail.defect_oversample) == (1e-3, "onecycle", "ce_dice", 0.5)
    loop, explicit = resolved("rail_segment", lr=1e-4, lr_schedule="constant", loss="ce", defect_oversample=0)
    assert (loop.lr, loop.lr_schedule, explicit.loss, explicit.defect_oversample) == (1e-4, "constant", "ce", 0)
    assert resolved("crack_segment")[1].batch_norm is None
    assert resolved("crack_classify")[0].lr_schedule == "step"
    assert resolved("rail_segment")[0].weight_decay == 0.0
    with pytest.raises(ConfigError):
        InspectionOptions(folds=1)
