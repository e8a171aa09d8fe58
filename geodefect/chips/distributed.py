"""Road chip export on a Dask cluster (``geodefect chip --scheduler processes:N|tcp://...``).

One work unit per source raster, or per block of ``block_px`` of a larger one (the windows whose
origin lies in the block; splits and seeds come from all of the raster's windows, so the chips are
the same): the worker exports those chips with the same code as the local path (``chips.geo._export_source``; chip files only, each written under a temporary
name and renamed, so workers never share a file) and returns the chip records, the band sums
and the counts. The client merges them and writes ``index.gpkg`` and ``meta.json`` as the local
path does. Chips are resumable as always: a rerun reads back the chips that exist. Band sums are
float64 sums of 8-bit values (exact), so the statistics do not depend on the order of the units.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def export_sources(plans, names, n_bands, val_blocks, block_px: int, out: Path, cfg, bands, *, export_source):
    """Export every plan as a Dask unit; returns ``(merged ChipExporter, [SourceResult per plan])``.

    ``export_source``: the local path's per-source export (``chips.geo._export_source``), passed in
    so that this module does not import its caller.
    """
    from geodefect.chips import export as chips
    from geodefect.distributed import open_client, parse_scheduler, run_units, unit_key
    from geodefect.io.pansharpen import vsimem_source
    from geodefect.progress import progress

    worker_cfg = dataclasses.replace(cfg, workers=1, scheduler="local")  # one thread per worker
    units, owner = [], []
    for i, plan in enumerate(plans):
        vrt = vsimem_source(str(plan.image))  # a pan-sharpened source lives in this process's /vsimem
        for only in window_blocks(plan.windows, cfg.block_px):
            args = (export_source, plan, i, names[i], n_bands, val_blocks, block_px, str(out), worker_cfg, bands, vrt,
                    only)
            units.append((unit_key("geodefect-chip", str(out), str(plan.image), names[i], only), args))
            owner.append(i)
    with open_client(parse_scheduler(cfg.scheduler)) as client, progress(total=len(units), desc="units") as bar:
        parts = run_units(client, chip_source_unit, units, on_done=lambda: bar.update(1))
    exporter, results = None, [chips.SourceResult() for _ in plans]
    for i, (records, sums, result, stretch, n_bands_seen, road_m) in zip(owner, parts, strict=True):
        if exporter is None:
            exporter = chips.ChipExporter(out, n_bands=n_bands or n_bands_seen, keep_empty=cfg.keep_empty,
                                          max_nodata=cfg.max_nodata, seed=cfg.seed)
        exporter.records.extend(records)
        exporter.stats.add(*sums)
        plans[i].stretch = stretch
        plans[i].road_m = road_m
        for f in dataclasses.fields(result):
            setattr(results[i], f.name, getattr(results[i], f.name) + getattr(result, f.name))
    return exporter, results


def window_blocks(windows, block_px: int) -> list[list[int] | None]:
    """The units of one raster: ``[None]`` (all its windows) when it fits in ``block_px``, else the
    indices of the windows whose origin lies in each ``block_px`` block, row-major."""
    if not block_px or not windows:
        return [None]
    extent = max(max(int(w.row_off + w.height), int(w.col_off + w.width)) for w in windows)
    if extent <= block_px:
        return [None]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault((int(w.row_off) // block_px, int(w.col_off) // block_px), []).append(i)
    return [groups[k] for k in sorted(groups)]


def warm_worker() -> None:
    """What a chip unit imports (GDAL, the labelers' vector stack), imported when the worker starts
    (:func:`geodefect.distributed.early_cluster`), not on its first unit."""
    import geopandas  # noqa: F401
    import rasterio  # noqa: F401
    import rasterio.features  # noqa: F401

    import geodefect.chips.export  # noqa: F401
    import geodefect.chips.geo  # noqa: F401


def chip_source_unit(export_source, plan, index: int, stem: str, n_bands, val_blocks, block_px: int, out: str,
                     cfg, bands, vrt_xml: str | None, only: list[int] | None = None):
    """One source raster's chips (``only``: those windows) on a worker; returns ``(records, band sums,
    result, stretch, n_bands, road metres under the chips or None for a block)``."""
    from geodefect.distributed import worker_setup

    worker_setup()  # a worker of a cluster started elsewhere (a LocalCluster's were set up at start)
    if vrt_xml is not None:
        from geodefect.io.pansharpen import ensure_vsimem

        ensure_vsimem(str(plan.image), vrt_xml)
    exporter, result = export_source(plan, index, stem, None, n_bands, val_blocks, block_px, Path(out), cfg,
                                      bands, _NoBar(), only)
    stats = exporter.stats
    road_m = None  # a whole source measures its road length here, in parallel (blocks overlap: the client does)
    if only is None:
        from geodefect.chips.export import footprint_length_m

        road_m = footprint_length_m(plan.lines.geometry.values, plan.crs, exporter.sorted_records())
    return exporter.records, (stats.total, stats.total_sq, stats.count), result, plan.stretch, stats.n_bands, road_m
