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

import numpy as np

from geodefect.errors import GeodefectError, InputError, OutputExistsError, UsageError

log = logging.getLogger(__name__)

SETTINGS_FILE = "chip_settings.json"
#: GDAL block cache while chipping: holds the two rows of 512-px tiles a row of windows
#: touches in a 3-band raster ~20000 px wide; bounds memory (GDAL default: 5% of RAM)
GDAL_CACHE_BYTES = 64 * 2**20
#: options that change how chips are made, not what they hold (not compared on resume)
RUN_ONLY_OPTIONS = ("workers",)
OUTPUT_NAMES = ("images", "labels", "orientation", "index.gpkg", "meta.json", SETTINGS_FILE)


@dataclass(frozen=True)
class RoadChipConfig:
    """Options of ``geodefect chip`` for roads (units in the names).

    ``buffer_m`` = 2.0: road *half*-width in metres, i.e. 4 m wide masks, the width
    SpaceNet's own road-mask tools (CosmiQ apls ``create_speed_masks``) burn around
    centerlines; most lanes are ~3.5 m, so a 4 m band stays on the carriageway of small
    roads and covers the centre of wide ones. ``keep_empty`` = 0.1 keeps one road-free
    chip in ten (negatives without flooding the set). ``split_block_px`` defaults to
    4 × ``stride_px`` (4×4 chips per block). ``width_field``: a centerline attribute with
    the road's full width in metres; half of it is the feature's buffer (missing or
    non-positive values fall back to ``buffer_m``). ``workers`` threads export windows in
    parallel (GDAL reads, label burning and file writes release the GIL); 1 = serial.
    ``val_sources``: validate on WHOLE source rasters instead of spatial blocks: every chip of
    a raster whose file name contains one of these strings (e.g. ``img1454``) is val, every
    other chip train (no tile on both sides); ``val_fraction`` is then unused.

    Attributes:
        size_px: chip side in pixels.
        stride_px: step between chips in pixels, 1..size.
        label: road mask: buffer of buffer_m, or thresholded Gaussian (Batra et al. 2019).
        buffer_m: road half-width in metres around each centerline (2.0: SpaceNet's 4 m masks).
        width_field: centerline attribute with the road width in metres: buffer = width / 2 per road.
        sigma_px: Gaussian label sigma in pixels.
        threshold: Gaussian label threshold.
        orient_bin_deg: orientation bin width in degrees; 360/bin + 1 classes, 0 = background.
        orient_width_px: width in pixels of the orientation band along centerlines.
        cell_size_m: resample imagery to this pixel size in metres (bilinear; area average when
            downsampling).
        keep_empty: share of road-free chips kept, 0..1, drawn with --seed.
        max_nodata: skip chips with a larger share of nodata.
        bands: 1-based bands to export, e.g. 1,2,3 (default: all but alpha).
        stretch: percentile (2-98%) stretch to 8 bit (default: only for non-uint8 rasters).
        val_fraction: share of spatial blocks (or source images) for validation.
        split_block_px: side of the spatial blocks drawn for train/val (default: 4 x stride).
        seed: seed of the split and the road-free draw.
        workers: threads exporting chips in parallel.
        val_sources: validate on whole rasters: comma-separated parts of their file names (e.g.
            img1454,img38); all their chips are val, the rest train (default: spatial blocks).
    """

    size_px: int = 512
    stride_px: int | None = None
    label: str = "buffer"
    buffer_m: float = 2.0
    width_field: str | None = None
    sigma_px: float = 15.0
    threshold: float = 0.76
    orient_bin_deg: int = 20
    orient_width_px: float = 8.0
    cell_size_m: float | None = None
    keep_empty: float = 0.1
    max_nodata: float = 0.25
    bands: str | list[int] | None = None
    stretch: bool | None = None
    val_fraction: float = 0.2
    split_block_px: int | None = None
    seed: int = 0
    workers: int = 2
    val_sources: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.val_sources, str):  # the command line gives "img1454,img38"
            object.__setattr__(self, "val_sources", [v.strip() for v in self.val_sources.split(",") if v.strip()])


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
    _validate_fractions(cfg)
    if out_dir is None:
        raise InputError("no output folder given; pass -o OUT_DIR")
    if pan_sharpen:
        from geodefect.io.pansharpen import pan_sharpen_inputs, resolve_mul_bands

        ps = {"mul_bands": resolve_mul_bands(cfg.bands, pan_sharpen)}
        images = pan_sharpen_inputs(images, pan_sharpen, ps["mul_bands"])
        cfg = replace(cfg, bands=None)
    sources, aoi_path, dataset_bands, ds_ps = _resolve_inputs(images, centerlines, aoi, dataset)
    pan_spec = ps if pan_sharpen else ds_ps
    bands = parse_bands(cfg.bands) if cfg.bands is not None else dataset_bands
    plans = _plan_sources(sources, aoi_path, cfg, bands)
    _check_val_sources(cfg, plans)
    _make_labelers(plans, cfg)  # label options are checked here, before the folder exists
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


def _resolve_inputs(images, centerlines, aoi, dataset):
    """``(sources, aoi, bands, pan_sharpen spec)``; ``dataset`` may name several: ``a,b,c``."""
    if dataset:
        from geodefect.catalog import get_dataset, resolve_road_inputs

        if images or centerlines:
            raise UsageError("give either IMAGE... --centerlines FILE or --dataset NAME, not both")
        all_inputs = [resolve_road_inputs(get_dataset(n.strip())) for n in str(dataset).split(",") if n.strip()]
        kinds = {(repr(i.bands), repr(i.pan_sharpen)) for i in all_inputs}
        if len(kinds) > 1:
            raise InputError(f"datasets {dataset!r} use different bands or pan-sharpening; chip them into separate folders")
        inputs = all_inputs[0]
        sources = [s for i in all_inputs for s in i.sources]
        return sources, aoi or inputs.aoi, inputs.bands, inputs.pan_sharpen
    if not images:
        raise UsageError("no input raster given; pass IMAGE... (GeoTIFFs) or --dataset NAME")
    if not centerlines:
        raise UsageError("no centerlines given; pass --centerlines FILE (road lines: GeoJSON, GPKG, ...)")
    return [(Path(i), Path(centerlines)) for i in images], aoi, None, None


def _check_val_sources(cfg: RoadChipConfig, plans) -> None:
    """Every ``val_sources`` entry must name a source, and some source must stay for training."""
    if not cfg.val_sources:
        return
    names = [p.image.name for p in plans]
    for key in cfg.val_sources:
        if not any(key in n for n in names):
            raise InputError(f"`val_sources` entry {key!r} matches none of the {len(names)} input rasters "
                             f"(e.g. {names[0]!r}); give parts of their file names")
    if all(_is_val_source(p, cfg) for p in plans):
        raise InputError("`val_sources` selects every input raster for validation; leave some for training")


def _is_val_source(plan, cfg: RoadChipConfig) -> bool:
    return any(key in plan.image.name for key in cfg.val_sources or ())


@dataclass
class _SourcePlan:
    image: Path
    centerlines: Path
    lines: object  # GeoDataFrame in the raster CRS
    windows: list
    crs: object
    pixel_size_m: float
    transform: object = None
    no_roads: bool = False  # the centerline file declares no roads (zero-byte / no features)
    stretch: dict | None = None  # filled while exporting (see _stretch_record)
    labeler: object = None  # RoadLabeler, made by _make_labelers


def _make_labelers(plans, cfg: RoadChipConfig) -> None:
    """One RoadLabeler per source (validates the label options before anything is written)."""
    from geodefect.labels import RoadLabeler

    for plan in plans:
        plan.labeler = RoadLabeler(plan.lines, plan.crs, mode=cfg.label, buffer_m=_half_widths_m(plan.lines, cfg),
                                   sigma_px=cfg.sigma_px, threshold=cfg.threshold,
                                   bin_deg=cfg.orient_bin_deg, width_px=cfg.orient_width_px)


def _plan_sources(sources, aoi_path, cfg: RoadChipConfig, bands) -> list[_SourcePlan]:
    """Open and check every input; the window grid of each source (AOI-filtered)."""
    import shapely
    from shapely.geometry import box

    from geodefect.io.raster import RasterReader
    from geodefect.io.vector import read_aoi, read_lines_or_empty
    from geodefect.windows import filter_windows_by_geometry, iter_windows

    plans, lines_cache, aoi_cache, first_crs = [], {}, {}, None
    aoi_hit = False
    for image, lines_path in sources:
        with RasterReader(image, bands=bands, stretch=cfg.stretch, cell_size_m=cfg.cell_size_m) as reader:
            if first_crs is None:
                first_crs = reader.crs
            elif reader.crs != first_crs:
                raise InputError(f"raster {str(image)!r} has another CRS than the first raster; "
                                 "chip rasters of different CRSs into separate folders")
            key = (str(lines_path), reader.crs.to_wkt())
            if key not in lines_cache:
                lines_cache[key] = read_lines_or_empty(lines_path, to_crs=reader.crs)
            lines, no_roads = lines_cache[key]
            footprint = box(*reader.bounds)
            touching = lines[lines.intersects(footprint)]
            _check_width_field(cfg.width_field, lines, lines_path)
            _, h, w = reader.shape
            windows = list(iter_windows(h, w, size_px=cfg.size_px, stride_px=cfg.stride_px))
            if aoi_path is not None:
                if key[1] not in aoi_cache:
                    aoi_cache[key[1]] = read_aoi(aoi_path, to_crs=reader.crs)
                aoi_geom = aoi_cache[key[1]]
                aoi_hit = aoi_hit or shapely.intersects(aoi_geom, footprint)
                windows = filter_windows_by_geometry(windows, reader.transform, aoi_geom)
            plans.append(_SourcePlan(Path(image), Path(lines_path), touching, windows, reader.crs,
                                     float(sum(reader.pixel_size_m) / 2), reader.transform, no_roads))
    _check_overlaps(plans, sources, lines_cache, aoi_path, aoi_hit)
    return plans


def _check_width_field(field, lines, lines_path) -> None:
    if field and field not in lines.columns:
        columns = ", ".join(c for c in lines.columns if c != lines.geometry.name) or "none"
        raise InputError(f"`width_field` {field!r} is not an attribute of centerlines {str(lines_path)!r}; "
                         f"its attributes: {columns}")


def _half_widths_m(lines, cfg) -> float | np.ndarray:
    """``buffer_m`` per centerline: half of ``width_field`` where it is a positive number."""
    if not cfg.width_field:
        return cfg.buffer_m
    import pandas as pd

    width = pd.to_numeric(lines[cfg.width_field], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(width) & (width > 0), width / 2.0, cfg.buffer_m)


def _check_overlaps(plans, sources, lines_cache, aoi_path, aoi_hit) -> None:
    if not any(len(p.lines) for p in plans) and not all(p.no_roads for p in plans):
        lines_path = sources[0][1]
        gdf = next(v[0] for v in lines_cache.values() if len(v[0]))
        lb = ", ".join(f"{v:.6g}" for v in gdf.total_bounds)
        raise InputError(
            f"centerlines {str(lines_path)!r} do not touch raster {str(sources[0][0])!r} after "
            f"reprojection to its CRS (centerline bounds {lb}); check that both cover the same "
            "area and that the centerline file's CRS is right"
        )
    for p in plans:
        if not len(p.lines) and not p.no_roads:
            log.warning("no centerline touches %s: only road-free chips can come from it", p.image)
    if aoi_path is not None and not aoi_hit:
        raise InputError(f"AOI {str(aoi_path)!r} does not overlap any input raster after reprojection; "
                         "pass an AOI polygon inside the raster (or drop --aoi)")


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
    block_px, val_blocks = _choose_split(plans, cfg)
    n_bands = len(bands) if bands else None
    exporter = None
    results, names = [], _chip_name_stems(plans)
    total = sum(len(p.windows) for p in plans)
    from geodefect.progress import progress

    with progress(total=total, desc="chips", unit="win") as bar:
        for i, plan in enumerate(plans):
            exporter, result = _export_source(plan, i, names[i], exporter, n_bands, val_blocks,
                                              block_px, out, cfg, bands, bar)
            results.append(result)
    return _finish(plans, results, exporter, out, cfg, bands, block_px, t0, task=task,
                   pan_sharpen=settings.get("pan_sharpen"))


def _choose_split(plans, cfg: RoadChipConfig) -> tuple[int, set]:
    """Split block side and val blocks. When the blocks give no train or no val window (an input
    of one or two blocks), halve the block side, down to the stride, with a warning."""
    block_px = first = cfg.split_block_px or 4 * cfg.stride_px
    if cfg.val_sources:  # whole rasters on the val side
        keys = {(i, int(w.row_off) // block_px, int(w.col_off) // block_px) for i, p in enumerate(plans) for w in p.windows}
        return block_px, {k for k in keys if _is_val_source(plans[k[0]], cfg)}
    while True:
        val_blocks, n_train, n_val = _try_split(plans, cfg, block_px)
        if (n_train and n_val) or cfg.val_fraction <= 0 or cfg.split_block_px or block_px <= cfg.stride_px:
            break
        block_px = max(cfg.stride_px, block_px // 2)
    if n_train and n_val and block_px != first:
        log.warning("the input is too small for validation blocks of %d px; split by blocks of %d px "
                    "instead (nearer train and val chips: pass --split-block-px or more rasters to choose)",
                    first, block_px)
    elif cfg.val_fraction > 0 and not (n_train and n_val):
        log.warning("split blocks of %d px give %d train and %d val windows: every chip goes to one side; "
                    "pass a smaller --split-block-px or more rasters to get both", block_px, n_train, n_val)
    return block_px, val_blocks


def _try_split(plans, cfg: RoadChipConfig, block_px: int) -> tuple[set, int, int]:
    """Val blocks for ``block_px`` and the train / val window counts they give."""
    from geodefect.chips import export as chips

    keys = [(i, int(w.row_off) // block_px, int(w.col_off) // block_px)
            for i, p in enumerate(plans) for w in p.windows]
    val_blocks = chips.choose_val_blocks(keys, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                         road_blocks=_blocks_with_roads(plans, set(keys), block_px))
    n_train = n_val = 0
    for i, plan in enumerate(plans):
        splits, _ = chips.assign_splits(plan.windows, block_px=block_px,
                                        val_blocks={(b[1], b[2]) for b in val_blocks if b[0] == i})
        n_train, n_val = n_train + splits.count("train"), n_val + splits.count("val")
    return val_blocks, n_train, n_val


def _blocks_with_roads(plans, block_keys: set, block_px: int) -> set:
    """The split blocks (source, block row, block col) that some centerline crosses."""
    from rasterio.windows import Window

    from geodefect.windows import window_bounds

    hits = set()
    for i, r, c in block_keys:
        plan = plans[i]
        if len(plan.lines) == 0:
            continue
        bounds = window_bounds(Window(c * block_px, r * block_px, block_px, block_px), plan.transform)
        if len(plan.lines.sindex.query(_box(bounds), predicate="intersects")):
            hits.add((i, r, c))
    return hits


def _box(bounds):
    from shapely.geometry import box

    return box(*bounds)


def _export_source(plan, index, stem, exporter, n_bands, val_blocks, block_px, out, cfg, bands, bar):
    from geodefect.chips import export as chips
    from geodefect.io.chip_writer import ChipWriter
    from geodefect.io.raster import RasterReader, ThreadReaders
    result = chips.SourceResult(n_windows=len(plan.windows))
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
            if split == "drop":
                result.n_split_dropped += 1
                bar.update(1)
            else:
                chip_id = f"{stem}_{int(window.row_off):06d}_{int(window.col_off):06d}"
                tasks.append(chips.ChipTask(window, chip_id, split, index * 10**9 + order))
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
    road_m = sum(chips.footprint_length_m(p.lines.geometry.values, p.crs,
                                          [r for r in records if r.source == p.image.name]) for p in plans)
    mean, std = exporter.stats.mean_std() if exporter else ([], [])
    n_train = sum(r.split == "train" for r in records)
    label = {"mode": cfg.label, "threshold": cfg.threshold}
    label.update({"buffer_m": cfg.buffer_m, "width_field": cfg.width_field} if cfg.label == "buffer"
                 else {"sigma_px": cfg.sigma_px})
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
