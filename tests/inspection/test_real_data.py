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
    meta = chip(None, tmp_path / "cf", dataset="crackforest", overrides={"size_px": 160, "keep_empty": 1.0})
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


def test_crack_segment_smoke_on_crackforest(shared_data, tmp_path):
    """chip -> train (tiny, a few steps) -> threshold on validation -> infer with length/width -> evaluate."""
    import csv

    import torch
    from click.testing import CliRunner

    from geodefect.cli.main import cli

    root, sub = shared_data / "crackforest", tmp_path / "cf6"
    for name in ("images", "masks"):
        (sub / name).mkdir(parents=True)
    for stem in ("001", "002", "003", "004", "005", "006"):
        (sub / "images" / f"{stem}.jpg").symlink_to(root / "images" / f"{stem}.jpg")
        (sub / "masks" / f"{stem}.png").symlink_to(root / "masks" / f"{stem}.png")

    def run(*args):
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("chip", sub / "images", "--masks", sub / "masks", "-o", tmp_path / "chips", "--val-fraction", "0.34",
        "--size-px", "128")  # the 256-px default has no crack-free CrackForest window
    meta = json.loads((tmp_path / "chips" / "meta.json").read_text())
    assert meta["chip_shape_px"] == [128, 128] and 0 < meta["n_chips"] - meta["n_positive"]  # crack-free chips too
    run("train", tmp_path / "chips", "-o", tmp_path / "run", "--encoder", "resnet18", "--decoder-channels", "16",
        "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--device", "cpu", "--threads", "1")
    recipe = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["recipe"]
    assert 0 < recipe["mask_threshold"] < 1 and recipe["postprocess"]["n_chips"] == meta["split"]["val"]
    run("infer", tmp_path / "run" / "model.pt", sub / "images" / "001.jpg", sub / "images" / "002.jpg",
        "--pixel-size-mm", "1", "-o", tmp_path / "out")
    with (tmp_path / "out" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["height_px"] for r in rows] == ["320", "320"] and all(r["crack_length_mm"] != "" for r in rows)
    (tmp_path / "truth").mkdir()
    for stem in ("001", "002"):
        (tmp_path / "truth" / f"{stem}.png").symlink_to(root / "masks" / f"{stem}.png")
    run("evaluate", "--pred", tmp_path / "out", "--truth", tmp_path / "truth", "--json", tmp_path / "e.json")
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["n_images"] == 2 and 0 <= scores["overall"]["iou"] <= 1
