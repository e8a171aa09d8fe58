"""Stacked panorama pipeline end to end (tiny): stage 1 -> heatmaps -> stage 2 -> infer/review/evaluate."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.inference.panorama import PatchPredictor, stage2_input
from geodefect.io.review import import_review, least_certain
from geodefect.models.checkpoint import read_recipe
from geodefect.testing.damage import make_damage_dataset, make_panoramas
from geodefect.workflows.train import train

TINY_STAGE1 = {"backbone": "vgg16", "width_mult": 0.125, "epochs": 1, "batch_size": 8, "steps_per_epoch": 2,
               "background_per_image": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("pano")
    rdd = make_damage_dataset(root / "rdd", countries=("A", "B"), n_images=4, size_px=160)
    stage1 = train(rdd, root / "s1", overrides=TINY_STAGE1)
    panos = make_panoramas(root / "panos", n_images=6, height_px=64, width_px=192, seed=1)
    result = train(panos.root, root / "s2", overrides={"stage1": stage1["best"], "epochs": 1, "batch_size": 4,
                                                       "stride_px": 32, "device": "cpu"})
    return root, panos, result


def test_stage2_package_carries_the_pipeline(stacked):
    root, _, result = stacked
    recipe = read_recipe(result["best"])
    assert recipe["task"] == "panorama_stack"
    assert recipe["stage1"]["classes"][-1] == "background"
    assert recipe["stage2_size_hw"] == [16, 48]  # 64x192 pooled by 4
    assert (root / "s2" / "roc_val.png").is_file()
    assert 0.0 <= result["val_auc"] <= 1.0 or np.isnan(result["val_auc"])


def test_least_certain_order():
    assert least_certain(np.array([0.9, 0.45, 0.1, 0.6, 0.5]), 3).tolist() == [4, 1, 3]


def test_patch_predictor_spreads_window_probabilities():
    pred = PatchPredictor(lambda b: {"probs": np.tile([[0.25, 0.75]], (len(b), 1)).astype(np.float32)})
    out = pred(np.zeros((3, 3, 8, 8), np.float32))["probs"]
    assert out.shape == (3, 2, 8, 8) and np.allclose(out[:, 1], 0.75)


def test_roi_mask_zeroes_heat_off_the_road():
    heat = np.ones((2, 8, 8), np.float32)
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    x = stage2_input(heat, np.zeros((8, 8, 3), np.uint8), mask, downsample=4, size_hw=None, include_image=True)
    assert x.shape == (5, 2, 2)
    assert np.allclose(x[:2, 0], 0) and np.allclose(x[:2, 1], 1) and np.allclose(x[2:], 0)


def test_infer_review_and_import_round_trip(stacked, tmp_path):
    root, panos, result = stacked
    images = sorted(str(p) for p in panos.images.iterdir())
    out = tmp_path / "scored"
    r = CliRunner().invoke(cli, ["infer", result["best"], *images, "-o", str(out), "--review", "2", "-q"])
    assert r.exit_code == 0, r.output
    with (out / "predictions.csv").open() as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 6 and all(0 <= float(p["probability"]) <= 1 for p in preds)
    assert len(list((out / "overlays").glob("*.png"))) == 6
    with (out / "review" / "review.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    margin = {p["image"]: abs(float(p["probability"]) - 0.5) for p in preds}
    chosen = {r["image"] for r in rows}
    assert max(margin[c] for c in chosen) <= min(v for k, v in margin.items() if k not in chosen) + 1e-4
    assert all((out / "review" / "overlays" / f"{r['image'][:-4]}.png").is_file() for r in rows)
    heat = np.load(out / "review" / "heatmaps" / f"{rows[0]['image'][:-4]}.npy")
    assert heat.shape == (5, 64, 192) and heat[:, :32].max() == 0  # 4 damage classes + background; sky masked
    # a reviewer labels the first image only
    rows[0]["label"] = "1"
    with (out / "review" / "review.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    dataset = tmp_path / "train_set"
    r = CliRunner().invoke(cli, ["review", "import", str(out / "review" / "review.csv"), "--into", str(dataset)])
    assert r.exit_code == 0, r.output
    assert "added 1, updated 0, skipped 1" in r.output
    with (dataset / "labels.csv").open() as f:
        assert list(csv.DictReader(f)) == [{"image": rows[0]["image"], "label": "1"}]
    assert (dataset / "images" / rows[0]["image"]).is_file()
    rows[0]["label"] = "0"  # relabel: replaces
    with (out / "review" / "review.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert import_review(out / "review" / "review.csv", dataset) == {"added": 0, "updated": 1, "skipped": 1}


def test_review_import_rejects_bad_labels(tmp_path):
    (tmp_path / "review.csv").write_text("image,source,probability,predicted,label\na.jpg,,0.5,1,yes\n")
    r = CliRunner().invoke(cli, ["review", "import", str(tmp_path / "review.csv"), "--into", str(tmp_path / "d")])
    assert r.exit_code == 1 and "line 2" in r.output and "'yes'" in r.output


def test_evaluate_panoramas_writes_roc_and_auc(stacked, tmp_path):
    from geodefect.tasks import get_task

    _, panos, result = stacked
    summary = get_task("panorama_stack").evaluate_model(result["best"], panos.root, tmp_path / "ev")
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_images"] == 6 and 0 <= metrics["auc"] <= 1
    assert (tmp_path / "ev" / "roc.png").is_file()
    assert summary["auc"] == pytest.approx(metrics["auc"])


def test_roi_model_package_masks_the_heat(tmp_path):
    import torch

    from geodefect.inference.panorama import RoiModel, roi_mask
    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import _REGISTRY, register_model

    class BottomHalfRoad(torch.nn.Module):  # "segments" the lower half of any window as road
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            rows = torch.arange(x.shape[2], dtype=x.dtype)[None, None, :, None]
            return (rows - x.shape[2] / 2 + 0.5).expand(x.shape[0], 1, -1, x.shape[3]) * 10 + self.bias

    if "_test_bottom_half_road" not in _REGISTRY:
        register_model("_test_bottom_half_road")(BottomHalfRoad)
    save_package(tmp_path / "roi.pt", model=BottomHalfRoad(), recipe={
        "task": "crack_segment", "model": {"name": "_test_bottom_half_road", "kwargs": {}}, "size_px": 32,
        "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1]}})
    roi = RoiModel(tmp_path / "roi.pt", device="cpu")
    mask = roi_mask({"roi": "model"}, tmp_path / "x.jpg", np.zeros((32, 64, 3), np.uint8), None, roi)
    assert mask.shape == (32, 64) and mask[16:].all() and not mask[:16].any()
