"""Benchmark ``geodefect infer`` (roads): overhead over the bare model, and memory vs raster size.

Two figures, each measured in this one run:

1. time ratio = end-to-end ``infer`` (open + check, load the package, read windows, predict,
   stitch, write the three COGs; ``--no-vectorize``; Python imports paid before the clock starts)
   / the bare model forward over the same windows in the same batches (torch, inference_mode,
   channels_last, fp32 — what the predictor runs). Target <= 1.15.
   The full run with vectorisation is timed too (vectorising is benchmarked on its own in
   bench_vectorize.py).
2. peak RSS (``ru_maxrss`` of a fresh subprocess per run) at two raster sizes, 4x the area apart.
   Target growth <= 1.2x for the raster inference. A subprocess that only imports and loads the
   model gives the floor.

The model is a randomly initialised ``road_linknet`` (ResNet-18 encoder) so that the benchmark
needs no training; its speed is what matters here.

Usage:
    .venv/bin/python benchmarks/bench_infer.py                 # sizes 1024 and 2048
    .venv/bin/python benchmarks/bench_infer.py --sizes 2048 4096 --window 512 --stride 384
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_raster(path: Path, size_px: int, seed: int = 0) -> None:
    """Noise with dark straight roads every 300 px; uncompressed, tiled (like a prepared scene)."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    with rasterio.open(path, "w", driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(448000, 5412000, 0.3, 0.3),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        for r0 in range(0, size_px, 1024):
            h = min(1024, size_px - r0)
            block = rng.integers(110, 190, (3, h, size_px), dtype=np.uint8)
            for c in range(150, size_px, 300):
                block[:, :, c - 6:c + 6] = 40
            for r in range(150, size_px, 300):
                if r0 <= r < r0 + h:
                    block[:, r - r0 - 6:r - r0 + 6] = 40
            dst.write(block, window=rasterio.windows.Window(0, r0, size_px, h))


def make_model(path: Path, *, encoder: str, window: int, stride: int) -> None:
    import torch

    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import build_model

    torch.manual_seed(0)
    kwargs = {"encoder": encoder, "in_channels": 3, "n_classes": 19}
    recipe = {"task": "roads", "model": {"name": "road_linknet", "kwargs": kwargs}, "bands": [1, 2, 3],
              "normalization": {"mean": [128.0] * 3, "std": [40.0] * 3}, "size_px": window, "stride_px": stride,
              "pixel_size_m": 0.3, "orientation": {"bin_deg": 20, "n_classes": 19}}
    save_package(path, model=build_model("road_linknet", **kwargs), recipe=recipe)


def child(mode: str, model: Path, raster: Path, out: Path, batch: int) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from geodefect.models.checkpoint import load_package, read_recipe

    recipe = read_recipe(model)
    if mode in ("rasters", "full"):  # per-process import cost is not inference work: pay it first
        import geodefect.graph.vectorize  # noqa: F401
        import geodefect.inference.geo  # noqa: F401
        import geodefect.inference.road_outputs  # noqa: F401
        import geodefect.io.gpkg  # noqa: F401
        import geodefect.workflows.road_infer  # noqa: F401
    t0 = time.perf_counter()
    result: dict = {"mode": mode}
    if mode == "floor":
        load_package(model)
    elif mode == "bare":
        result.update(bare_forward(model, raster, recipe, batch))
    else:
        from geodefect.workflows.road_infer import infer

        summary = infer(model, [raster], out, recipe=recipe,
                        overrides={"batch_size": batch, "vectorize": mode == "full", "device": "cpu"})
        im = summary["images"][0]
        result.update(windows=im["windows"], model_s=im["timings_s"]["model"], timings=im["timings_s"],
                      road_km=im.get("road_km"))
    result["seconds"] = time.perf_counter() - t0
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    return result


def bare_forward(model_path: Path, raster: Path, recipe: dict, batch: int) -> dict:
    """The model alone over the same number of windows and batches (plus the engine's 1-window probe)."""
    import rasterio
    import torch

    from geodefect.models.checkpoint import load_package
    from geodefect.windows import count_windows

    size, stride = recipe["size_px"], recipe["stride_px"]
    with rasterio.open(raster) as ds:
        n = count_windows(ds.height, ds.width, size_px=size, stride_px=stride)
    model, _ = load_package(model_path)
    model = model.eval().to(memory_format=torch.channels_last)
    sizes = [1] + [min(batch, n - i) for i in range(0, n, batch)]
    x = {b: torch.randn(b, 3, size, size).contiguous(memory_format=torch.channels_last) for b in set(sizes)}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in sizes:
            out = model(x[b])
            out.road.sigmoid().numpy()
            out.orientation.softmax(dim=1).numpy()
    return {"windows": n, "forward_s": time.perf_counter() - t0}


def run_child(mode: str, model: Path, raster: Path, out: Path, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(model), str(raster), str(out), str(batch)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={"GEODEFECT_NO_PROGRESS": "1", **_env()})
    if res.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "GEODEFECT_NO_PROGRESS"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[1024, 2048], help="two raster sides (px); use x2")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=192)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--encoder", default="resnet18")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as d:
        d = Path(d)
        model = d / "model.pt"
        make_model(model, encoder=args.encoder, window=args.window, stride=args.stride)
        rows = []
        for size in args.sizes:
            raster = d / f"scene{size}.tif"
            make_raster(raster, size)
            for mode in ("floor", "bare", "rasters", "full"):
                res = run_child(mode, model, raster, d / f"out-{mode}-{size}", args.batch)
                res["size"] = size
                rows.append(res)
                print(json.dumps(res), file=sys.stderr)
        report(rows, args)


def report(rows: list[dict], args) -> None:
    by = {(r["mode"], r["size"]): r for r in rows}
    small, large = args.sizes
    print(f"# bench_infer: road_linknet-{args.encoder}, window {args.window}, stride {args.stride}, batch {args.batch}, "
          f"{by[('bare', large)]['threads']} torch threads")
    print("| size px | windows | bare forward s | infer (rasters) s | ratio | model time inside infer s | "
          "infer + vectorize s | peak RSS floor / rasters / full MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        bare, ras, full, floor = by[("bare", size)], by[("rasters", size)], by[("full", size)], by[("floor", size)]
        print(f"| {size}² | {ras['windows']} | {bare['forward_s']:.2f} | {ras['seconds']:.2f} | "
              f"{ras['seconds'] / bare['forward_s']:.3f} | {ras['model_s']:.2f} | {full['seconds']:.2f} | "
              f"{floor['maxrss_mb']:.0f} / {ras['maxrss_mb']:.0f} / {full['maxrss_mb']:.0f} |")
    ratio = by[("rasters", large)]["seconds"] / by[("bare", large)]["forward_s"]
    growth = by[("rasters", large)]["maxrss_mb"] / by[("rasters", small)]["maxrss_mb"]
    growth_full = by[("full", large)]["maxrss_mb"] / by[("full", small)]["maxrss_mb"]
    area = (large / small) ** 2
    inproc = by[("rasters", large)]["seconds"] / by[("rasters", large)]["model_s"]
    print(f"\ntime ratio infer/bare at {large}²: {ratio:.3f} (limit 1.15) -> {'PASS' if ratio <= 1.15 else 'FAIL'}; "
          f"infer / its own model time (same process, immune to load drift between processes): {inproc:.3f}")
    print(f"peak RSS growth for {area:.0f}x area (rasters): {growth:.3f} (limit 1.2) -> "
          f"{'PASS' if growth <= 1.2 else 'FAIL'}; with vectorisation: {growth_full:.3f} (not flat: see notes)")
    if not math.isfinite(ratio):
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, model, raster, out, batch = sys.argv
        print(json.dumps(child(mode, Path(model), Path(raster), Path(out), int(batch))))
    else:
        main()
