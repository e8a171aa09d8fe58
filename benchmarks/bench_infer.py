"""Benchmark ``geodefect infer`` (roads): overhead over the bare model, and memory vs raster size.

Two figures, each measured in this one run:

1. time ratio, measured in ONE process (mode ``ratio``) so that threads, allocator state and
   machine load are shared: end-to-end ``infer`` (open + check, load the package, read windows,
   predict, stitch, write the three COGs; ``--no-vectorize``; Python imports paid before the
   clock starts) / the bare model over the same windows. The bare loop reads every window of
   the run (plus the engine's 1-window probe) into memory first (not timed), then calls a
   ``TorchPredictor`` built exactly as infer builds its own (``from_package``: eval,
   inference_mode, channels_last on CPU, fp32, the same torch threads and batch size,
   normalisation, sigmoid/softmax, back to numpy) — model + activation, nothing else. One
   untimed warm-up batch runs before anything is timed (first-call allocation and oneDNN
   kernel selection are paid by neither side). ``--repeats`` infer runs are interleaved with
   bare loops (bare, infer, bare, ..., bare) and the ratio is min(infer) / min(bare): on a
   shared machine, interference only ever adds time. The spread of the bare loops is printed
   (load drift), and as a cross-check (bare + infer's own non-model time) / bare. Target <= 1.15.
   The full run with vectorisation is timed too, in its own process (vectorising is
   benchmarked on its own in bench_vectorize.py).
2. peak RSS (``ru_maxrss`` of a fresh subprocess per run) at two raster sizes, 4x the area apart.
   Target growth <= 1.2x for the raster inference, compared on the median of ``--rss-runs``
   processes per size (the same run's peak varies by ~±5 %: allocator arenas, thread timing). A
   subprocess that only imports and loads the model gives the floor.

The model is a randomly initialised ``road_linknet`` so that the benchmark needs no training; its
speed is what matters here. By default it has ``geodefect train``'s default encoder (ResNet-34) and
its road head's bias is shifted so that it marks the scene's road share (7.8 %) as road, as a
trained model would: untouched, random weights call about every pixel road, which is the worst
case for the orientation argmax (taken on road pixels) — ``--road-share 1`` measures that case.
Each child process first calls ``geodefect.alloc.tune_malloc()``, as the CLI does at start-up.

Usage:
    .venv/bin/python benchmarks/bench_infer.py                 # sizes 1024 and 2048
    .venv/bin/python benchmarks/bench_infer.py --sizes 2048 4096 --window 512 --stride 384
    .venv/bin/python benchmarks/bench_infer.py --encoder resnet18 --road-share 1   # the old setting
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

#: the synthetic scene: dark roads 12 px wide every 300 px, both directions
ROAD_SPACING_PX, ROAD_WIDTH_PX = 300, 12
#: share of the scene's pixels on a road (what a trained model would mark)
SCENE_ROAD_SHARE = 1 - (1 - ROAD_WIDTH_PX / ROAD_SPACING_PX) ** 2


def scene_rows(rng, r0: int, h: int, size_px: int) -> np.ndarray:
    """Rows ``r0:r0+h`` of the scene: (3, h, size_px) uint8 noise with the dark road grid."""
    block = rng.integers(110, 190, (3, h, size_px), dtype=np.uint8)
    half = ROAD_WIDTH_PX // 2
    for c in range(ROAD_SPACING_PX // 2, size_px, ROAD_SPACING_PX):
        block[:, :, c - half:c + half] = 40
    for r in range(ROAD_SPACING_PX // 2, r0 + h, ROAD_SPACING_PX):
        if r + half > r0 and r - half < r0 + h:
            block[:, max(r - half - r0, 0):max(r + half - r0, 0)] = 40
    return block


def make_raster(path: Path, size_px: int, seed: int = 0) -> None:
    """The scene as an uncompressed, tiled GeoTIFF (like a prepared scene)."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    with rasterio.open(path, "w", driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(448000, 5412000, 0.3, 0.3),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        for r0 in range(0, size_px, 1024):
            h = min(1024, size_px - r0)
            dst.write(scene_rows(rng, r0, h, size_px), window=rasterio.windows.Window(0, r0, size_px, h))


def make_model(path: Path, *, encoder: str, window: int, stride: int, road_share: float = SCENE_ROAD_SHARE) -> None:
    """A randomly initialised road_linknet whose road head marks ``road_share`` of the scene's pixels.

    Untouched, random weights put the road probability near 0.5 everywhere, so about every pixel
    is "road" — unlike any trained model, and the worst case for the orientation argmax (taken on
    road pixels) and for compressing the mask. The road head's bias is shifted so that the share
    of a 512² scene sample at p >= 0.5 is ``road_share`` (1.0: every pixel, the worst case).
    """
    import torch

    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import build_model

    torch.manual_seed(0)
    kwargs = {"encoder": encoder, "in_channels": 3, "n_classes": 19}
    norm = {"mean": [128.0] * 3, "std": [40.0] * 3}
    recipe = {"task": "roads", "model": {"name": "road_linknet", "kwargs": kwargs}, "bands": [1, 2, 3],
              "normalization": norm, "size_px": window, "stride_px": stride,
              "pixel_size_m": 0.3, "orientation": {"bin_deg": 20, "n_classes": 19}}
    model = build_model("road_linknet", **kwargs).eval()
    sample = torch.from_numpy(scene_rows(np.random.default_rng(1), 0, 512, 512).astype(np.float32))[None]
    with torch.inference_mode():
        logits = model((sample - 128.0) / 40.0).road.flatten()
    shift = float(torch.quantile(logits, 1.0 - road_share)) if road_share < 1 else float(logits.min()) - 1e-3
    with torch.no_grad():
        model.road_head[0].bias -= shift
    save_package(path, model=model, recipe=recipe)


def child(mode: str, model: Path, raster: Path, out: Path, batch: int) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from geodefect.alloc import tune_malloc
    from geodefect.models.checkpoint import load_package, read_recipe

    tune_malloc()  # as the CLI does at start-up (geodefect/alloc.py)
    recipe = read_recipe(model)
    if mode in ("rasters", "full", "ratio"):  # per-process import cost is not inference work: pay it first
        import geodefect.graph.vectorize  # noqa: F401
        import geodefect.inference.geo  # noqa: F401
        import geodefect.inference.road_outputs  # noqa: F401
        import geodefect.inference.roads  # noqa: F401
        import geodefect.io.gpkg  # noqa: F401
    t0 = time.perf_counter()
    result: dict = {"mode": mode}
    if mode == "floor":
        load_package(model)
    elif mode == "ratio":
        result.update(same_process_ratio(model, raster, out, recipe, batch, repeats=REPEATS))
    else:
        from geodefect.inference.roads import infer

        summary = infer(model, [raster], out, recipe=recipe,
                        overrides={"batch_size": batch, "vectorize": mode == "full", "device": "cpu"})
        im = summary["images"][0]
        result.update(windows=im["windows"], model_s=im["timings_s"]["model"], timings=im["timings_s"],
                      road_km=im.get("road_km"))
    result["seconds"] = time.perf_counter() - t0
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    return result


def same_process_ratio(model_path: Path, raster: Path, out: Path, recipe: dict, batch: int,
                       repeats: int = 3) -> dict:
    """infer (rasters only) and the bare predictor over the same windows, in this one process."""
    import torch

    from geodefect.inference.predictor import TorchPredictor
    from geodefect.inference.roads import (
        infer,
        prepare_jobs,
        resolve_infer_config,
        sliding_params,
    )
    from geodefect.sliding import SlidingParams

    overrides = {"batch_size": batch, "vectorize": False, "device": "cpu"}
    cfg, _ = resolve_infer_config(None, overrides, recipe=recipe)
    params: SlidingParams = sliding_params(cfg, recipe)
    job = prepare_jobs([raster], recipe, cfg, params)[0]  # the windows and reader infer uses
    try:
        wins = list(job.windows.windows)
        batches = [np.asarray(job.reader.read(wins[0]), dtype=np.float32)[None]]  # the engine's probe
        for i in range(0, len(wins), params.batch_size):
            batches.append(np.stack([np.asarray(job.reader.read(w), dtype=np.float32)
                                     for w in wins[i:i + params.batch_size]]))
    finally:
        job.reader.close()
    predictor, _ = TorchPredictor.from_package(model_path, device="cpu")
    predictor(batches[-1])  # warm-up, untimed (the probe inside infer then runs warm, too)

    def bare() -> float:
        t0 = time.perf_counter()
        for b in batches:
            predictor(b)
        return time.perf_counter() - t0

    bare_s, infer_s, model_s, timings = [bare()], [], [], []
    for rep in range(repeats):  # bare, infer, bare, infer, ..., bare: interleaved against load drift
        t0 = time.perf_counter()
        summary = infer(model_path, [raster], out / f"run{rep}", recipe=recipe, overrides=overrides)
        infer_s.append(time.perf_counter() - t0)
        im = summary["images"][0]
        model_s.append(im["timings_s"]["model"])
        timings.append(im["timings_s"])
        bare_s.append(bare())
    best = int(np.argmin(infer_s))
    return {"windows": len(wins), "bare_s": [round(b, 3) for b in bare_s], "infer_s": [round(t, 3) for t in infer_s],
            "model_s": model_s, "forward_s": min(bare_s), "infer_min_s": min(infer_s),
            "nonmodel_s": min(t - m for t, m in zip(infer_s, model_s, strict=True)), "timings": timings[best],
            "threads_predictor": torch.get_num_threads()}


REPEATS = 3


def run_child(mode: str, model: Path, raster: Path, out: Path, batch: int, repeats: int = REPEATS) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(model), str(raster), str(out), str(batch), str(repeats)]
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
    ap.add_argument("--encoder", default="resnet34", help="road_linknet encoder (geodefect train's default: resnet34)")
    ap.add_argument("--road-share", type=float, default=SCENE_ROAD_SHARE,
                    help="share of pixels the model marks road (default: the scene's, %(default).3f; 1 = all, worst case)")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="infer runs interleaved with bare loops")
    ap.add_argument("--rss-runs", type=int, default=3,
                    help="processes per size for the peak RSS of the rasters runs (their median is compared)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as d:
        d = Path(d)
        model = d / "model.pt"
        make_model(model, encoder=args.encoder, window=args.window, stride=args.stride, road_share=args.road_share)
        rows = []
        for size in args.sizes:
            raster = d / f"scene{size}.tif"
            make_raster(raster, size)
            for mode in ("floor", "ratio", "rasters", "full"):
                res = run_child(mode, model, raster, d / f"out-{mode}-{size}", args.batch, args.repeats)
                if mode == "rasters" and args.rss_runs > 1:  # peak RSS varies by ~±5 % run to run: the median
                    runs = [res] + [run_child(mode, model, raster, d / f"out-{mode}-{size}-{i}", args.batch, 1)
                                    for i in range(1, args.rss_runs)]
                    res = sorted(runs, key=lambda r: r["maxrss_mb"])[len(runs) // 2]
                    res["maxrss_all_mb"] = [round(r["maxrss_mb"]) for r in runs]
                res["size"] = size
                rows.append(res)
                print(json.dumps(res), file=sys.stderr)
        report(rows, args)


def report(rows: list[dict], args) -> None:
    by = {(r["mode"], r["size"]): r for r in rows}
    small, large = args.sizes
    print(f"# bench_infer: road_linknet-{args.encoder} marking {args.road_share:.1%} of pixels road, "
          f"window {args.window}, stride {args.stride}, batch {args.batch}, "
          f"{by[('ratio', large)]['threads']} torch threads, {args.repeats} infer runs interleaved with "
          f"{args.repeats + 1} bare loops in one process (min of each)")
    print("| size px | windows | bare predictor s (min; all) | infer (rasters) s (min; all) | ratio min/min | "
          "infer minus its model time s (min) | infer + vectorize s | peak RSS floor / rasters (median; all) / full MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        rat, ras, full, floor = by[("ratio", size)], by[("rasters", size)], by[("full", size)], by[("floor", size)]
        bares = "/".join(f"{b:.2f}" for b in rat["bare_s"])
        infers = "/".join(f"{t:.2f}" for t in rat["infer_s"])
        print(f"| {size}² | {rat['windows']} | {rat['forward_s']:.2f} ({bares}) | {rat['infer_min_s']:.2f} ({infers}) | "
              f"{rat['infer_min_s'] / rat['forward_s']:.3f} | {rat['nonmodel_s']:.2f} | {full['seconds']:.2f} | "
              f"{floor['maxrss_mb']:.0f} / {ras['maxrss_mb']:.0f} ({'/'.join(map(str, ras.get('maxrss_all_mb', [])))}) / "
              f"{full['maxrss_mb']:.0f} |")
    rat = by[("ratio", large)]
    ratio = rat["infer_min_s"] / rat["forward_s"]
    # load-robust cross-check: the bare time plus infer's own non-model time, over the bare time
    ratio_nm = (rat["forward_s"] + rat["nonmodel_s"]) / rat["forward_s"]
    growth = by[("rasters", large)]["maxrss_mb"] / by[("rasters", small)]["maxrss_mb"]
    growth_full = by[("full", large)]["maxrss_mb"] / by[("full", small)]["maxrss_mb"]
    area = (large / small) ** 2
    spread = (max(rat["bare_s"]) - min(rat["bare_s"])) / min(rat["bare_s"])
    print(f"\ntime ratio infer/bare at {large}² (same process, min/min): {ratio:.3f} (limit 1.15) -> "
          f"{'PASS' if ratio <= 1.15 else 'NOT MET'}; (bare + infer's non-model time) / bare: {ratio_nm:.3f}; "
          f"spread of the bare loops {spread:.1%} (load drift; above ~10% the ratio is not trustworthy)")
    print(f"peak RSS growth for {area:.0f}x area (rasters): {growth:.3f} (limit 1.2) -> "
          f"{'PASS' if growth <= 1.2 else 'NOT MET'}; with vectorisation: {growth_full:.3f} (not flat: see notes)")
    if not math.isfinite(ratio):
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, model, raster, out, batch, REPEATS = sys.argv
        REPEATS = int(REPEATS)
        print(json.dumps(child(mode, Path(model), Path(raster), Path(out), int(batch))))
    else:
        main()
