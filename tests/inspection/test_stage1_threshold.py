"""Stage-1 threshold: chosen on validation windows, stored in the package, used by infer (issue 18)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from geodefect.models.checkpoint import read_recipe
from geodefect.tasks.classify_threshold import choose_threshold


def _brute_force(probs, labels):
    best = None
    for t in sorted(set(probs.tolist())):  # ascending: the first of equal F1 is the lowest threshold
        pred = probs >= t
        f1 = 2 * (pred & labels).sum() / (pred.sum() + labels.sum())
        if best is None or f1 > best[1] + 1e-12:
            best = (t, f1)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_choose_threshold_is_the_lowest_max_f1_threshold(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.4
    probs = np.round(np.clip(labels * 0.3 + rng.random(60) * 0.7, 0, 1), 1)  # coarse: many ties
    t, f1 = _brute_force(probs, labels)
    choice = choose_threshold(probs, labels)
    assert choice["threshold"] == pytest.approx(t) and choice["f1"] == pytest.approx(f1, abs=1e-4)


def test_choose_threshold_small_case_and_one_class():
    choice = choose_threshold(np.array([0.9, 0.8, 0.7, 0.3, 0.2]), np.array([1, 1, 0, 1, 0]))
    assert choice["threshold"] == pytest.approx(0.3) and choice["recall"] == 1.0 and choice["precision"] == 0.75
    assert choose_threshold(np.array([0.9, 0.1]), np.array([1, 1]))["threshold"] == 0.5


def test_trained_classifier_stores_its_threshold_and_infer_uses_it(tmp_path):
    from geodefect.tasks.classify_threshold import predict_dataset
    from geodefect.testing.cracks import make_crack_dataset
    from geodefect.workflows.chip import chip
    from geodefect.workflows.infer import infer
    from geodefect.workflows.train import train

    d = make_crack_dataset(tmp_path / "c", n_images=6, height_px=64, width_px=64, seed=2)
    chip(d.images, tmp_path / "chips", masks=d.masks,
         overrides={"task": "crack_classify", "size_px": 32, "input_px": 32, "val_fraction": 0.5})
    summary = train(tmp_path / "chips", tmp_path / "run",
                    overrides={"variant": "tiny", "epochs": 1, "batch_size": 4, "threads": 1})
    recipe = read_recipe(tmp_path / "run" / "model.pt")
    assert recipe["threshold"] == read_recipe(tmp_path / "run" / "best.pt")["threshold"]
    assert recipe["threshold_rule"]["n_val"] > 0 and "final_metrics" in recipe
    # the stored threshold is the rule applied to the package's own validation predictions
    from geodefect.models.checkpoint import load_package
    from geodefect.tasks import get_task
    from geodefect.training.config import resolve_train_config

    task = get_task("crack_classify")
    cfg = resolve_train_config(task.Options, task.loop_defaults, None, {"variant": "tiny"})
    data = task.prepare(tmp_path / "chips", cfg, task.read_meta(tmp_path / "chips"))
    model, _ = load_package(tmp_path / "run" / "model.pt")
    assert recipe["threshold"] == choose_threshold(*predict_dataset(model, data.val))["threshold"]
    assert summary.data["threshold"]["threshold"] == recipe["threshold"]

    out = infer(tmp_path / "run" / "model.pt", [d.images], tmp_path / "pred").data
    assert out["stage1_threshold"] == recipe["threshold"]
    with (tmp_path / "pred" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert all(int(r["flagged"]) == (float(r["stage1_prob"]) >= recipe["threshold"]) for r in rows)
    forced = infer(tmp_path / "run" / "model.pt", [d.images], tmp_path / "pred1", overrides={"threshold": 1.0}).data
    assert forced["stage1_threshold"] == 1.0
