"""Road losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from geodefect.errors import ConfigError
from geodefect.losses.roads import RoadLoss, bce_loss, dice_loss, orientation_loss, soft_iou_loss
from geodefect.models.outputs import RoadOutput

TARGET = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
HALF = torch.zeros(1, 1, 1, 2)  # sigmoid(0) = 0.5 everywhere


def test_soft_iou_by_hand():
    # road: I = 0.5 * 1 + 0.5 * 0 = 0.5, U = (0.5 + 1 - 0.5) + (0.5 + 0 - 0) = 1.5 -> 1/3;
    # background (p = 0.5, t = [0, 1]) the same -> loss 1 - 1/3
    assert soft_iou_loss(HALF, TARGET).item() == pytest.approx(2 / 3, abs=1e-6)
    perfect = torch.tensor([20.0, -20.0]).reshape(1, 1, 1, 2)
    assert soft_iou_loss(perfect, TARGET).item() == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    assert soft_iou_loss(wrong, TARGET).item() == pytest.approx(1.0, abs=1e-6)


def test_dice_and_bce_by_hand():
    # dice: (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3
    assert dice_loss(HALF, TARGET).item() == pytest.approx(1 / 3, abs=1e-6)
    assert bce_loss(HALF, TARGET).item() == pytest.approx(math.log(2), abs=1e-6)


def test_orientation_cross_entropy_by_hand():
    logits = torch.zeros(1, 5, 1, 3)
    target = torch.tensor([[[0, 2, 4]]])
    assert orientation_loss(logits, target).item() == pytest.approx(math.log(5), abs=1e-6)
    logits[0, 2, 0, 1] = 10.0  # confident and right on the one road pixel
    only_road = orientation_loss(logits, target, ignore_background=False)
    assert orientation_loss(logits, torch.tensor([[[0, 2, 0]]]), ignore_background=True).item() < 1e-3
    assert only_road.item() > 0.5
    assert orientation_loss(logits, torch.zeros(1, 1, 3, dtype=torch.long), ignore_background=True).item() == 0.0


def test_road_loss_weights_and_deep_supervision_sum():
    out = RoadOutput(HALF, torch.zeros(1, 3, 1, 2))
    batch = {"road": TARGET, "orientation": torch.tensor([[[1, 0]]])}
    total, parts = RoadLoss(road_loss="bce", road_weight=2.0, orientation_weight=0.5)(out, batch)
    assert parts["road"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert parts["orientation"].item() == pytest.approx(math.log(3), abs=1e-6)
    assert total.item() == pytest.approx(2 * math.log(2) + 0.5 * math.log(3), abs=1e-6)
    stacked = out._replace(aux=(out, out))
    total3, _ = RoadLoss(road_loss="bce", road_weight=2.0, orientation_weight=0.5)(stacked, batch)
    assert total3.item() == pytest.approx(total.item(), abs=1e-5)  # mean over the stacks
    deeper = out._replace(aux=(RoadOutput(HALF * 0 + 20, torch.zeros(1, 3, 1, 2)),))
    total2, parts2 = RoadLoss(road_loss="bce", orientation_weight=0.0)(deeper, batch)
    assert parts2["road"].item() == pytest.approx((math.log(2) + bce_loss(HALF + 20, TARGET).item()) / 2, abs=1e-5)
    combined, _ = RoadLoss(road_loss="bce_soft_iou", orientation_weight=0.0)(out, batch)
    assert combined.item() == pytest.approx(math.log(2) + 2 / 3, abs=1e-6)


def test_bad_loss_settings_are_config_errors():
    with pytest.raises(ConfigError, match="road_loss"):
        RoadLoss(road_loss="focal")
    with pytest.raises(ConfigError, match="weights"):
        RoadLoss(road_weight=0, orientation_weight=0)
