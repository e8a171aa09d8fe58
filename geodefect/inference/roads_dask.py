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


def infer_distributed(model_path, inputs, out_dir: Path, *, jobs, recipe: dict, cfg, vparams, params,
                      overwrite: bool, t0: float) -> dict:
    """Run the checked ``jobs`` as Dask units and assemble OUT_DIR; returns the run summary."""
    from geodefect.distributed import open_client, run_units, unit_key
    from geodefect.inference.roads import _summary, format_summary
    from geodefect.io.pansharpen import display_path, vsimem_source
    from geodefect.progress import progress

    names = [(str(job.path), job.name) for job in jobs]
    for job in jobs:
        job.reader.close()
    work = out_dir.parent / f".partial-{out_dir.name}"
    settings = _settings(model_path, cfg, vparams, recipe)
    _prepare_work(work, settings)
    units, entries = [], {}
    for path, name in names:
        dest = work / "units" / name
        if (dest / "entry.json").is_file():
            entries[name] = json.loads((dest / "entry.json").read_text())
            continue
        vrt = vsimem_source(path)  # a pan-sharpened input lives in this process's /vsimem: the unit remakes it
        args = (str(model_path), path, name, dataclasses.asdict(cfg), dataclasses.asdict(vparams), recipe, str(dest),
                vrt, display_path(path))
        units.append((unit_key("geodefect-infer", settings["hash"], path, name), args))
    if entries:
        log.info("resuming: %d of %d images already done in %s", len(entries), len(names), work)
    with open_client(parse_scheduler(cfg.scheduler)) as client, progress(total=len(units), desc="images") as bar:
        for entry in run_units(client, infer_unit, units, on_done=lambda: bar.update(1)):
            entries[entry["name"]] = entry
    images = [entries[name] for _, name in names]
    # the layout follows the command line, as the local path: several IMAGEs -> one subfolder each
    return _assemble(work, out_dir, images, several=len(inputs) > 1, overwrite=overwrite,
                     summary=lambda ims: _summary(model_path, recipe, cfg, vparams, params, ims, t0, cfg.device),
                     format_summary=format_summary)


def infer_unit(model_path: str, path: str, name: str, cfg_dict: dict, vparams_dict: dict, recipe: dict,
               dest: str, vrt_xml: str | None = None, shown: str | None = None) -> dict:
    """One image on a worker: the local ``run_image`` into ``dest`` (temporary name, then renamed)."""
    from geodefect.distributed import worker_setup
    from geodefect.graph.vectorize import VectorizeParams
    from geodefect.inference.roads import RoadInferConfig, _prepare_one, run_image, sliding_params
    from geodefect.io.raster import parse_bands

    worker_setup()
    if vrt_xml is not None:
        from geodefect.io.pansharpen import ensure_vsimem

        ensure_vsimem(path, vrt_xml)
    cfg, vparams = RoadInferConfig(**cfg_dict), VectorizeParams(**vparams_dict)
    params = sliding_params(cfg, recipe)
    job = _prepare_one(Path(path), recipe, cfg, params, parse_bands(cfg.bands), name=name, skip_miss=False)
    final = Path(dest)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        entry = run_image(job, _predictor(model_path, cfg.device), params, cfg, vparams, recipe, tmp)
    finally:
        job.reader.close()
    entry["name"] = name
    if shown:
        entry["image"] = shown
    (tmp / "entry.json").write_text(json.dumps(entry, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return entry


def _predictor(model_path: str, device: str):
    """The worker's predictor for ``model_path``, loaded once per worker process."""
    from geodefect.distributed import worker_cache
    from geodefect.inference.predictor import TorchPredictor

    cache = worker_cache()
    key = ("road-predictor", model_path, device)
    if key not in cache:
        cache[key], _ = TorchPredictor.from_package(model_path, device=device)
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
