"""Pick a road model's probability threshold on the TRAINING chips (never the validation tiles).

    python benchmarks/calibrate_road_threshold.py MODEL CHIPS_DIR [--write OUT.pt]
    python benchmarks/calibrate_road_threshold.py MODEL CHIPS_DIR --val-at T   (val-chip IoU per city at T)

Runs the model over every train chip of CHIPS_DIR (index.gpkg split == "train"), sums the
pixel confusion counts per threshold (0.02 steps) and prints the threshold with the best
pixel IoU. ``--write`` saves a copy of the package with that ``road_threshold`` in its
recipe (what `geodefect infer` uses by default). Used for the spacenet3-roads model: its
multitask LinkNet keeps road probabilities just under 0.5 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

THRESHOLDS = np.round(np.arange(0.04, 0.961, 0.02), 2)


def train_chip_probs(model, recipe, chips_dir: Path, split: str = "train"):
    """Yield ``(road probability, truth mask, chip id)`` per chip of ``split``."""
    import geopandas as gpd
    import rasterio
    import torch

    index = gpd.read_file(chips_dir / "index.gpkg")
    mean = np.array(recipe["normalization"]["mean"], np.float32)[:, None, None]
    std = np.array(recipe["normalization"]["std"], np.float32)[:, None, None]
    for chip_id in index.loc[index.split == split, "chip_id"]:
        with rasterio.open(chips_dir / "images" / f"{chip_id}.tif") as ds:
            x = (ds.read().astype(np.float32) - mean) / std
        with rasterio.open(chips_dir / "labels" / f"{chip_id}.tif") as ds:
            truth = ds.read(1) > 0
        with torch.no_grad():
            prob = model(torch.from_numpy(x)[None]).road.sigmoid()[0, 0].numpy()
        yield prob, truth, chip_id


def val_iou_per_city(model_path: str, chips_dir: Path, threshold: float) -> dict[str, float]:
    """Pixel IoU of the val chips at ``threshold``, per city (AOI name in the chip id) and overall."""
    import torch

    from geodefect.models.checkpoint import load_package

    torch.set_num_threads(1)
    model, recipe = load_package(model_path)
    counts: dict[str, np.ndarray] = {}
    for prob, truth, chip_id in train_chip_probs(model, recipe, chips_dir, split="val"):
        city = next((c for c in ("Vegas", "Paris", "Shanghai") if c in chip_id), "other")
        pred = prob > threshold
        c = counts.setdefault(city, np.zeros(3))
        c += ((pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum())
    counts["all"] = sum(counts.values())
    return {k: float(v[0] / max(v.sum(), 1)) for k, v in counts.items()}


def calibrate(model_path: str, chips_dir: Path) -> tuple[float, dict[float, float]]:
    """Best threshold and the pixel IoU of every threshold on the train chips."""
    import torch

    from geodefect.models.checkpoint import load_package

    torch.set_num_threads(1)
    model, recipe = load_package(model_path)
    tp, fp, fn = (np.zeros(len(THRESHOLDS)) for _ in range(3))
    for prob, truth, _ in train_chip_probs(model, recipe, chips_dir):
        pred = prob[None] > THRESHOLDS[:, None, None]
        tp += (pred & truth).sum(axis=(1, 2))
        fp += (pred & ~truth).sum(axis=(1, 2))
        fn += (~pred & truth).sum(axis=(1, 2))
    iou = tp / np.maximum(tp + fp + fn, 1)
    best = float(THRESHOLDS[int(np.argmax(iou))])
    return best, {float(t): float(v) for t, v in zip(THRESHOLDS, iou, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("chips_dir", type=Path)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--val-at", type=float, help="only score the val chips at this threshold, per city")
    args = ap.parse_args()
    if args.val_at is not None:
        print({k: round(v, 3) for k, v in val_iou_per_city(args.model, args.chips_dir, args.val_at).items()})
        return
    best, table = calibrate(args.model, args.chips_dir)
    print("threshold  train pixel IoU")
    for t, v in table.items():
        print(f"{t:9.2f}  {v:.3f}{'  <- best' if t == best else ''}")
    if args.write:
        from geodefect.models.checkpoint import load_package, save_package

        model, recipe = load_package(args.model)
        recipe["road_threshold"] = best
        recipe["road_threshold_source"] = f"best pixel IoU on the train chips of {args.chips_dir.name} ({table[best]:.3f})"
        save_package(args.write, model=model, recipe=recipe)
        print(f"wrote {args.write} with road_threshold {best}")


if __name__ == "__main__":
    main()
