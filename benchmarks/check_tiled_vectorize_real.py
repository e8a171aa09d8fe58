"""Tiled vs whole vectorisation on the shipped model's probabilities for real SpaceNet-3 tiles.

For each tile: ``geodefect infer --model spacenet3-roads PAN --pan-sharpen MUL --no-vectorize``
(the model works at 0.6 m; its rasters are written back on the 1300 px PAN grid), then
``road_prob.tif`` (probability x 254, 255 = nodata) is vectorised whole and in blocks of
``--block-px`` with the model's road threshold, and the two networks are compared:
APLS(tiled vs whole) and total length. Needs ../shared/data (skips a missing tile).

Usage:
    python benchmarks/check_tiled_vectorize_real.py --block-px 128 --threads 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "spacenet3_samples"
TILES = [("2_Vegas", "img1454"), ("2_Vegas", "img1521"), ("3_Paris", "img432"), ("4_Shanghai", "img1700")]


def compare(prob_tif: Path, block_px: int, threshold: float) -> dict:
    import rasterio

    from geodefect.evaluation.apls import apls
    from geodefect.graph.tiled import vectorize_probability_tiled
    from geodefect.graph.vectorize import VectorizeParams, vectorize_road_probability

    with rasterio.open(prob_tif) as ds:
        raw, transform, crs = ds.read(1), ds.transform, ds.crs
    prob = np.where(raw == 255, np.nan, raw / 254.0).astype(np.float32)
    params = VectorizeParams(threshold=threshold)
    whole = vectorize_road_probability(prob, transform, crs=crs, params=params)
    tiled = vectorize_probability_tiled(prob, transform, crs=crs, params=params, block_px=block_px)
    score = apls(whole.graph, tiled.graph)["apls"] if whole.n_edges else float("nan")
    return {"shape": prob.shape, "blocks": tiled.stats["vector_blocks"], "whole_km": whole.total_length_m / 1000,
            "tiled_km": tiled.total_length_m / 1000, "edges": (whole.n_edges, tiled.n_edges), "apls": score}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block-px", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from geodefect.models.checkpoint import read_recipe
    from geodefect.pretrained import __file__ as pretrained_init

    threshold = float(read_recipe(Path(pretrained_init).parent / "spacenet3-roads.pt").get("road_threshold") or 0.5)
    print("| tile | probability raster px | blocks | whole km | tiled km | length diff | edges whole / tiled | APLS(tiled vs whole) |")
    print("|---|---|---|---|---|---|---|---|")
    for city, img in TILES:
        pan = SAMPLES / f"AOI_{city}_Roads_Sample" / "PAN" / f"PAN_AOI_{city}_{img}.tif"
        mul = pan.parent.parent / "MUL" / f"MUL_AOI_{city}_{img}.tif"
        if not (pan.exists() and mul.exists()):
            print(f"| {city} {img} | missing, skipped |")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            cmd = [sys.executable, "-m", "geodefect.cli.main", "infer", "--model", "spacenet3-roads", str(pan),
                   "--pan-sharpen", str(mul), "-o", str(out), "--no-vectorize", "--threads", str(args.threads), "-q"]
            subprocess.run(cmd, check=True)
            r = compare(out / "road_prob.tif", args.block_px, threshold)
        diff = (r["tiled_km"] - r["whole_km"]) / r["whole_km"] if r["whole_km"] else 0.0
        print(f"| {city} {img} | {r['shape'][0]}x{r['shape'][1]} | {r['blocks']} | {r['whole_km']:.3f} | "
              f"{r['tiled_km']:.3f} | {diff:+.3%} | {r['edges'][0]} / {r['edges'][1]} | {r['apls']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
