"""The inputs of ``geodefect infer`` (roads), opened and checked before any prediction.

:func:`prepare_jobs` opens every IMAGE on the model's grid (resampled on the fly when its pixel
size differs), reads the AOI in its CRS and plans the windows; one image the AOI misses is skipped
with a warning when there are several. The local path (:mod:`geodefect.inference.roads`) and the
work units (:mod:`geodefect.inference.roads_dask`) both start from an :class:`ImageJob`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geodefect.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class ImageJob:
    """One checked input: its reader (model grid), windows, AOI, output subfolder name."""

    path: Path
    name: str
    reader: Any
    windows: Any
    source_grid: tuple | None  # (transform, width, height) when resampled
    aoi: Any = None  # the AOI in the reader's CRS (written to roads.gpkg, layer aoi)


def prepare_jobs(inputs: list[Path], recipe: dict, cfg, params) -> list[ImageJob]:
    """Open and check every input against the model and the AOI (no prediction yet)."""
    from geodefect.io.raster import parse_bands

    if not inputs:
        from geodefect.errors import UsageError

        raise UsageError("no IMAGE given; pass one or more GeoTIFFs")
    bands = parse_bands(cfg.bands)
    jobs: list[ImageJob] = []
    try:
        for path in inputs:
            job = prepare_one(path, recipe, cfg, params, bands, name=_unique_name(path, jobs),
                              skip_miss=len(inputs) > 1)
            if job is not None:
                jobs.append(job)
    except BaseException:
        for job in jobs:
            job.reader.close()
        raise
    if not jobs:
        raise InputError(f"the AOI {cfg.aoi!r} overlaps none of the {len(inputs)} images; check the AOI and the rasters")
    return jobs


def prepare_one(path: Path, recipe, cfg, params, bands, *, name: str, skip_miss: bool) -> ImageJob | None:
    """One input opened on the model's grid with its AOI and windows (None: skipped, ``skip_miss``
    and the AOI misses it); the reader is closed again if any check fails."""
    from geodefect.inference.geo import (
        aoi_overlaps,
        open_image_for_model,
        plan_geo_windows,
        read_aoi_in_crs,
    )

    reader = open_image_for_model(path, recipe, bands=bands, resample=cfg.resample)
    try:
        aoi = read_aoi_in_crs(cfg.aoi, reader.crs) if cfg.aoi else None
        if skip_miss and aoi is not None and not aoi_overlaps(reader, aoi):
            return _skip(reader, path, "the AOI does not overlap it")
        windows = plan_geo_windows(reader, params, aoi=aoi, path=str(path))
        source = _source_grid(path)
        if source == (reader.transform, reader.shape[2], reader.shape[1]):
            source = None  # not resampled: blocks are on the source grid already
        return ImageJob(path=path, name=name, reader=reader, windows=windows, source_grid=source, aoi=aoi)
    except BaseException:
        reader.close()
        raise


def _skip(reader, path, why: str):
    """Several images: one the AOI misses is skipped with a warning (a single image raises in the caller)."""
    reader.close()
    log.warning("skipping %s: %s", path, why)
    return None


def _source_grid(path: Path):
    import rasterio

    with rasterio.open(path) as ds:
        return (ds.transform, ds.width, ds.height)


def _unique_name(path: Path, jobs: list[ImageJob]) -> str:
    taken = {j.name for j in jobs}
    name, i = path.stem, 2
    while name in taken:
        name, i = f"{path.stem}_{i}", i + 1
    return name
