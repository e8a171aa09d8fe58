"""Peak memory of ``infer`` + vectorise end to end vs area, with tiled and whole vectorisation.

Each run is a fresh subprocess calling ``geodefect.inference.roads.infer`` (read windows,
predict, stitch, write the three COGs, vectorise, write roads.gpkg) on one GeoTIFF; its peak
RSS is its ``VmHWM`` (not ``ru_maxrss``, which Linux carries over from the parent through exec).
A subprocess that imports, loads the model and runs a 64 px raster end to end gives the floor.

The model is a fixed 1x1 convolution (dark pixels are road, orientation bin 1 everywhere, as
the tests' model), so that model time is small and the figures are about the pipeline; the
scene is the demo generator's carriageway mask (``make_road_scene``, ``--base-px``, seed 1)
drawn dark (40) on noise (110..190), tiled k x k for k = 1, 2, 4 (1x, 4x, 16x the area).
Vectorisation: ``--vector-block-px`` (tiled; the AOI box is larger than one block at every size)
and, with ``--whole``, 0 (the whole-raster path). Target: tiled peak RSS at 16x <= 1.2x of 1x.

With ``--dask-workers N`` the runs go to a LocalCluster of N one-thread workers started here
(``--scheduler tcp://...``, work units of ``--unit-block-px``); each worker's peak RSS is read from
the workers after the run (the cluster is restarted between runs), beside the client's.

Usage:
    python benchmarks/bench_infer_vectorize_memory.py --base-px 2048 --vector-block-px 1024 --whole
    python benchmarks/bench_infer_vectorize_memory.py --base-px 2048 --dask-workers 2 --unit-block-px 2048
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from geodefect.testing.dark_roads import N_ORIENT, build_dark_roads


def register() -> None:
    from geodefect.models.registry import _REGISTRY, register_model

    if "_bench_dark_roads" not in _REGISTRY:
        register_model("_bench_dark_roads")(build_dark_roads)


def make_model(path: Path) -> Path:
    from geodefect.models.checkpoint import save_package

    register()
    recipe = {"task": "roads", "model": {"name": "_bench_dark_roads", "kwargs": {"in_channels": 3}},
              "bands": [1, 2, 3], "normalization": {"mean": [0.0] * 3, "std": [255.0] * 3},
              "size_px": 512, "stride_px": 384, "pixel_size_m": 0.3,
              "orientation": {"bin_deg": 20, "n_classes": N_ORIENT}}
    save_package(path, model=build_dark_roads(), recipe=recipe)
    return path


def base_mask(base_px: int) -> np.ndarray:
    import rasterio

    from geodefect.testing.scenes import make_road_scene

    with tempfile.TemporaryDirectory() as tmp:
        scene = make_road_scene(tmp, size_px=base_px, seed=1)
        with rasterio.open(scene.road_mask) as ds:
            return ds.read(1).astype(bool)


def write_scene(mask: np.ndarray, k: int, path: Path) -> Path:
    """``mask`` drawn dark on noise, tiled k x k, as an uncompressed tiled GeoTIFF (one tile at a time)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    n = mask.shape[0]
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=n * k, height=n * k, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(448000, 5412000, 0.3, 0.3),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        for i in range(k):
            for j in range(k):
                img = rng.integers(110, 190, (3, n, n), dtype=np.uint8)
                img[:, mask] = 40
                dst.write(img, window=Window(j * n, i * n, n, n))
    return path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(model: Path, raster: Path, out: Path, block_px: int, scheduler: str = "local", unit_block_px: int = 4096,
          max_memory_mb: float = 256.0) -> dict:
    from geodefect.alloc import tune_malloc
    from geodefect.workflows.infer import infer

    tune_malloc()  # as the CLI does at start-up
    register()
    overrides = {"vector_block_px": block_px, "device": "cpu", "threads": 1, "batch_size": 8,
                 "scheduler": scheduler, "block_px": unit_block_px, "max_memory_mb": max_memory_mb}
    t0 = time.perf_counter()
    image = infer(model, [raster], out, overrides=overrides).data["images"][0]
    return {"seconds": round(time.perf_counter() - t0, 1), "timings": image["timings_s"], "road_km": image["road_km"],
            "n_edges": image["n_edges"], "blocks": image["graph_stats"].get("vector_blocks", 0),
            "maxrss_mb": round(peak_rss_mb(), 1)}


def run_child(model: Path, raster: Path, out: Path, block_px: int, client=None, unit_block_px: int = 4096,
              max_memory_mb: float = 256.0) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", GEODEFECT_NO_PROGRESS="1")
    cmd = [sys.executable, __file__, "--child", str(model), str(raster), str(out), "--vector-block-px", str(block_px),
           "--max-memory-mb", str(max_memory_mb), "--unit-block-px", str(unit_block_px)]
    if client is not None:
        cmd += ["--scheduler", client.scheduler.address]
    stdout = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(stdout.strip().splitlines()[-1])
    if client is not None:  # each worker's peak, then fresh workers for the next run
        result["worker_maxrss_mb"] = round(max(client.run(peak_rss_mb).values()), 1)
        client.restart()
        client.run(register)
    return result


def open_cluster(n_workers: int):
    """A LocalCluster as ``--scheduler processes:N`` makes it, and a client to it (or (None, None))."""
    if not n_workers:
        return None, None
    from dask.distributed import Client, LocalCluster

    from geodefect.distributed import worker_env

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=worker_env(n_workers))
    client = Client(cluster)
    client.run(register)
    return cluster, client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-px", type=int, default=2048, help="side of the 1x scene")
    ap.add_argument("--vector-block-px", type=int, default=1024)
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="k: the scene tiled k x k")
    ap.add_argument("--whole", action="store_true", help="also run with the whole-raster vectoriser")
    ap.add_argument("--work", type=Path, default=None, help="folder for the rasters (default: a temp dir)")
    ap.add_argument("--dask-workers", type=int, default=0, help="run on a LocalCluster of this many workers")
    ap.add_argument("--unit-block-px", type=int, default=4096, help="infer --block-px (work units; 0: one pass)")
    ap.add_argument("--max-memory-mb", type=float, default=256.0, help="infer --max-memory-mb (the stitcher's strips)")
    ap.add_argument("--scheduler", default="local", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*map(Path, args.child), args.vector_block_px, args.scheduler, args.unit_block_px,
                               args.max_memory_mb)))
        return
    cluster, client = open_cluster(args.dask_workers)
    try:
        run_all(args, client)
    finally:
        if client is not None:
            client.close()
            cluster.close()


def run_all(args, client) -> None:
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model.pt")
        mask = base_mask(args.base_px)
        floor = run_child(model, write_scene(mask[:64, :64], 1, tmp / "floor.tif"), tmp / "out_floor", 0, client,
                          args.unit_block_px, args.max_memory_mb)
        print(f"floor (imports, model, a 64 px raster end to end): {floor['maxrss_mb']} MB", flush=True)
        rows = []
        for k in args.factors:
            raster = write_scene(mask, k, tmp / f"scene_{k}.tif")
            for label, block in (("tiled", args.vector_block_px), ("whole", 0)) if args.whole else (("tiled", args.vector_block_px),):
                res = run_child(model, raster, tmp / f"out_{k}_{label}", block, client, args.unit_block_px,
                                args.max_memory_mb)
                rows.append((k * k, label, res))
                workers = f" (workers {res['worker_maxrss_mb']:.1f} MB)" if "worker_maxrss_mb" in res else ""
                print(f"{k * k:>3}x area ({args.base_px * k} px): {label:5s} peak RSS {res['maxrss_mb']:7.1f} MB{workers}, "
                      f"{res['seconds']:6.1f} s (vectorise {res['timings'].get('vectorize')} s), {res['road_km']} km, "
                      f"{res['n_edges']} edges, {res['blocks']} blocks", flush=True)
            raster.unlink()
        for label in ("tiled", "whole"):
            mine = [(a, r["maxrss_mb"]) for a, name, r in rows if name == label]
            workers = [r["worker_maxrss_mb"] for _, name, r in rows if name == label and "worker_maxrss_mb" in r]
            if len(workers) > 1:
                print(f"{label}: worker peak RSS vs the smallest: " + ", ".join(f"{m / workers[0]:.3f}" for m in workers))
            if len(mine) > 1:
                print(f"{label}: peak RSS vs the smallest: " + ", ".join(f"{a}x area {m / mine[0][1]:.3f}" for a, m in mine)
                      + "; above the floor: " + ", ".join(f"{m - floor['maxrss_mb']:.0f} MB" for _, m in mine))


if __name__ == "__main__":
    main()
