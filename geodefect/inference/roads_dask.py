"""Road inference on a Dask cluster (``geodefect infer --scheduler processes:N|tcp://...``).

One work unit per image (the unit is the same ``run_image`` the local path runs, so the
files are the same). Units write into ``OUT_DIR``'s sibling ``.partial-<name>/units/<image>/``
(under a temporary name, renamed when complete, with ``entry.json``); a rerun after any
interruption keeps the finished units (when the model and options are the same, recorded in
``settings.json``) and runs the rest. The client then assembles OUT_DIR atomically, as the
local path does, and removes the partial folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from geodefect.distributed import parse_scheduler

log = logging.getLogger(__name__)


def infer(model_path, inputs, out_dir, *, recipe: dict, config_file=None, overrides: dict | None = None,
          overwrite: bool = False) -> dict:
    """``geodefect infer`` of a road model with ``scheduler`` other than local (same outputs as local)."""
    import rasterio

    from geodefect.inference.roads import GDAL_CACHE_BYTES

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):  # as the local path: a band of tiles, not 5 % of RAM
        return _infer(model_path, inputs, out_dir, recipe=recipe, config_file=config_file, overrides=overrides,
                      overwrite=overwrite)


def _infer(model_path, inputs, out_dir, *, recipe: dict, config_file, overrides, overwrite: bool) -> dict:
    from geodefect.inference.roads import prepare_jobs, resolve_infer_config, sliding_params
    from geodefect.io.atomic import check_output_free

    t0 = time.perf_counter()
    cfg, vparams = resolve_infer_config(config_file, overrides, recipe=recipe)
    out_dir = Path(out_dir)
    check_output_free(out_dir, overwrite=overwrite)
    parse_scheduler(cfg.scheduler)  # a bad value fails before any work
    params = sliding_params(cfg, recipe)
    inputs = [Path(p) for p in inputs]
    jobs = prepare_jobs(inputs, recipe, cfg, params)  # every input checked before any unit runs
    return infer_distributed(model_path, inputs, out_dir, jobs=jobs, recipe=recipe, cfg=cfg, vparams=vparams,
                             params=params, overwrite=overwrite, t0=t0)


def needs_blocks(jobs, cfg) -> bool:
    """Whether a ``local`` run goes through the units too: some raster is larger than ``block_px``.

    One process then runs the blocks one after the other, as a worker would, and an interrupted
    run resumes from its finished blocks (memory is bounded either way: BENCHMARKS.md, Dask).
    """
    return bool(cfg.block_px) and any(max(job.reader.shape[1:]) > cfg.block_px for job in jobs)


def infer_distributed(model_path, inputs, out_dir: Path, *, jobs, recipe: dict, cfg, vparams, params,
                      overwrite: bool, t0: float) -> dict:
    """Run the checked ``jobs`` as units (on Dask, or here one by one for ``local``) and assemble
    OUT_DIR; returns the run summary."""
    from geodefect.distributed import open_client, run_units
    from geodefect.inference.roads import _summary, format_summary
    from geodefect.progress import progress

    work = out_dir.parent / f".partial-{out_dir.name}"
    settings = _settings(model_path, cfg, vparams, recipe)
    _prepare_work(work, settings)
    plans = [_plan_image(job, work, model_path, cfg, vparams, recipe, params, settings) for job in jobs]
    for job in jobs:
        job.reader.close()
    units = [unit for plan in plans for unit in plan.units]
    if any(plan.done for plan in plans) or any(plan.blocks_done for plan in plans):
        log.info("resuming: %d of %d images already done in %s", sum(p.done for p in plans), len(plans), work)
    with open_client(parse_scheduler(cfg.scheduler)) as client, progress(total=len(units), desc="units") as bar:
        run_units(client, _run_unit, units, on_done=lambda: bar.update(1))
    images = [_finish_image(plan, work, cfg=cfg, vparams=vparams, recipe=recipe) for plan in plans]

    def summary(ims):
        from geodefect.inference.backends import resolve_backend

        return {**_summary(model_path, recipe, cfg, vparams, params, ims, t0, cfg.device),
                "backend": resolve_backend(model_path, cfg.backend)}

    # the layout follows the command line, as the local path: several IMAGEs -> one subfolder each
    return _assemble(work, out_dir, images, several=len(inputs) > 1, overwrite=overwrite, summary=summary,
                     format_summary=format_summary)


@dataclasses.dataclass
class ImagePlan:
    """The units of one image: the whole image, or its blocks (``grid`` set)."""

    name: str
    units: list
    done: bool = False
    blocks: list = dataclasses.field(default_factory=list)  # block unit folders, in order
    blocks_done: int = 0
    grid: object = None


def _plan_image(job, work: Path, model_path, cfg, vparams, recipe: dict, params, settings: dict) -> ImagePlan:
    """The units still to run for ``job`` (none when its folder is complete)."""
    from geodefect.distributed import unit_key
    from geodefect.inference.road_blocks import ImageGrid, core_name, plan_cores
    from geodefect.io.pansharpen import display_path, vsimem_source

    path, name = str(job.path), job.name
    plan = ImagePlan(name=name, units=[])
    if (work / "units" / name / "entry.json").is_file():
        plan.done = True
        return plan
    vrt = vsimem_source(path)  # a pan-sharpened input lives in this process's /vsimem: the unit remakes it
    common = (str(model_path), path, name, dataclasses.asdict(cfg), dataclasses.asdict(vparams), recipe)
    _, h, w = job.reader.shape
    if not cfg.block_px or max(h, w) <= cfg.block_px:
        dest = str(work / "units" / name)
        plan.units.append((unit_key("geodefect-infer", settings["hash"], path, name),
                           ("image", *common, dest, vrt, display_path(path))))
        return plan
    plan.grid = ImageGrid.of(job)
    for core in plan_cores((h, w), job.windows.windows, job.windows.bbox, block_px=cfg.block_px,
                           stride_px=params.stride_px):
        dest = work / "blocks" / name / core_name(core)
        plan.blocks.append(dest)
        if (dest / "entry.json").is_file():
            plan.blocks_done += 1
            continue
        box = (int(core.col_off), int(core.row_off), int(core.width), int(core.height))
        plan.units.append((unit_key("geodefect-infer-block", settings["hash"], path, name, box),
                           ("block", *common, str(dest), vrt, box)))
    return plan


def _run_unit(kind: str, *args) -> dict:
    """A unit on a worker: a whole image or one block of one (GDAL's cache as in the local path)."""
    import rasterio

    from geodefect.inference.roads import GDAL_CACHE_BYTES

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return infer_unit(*args) if kind == "image" else infer_block_unit(*args)


def _finish_image(plan: ImagePlan, work: Path, *, cfg, vparams, recipe: dict) -> dict:
    """The image's entry; a blocked image is assembled here first (client side, once its blocks are done)."""
    from geodefect.inference.road_blocks import assemble_image

    dest = work / "units" / plan.name
    if plan.grid is not None and not (dest / "entry.json").is_file():
        blocks = [(folder, json.loads((folder / "entry.json").read_text())) for folder in plan.blocks]
        tmp = dest.with_name(f".tmp-{dest.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        entry = assemble_image(plan.grid, blocks, tmp, cfg=cfg, vparams=vparams, recipe=recipe)
        entry["name"] = plan.name
        (tmp / "entry.json").write_text(json.dumps(entry, indent=2, default=str))
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        shutil.rmtree(work / "blocks" / plan.name, ignore_errors=True)
    return json.loads((dest / "entry.json").read_text())


def infer_unit(model_path: str, path: str, name: str, cfg_dict: dict, vparams_dict: dict, recipe: dict,
               dest: str, vrt_xml: str | None = None, shown: str | None = None) -> dict:
    """One image on a worker: the local ``run_image`` into ``dest`` (temporary name, then renamed)."""
    from geodefect.distributed import worker_setup
    from geodefect.graph.vectorize import VectorizeParams
    from geodefect.inference.road_jobs import prepare_one
    from geodefect.inference.roads import RoadInferConfig, run_image, sliding_params
    from geodefect.io.raster import parse_bands

    worker_setup()
    if vrt_xml is not None:
        from geodefect.io.pansharpen import ensure_vsimem

        ensure_vsimem(path, vrt_xml)
    cfg, vparams = RoadInferConfig(**cfg_dict), VectorizeParams(**vparams_dict)
    params = sliding_params(cfg, recipe)
    job = prepare_one(Path(path), recipe, cfg, params, parse_bands(cfg.bands), name=name, skip_miss=False)
    final = Path(dest)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        entry = run_image(job, _predictor(model_path, cfg, params), params, cfg, vparams, recipe, tmp)
    finally:
        job.reader.close()
    entry["name"] = name
    if shown:
        entry["image"] = shown
    (tmp / "entry.json").write_text(json.dumps(entry, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return entry


def infer_block_unit(model_path: str, path: str, name: str, cfg_dict: dict, vparams_dict: dict, recipe: dict,
                     dest: str, vrt_xml: str | None, box: tuple[int, int, int, int]) -> dict:
    """One block of one image on a worker (:mod:`geodefect.inference.road_blocks`), into ``dest``."""
    from rasterio.windows import Window

    from geodefect.distributed import worker_setup
    from geodefect.errors import GeodefectError
    from geodefect.graph.vectorize import VectorizeParams
    from geodefect.inference.road_blocks import run_block
    from geodefect.inference.road_jobs import prepare_one
    from geodefect.inference.roads import RoadInferConfig, sliding_params
    from geodefect.io.pansharpen import display_path
    from geodefect.io.raster import parse_bands

    worker_setup()
    if vrt_xml is not None:
        from geodefect.io.pansharpen import ensure_vsimem

        ensure_vsimem(path, vrt_xml)
    cfg, vparams = RoadInferConfig(**cfg_dict), VectorizeParams(**vparams_dict)
    params = sliding_params(cfg, recipe)
    core = Window(*box)
    final = Path(dest)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        job = prepare_one(Path(path), recipe, cfg, params, parse_bands(cfg.bands), name=name, skip_miss=False)
        try:
            entry = run_block(job, _predictor(model_path, cfg, params), params, cfg, vparams, recipe, tmp, core)
        finally:
            job.reader.close()
    except GeodefectError as exc:  # name the raster and the block; nothing of the block looks finished
        shutil.rmtree(tmp, ignore_errors=True)
        c0, r0, w, h = box
        raise type(exc)(f"{display_path(path)}, block rows {r0}-{r0 + h}, cols {c0}-{c0 + w}: {exc}") from None
    (tmp / "entry.json").write_text(json.dumps(entry, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return entry


def warm_worker() -> None:
    """What a unit imports (torch, smp, the engine, GDAL, the vectoriser), imported when the worker
    starts (:func:`geodefect.distributed.early_cluster`), not on its first unit."""
    from geodefect._torch import import_smp

    import_smp()
    import geopandas  # noqa: F401
    import networkx  # noqa: F401
    import rasterio  # noqa: F401
    import skimage.morphology  # noqa: F401

    import geodefect.graph.vectorize  # noqa: F401
    import geodefect.inference.predictor  # noqa: F401
    import geodefect.inference.road_blocks  # noqa: F401
    import geodefect.inference.roads  # noqa: F401


def _predictor(model_path: str, cfg, params):
    """The worker's predictor for ``model_path`` (any backend, as the local path), loaded once per
    worker process; on CPU it keeps the worker's torch thread count unless ``--threads`` says."""
    import torch

    from geodefect.distributed import worker_cache
    from geodefect.inference.backends import load_predictor

    cache = worker_cache()
    key = ("road-predictor", model_path, cfg.device, cfg.backend, cfg.threads)
    if key not in cache:
        threads = cfg.threads or torch.get_num_threads()
        cache[key] = load_predictor(model_path, backend=cfg.backend, device=cfg.device, threads=threads)
    if hasattr(cache[key], "check_window"):  # ONNX graphs have a fixed tile size
        cache[key].check_window(params.size_px)
    return cache[key]


def _settings(model_path, cfg, vparams, recipe: dict) -> dict:
    """What the units' outputs depend on (a rerun with other settings starts over)."""
    from geodefect.distributed import unit_key

    stat = Path(model_path).stat()
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "scheduler"}
    record = {"model": str(Path(model_path).resolve()), "model_bytes": stat.st_size, "model_mtime": stat.st_mtime_ns,
              "options": options, "vectorize": dataclasses.asdict(vparams)}
    return {**record, "hash": unit_key("settings", record)}


def _prepare_work(work: Path, settings: dict) -> None:
    """Keep a partial folder made with the same settings; start over otherwise."""
    marker = work / "settings.json"
    if work.exists():
        same = marker.is_file() and json.loads(marker.read_text()).get("hash") == settings["hash"]
        if not same:
            log.warning("discarding %s: it was made with another model or other options", work)
            shutil.rmtree(work)
    (work / "units").mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings, indent=2, default=str))


def _assemble(work: Path, out_dir: Path, images: list[dict], *, several: bool, overwrite: bool, summary,
              format_summary) -> dict:
    """Move the unit folders into OUT_DIR (one image: its files at the top) atomically; write run.json."""
    from geodefect.io.atomic import atomic_dir

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for entry in images:
            src = work / "units" / entry["name"]
            (src / "entry.json").unlink()
            if several:
                src.rename(tmp / entry["name"])
            else:
                for item in src.iterdir():
                    item.rename(tmp / item.name)
            entry["folder"] = entry["name"] if several else "."
            entry.pop("name")
        result = summary(images)
        result["out_dir"] = str(out_dir)
        (tmp / "run.json").write_text(json.dumps(result, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    result["text"] = format_summary(result)
    return result
