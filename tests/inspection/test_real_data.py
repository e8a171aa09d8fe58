"""Real samples (../shared/data; skipped when absent, slow: not in CI): pairing, COCO and strips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geodefect.labels.defects import pair_coco, pair_masks, read_mask

pytestmark = pytest.mark.slow


def test_crackforest_pairs_and_chips(shared_data, tmp_path):
    from geodefect.workflows.chip import chip

    root = shared_data / "crackforest"
    pairs = pair_masks(root / "images", root / "masks")
    assert len(pairs) == 118
    frac = np.mean([read_mask(p.mask).mean() for p in pairs[:20]])
    assert 0.002 < frac < 0.05  # cracks are ~1.6% of pixels
    meta = chip(None, tmp_path / "cf", dataset="crackforest", overrides={"size_px": 160})
    assert meta["n_chips"] == 118 * 6 and meta["chip_shape_px"] == [160, 160] and meta["channels"] == 3


def test_rail400_boxes_and_strips(shared_data, tmp_path):
    from geodefect.workflows.chip import chip

    root = shared_data / "rail400_val"
    items = pair_coco(root / "images", root / "boxes_coco.json", categories=["defect"])
    assert len(items) == 80 and sum(len(i.boxes) for i in items) == 115
    meta = chip(None, tmp_path / "rail", dataset="rail400_val")
    assert meta["task"] == "rail_segment" and meta["chip_shape_px"] == [100, 384] and meta["channels"] == 1
    assert meta["n_chips"] == 80 * 20
    saved = json.loads((tmp_path / "rail" / "meta.json").read_text())
    assert saved["label"]["coco_categories"] == ["defect"]
