"""``geodefect infer`` for road models: GeoTIFF(s) + AOI -> probability rasters -> road network.

Per image (the raster's CRS; nothing outside the AOI)::

    road_prob.tif     COG, uint8: probability × 254 (0..254), nodata 255 outside the AOI;
                      GDAL scale 1/254 so tools that apply scales read probabilities
    road_mask.tif     COG, uint8: 1 road (prob >= threshold), 0 background, 255 outside the AOI
    orientation.tif   COG, uint8: orientation bin 1..360/bin_deg on road pixels, 0 elsewhere,
                      255 outside the AOI (argmax of the stitched bin probabilities)
    roads.gpkg        layers ``roads`` and ``nodes`` (+ QGIS layer styles)
    graph.graphml     the same graph, node x/y in the CRS

One IMAGE writes into OUT_DIR; several write one subfolder per image (named after the file)
and a top-level ``run.json``. OUT_DIR is built under a temporary name and renamed when
complete; an existing OUT_DIR needs ``overwrite=True``.

Memory: the engine yields finished blocks that are written and dropped. The vectoriser needs
the AOI's probability (and orientation) as arrays: they are kept in memory-mapped files in the
temporary folder (float32 probability; float16 orientation bins of the road pixels only), not
in RAM. The orientation bins are summed on road pixels only, too (a ``Gate`` on the road output).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.errors import ConfigError, InputError
from geodefect.inference.road_jobs import ImageJob, prepare_jobs
from geodefect.sliding.threads import usable_cpus  # (module attribute: tests replace it)

#: GDAL block cache during inference, in BYTES: rasterio.Env sets GDAL_CACHEMAX with
#: GDALSetCacheMax64, so a bare 128 meant 128 bytes (every read thrashed; a pan-sharpened VRT read
#: through the resampling WarpedVRT took 180 s instead of 0.14 s per window)
GDAL_CACHE_BYTES = 128 * 2**20
#: stitched blocks queued for the writer thread while the model goes on (0: write inline); used
#: only where the writer has a core of its own (see :func:`write_behind_blocks`)
WRITE_BEHIND_BLOCKS = 2


@dataclass(frozen=True)
class RoadInferConfig:
    """Options of road inference (vectorisation options: :class:`geodefect.graph.vectorize.VectorizeParams`).

    Attributes:
        aoi: vector file of the area of interest (any CRS); None = the whole raster.
        size_px, stride_px: window size and stride (default: the model package's).
        batch_size: windows per forward pass.
        blend: ``hann`` | ``crop`` | ``mean`` (see geodefect.sliding.blend).
        tta: flip test-time augmentation (4 forward passes per window).
        tta_merge: ``mean`` | ``max``.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        bands: source bands to feed the model, e.g. ``"1,2,3"`` (default: all, if the count matches).
        resample: resample on the fly when the pixel size differs from the model's by > 10 %.
        max_memory_mb: budget of the stitching buffers.
        vectorize: build roads.gpkg and graph.graphml.
        vector_block_px: vectorise in blocks of this many pixels (a halo round each, joined at the
            seams; memory bounded by the block) when the AOI's box is larger than one block;
            smaller boxes are vectorised whole. 0 = always whole (memory grows with the area).
        scheduler: local (this process), processes:N (a Dask LocalCluster of N one-thread
            workers) or a Dask scheduler address tcp://HOST:PORT; one work unit per image (or
            per block, see block_px); finished units are kept and skipped when the command is rerun.
        block_px: a raster larger than this is cut into work units of blocks of about this many
            pixels (a multiple of the stride), each with the windows that reach into it; the
            results are the same as one unit per raster. ``local`` runs them one after the other
            in this process (resumable from finished blocks). 0 = one unit per raster.
        backend, threads: model backend (``auto`` = the file's: .pt torch, .onnx onnxruntime) and
            CPU threads (see :func:`geodefect.inference.backends.load_predictor`).
    """

    aoi: str | None = None
    size_px: int | None = None
    stride_px: int | None = None
    batch_size: int = 8
    blend: str = "hann"
    tta: bool = False
    tta_merge: str = "mean"
    device: str = "auto"
    bands: str | None = None
    resample: bool = True
    max_memory_mb: float = 256.0
    vectorize: bool = True
    vector_block_px: int = 4096
    scheduler: str = "local"
    block_px: int = 4096
    backend: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vector_block_px, int) or not (self.vector_block_px == 0 or self.vector_block_px >= 64):
            raise ConfigError(f"`vector_block_px` must be 0 (vectorise whole) or at least 64 pixels, got {self.vector_block_px!r}")
        if not isinstance(self.block_px, int) or not (self.block_px == 0 or self.block_px >= 64):
            raise ConfigError(f"`block_px` must be 0 (one work unit per raster) or at least 64 pixels, got {self.block_px!r}")


def resolve_infer_config(config_file=None, overrides: dict | None = None, *, recipe: dict | None = None):
    """``(RoadInferConfig, VectorizeParams)`` from defaults <- YAML <- overrides; unknown keys list both sets.

    The road threshold defaults to the package's ``road_threshold`` (chosen at training) when set.
    """
    from geodefect.config import load_yaml, resolve_config
    from geodefect.graph.vectorize import VectorizeParams

    mine = {f.name for f in dataclasses.fields(RoadInferConfig)}
    theirs = {f.name for f in dataclasses.fields(VectorizeParams)}
    merged: dict[str, Any] = {}
    for source, data in (("config file", load_yaml(config_file) if config_file else {}), ("options", overrides or {})):
        unknown = sorted(set(data) - mine - theirs)
        if unknown:
            raise ConfigError(
                f"unknown {source} key(s) {', '.join(unknown)} for road inference; valid keys: "
                f"{', '.join(sorted(mine | theirs))}"
            )
        merged.update({k: v for k, v in data.items() if v is not None})
    if "threshold" not in merged and (recipe or {}).get("road_threshold"):
        merged["threshold"] = float(recipe["road_threshold"])
    cfg = resolve_config(RoadInferConfig, None, {k: v for k, v in merged.items() if k in mine})
    vparams = resolve_config(VectorizeParams, None, {k: v for k, v in merged.items() if k in theirs})
    return cfg, vparams


def sliding_params(cfg: RoadInferConfig, recipe: dict):
    """Window size / stride from the options, else from the model package.

    The default stride is the package's when it overlaps windows (stride < size) and the size is
    the package's; otherwise 3/4 of the window, so that a quarter of each window is blended
    (ArcGIS's tile/4 padding) — a stride equal to the size would leave seams.
    """
    from geodefect.sliding import SlidingParams

    size = int(cfg.size_px or recipe.get("size_px") or 512)
    stride = cfg.stride_px
    if stride is None:  # the package's stride, unless it leaves no overlap to blend (then tile/4 overlap)
        stride = recipe.get("stride_px") or size
        if stride >= size or size != recipe.get("size_px"):
            stride = max(1, size * 3 // 4)
    return SlidingParams(
        size_px=int(size), stride_px=int(stride), batch_size=cfg.batch_size, blend=cfg.blend,
        tta=cfg.tta, tta_merge=cfg.tta_merge, max_memory_mb=cfg.max_memory_mb,
        held_blocks=write_behind_blocks(cfg.device) + 1,  # the queue + the block being handed over
        predict_ahead=forward_ahead(cfg, recipe),
    )


def write_behind_blocks(device: str | None) -> int:
    """How many stitched blocks to queue for a writer thread: :data:`WRITE_BEHIND_BLOCKS` when the
    writer has a core the model does not use (a CUDA model, or more CPUs than torch threads),
    else 0 (write inline). On a 2-core CPU, where torch's 2 threads use both cores, a writer
    thread slowed the forward as much as it saved (ratio to the bare model, mean of 6 pairs of
    runs: 1.143 inline, 1.155 with the thread; BENCHMARKS.md)."""
    import torch

    if WRITE_BEHIND_BLOCKS <= 0:
        return 0
    return WRITE_BEHIND_BLOCKS if _on_gpu(device) or usable_cpus() > torch.get_num_threads() else 0


def forward_ahead(cfg: RoadInferConfig, recipe: dict) -> bool:
    """Whether the next forward runs on a helper thread while a batch is stitched (``predict_ahead``):
    where the model leaves a core free (:func:`write_behind_blocks`) on a GPU or in ONNX Runtime
    (an ``.onnx`` recipe). A torch CPU forward gained nothing on a thread (BENCHMARKS.md, backends)."""
    return write_behind_blocks(cfg.device) > 0 and (_on_gpu(cfg.device) or "onnx" in recipe)


def _on_gpu(device: str | None) -> bool:
    from geodefect.inference.predictor import resolve_device

    try:
        return resolve_device(device).startswith("cuda")
    except InputError:  # reported where the model is loaded
        return False


def used_orientation(recipe: dict) -> dict:
    """The recipe's orientation bins, or ``{}`` for a road-only model (``orientation_trained``
    false: trained with ``orientation_weight`` 0, its orientation head was never trained)."""
    if recipe.get("orientation_trained") is False:
        return {}
    return recipe.get("orientation") or {}


def orientation_flip_remap(n_classes: int, bin_deg: float):
    """TTA remap of orientation-bin probabilities predicted on a flipped input.

    Horizontal flip: θ -> 180° - θ; vertical: θ -> -θ; both: θ + 180°. The bin lookup tables
    are the training augmentation's (:class:`geodefect.datasets.transforms.DihedralTransform`,
    through bin centres: exact for the 180° turn, one bin off only for angles exactly on a bin
    edge for the flips). Channel 0 (background) stays. Each flip is its own inverse, so the
    same table maps the flipped frame back.
    """
    from geodefect.datasets.transforms import DihedralTransform

    step = int(bin_deg)
    transforms = {"h": DihedralTransform(True, 0), "v": DihedralTransform(True, 2), "hv": DihedralTransform(False, 2)}
    luts = {flip: t.bin_lut(step).astype(np.int64)[:n_classes] for flip, t in transforms.items()}

    def remap(probs: np.ndarray, flip: str) -> np.ndarray:
        out = np.empty_like(probs)
        out[:, luts[flip]] = probs  # channel j of the flipped frame is channel lut[j] of the original
        return out

    return remap


def infer(model_path, inputs, out_dir, *, recipe: dict, config_file=None, overrides: dict | None = None,
          overwrite: bool = False) -> dict:
    """Run road inference on ``inputs`` (GeoTIFFs) and write OUT_DIR (see module docstring).

    Every input is checked before any prediction (CRS, bands, pixel size, AOI overlap).

    Returns:
        The run summary (also written to ``OUT_DIR/run.json``).
    """
    import rasterio

    # GDAL's block cache (default 5 % of RAM) would otherwise fill with dirty output tiles
    # as the raster grows; it only needs a band of tiles. (Takes effect when this is the
    # process's first GDAL I/O, as in the CLI.)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _infer(model_path, inputs, out_dir, recipe=recipe, config_file=config_file,
                      overrides=overrides, overwrite=overwrite)


def _infer(model_path, inputs, out_dir, *, recipe, config_file, overrides, overwrite) -> dict:
    from geodefect.io.atomic import atomic_dir, check_output_free

    t0 = time.perf_counter()
    cfg, vparams = resolve_infer_config(config_file, overrides, recipe=recipe)
    out_dir = Path(out_dir)
    check_output_free(out_dir, overwrite=overwrite)
    params = sliding_params(cfg, recipe)
    inputs = [Path(p) for p in inputs]
    jobs = prepare_jobs(inputs, recipe, cfg, params)
    from geodefect.inference import roads_dask

    if roads_dask.needs_blocks(jobs, cfg):  # bounded memory and resumable: the Dask path's units, run here
        return roads_dask.infer_distributed(model_path, inputs, out_dir, jobs=jobs, recipe=recipe, cfg=cfg,
                                            vparams=vparams, params=params, overwrite=overwrite, t0=t0)
    try:
        from geodefect.inference.backends import load_predictor

        predictor = load_predictor(model_path, recipe, backend=cfg.backend, device=cfg.device, threads=cfg.threads)
        if hasattr(predictor, "check_window"):  # ONNX graphs have a fixed tile size
            predictor.check_window(params.size_px)
        images = []
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            several = len(inputs) > 1  # the layout follows the command line, not how many overlap the AOI
            for job in jobs:
                dest = tmp / job.name if several else tmp
                images.append(run_image(job, predictor, params, cfg, vparams, recipe, dest))
                images[-1]["folder"] = job.name if several else "."
            summary = _summary(model_path, recipe, cfg, vparams, params, images, t0, predictor.device)
            summary["backend"] = predictor.backend
            summary["out_dir"] = str(out_dir)
            (tmp / "run.json").write_text(json.dumps(summary, indent=2, default=str))
        summary["text"] = format_summary(summary)
    finally:
        for job in jobs:
            job.reader.close()
    return summary


def run_image(job: ImageJob, predictor, params, cfg: RoadInferConfig, vparams, recipe: dict, dest: Path) -> dict:
    """Predict one image, write its rasters, vectorise; returns its summary entry."""
    from geodefect.alloc import release_free_memory
    from geodefect.io.pansharpen import display_path

    dest.mkdir(parents=True, exist_ok=True)
    from geodefect.inference.predictor import TimedPredictor

    timer = TimedPredictor(predictor)
    t0 = time.perf_counter()
    writer = road_writer(job, dest, cfg, vparams, recipe)
    n_windows = _predict_blocks(job, timer, params, writer, recipe)
    t_pred = time.perf_counter() - t0
    release_free_memory()  # what prediction freed goes back before GDAL writes the COGs
    paths = writer.publish(source=job.source_grid)
    t_write = time.perf_counter() - t0 - t_pred
    entry = {
        "image": display_path(job.path),  # the PAN file, not the /vsimem VRT, for pan-sharpened inputs
        "outputs": sorted(p.name for p in paths.values()),
        "windows": n_windows, "area_km2": writer.area_km2(),
        "timings_s": {"predict": round(t_pred, 3), "model": round(timer.seconds, 3), "write_rasters": round(t_write, 3)},
    }
    if writer.vectorize_enabled:
        entry.update(_vectorize(writer, vparams, dest, block_px=cfg.vector_block_px))
        if job.aoi is not None:  # what was processed, beside what was found
            from geodefect.io.qgis_styles import write_aoi_layer

            write_aoi_layer(dest / "roads.gpkg", job.aoi, job.reader.crs)
        entry["timings_s"]["vectorize"] = round(time.perf_counter() - t0 - t_pred - t_write, 3)
    writer.cleanup()
    return entry


def road_writer(job: ImageJob, dest: Path, cfg: RoadInferConfig, vparams, recipe: dict, *, core=None):
    """The :class:`~geodefect.inference.road_outputs.RoadBlockWriter` of ``job`` into ``dest``
    (``core``: only that window of the raster, a block work unit's)."""
    from geodefect.inference.road_outputs import RoadBlockWriter

    orient = used_orientation(recipe)
    return RoadBlockWriter(dest, job.reader, job.windows, threshold=vparams.threshold, bin_deg=orient.get("bin_deg"),
                           n_orientation=orient.get("n_classes"), vectorize=cfg.vectorize, core=core)


def _predict_blocks(job: ImageJob, predictor, params, writer, recipe: dict) -> int:
    from geodefect.progress import progress
    from geodefect.sliding import Gate, iter_blocks
    from geodefect.sliding.threads import OrderedWorker

    orient = used_orientation(recipe)
    remap = None
    if params.tta and orient.get("n_classes") and orient.get("bin_deg"):
        remap = {"orientation": orientation_flip_remap(int(orient["n_classes"]), float(orient["bin_deg"]))}
    # the orientation bins are only used on road pixels (orientation.tif, the vectoriser's end
    # directions): summed there only, not over every pixel (19 of the 20 channels stitched)
    gates = {"orientation": Gate("road", writer.threshold)} if writer.n_orientation else None
    wins = job.windows.windows
    with progress(total=len(wins), desc=f"infer {job.path.name}", unit="win") as bar:
        def size_bar(plan) -> None:
            bar.total = plan.n_predictions
            bar.refresh()

        # where the writer has a core of its own (write_behind_blocks), blocks are encoded and
        # written on a helper thread while the model predicts the next windows (OrderedWorker:
        # in order, at most held_blocks - 1 queued, errors re-raised); otherwise inline
        with OrderedWorker(writer.write, max_pending=params.held_blocks - 1, name="geodefect-write") as sink:
            for block in iter_blocks(job.reader, predictor, params, windows=wins, remap=remap,
                                     on_progress=bar.update, on_plan=size_bar, spill_dir=writer.work,
                                     gates=gates):
                sink.submit(block)
    return len(wins)


def _vectorize(writer, vparams, dest: Path, *, block_px: int = 0) -> dict:
    """Vectorise the AOI box: in blocks (``geodefect.graph.tiled``) when it is larger than one block."""
    from geodefect.graph.tiled import vectorize_probability_tiled
    from geodefect.graph.vectorize import vectorize_road_probability

    prob, orientation, transform = writer.vector_inputs()
    kw = {"orientation": orientation, "bin_deg": writer.bin_deg if orientation is not None else None,
          "params": vparams, "crs": writer.crs}
    if block_px and max(prob.shape) > block_px:
        network = vectorize_probability_tiled(prob, transform, block_px=block_px, **kw)
    else:
        network = vectorize_road_probability(prob, transform, **kw)
    write_network_files(network, dest, crs=writer.crs)
    return {"road_km": round(network.total_length_m / 1000.0, 4), "n_edges": network.n_edges,
            "n_nodes": network.n_nodes, "graph_stats": dict(network.stats)}


def write_network_files(network, dest: Path, *, crs) -> None:
    """roads.gpkg (layers roads, nodes, QGIS styles) and graph.graphml."""
    from geodefect.io.gpkg import write_graphml, write_road_network

    write_road_network(dest / "roads.gpkg", network, crs)
    write_graphml(dest / "graph.graphml", network)


def _summary(model_path, recipe, cfg, vparams, params, images, t0, device) -> dict:
    from geodefect import __version__
    from geodefect.config import config_to_dict

    return {
        "geodefect_version": __version__,
        "command": "infer",
        "model": str(model_path),
        "recipe": recipe,
        "inputs": [im["image"] for im in images],
        "config": {**config_to_dict(cfg), **config_to_dict(vparams)},
        "sliding": dataclasses.asdict(params),
        "device": device,
        "images": images,
        "totals": {
            "area_km2": round(sum(im["area_km2"] for im in images), 6),
            "windows": sum(im["windows"] for im in images),
            "road_km": round(sum(im.get("road_km", 0.0) for im in images), 4),
            "seconds": round(time.perf_counter() - t0, 3),
        },
    }


def format_summary(summary: dict) -> str:
    """The lines the CLI prints on stdout."""
    t = summary["totals"]
    vectorised = any("road_km" in im for im in summary["images"])
    roads = f"roads {t['road_km']:.2f} km" if vectorised else "roads not vectorised (--no-vectorize)"
    lines = [f"area {t['area_km2']:.3f} km² | windows {t['windows']} | time {t['seconds']:.1f} s | {roads}"]
    for im in summary["images"]:
        folder = Path(summary["out_dir"]) / im["folder"]
        found = (f"{im['road_km']:.2f} km of road, {im.get('n_edges', 0)} edges" if "road_km" in im
                 else "vectorising skipped: rasters only")
        lines.append(f"{im['image']}: {found} -> {folder}")
    return "\n".join(lines)
