"""Blocks of one raster as work units (``geodefect infer --scheduler processes:N|tcp://... --block-px``).

A raster larger than ``block_px`` is cut into *cores* of ``block_px``² pixels (rounded down to a
multiple of the window stride, aligned to the raster's origin, clipped to its edges), and each
core that the AOI's box and at least one window reach is one work unit. A unit predicts every
window that touches its core (the halo: the windows reaching in from its neighbours, so up to
one row and column of windows more than the core holds) on the *whole* raster's grid — the same
windows, the same blend weights, the same strips of the stitcher as one process — and keeps the
stitched values of its core only. Every pixel of the core thus gets the same windows, summed in
the same order, as in the one-process run: the values are identical, not close.

A unit writes its own files (:class:`~geodefect.inference.road_outputs.RoadBlockWriter` with
``core``: tiled GeoTIFFs of the core, the core's part of the vectoriser's inputs) under a
temporary name, renamed when complete; the client (:func:`assemble_image`) then mosaics the
cores of each raster with a GDAL VRT copied to one COG with overviews, joins their vectoriser
inputs and vectorises once (in blocks, :mod:`geodefect.graph.tiled`: memory bounded by the
block). Workers never write to a shared file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geodefect.windows import intersect_windows, tile_raster

#: rows copied at a time when the client joins the cores' vectoriser inputs (bounded memory)
JOIN_ROWS = 1024


def block_step_px(block_px: int, stride_px: int) -> int:
    """The core side: ``block_px`` rounded down to a multiple of the stride (at least one stride)."""
    return max(int(stride_px), int(block_px) // int(stride_px) * int(stride_px))


def plan_cores(shape_hw: tuple[int, int], windows, bbox: Window, *, block_px: int, stride_px: int) -> list[Window]:
    """The cores of a raster that the AOI box and at least one window reach, row-major."""
    h, w = shape_hw
    step = block_step_px(block_px, stride_px)
    touched = set()
    for win in windows:  # each window marks the cores it touches (O(windows), not windows x cores)
        r0, c0 = max(int(win.row_off), 0), max(int(win.col_off), 0)
        r1, c1 = min(int(win.row_off + win.height), h), min(int(win.col_off + win.width), w)
        for i in range(r0 // step, (r1 - 1) // step + 1):
            for j in range(c0 // step, (c1 - 1) // step + 1):
                touched.add((i, j))
    cores = tile_raster(h, w, block_px=step)
    return [c for c in cores if (int(c.row_off) // step, int(c.col_off) // step) in touched
            and intersect_windows(c, bbox) is not None]


def windows_touching(windows, core: Window) -> list:
    """The windows (in their order) that overlap ``core``."""
    return [win for win in windows if intersect_windows(win, core) is not None]


def core_name(core: Window) -> str:
    return f"r{int(core.row_off)}_c{int(core.col_off)}"


def run_block(job, predictor, params, cfg, vparams, recipe: dict, dest: Path, core: Window) -> dict:
    """Predict the windows touching ``core`` and keep the core's outputs in ``dest/.work``."""
    from geodefect.inference.predictor import TimedPredictor
    from geodefect.inference.roads import _predict_blocks, road_writer

    dest.mkdir(parents=True, exist_ok=True)
    timer = TimedPredictor(predictor)
    t0 = time.perf_counter()
    writer = road_writer(job, dest, cfg, vparams, recipe, core=core)
    mine = dataclasses.replace(job, windows=dataclasses.replace(job.windows, windows=windows_touching(
        job.windows.windows, core)))
    n_windows = _predict_blocks(mine, timer, params, writer, recipe)
    writer.close_files()
    return {"core": [int(core.col_off), int(core.row_off), int(core.width), int(core.height)],
            "windows": n_windows, "inside_px": writer.inside_px,
            "bbox": None if writer.bbox is None else _window_list(writer.bbox),
            "n_orientation_values": writer.n_orientation_values(),
            "timings_s": {"predict": round(time.perf_counter() - t0, 3), "model": round(timer.seconds, 3)}}


def _window_list(win: Window) -> list[int]:
    return [int(win.col_off), int(win.row_off), int(win.width), int(win.height)]


@dataclasses.dataclass(frozen=True)
class ImageGrid:
    """What the client keeps of a checked input to assemble its blocks (no open file)."""

    name: str
    shown: str
    shape_hw: tuple[int, int]
    transform: object
    crs: object
    bbox: Window
    pixel_area_m2: float
    source_grid: tuple | None
    n_windows: int = 0
    aoi: object = None

    @classmethod
    def of(cls, job) -> ImageGrid:
        from geodefect.io.pansharpen import display_path

        px_x, px_y = job.reader.pixel_size_m
        return cls(name=job.name, shown=display_path(job.path), shape_hw=tuple(job.reader.shape[1:]),
                   transform=job.reader.transform, crs=job.reader.crs, bbox=job.windows.bbox,
                   pixel_area_m2=float(px_x * px_y), source_grid=job.source_grid,
                   n_windows=len(job.windows.windows), aoi=job.aoi)


def assemble_image(grid: ImageGrid, blocks: list[tuple[Path, dict]], dest: Path, *, cfg, vparams, recipe: dict) -> dict:
    """Mosaic the blocks of one raster into ``dest`` (COGs, roads.gpkg, graph.graphml); its entry."""
    from geodefect.inference.geo import publish_tiled
    from geodefect.inference.road_outputs import road_output_specs
    from geodefect.inference.roads import used_orientation
    from geodefect.io.vrt import write_mosaic_vrt

    t0 = time.perf_counter()
    orient = used_orientation(recipe)
    with_orientation = bool(orient.get("n_classes") and orient.get("bin_deg"))
    specs = road_output_specs(threshold=vparams.threshold, bin_deg=orient.get("bin_deg"), with_orientation=with_orientation)
    work = dest / ".work"
    work.mkdir(parents=True, exist_ok=True)
    tiled = {}
    for name, spec in specs.items():
        sources = [(folder / ".work" / f"tiled-{spec.filename}", Window(*entry["core"])) for folder, entry in blocks]
        tiled[name] = write_mosaic_vrt(work / f"{spec.filename}.vrt", sources, shape_hw=grid.shape_hw,
                                       transform=grid.transform, crs=grid.crs, spec=spec)
    paths = publish_tiled(tiled, specs, dest, source=grid.source_grid)
    t_write = time.perf_counter() - t0
    entry = {"image": grid.shown, "outputs": sorted(p.name for p in paths.values()),
             "windows": grid.n_windows, "blocks": len(blocks),
             "windows_predicted": sum(e["windows"] for _, e in blocks),  # with the blocks' halos
             "area_km2": round(sum(e["inside_px"] for _, e in blocks) * grid.pixel_area_m2 / 1e6, 6),
             "timings_s": {"predict": round(sum(e["timings_s"]["predict"] for _, e in blocks), 3),
                           "model": round(sum(e["timings_s"]["model"] for _, e in blocks), 3),
                           "write_rasters": round(t_write, 3)}}
    if cfg.vectorize:
        entry.update(_vectorize_blocks(grid, blocks, dest, work, cfg=cfg, vparams=vparams, orient=orient))
        entry["timings_s"]["vectorize"] = round(time.perf_counter() - t0 - t_write, 3)
    shutil.rmtree(work, ignore_errors=True)
    return entry


@dataclasses.dataclass
class JoinedInputs:
    """The vectoriser's inputs of a raster joined from its blocks (what ``_vectorize`` reads)."""

    prob_file: object
    orient_file: object
    transform: object
    crs: object
    bin_deg: float | None

    def vector_inputs(self):
        orient = None if self.orient_file is None else self.orient_file.open_read()
        return self.prob_file.open_read(), orient, self.transform


def _vectorize_blocks(grid: ImageGrid, blocks, dest: Path, work: Path, *, cfg, vparams, orient: dict) -> dict:
    from rasterio.windows import transform as win_transform

    from geodefect.inference.road_outputs import NpyRowFile, SparseBinsFile
    from geodefect.inference.roads import _vectorize

    hw = (int(grid.bbox.height), int(grid.bbox.width))
    n_bins = int(orient["n_classes"]) - 1 if orient.get("n_classes") and orient.get("bin_deg") else 0
    prob = NpyRowFile(work / "prob.npy", hw, dtype=np.float32)
    bins = SparseBinsFile(work / "orientation", hw, n_bins=n_bins) if n_bins else None
    try:
        for folder, entry in blocks:
            if entry["bbox"] is not None:
                _join_block(folder / ".work", Window(*entry["bbox"]), grid.bbox, prob, bins, entry, n_bins)
        joined = JoinedInputs(prob, bins, win_transform(grid.bbox, grid.transform), grid.crs,
                              orient.get("bin_deg") if bins is not None else None)
        result = _vectorize(joined, vparams, dest, block_px=cfg.vector_block_px)
    finally:
        prob.close()
        if bins is not None:
            bins.close()
    if grid.aoi is not None:
        from geodefect.io.qgis_styles import write_aoi_layer

        write_aoi_layer(dest / "roads.gpkg", grid.aoi, grid.crs)
    return result


def _join_block(src: Path, part: Window, bbox: Window, prob, bins, entry: dict, n_bins: int) -> None:
    """Copy one block's part of the AOI box into the joined files, ``JOIN_ROWS`` rows at a time."""
    from geodefect.inference.road_outputs import SparseBins

    block_prob = np.load(src / "prob.npy", mmap_mode="r")
    r_at, c_at = int(part.row_off - bbox.row_off), int(part.col_off - bbox.col_off)
    if bins is not None:
        n = int(entry["n_orientation_values"])
        values = (np.memmap(src / "orientation-values.bin", dtype=np.float16, mode="r", shape=(n, n_bins))
                  if n else np.zeros((0, n_bins), np.float16))
        block_bins = SparseBins(np.load(src / "orientation-index.npy", mmap_mode="r"), values)
    for r in range(0, block_prob.shape[0], JOIN_ROWS):
        prob.write(r_at + r, c_at, np.asarray(block_prob[r : r + JOIN_ROWS]))
        if bins is not None:
            index = np.asarray(block_bins.index[r : r + JOIN_ROWS])
            rows, cols = np.nonzero(index)
            bins.write(r_at + r, c_at, index.shape, rows, cols, np.asarray(block_bins.values[index[rows, cols] - 1]))


def block_entries(folder: Path) -> dict:
    """The entry of a finished block unit (its ``entry.json``)."""
    return json.loads((folder / "entry.json").read_text())
