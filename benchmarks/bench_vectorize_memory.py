"""Peak memory of road vectorisation vs area: tiled (``graph/tiled.py``) and whole-raster.

What is measured: vectorisation alone, from the probability raster exactly as ``geodefect infer``
hands it over (a float32 ``.npy`` memory map on disk, NaN outside the AOI), because inference
itself already streams in bounded memory (bench_infer.py: peak RSS 1.05-1.07x for 4x the area).
Each run is a fresh subprocess; its peak RSS is its ``VmHWM`` (imports included, the same for
every size; not ``ru_maxrss``, which Linux carries over from the parent through exec). A subprocess that only imports and vectorises a 64 px raster gives the floor.

The scene: the demo's synthetic road scene (``make_road_scene``, ``--base-px``, seed 1), its
carriageway mask blurred into probabilities (sigma 2 px) with NaN outside a disc, tiled k x k
for k = 1, 2, 4 (1x, 4x and 16x the area). Target: tiled peak RSS at 16x <= 1.2x of 1x.

Usage:
    python benchmarks/bench_vectorize_memory.py                       # base 2048 px, blocks of 1024
    python benchmarks/bench_vectorize_memory.py --base-px 1024 --block-px 512 --whole
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def base_probability(base_px: int) -> np.ndarray:
    import rasterio
    from scipy import ndimage

    from geodefect.testing.scenes import make_road_scene

    with tempfile.TemporaryDirectory() as tmp:
        scene = make_road_scene(tmp, size_px=base_px, seed=1)
        with rasterio.open(scene.road_mask) as ds:
            mask = ds.read(1).astype(np.float32)
    prob = ndimage.gaussian_filter(mask, 2.0)
    rr, cc = np.ogrid[:base_px, :base_px]
    prob[(rr - base_px / 2) ** 2 + (cc - base_px / 2) ** 2 > (0.55 * base_px) ** 2] = np.nan  # corners outside the AOI
    return prob


def write_tiled(prob: np.ndarray, k: int, path: Path) -> Path:
    """``prob`` tiled k x k into a float32 .npy, one tile at a time."""
    n = prob.shape[0]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n * k, n * k))
    for i in range(k):
        for j in range(k):
            out[i * n : (i + 1) * n, j * n : (j + 1) * n] = prob
    out.flush()
    del out
    return path


def child(mode: str, npy: Path, block_px: int) -> dict:
    from affine import Affine

    from geodefect.alloc import tune_malloc
    from geodefect.graph.tiled import vectorize_probability_tiled
    from geodefect.graph.vectorize import vectorize_road_probability

    tune_malloc()  # as the CLI does at start-up
    result: dict = {"mode": mode}
    if mode == "floor":  # every module the vectoriser imports lazily, on a 64 px raster
        prob = np.zeros((64, 64), np.float32)
        prob[30:34] = 1.0
        vectorize_probability_tiled(prob, Affine(0.3, 0, 0, 0, -0.3, 0), crs="EPSG:32631", block_px=64)
    else:
        prob = np.load(npy, mmap_mode="r")  # as RoadBlockWriter.vector_inputs() gives it
        transform = Affine(0.3, 0, 448000.0, 0, -0.3, 5412000.0)
        t0 = time.perf_counter()
        if mode == "tiled":
            net = vectorize_probability_tiled(prob, transform, crs="EPSG:32631", block_px=block_px)
        else:
            net = vectorize_road_probability(prob, transform, crs="EPSG:32631")
        result.update(seconds=round(time.perf_counter() - t0, 2), road_km=round(net.total_length_m / 1000, 3),
                      n_edges=net.n_edges, shape=list(prob.shape))
    result["maxrss_mb"] = round(peak_rss_mb(), 1)
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (``ru_maxrss`` would keep the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mode: str, npy: Path, block_px: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", GEODEFECT_NO_PROGRESS="1")
    cmd = [sys.executable, __file__, "--child", mode, "--npy", str(npy), "--block-px", str(block_px)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-px", type=int, default=2048, help="side of the 1x scene")
    ap.add_argument("--block-px", type=int, default=1024, help="core block side of the tiled path")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="k: the scene tiled k x k")
    ap.add_argument("--whole", action="store_true", help="also run the whole-raster path (its memory grows)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the .npy files (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--npy", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.npy, args.block_px)))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        prob = base_probability(args.base_px)
        floor = run_child("floor", Path(tmp) / "none.npy", args.block_px)
        print(f"floor (imports + a 64 px raster): {floor['maxrss_mb']} MB", flush=True)
        rows = []
        for k in args.factors:
            npy = write_tiled(prob, k, Path(tmp) / f"prob_{k}.npy")
            for mode in ("tiled", "whole") if args.whole else ("tiled",):
                res = run_child(mode, npy, args.block_px)
                rows.append((k * k, res))
                print(f"{k * k:>3}x area {res['shape']}: {mode:5s} peak RSS {res['maxrss_mb']:7.1f} MB, "
                      f"{res['seconds']:6.1f} s, {res['road_km']} km, {res['n_edges']} edges", flush=True)
            npy.unlink()
        for mode in ("tiled", "whole"):
            mine = [(a, r["maxrss_mb"]) for a, r in rows if r["mode"] == mode]
            if len(mine) > 1:
                f0 = floor["maxrss_mb"]
                print(f"{mode}: peak RSS vs the smallest: " + ", ".join(f"{a}x area {m / mine[0][1]:.3f}" for a, m in mine)
                      + "; above the floor: " + ", ".join(f"{m - f0:.0f} MB" for _, m in mine))


if __name__ == "__main__":
    main()
