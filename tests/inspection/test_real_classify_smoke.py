"""Real-data smoke tests (../shared/data; skipped when absent, slow): crack_classify on CrackForest
windows and damage_classify leave-one-domain-out over two tiny real crack domains (issue 18)."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
cut_crops = pytest.importorskip("cut_crack_domain_crops")


def _subset(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` image/mask pairs of ``src`` copied to ``dst`` (a tmp folder, never the repo)."""
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True)
    for image in sorted((src / "images").iterdir())[:n]:
        shutil.copy(image, dst / "images")
        shutil.copy(next((src / "masks").glob(image.stem + ".*")), dst / "masks")
    return dst


def test_crack_classify_on_crackforest_windows(shared_data, tmp_path):
    from geodefect.models.checkpoint import read_recipe
    from geodefect.workflows.chip import chip
    from geodefect.workflows.infer import infer
    from geodefect.workflows.train import train

    cf = _subset(shared_data / "crackforest", tmp_path / "cf", 6)
    meta = chip(cf / "images", tmp_path / "chips", masks=cf / "masks",
                overrides={"task": "crack_classify", "input_px": 32, "val_fraction": 0.34})
    assert meta["windows"]["size_px"] == 128 and meta["n_chips"] == 6 * 12  # 480x320 -> 4 x 3 windows of 128
    assert 0 < meta["n_positive"] < meta["n_chips"]  # both classes
    train(tmp_path / "chips", tmp_path / "run", overrides={"variant": "tiny", "epochs": 1, "steps_per_epoch": 3,
                                                          "batch_size": 8, "threads": 1})
    recipe = read_recipe(tmp_path / "run" / "model.pt")
    assert recipe["window_px"] == 128 and 0 <= recipe["threshold"] <= 1 and recipe["threshold_rule"]["n_val"] == 24
    out = infer(tmp_path / "run" / "model.pt", [cf / "images"], tmp_path / "pred").data
    assert out["n_images"] == 6 and out["stage1_threshold"] == recipe["threshold"]


def _cut(shared_data: Path, tmp_path: Path) -> Path:
    import subprocess

    a = _subset(shared_data / "crack_domains" / "aiglern_trimm", tmp_path / "a", 8)
    s = _subset(shared_data / "crack_domains" / "shadowcrack", tmp_path / "s", 8)
    out = tmp_path / "crops"
    subprocess.run([sys.executable, cut_crops.__file__, "-o", str(out), "--per-class", "5",
                    f"aiglern_trimm={a}", f"shadowcrack={s}"], check=True)
    return out


def test_crops_are_labelled_from_the_masks(shared_data, tmp_path):
    out = _cut(shared_data, tmp_path)
    with (out / "crops.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 5
    for r in rows:
        src = tmp_path / ("a" if r["domain"] == "aiglern_trimm" else "s")
        mask = np.asarray(Image.open(next((src / "masks").glob(Path(r["image"]).stem + ".*"))).convert("L")) > 127
        y, x = int(r["row_px"]), int(r["col_px"])
        n = int(mask[y : y + 64, x : x + 64].sum())
        assert (n >= 30) if r["class"] == "crack" else (n == 0)
        assert Image.open(out / r["file"]).size == (64, 64)


def test_lodo_over_two_real_domains(shared_data, tmp_path):
    from geodefect.tasks.damage_lodo import leave_one_domain_out

    out = _cut(shared_data, tmp_path)
    result = leave_one_domain_out(out, tmp_path / "lodo", overrides={
        "losses": "ce,ct,dg", "epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "threads": 1})
    assert [r["domain"] for r in result["rows"]] == ["aiglern_trimm", "shadowcrack"]
    assert all(r["n_test"] == 10 and r["n_train"] == 8 for r in result["rows"])
    assert 0 <= result["average"]["f1"] <= 1 and (tmp_path / "lodo" / "lodo.md").is_file()
