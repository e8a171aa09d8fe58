"""``geodefect chip`` for roads: rasters + centerlines -> a chip folder (see geodefect.chips).

Everything is validated before anything is written (rasters, bands, centerlines, AOI,
output folder), so a bad input leaves no output behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from geodefect.chips.config import RoadChipConfig
from geodefect.chips.sources import check_val_sources, make_labelers, plan_sources, resolve_inputs
from geodefect.chips.split import choose_split
from geodefect.distributed import parse_scheduler
from geodefect.errors import GeodefectError, InputError, OutputExistsError

log = logging.getLogger(__name__)

SETTINGS_FILE = "chip_settings.json"
#: GDAL block cache while chipping: holds the two rows of 512-px tiles a row of windows
#: touches in a 3-band raster ~20000 px wide; bounds memory (GDAL default: 5% of RAM)
GDAL_CACHE_BYTES = 64 * 2**20
#: options that change how chips are made, not what they hold (not compared on resume)
RUN_ONLY_OPTIONS = ("workers", "scheduler")
#: chip order keys: source index * this + window index (sorts sources, then windows; tells sources apart)
SOURCE_ORDER_STRIDE = 10**9
OUTPUT_NAMES = ("images", "labels", "orientation", "index.gpkg", "meta.json", SETTINGS_FILE)


@dataclass
class ChipSummary:
    out_dir: Path
    n_chips: int
    n_train: int
    n_val: int
    n_resumed: int
    n_dropped: dict
    road_km: float
    seconds: float
    already_complete: bool = False

    def text(self) -> str:
        if self.already_complete:
            return (f"{self.out_dir} already holds a complete chip export with these settings "
                    f"({self.n_chips} chips); nothing to do (pass --overwrite to redo it).")
        dropped = ", ".join(f"{v} {k}" for k, v in self.n_dropped.items() if v) or "none"
        resumed = f" ({self.n_resumed} kept from an interrupted run)" if self.n_resumed else ""
        return (f"Wrote {self.n_chips} chips{resumed} to {self.out_dir}: {self.n_train} train, "
                f"{self.n_val} val, covering {self.road_km:.2f} km of road centerline, in "
                f"{self.seconds:.1f} s. Windows skipped: {dropped}. Train with "
                f"`geodefect train {self.out_dir} -o RUN_DIR`.")


def chip(images=(), out_dir=None, *, task: str, centerlines=None, aoi=None, dataset=None, config_file=None,
         overrides: dict | None = None, overwrite: bool = False, pan_sharpen=None) -> ChipSummary:
    """Export road chips. Args as ``geodefect chip`` (``pan_sharpen``: the MUL raster of one PAN
    IMAGE, whose ``bands`` are then MUL bands by number or name); ``task``: the name written into
    ``meta.json`` (the registry's road task). Returns a :class:`ChipSummary`."""
    from geodefect.config import config_to_dict, resolve_config
    from geodefect.io.raster import parse_bands
    from geodefect.windows import validate_grid

    t0 = time.perf_counter()
    cfg = resolve_config(RoadChipConfig, config_file, overrides)
    if cfg.stride_px is None:  # 512 -> 384: a quarter of overlap whatever the size
        cfg = dataclasses.replace(cfg, stride_px=max(1, cfg.size_px * 3 // 4))
    validate_grid(size_px=cfg.size_px, stride_px=cfg.stride_px)
    parse_scheduler(cfg.scheduler)  # a bad value fails before anything is written
    _validate_fractions(cfg)
    if out_dir is None:
        raise InputError("no output folder given; pass -o OUT_DIR")
    if pan_sharpen:
        from geodefect.io.pansharpen import pan_sharpen_inputs, resolve_mul_bands

        ps = {"mul_bands": resolve_mul_bands(cfg.bands, pan_sharpen)}
        images = pan_sharpen_inputs(images, pan_sharpen, ps["mul_bands"])
        cfg = replace(cfg, bands=None)
    sources, aoi_path, dataset_bands, ds_ps = resolve_inputs(images, centerlines, aoi, dataset)
    pan_spec = ps if pan_sharpen else ds_ps
    bands = parse_bands(cfg.bands) if cfg.bands is not None else dataset_bands
    plans = plan_sources(sources, aoi_path, cfg, bands)
    check_val_sources(cfg, plans)
    make_labelers(plans, cfg)  # label options are checked here, before the folder exists
    content = {k: v for k, v in config_to_dict(cfg).items() if k not in RUN_ONLY_OPTIONS}
    settings = {"config": content, "bands": bands, "aoi": _abs(aoi_path),
                "sources": [[_abs(i), _abs(c)] for i, c in sources]}
    if pan_spec:
        settings["pan_sharpen"] = pan_spec
    out = Path(out_dir)
    state = _prepare_output(out, settings, overwrite=overwrite)
    if state == "complete":
        meta = json.loads((out / "meta.json").read_text())
        return ChipSummary(out, meta["n_chips"], meta["split"]["n_train"], meta["split"]["n_val"],
                           0, {}, meta.get("road_km", 0.0), 0.0, already_complete=True)
    import rasterio

    created = not out.exists()
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            return _export(plans, out, cfg, bands, settings, t0, task=task)
    except GeodefectError:  # refused midway: leave nothing of this run (an interrupt keeps it: resumable)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------- inputs


def _validate_fractions(cfg: RoadChipConfig) -> None:
    for name in ("keep_empty", "max_nodata", "val_fraction"):
        value = getattr(cfg, name)
        if not 0.0 <= float(value) <= 1.0:
            raise InputError(f"`{name}` must be a fraction in 0..1, got {value!r}")
    if int(cfg.workers) != cfg.workers or cfg.workers < 1:
        raise InputError(f"`workers` must be an integer >= 1, got {cfg.workers!r}")
    if cfg.split_block_px is not None and cfg.split_block_px < 1:
        raise InputError(f"`split_block_px` must be >= 1, got {cfg.split_block_px!r}")


def _abs(path) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


# ----------------------------------------------------------------------------- output folder


def _prepare_output(out: Path, settings: dict, *, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` or ``"complete"``; clears old chips with ``overwrite``.

    Raises:
        OutputExistsError: the folder holds other files or chips made with other settings.
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    if not out.is_dir():
        raise OutputExistsError(f"output {str(out)!r} is a file; pass a folder to -o")
    old = _read_settings(out)
    if overwrite:
        for name in OUTPUT_NAMES:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return "new"
    if old is None:
        raise OutputExistsError(
            f"output folder {str(out)!r} is not empty and was not written by `geodefect chip`; "
            "choose another -o folder (or pass --overwrite)"
        )
    if old != settings:
        diff = _diff_settings(old, settings)
        raise OutputExistsError(
            f"output folder {str(out)!r} holds chips made with other settings ({diff}); "
            "pass --overwrite to replace them or choose another -o folder"
        )
    meta = out / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()).get("complete"):
        return "complete"
    log.info("resuming the interrupted export in %s", out)
    return "resume"


def _read_settings(out: Path) -> dict | None:
    p = out / SETTINGS_FILE
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError:
        return None


def _diff_settings(old: dict, new: dict) -> str:
    flat_old = {**old.get("config", {}), **{k: v for k, v in old.items() if k != "config"}}
    flat_new = {**new.get("config", {}), **{k: v for k, v in new.items() if k != "config"}}
    keys = [k for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]
    parts = [f"{k} {flat_old.get(k)!r} there vs {flat_new.get(k)!r} now" for k in keys[:3]]
    return "; ".join(parts) + ("; ..." if len(keys) > 3 else "")


# ----------------------------------------------------------------------------- export


def _export(plans, out: Path, cfg: RoadChipConfig, bands, settings: dict, t0: float, *, task: str) -> ChipSummary:
    from geodefect.chips import export as chips
    from geodefect.io.atomic import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SETTINGS_FILE, json.dumps(settings, indent=1))
    chips.remove_stale_temp_files(out)
    block_px, val_blocks = choose_split(plans, cfg)
    n_bands = len(bands) if bands else None
    exporter = None
    results, names = [], _chip_name_stems(plans)
    total = sum(len(p.windows) for p in plans)
    from geodefect.progress import progress

    if not parse_scheduler(cfg.scheduler).is_local:
        from geodefect.chips.distributed import export_sources

        exporter, results = export_sources(plans, names, n_bands, val_blocks, block_px, out, cfg, bands,
                                           export_source=_export_source)
        chips.remove_stale_temp_files(out)  # a worker killed inside a chip's write leaves its temporary
        return _finish(plans, results, exporter, out, cfg, bands, block_px, t0, task=task,
                       pan_sharpen=settings.get("pan_sharpen"))
    with progress(total=total, desc="chips", unit="win") as bar:
        for i, plan in enumerate(plans):
            exporter, result = _export_source(plan, i, names[i], exporter, n_bands, val_blocks,
                                              block_px, out, cfg, bands, bar)
            results.append(result)
    return _finish(plans, results, exporter, out, cfg, bands, block_px, t0, task=task,
                   pan_sharpen=settings.get("pan_sharpen"))


def _export_source(plan, index, stem, exporter, n_bands, val_blocks, block_px, out, cfg, bands, bar, only=None):
    """Export one source raster's chips (``only``: the indices of ``plan.windows`` to export, a Dask
    unit's block; splits and seeds still come from every window, so a chip is the same either way)."""
    from geodefect.chips import export as chips
    from geodefect.io.chip_writer import ChipWriter
    from geodefect.io.raster import RasterReader, ThreadReaders
    mine = None if only is None else set(only)
    result = chips.SourceResult(n_windows=len(plan.windows) if mine is None else len(mine))
    with RasterReader(plan.image, bands=bands, stretch=cfg.stretch, cell_size_m=cfg.cell_size_m) as reader:
        if exporter is None:
            exporter = chips.ChipExporter(out, n_bands=n_bands or reader.shape[0], keep_empty=cfg.keep_empty,
                                          max_nodata=cfg.max_nodata, seed=cfg.seed)
        if plan.no_roads:  # the label file says "no roads here": every chip is a kept negative
            exporter.negative_sources.add(plan.image.name)
        plan.stretch = _stretch_record(reader)
        labeler = plan.labeler
        source_val = {(b[1], b[2]) for b in val_blocks if b[0] == index}
        splits, _ = chips.assign_splits(plan.windows, block_px=block_px, val_blocks=source_val)
        writer = ChipWriter(reader.crs)
        tasks = []
        for order, (window, split) in enumerate(zip(plan.windows, splits, strict=True)):
            if mine is not None and order not in mine:
                continue
            if split == "drop":
                result.n_split_dropped += 1
                bar.update(1)
            else:
                chip_id = f"{stem}_{int(window.row_off):06d}_{int(window.col_off):06d}"
                tasks.append(chips.ChipTask(window, chip_id, split, index * SOURCE_ORDER_STRIDE + order))
        readers = ThreadReaders(reader)

        def export(run) -> int:
            exporter.export_row_run(readers.get(), labeler, writer, run, source=plan.image.name, result=result)
            return len(run)

        try:
            chips.run_threaded(export, chips.row_runs(tasks), workers=cfg.workers, on_done=bar.update)
        finally:
            readers.close()
    return exporter, result


def _stretch_record(reader) -> dict:
    """How one source was brought to 8 bit: mode, source dtype and its per-band limits."""
    limits = reader.stretch_limits
    return {"mode": reader.stretch_mode, "source_dtype": str(reader.source_dtype),
            "limits": None if limits is None else [[round(float(v), 3) for v in b] for b in limits]}


def _stretch_meta(plans) -> dict:
    """The chips' stretch, for the model recipe: inference repeats it per scene (same percentiles)."""
    from geodefect.io.raster import STRETCH_PERCENTILES

    records = [p.stretch or {} for p in plans]
    modes = sorted({r.get("mode") for r in records if r})
    return {"mode": modes[0] if len(modes) == 1 else modes, "percentiles": list(STRETCH_PERCENTILES),
            "per": "scene", "source_dtype": sorted({r.get("source_dtype") for r in records if r}),
            "scene_limits": {p.image.name: r.get("limits") for p, r in zip(plans, records, strict=True)}}


def _records_by_source(records, n_sources: int) -> list[list]:
    """Each source's records, told apart by their order key (``source index * 10**9 + window``),
    not by the raster's file name, which two sources in different folders may share."""
    out = [[] for _ in range(n_sources)]
    for r in records:
        out[r.order // SOURCE_ORDER_STRIDE].append(r)
    return out


def _chip_name_stems(plans) -> list[str]:
    stems = [p.image.stem for p in plans]
    if len(set(stems)) < len(stems):
        stems = [f"{i:03d}_{s}" for i, s in enumerate(stems)]
    return stems


def _finish(plans, results, exporter, out, cfg, bands, block_px, t0, *, task: str, pan_sharpen=None) -> ChipSummary:
    from geodefect import __version__
    from geodefect.chips import export as chips
    from geodefect.io.atomic import write_text_atomic
    from geodefect.labels import ORIENTATION_CONVENTION, n_orientation_classes

    records = exporter.sorted_records() if exporter else []
    if not records:
        n_nodata = sum(r.n_nodata_dropped for r in results)
        raise InputError(f"no chip was kept from {sum(r.n_windows for r in results)} windows "
                         f"({n_nodata} with more than {cfg.max_nodata:.0%} nodata); check that the rasters "
                         "hold data where the centerlines / AOI are (or raise --max-nodata / --keep-empty)")
    crs = plans[0].crs
    chips.write_index(records, crs, out / "index.gpkg")
    road_m = sum(p.road_m if p.road_m is not None else chips.footprint_length_m(p.lines.geometry.values, p.crs, mine)
                 for p, mine in zip(plans, _records_by_source(records, len(plans)), strict=True))
    mean, std = exporter.stats.mean_std() if exporter else ([], [])
    n_train = sum(r.split == "train" for r in records)
    label = {"mode": cfg.label, "threshold": cfg.threshold}
    buffer = {"buffer_m": cfg.buffer_m, "width_field": cfg.width_field, "width_unit_m": cfg.width_unit_m}
    label.update(buffer if cfg.label == "buffer" else {"sigma_px": cfg.sigma_px})
    meta = {
        "task": task, "geodefect_version": __version__, "size_px": cfg.size_px,
        "stride_px": cfg.stride_px, "bands": bands or list(range(1, len(mean) + 1)),
        "mean": mean, "std": std, "pixel_size_m": round(sum(p.pixel_size_m for p in plans) / len(plans), 6),
        "cell_size_m": cfg.cell_size_m, "crs": crs.to_wkt(), "label": label,
        "orientation": {"bin_deg": cfg.orient_bin_deg, "n_classes": n_orientation_classes(cfg.orient_bin_deg),
                        "width_px": cfg.orient_width_px, "convention": ORIENTATION_CONVENTION},
        "sources": [{"image": str(p.image.resolve()), "centerlines": str(p.centerlines.resolve()),
                     "n_windows": r.n_windows, "n_chips": r.n_exported + r.n_resumed, "no_roads": p.no_roads}
                    for p, r in zip(plans, results, strict=True)],
        "n_chips": len(records), "road_km": round(road_m / 1000, 4),
        "split": {"method": "sources" if cfg.val_sources else "spatial_blocks", "block_px": block_px,
                  "val_sources": cfg.val_sources, "val_fraction": cfg.val_fraction,
                  "seed": cfg.seed, "n_train": n_train, "n_val": len(records) - n_train,
                  "n_dropped_overlap": sum(r.n_split_dropped for r in results)},
        "keep_empty": cfg.keep_empty, "max_nodata": cfg.max_nodata,
        "stretch": _stretch_meta(plans), "pan_sharpen": pan_sharpen,
    }
    meta["complete"] = True
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=1))
    dropped = {"road-free": sum(r.n_empty_dropped for r in results),
               "nodata": sum(r.n_nodata_dropped for r in results),
               "split-overlap": meta["split"]["n_dropped_overlap"]}
    return ChipSummary(out, len(records), n_train, len(records) - n_train,
                       sum(r.n_resumed for r in results), dropped, road_m / 1000,
                       time.perf_counter() - t0)
