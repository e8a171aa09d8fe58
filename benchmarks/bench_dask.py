"""Benchmark ``geodefect infer --scheduler``: Dask throughput and overhead against one process.

Measured in one run, over the same images (``--images`` synthetic scenes of ``--size`` px with a
randomly initialised ``road_linknet``; its speed is what matters, not its quality):

1. throughput: ``--scheduler processes:2`` (two one-thread workers) / ``local --threads 1``:
   target >= 1.7x on a 2-core machine (the limit is 2x);
2. overhead: ``--scheduler processes:1`` / ``local --threads 1`` on the same work: target <= 1.1x.

Each configuration runs ``--repeats`` times as a fresh ``geodefect infer`` process (cluster start
included: that is what a user pays), interleaved, and the minimum is compared: on a shared
machine interference only ever adds time. Python imports are included on both sides.

Usage:
    .venv/bin/python benchmarks/bench_dask.py                      # 4 images of 1024 px
    .venv/bin/python benchmarks/bench_dask.py --images 8 --size 2048 --repeats 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(root: Path, *, n_images: int, size_px: int, encoder: str) -> tuple[Path, list[Path]]:
    import torch

    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import build_model
    from geodefect.testing.scenes import make_road_scene

    torch.manual_seed(0)
    kwargs = {"encoder": encoder, "in_channels": 3, "n_classes": 19}
    model = build_model("road_linknet", **kwargs)
    recipe = {"task": "roads", "model": {"name": "road_linknet", "kwargs": kwargs}, "bands": [1, 2, 3],
              "normalization": {"mean": [128.0] * 3, "std": [40.0] * 3}, "size_px": 512, "stride_px": 384,
              "pixel_size_m": 0.3, "orientation": {"bin_deg": 20, "n_classes": 19}, "road_threshold": 0.5}
    model_path = root / "model.pt"
    save_package(model_path, model=model, recipe=recipe)
    images = [make_road_scene(root / f"scene{i}", size_px=size_px, seed=i).image for i in range(n_images)]
    return model_path, images


def run_infer(model: Path, images: list[Path], out: Path, scheduler: str) -> float:
    cmd = [sys.executable, "-m", "geodefect.cli.main", "infer", str(model), *map(str, images), "-o", str(out),
           "--threads", "1", "--no-vectorize", "--scheduler", scheduler, "-q", "--overwrite"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--encoder", default="resnet18")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, images = make_inputs(root, n_images=args.images, size_px=args.size, encoder=args.encoder)
        times: dict[str, list[float]] = {"local": [], "processes:1": [], "processes:2": []}
        for _ in range(args.repeats):
            for scheduler in times:
                times[scheduler].append(run_infer(model, images, root / "out", scheduler))
                print(f"{scheduler:12s} {times[scheduler][-1]:7.2f} s", flush=True)
    best = {k: min(v) for k, v in times.items()}
    print(f"\n{args.images} images of {args.size} px, {args.encoder}, min of {args.repeats} runs:")
    for k, v in best.items():
        print(f"  {k:12s} {v:7.2f} s")
    print(f"throughput processes:2 / local: {best['local'] / best['processes:2']:.2f}x (target >= 1.7)")
    print(f"overhead processes:1 / local:   {best['processes:1'] / best['local']:.2f}x (target <= 1.1)")


if __name__ == "__main__":
    main()
