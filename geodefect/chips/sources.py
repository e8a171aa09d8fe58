"""Road chip sources: which rasters go with which centerlines, their windows, labelers and checks.

Everything here runs before the chip folder is touched (``geodefect.chips.geo`` composes it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodefect.chips.config import RoadChipConfig
from geodefect.errors import InputError, UsageError

log = logging.getLogger(__name__)


def resolve_inputs(images, centerlines, aoi, dataset):
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


def check_val_sources(cfg: RoadChipConfig, plans) -> None:
    """Every ``val_sources`` entry must name a source, and some source must stay for training."""
    if not cfg.val_sources:
        return
    names = [p.image.name for p in plans]
    for key in cfg.val_sources:
        if not any(key in n for n in names):
            raise InputError(f"`val_sources` entry {key!r} matches none of the {len(names)} input rasters "
                             f"(e.g. {names[0]!r}); give parts of their file names")
    if all(is_val_source(p, cfg) for p in plans):
        raise InputError("`val_sources` selects every input raster for validation; leave some for training")


def is_val_source(plan, cfg: RoadChipConfig) -> bool:
    return any(key in plan.image.name for key in cfg.val_sources or ())


@dataclass
class SourcePlan:
    image: Path
    centerlines: Path
    lines: object  # GeoDataFrame in the raster CRS
    windows: list
    crs: object
    pixel_size_m: float
    transform: object = None
    no_roads: bool = False  # the centerline file declares no roads (zero-byte / no features)
    stretch: dict | None = None  # filled while exporting (see _stretch_record)
    labeler: object = None  # RoadLabeler, made by make_labelers
    road_m: float | None = None  # centerline metres under its chips, when a Dask unit measured it


def make_labelers(plans, cfg: RoadChipConfig) -> None:
    """One RoadLabeler per source (validates the label options before anything is written)."""
    from geodefect.labels import RoadLabeler

    for plan in plans:
        plan.labeler = RoadLabeler(plan.lines, plan.crs, mode=cfg.label, buffer_m=half_widths_m(plan.lines, cfg),
                                   sigma_px=cfg.sigma_px, threshold=cfg.threshold,
                                   bin_deg=cfg.orient_bin_deg, width_px=cfg.orient_width_px)


def plan_sources(sources, aoi_path, cfg: RoadChipConfig, bands) -> list[SourcePlan]:
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
            check_width_field(cfg.width_field, lines, lines_path)
            _, h, w = reader.shape
            windows = list(iter_windows(h, w, size_px=cfg.size_px, stride_px=cfg.stride_px))
            if aoi_path is not None:
                if key[1] not in aoi_cache:
                    aoi_cache[key[1]] = read_aoi(aoi_path, to_crs=reader.crs)
                aoi_geom = aoi_cache[key[1]]
                aoi_hit = aoi_hit or shapely.intersects(aoi_geom, footprint)
                windows = filter_windows_by_geometry(windows, reader.transform, aoi_geom)
            plans.append(SourcePlan(Path(image), Path(lines_path), touching, windows, reader.crs,
                                     float(sum(reader.pixel_size_m) / 2), reader.transform, no_roads))
    check_overlaps(plans, sources, lines_cache, aoi_path, aoi_hit)
    return plans


def check_width_field(field, lines, lines_path) -> None:
    """A named width attribute must exist; a file without features ("no roads here") has none to check."""
    if field and len(lines) and field not in lines.columns:
        columns = ", ".join(c for c in lines.columns if c != lines.geometry.name) or "none"
        raise InputError(f"`width_field` {field!r} is not an attribute of centerlines {str(lines_path)!r}; "
                         f"its attributes: {columns}")


def half_widths_m(lines, cfg) -> float | np.ndarray:
    """``buffer_m`` per centerline: half of ``width_field`` × ``width_unit_m`` where it is a positive number."""
    if not cfg.width_field or cfg.width_field not in lines.columns:  # (not there: a feature-less file)
        return cfg.buffer_m
    import pandas as pd

    width = pd.to_numeric(lines[cfg.width_field], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(width) & (width > 0), width * cfg.width_unit_m / 2.0, cfg.buffer_m)


def check_overlaps(plans, sources, lines_cache, aoi_path, aoi_hit) -> None:
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
