"""Benchmark the model backends: torch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 (+ torch bf16).

All figures come from ONE process and one run (the machine is shared: ratios, not absolute
times, are the result). For every backend, over the SAME windows:

* bare forward: the windows ``geodefect infer`` feeds the model (recorded from an untimed
  warm-up run of infer itself, so grid, padding and batch size are identical) pushed through
  the backend's predictor (normalisation, model, activations, back to numpy);
* end to end: ``geodefect infer`` in-process (``workflows.infer.infer``: read the recipe, load the
  model, read windows, predict, stitch, write; roads with ``--no-vectorize`` as in
  bench_infer.py), the model file being the .pt, the fp32 .onnx or the int8 .onnx.

Bare forwards are interleaved batch by batch across backends, end-to-end runs run by run
(torch, ort, int8, bf16, torch, ...), ``--repeats`` times; each figure is the min over repeats.
Ratios: speed-up of each backend vs torch fp32 (end to end and bare); each backend's end to end /
its own bare forward (the pipeline's overhead; target <= 1.15), and, robust to load drift between
the two, end to end / the seconds spent inside the model during that same infer run (min over runs).

Tasks (``--task``): ``roads`` (a GeoTIFF; default a random ResNet-34 LinkNet with both heads on a
synthetic scene, or ``--model``/``--raster``), ``crack`` (crack_deeplabv3plus on synthetic crack
photos) and ``rail`` (rail_vgg_fcn on synthetic rail strips), or, with ``--model`` and ``--images``, a
trained segmenter over the first ``--n-images`` real images of a folder; random weights unless
``--model``.
int8: ``--calibration CHIPS`` runs ``geodefect export --quantize int8`` with its quality gate (the
gate's validation numbers are printed); without it the int8 model is calibrated on the first 32
recorded windows (speed only, no gate).

Usage:
    .venv/bin/python benchmarks/bench_backends.py --task roads --threads 1
    .venv/bin/python benchmarks/bench_backends.py --task roads --model runs/roads/best.pt --calibration chips/
    .venv/bin/python benchmarks/bench_backends.py --task crack
    .venv/bin/python benchmarks/bench_backends.py --task rail
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


class Recorder:
    """A predictor wrapper that keeps every batch it is given (to replay the same windows)."""

    def __init__(self, inner, store: list) -> None:
        self.inner, self.store = inner, store

    def __call__(self, batch):
        self.store.append(np.array(batch, copy=True))
        return self.inner(batch)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Timer:
    """A predictor wrapper that adds up the seconds spent in the model (inside an infer run)."""

    def __init__(self, inner, clock: list) -> None:
        self.inner, self.clock = inner, clock

    def __call__(self, batch):
        t0 = time.perf_counter()
        out = self.inner(batch)
        self.clock[0] += time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def timed_infer(model: Path, inputs: list[Path], out: Path, overrides: dict) -> tuple[float, float]:
    """(end-to-end seconds, seconds inside the model) of one infer run."""
    import geodefect.inference.backends as backends

    clock = [0.0]
    original = backends.load_predictor
    backends.load_predictor = lambda *a, **k: Timer(original(*a, **k), clock)
    try:
        return run_infer(model, inputs, out, overrides), clock[0]
    finally:
        backends.load_predictor = original


def record_windows(model: Path, inputs: list[Path], out: Path, overrides: dict) -> list[np.ndarray]:
    """Run infer once (untimed) and return the batches its predictor saw."""
    import geodefect.inference.backends as backends

    store: list[np.ndarray] = []
    original = backends.load_predictor
    backends.load_predictor = lambda *a, **k: Recorder(original(*a, **k), store)
    try:
        run_infer(model, inputs, out, overrides)
    finally:
        backends.load_predictor = original
    return store


def run_infer(model: Path, inputs: list[Path], out: Path, overrides: dict) -> float:
    from geodefect.workflows.infer import infer

    t0 = time.perf_counter()
    infer(str(model), [str(p) for p in inputs], str(out), config_file=None, overrides=overrides, overwrite=True)
    return time.perf_counter() - t0


def bare(preds: dict, batches: list[np.ndarray]) -> dict[str, float]:
    """Seconds per backend over all batches, interleaved batch by batch (torch, ort, int8, torch, ...)
    so that a change of machine load hits every backend alike."""
    for p in preds.values():
        p(batches[0])  # warm-up (allocation, kernel choice), untimed
    total = dict.fromkeys(preds, 0.0)
    for b in batches:
        for k, p in preds.items():
            t0 = time.perf_counter()
            p(b)
            total[k] += time.perf_counter() - t0
    return total


def make_case(task: str, tmp: Path, args) -> tuple[Path, list[Path], dict]:
    """(model .pt, inputs, infer overrides) of a task."""
    if task == "roads":
        import bench_infer

        model = Path(args.model) if args.model else tmp / "roads.pt"
        if not args.model:
            bench_infer.make_model(model, encoder=args.encoder, window=args.window, stride=args.stride)
        raster = Path(args.raster) if args.raster else tmp / "scene.tif"
        if not args.raster:
            make_raster(raster, args.size, pixel_size_m=_recipe_pixel_size(model))
        overrides = {"vectorize": False, "batch_size": args.batch}
        if args.bands:
            overrides["bands"] = args.bands
        return model, [raster], overrides
    return _inspection_case(task, tmp, args)


def _recipe_pixel_size(model: Path) -> float:
    from geodefect.models.checkpoint import read_recipe

    return float(read_recipe(model).get("pixel_size_m") or 0.3)


def make_raster(path: Path, size_px: int, *, pixel_size_m: float) -> None:
    """bench_infer's synthetic scene (dark road grid on noise) at the model's pixel size (no resampling)."""
    import bench_infer
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(448000, 5412000, pixel_size_m, pixel_size_m),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(bench_infer.scene_rows(rng, 0, size_px, size_px))


def _inspection_case(task: str, tmp: Path, args):
    if args.model:  # a trained package over the first --n-images real images of --images
        if not args.images:
            raise SystemExit("--model with --task crack/rail needs --images (a folder of real images)")
        return Path(args.model), [_first_images(Path(args.images), tmp, args.n_images)], {"batch_size": args.batch}
    import torch

    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import build_model

    torch.manual_seed(0)
    if task == "crack":
        from geodefect.testing.cracks import make_crack_dataset

        data = make_crack_dataset(tmp / "cracks", n_images=args.n_images, height_px=448, width_px=448)
        name, kwargs, bands = "crack_deeplabv3plus", {"encoder": "resnet18"}, [1, 2, 3]
        recipe = {"task": "crack_segment", "size_px": 224, "chip_shape_px": [224, 224]}  # a segmenter's recipe
    else:
        from geodefect.testing.rail import make_rail_dataset

        data = make_rail_dataset(tmp / "rail", n_images=args.n_images, height_px=1000, width_px=160)
        name, kwargs, bands = "rail_vgg_fcn", {"width_mult": 0.5}, [1]
        recipe = {"task": "rail_segment", "size_px": 160, "chip_shape_px": [160, 160]}
    model = build_model(name, **kwargs).eval()
    norm = {"mean": [120.0] * len(bands), "std": [50.0] * len(bands)}
    path = model_path = tmp / f"{task}.pt"
    save_package(path, model=model, recipe={**recipe, "model": {"name": name, "kwargs": kwargs}, "bands": bands,
                                             "normalization": norm})
    return model_path, [data.images], {"batch_size": args.batch}


def _first_images(folder: Path, tmp: Path, n: int) -> Path:
    """A folder of links to the first ``n`` images of ``folder`` (sorted by name)."""
    from geodefect.inference.inspection import list_inputs

    out = tmp / "images"
    out.mkdir()
    for f in list_inputs([folder])[:n]:
        (out / f.name).symlink_to(f.resolve())
    return out


def export_models(model: Path, tmp: Path, batches: list[np.ndarray], args) -> tuple[Path, Path, dict | None]:
    from geodefect.workflows.export import export

    fp32 = tmp / "fp32.onnx"
    export(model, fp32, overwrite=True)
    int8 = tmp / "int8.onnx"
    if args.calibration:
        summary = export(model, int8, quantize="int8", calibration=args.calibration,
                         calibration_chips=args.calibration_chips, overwrite=True)
        return fp32, int8, summary["gate"]
    from geodefect.export.onnx_export import export_onnx, metadata_for, write_metadata
    from geodefect.export.quantize import quantize_int8
    from geodefect.inference.onnx_runtime import read_onnx_recipe
    from geodefect.models.checkpoint import load_package

    torch_model, torch_recipe = load_package(model)
    pre = tmp / "fp32-subpixel.onnx"  # what `geodefect export --quantize int8` quantizes
    export_onnx(torch_model, torch_recipe, pre, subpixel=True)
    tiles = np.concatenate(batches)[:32].astype(np.float32) / 255.0
    deferred = quantize_int8(pre, int8, tiles)
    recipe = read_onnx_recipe(fp32)
    recipe["onnx"]["precision"] = "int8"
    recipe["onnx"]["deferred_softmax"] = deferred
    write_metadata(int8, metadata_for(recipe, recipe["onnx"]["outputs"]))
    return fp32, int8, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["roads", "crack", "rail"], default="roads")
    ap.add_argument("--model", help="a .pt package instead of the random model")
    ap.add_argument("--raster", help="roads: a GeoTIFF instead of the synthetic scene")
    ap.add_argument("--images", help="crack/rail with --model: a folder of real images (the first --n-images are run)")
    ap.add_argument("--bands", help="roads: --bands for infer (e.g. 1,2,3 for a 4-band RGBA raster)")
    ap.add_argument("--calibration", help="chip folder: int8 through `geodefect export --quantize int8` and its gate")
    ap.add_argument("--calibration-chips", type=int, default=64)
    ap.add_argument("--size", type=int, default=1536, help="roads: synthetic raster side (px)")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--stride", type=int, default=384)
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--n-images", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    run(args)


def run(args) -> None:
    import os

    import torch

    os.environ["GEODEFECT_NO_PROGRESS"] = "1"

    from geodefect.alloc import tune_malloc
    from geodefect.inference.backends import cpu_bf16_supported, load_predictor

    tune_malloc()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as t:
        tmp = Path(t)
        model, inputs, overrides = make_case(args.task, tmp, args)
        overrides = {**overrides, "threads": args.threads, "device": "cpu"}
        batches = record_windows(model, inputs, tmp / "warm", overrides)
        fp32, int8, gate = export_models(model, tmp, batches, args)
        files = {"torch fp32": (model, "torch"), "ort fp32": (fp32, "onnxruntime"), "ort int8": (int8, "onnxruntime")}
        if cpu_bf16_supported():
            files["torch bf16"] = (model, "torch-bf16")
        preds = {k: load_predictor(p, backend=b, device="cpu", threads=args.threads) for k, (p, b) in files.items()}
        bf16_err = _max_diff(preds, batches[0], "torch bf16") if "torch bf16" in preds else None
        int8_err = _max_diff(preds, batches[0], "ort int8")
        times = {k: {"bare": [], "e2e": [], "model_in_e2e": []} for k in files}
        for _ in range(args.repeats):
            for k, t_bare in bare(preds, batches).items():
                times[k]["bare"].append(t_bare)
            for k, (p, b) in files.items():
                e2e, model_s = timed_infer(p, inputs, tmp / "out", {**overrides, "backend": b})
                times[k]["e2e"].append(e2e)
                times[k]["model_in_e2e"].append(e2e / model_s)
    report(args, batches, times, gate, bf16_err, int8_err)


def _max_diff(preds: dict, batch: np.ndarray, key: str) -> float:
    """Max |probability difference| to torch fp32 over every output (the softmax of an output the
    predictor leaves to the engine, ``deferred_softmax``, taken here)."""
    ref, got = preds["torch fp32"](batch), preds[key](batch)
    for k in getattr(preds[key], "deferred_softmax", ()):
        e = np.exp(got[k] - got[k].max(axis=1, keepdims=True))
        got[k] = e / e.sum(axis=1, keepdims=True)
    return max(float(np.abs(ref[k] - got[k]).max()) for k in ref)


def report(args, batches, times, gate, bf16_err, int8_err) -> None:
    n_tiles = sum(len(b) for b in batches)
    best = {k: {m: min(v) for m, v in d.items()} for k, d in times.items()}
    ref = best["torch fp32"]
    print(f"task {args.task}, {n_tiles} windows of {batches[0].shape[2]} px, {args.threads} thread(s), "
          f"min of {args.repeats} interleaved runs")
    print("| backend | bare s/tile | infer e2e s | speed-up bare | speed-up e2e | e2e / own bare | e2e / model time in the run |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for k, b in best.items():
        rows[k] = {"bare_s_per_tile": b["bare"] / n_tiles, "e2e_s": b["e2e"], "speedup_bare": ref["bare"] / b["bare"],
                   "speedup_e2e": ref["e2e"] / b["e2e"], "e2e_over_bare": b["e2e"] / b["bare"],
                   "e2e_over_model_in_run": b["model_in_e2e"]}
        r = rows[k]
        print(f"| {k} | {r['bare_s_per_tile']:.3f} | {r['e2e_s']:.2f} | {r['speedup_bare']:.2f} | "
              f"{r['speedup_e2e']:.2f} | {r['e2e_over_bare']:.3f} | {r['e2e_over_model_in_run']:.3f} |")
    print(f"max |int8 - torch| probability on one batch: {int8_err:.3f}")
    if bf16_err is not None:
        print(f"max |bf16 - fp32| probability on one batch: {bf16_err:.4f}")
    if gate:
        print(f"int8 gate: {json.dumps(gate)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "gate": gate, "bf16_err": bf16_err, "int8_err": int8_err,
                                               "n_tiles": n_tiles, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
