"""Scale augmentation of segment chips: random rescale, back to the chip shape, mask aligned."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.datasets.inspection import rescale_chip
from geodefect.errors import ConfigError
from geodefect.tasks import get_task
from geodefect.tasks.inspection import InspectionOptions


def crack_chip(width_px: int = 4) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((1, 64, 64), np.float32)
    mask[:, :, 30:30 + width_px] = 1
    return np.repeat(mask * 100, 3, axis=0), mask


def crack_width(mask: np.ndarray) -> float:
    rows = mask[0].sum(1)
    return float(np.median(rows[rows > 0])) if rows.any() else 0.0


def test_rescale_changes_crack_width_and_keeps_shape_and_alignment():
    image, mask = crack_chip(4)
    np.random.seed(0)
    widths = []
    for _ in range(40):
        img, msk = rescale_chip(image, mask, (64, 64), scale_range=3.0)
        assert img.shape == (3, 64, 64) and msk.shape == (1, 64, 64)
        assert set(np.unique(msk)) <= {0.0, 1.0}
        cols = np.arange(64)
        if msk.any():  # image and mask move together: same crack centre, widths within the blur
            assert abs(((img[0] > 50) * cols).sum() / (img[0] > 50).sum() - (msk[0] * cols).sum() / msk.sum()) < 1
            assert np.abs((img[0] > 50).sum(1) - msk[0].sum(1)).max() <= 2
        widths.append(crack_width(msk))
    assert min(widths) <= 2 and max(widths) >= 8  # 4 px cracks become ~1.3 .. 12 px


def test_scale_augmentation_is_on_for_cracks_only():
    crack = get_task("crack_segment").options_for_run(InspectionOptions())  # 2: U-Net recipe (BENCHMARKS.md)
    rail = get_task("rail_segment").options_for_run(InspectionOptions())
    assert crack.scale_range == 2.0 and rail.scale_range is None
    assert get_task("crack_segment").options_for_run(InspectionOptions(scale_range=1.0)).scale_range == 1.0
    with pytest.raises(ConfigError, match="scale_range"):
        InspectionOptions(scale_range=0.5)


def test_crack_segment_defaults_to_pretrained_lite0_and_the_paper_is_one_flag_away():
    task = get_task("crack_segment")
    run = task.options_for_run(InspectionOptions())
    assert (run.model, run.encoder, run.encoder_weights) == ("crack_unet", "tu-efficientnet_lite0", "imagenet")
    paper = task.options_for_run(InspectionOptions(model="crack_deeplabv3plus", encoder="resnet101"))
    assert (paper.model, paper.encoder_weights) == ("crack_deeplabv3plus", None)  # from scratch: no offline ResNet
    scratch = task.options_for_run(InspectionOptions(encoder_weights="none"))
    assert scratch.encoder_weights == "none"
    other = task.options_for_run(InspectionOptions(model="rail_vgg_fcn"))
    assert other.encoder is None and other.encoder_weights is None  # smp-encoder defaults stay with smp models
    rail = get_task("rail_segment").options_for_run(InspectionOptions(model="rail_vgg_fcn"))
    assert rail.encoder is None and rail.encoder_weights is None
