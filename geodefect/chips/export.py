"""Export road training chips: images, road masks and orientation bins, an index and meta.json.

Data flow per source raster (see ``geodefect.chips.geo`` for the composition):

1. ``iter_windows`` gives the grid on the reader's (possibly resampled) pixel grid; an AOI
   keeps the windows that touch it (``filter_windows_by_geometry``).
2. :func:`assign_splits` puts windows into spatial blocks of ``block_px`` (by window
   origin) and draws whole blocks for validation; train windows that overlap a val
   window are dropped, so overlapping chips never straddle the split.
3. :class:`ChipExporter` burns labels per window (cheap, so road-free windows are decided
   before the image is read), drops windows with too much nodata, keeps a seeded share of
   road-free windows, reads the image, writes three GeoTIFFs under temporary names and
   renames them, and streams per-band sums for mean/std.
4. :func:`write_index` and :func:`write_meta` run at the end; ``meta.json`` (with
   ``"complete": true``) is the last file written, so a folder without it is unfinished.

Resume: a chip whose three files exist is complete (each file is renamed into place only
when written); it is read back for the statistics instead of being exported again.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rasterio.windows import Window

from geodefect.io.atomic import TMP_PREFIX

log = logging.getLogger(__name__)

CHIP_SUBDIRS = ("images", "labels", "orientation")


# ----------------------------------------------------------------------------- split


def assign_splits(windows: Sequence[Window], *, block_px: int, val_blocks: set) -> tuple[list[str], list[tuple]]:
    """Split of each window by its block, and the block key of each window.

    Returns:
        ``(splits, blocks)``: per window ``"train"``, ``"val"`` or ``"drop"`` (a train window
        that overlaps a val window by at least one pixel), and its ``(block_row, block_col)``.
    """
    import shapely

    blocks = [(int(w.row_off) // block_px, int(w.col_off) // block_px) for w in windows]
    splits = ["val" if b in val_blocks else "train" for b in blocks]
    val_boxes = [_pixel_box(w, shrink=0.5) for w, s in zip(windows, splits, strict=True) if s == "val"]
    if val_boxes:
        tree = shapely.STRtree(val_boxes)
        train_idx = [i for i, s in enumerate(splits) if s == "train"]
        train_boxes = [_pixel_box(windows[i]) for i in train_idx]
        hit_train, _ = tree.query(train_boxes, predicate="intersects") if train_boxes else ([], [])
        for j in set(np.asarray(hit_train).tolist()):
            splits[train_idx[j]] = "drop"
    return splits, blocks


def choose_val_blocks(block_keys: Sequence, *, val_fraction: float, seed: int,
                      road_blocks: set | None = None) -> set:
    """Draw ``round(val_fraction * n)`` of the n blocks for validation (>= 1 and < n when n >= 2).

    With ``road_blocks`` (the blocks some centerline crosses), val blocks are drawn among
    those first, so that validation is not made of road-free chips that get dropped.
    """
    keys = sorted(set(block_keys))
    n = len(keys)
    if n < 2 or val_fraction <= 0:
        return set()
    n_val = min(max(1, int(round(val_fraction * n))), n - 1)
    rng = np.random.default_rng(seed)
    with_roads = [k for k in keys if road_blocks is None or k in road_blocks]
    others = [k for k in keys if k not in set(with_roads)]
    ordered = [with_roads[i] for i in rng.permutation(len(with_roads))]
    ordered += [others[i] for i in rng.permutation(len(others))]
    return set(ordered[:n_val])


def _pixel_box(w: Window, *, shrink: float = 0.0):
    from shapely.geometry import box

    c0, r0 = float(w.col_off), float(w.row_off)
    return box(c0 + shrink, r0 + shrink, c0 + float(w.width) - shrink, r0 + float(w.height) - shrink)


# ----------------------------------------------------------------------------- statistics


@dataclass
class BandStats:
    """Streaming per-band mean/std over valid pixels (float64 sums: exact enough for uint8)."""

    n_bands: int
    total: np.ndarray = field(init=False)
    total_sq: np.ndarray = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.total = np.zeros(self.n_bands)
        self.total_sq = np.zeros(self.n_bands)

    def update(self, image: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add a ``(C, H, W)`` chip; ``valid`` (H, W) bool selects the pixels counted."""
        self.add(*chip_sums(image, valid))

    def add(self, total: np.ndarray, total_sq: np.ndarray, count: int) -> None:
        """Add sums made by :func:`chip_sums` (cheap: safe to do under a lock)."""
        self.total += total
        self.total_sq += total_sq
        self.count += count

    def mean_std(self) -> tuple[list[float], list[float]]:
        if self.count == 0:
            return [0.0] * self.n_bands, [1.0] * self.n_bands
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - mean**2, 0.0)
        return mean.round(4).tolist(), np.sqrt(var).round(4).tolist()


def chip_sums(image: np.ndarray, valid: np.ndarray | None = None, *, step: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-band sum, sum of squares and pixel count of a ``(C, H, W)`` chip's valid pixels.

    Only every ``step``-th row and column is counted (a systematic 1/step² sample, 16 384
    pixels of a 512-px chip: the statistics are for normalisation, where the saving
    matters more than the last decimal). Sums are exact (integer); sums of squares are float32 over short runs, then
    float64 (accurate to ~1e-7 relative).
    """
    image = image[:, ::step, ::step]
    valid = valid[::step, ::step] if valid is not None else None
    flat = image.reshape(image.shape[0], -1)
    if valid is not None and not valid.all():
        flat = flat[:, valid.ravel()]
    f = flat.astype(np.float32)
    if np.issubdtype(flat.dtype, np.integer):
        total = flat.sum(axis=1, dtype=np.uint64).astype(np.float64)
    else:
        total = f.sum(axis=1, dtype=np.float64)
    runs = f.reshape(f.shape[0], -1, 256) if f.shape[1] % 256 == 0 else f[:, None, :]
    total_sq = np.einsum("crk,crk->cr", runs, runs).sum(axis=1, dtype=np.float64)
    return total, total_sq, flat.shape[1]


# ----------------------------------------------------------------------------- exporter


@dataclass
class ChipRecord:
    chip_id: str
    split: str
    road_frac: float
    source: str
    bounds: tuple[float, float, float, float]
    order: int = 0
    resumed: bool = False


@dataclass
class SourceResult:
    """What happened to the windows of one source raster."""

    n_windows: int = 0
    n_exported: int = 0
    n_resumed: int = 0
    n_empty_dropped: int = 0
    n_nodata_dropped: int = 0
    n_split_dropped: int = 0


class ChipExporter:
    """Writes chips of one or more sources into ``out_dir`` and collects their records.

    Args:
        out_dir: the chip folder (``images/``, ``labels/``, ``orientation/`` are created).
        n_bands: bands per image chip.
        keep_empty: share of road-free windows kept (0..1), drawn per chip id with ``seed``.
        max_nodata: windows with a larger share of nodata pixels are skipped.
        seed: seeds the road-free draw.
    """

    def __init__(self, out_dir: Path, *, n_bands: int, keep_empty: float, max_nodata: float, seed: int) -> None:
        self.out_dir = Path(out_dir)
        for sub in CHIP_SUBDIRS:
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        self.keep_empty = float(keep_empty)
        self.negative_sources: set[str] = set()  # sources whose road-free chips are all kept
        self.max_nodata = float(max_nodata)
        self.seed = int(seed)
        self.stats = BandStats(n_bands)
        self.records: list[ChipRecord] = []
        self._lock = threading.Lock()

    def chip_paths(self, chip_id: str) -> tuple[Path, Path, Path]:
        return tuple(self.out_dir / sub / f"{chip_id}.tif" for sub in CHIP_SUBDIRS)

    def keeps_empty(self, chip_id: str) -> bool:
        """Deterministic draw in [0, 1) per (seed, chip id): keep a road-free chip?"""
        u = zlib.crc32(f"{self.seed}:{chip_id}".encode()) / 2**32
        return u < self.keep_empty

    def export_row_run(self, reader, labeler, writer, run: Sequence[ChipTask], *, source: str,
                       result: SourceResult) -> list[str]:
        """Export windows of one row of the grid (same ``row_off`` and height, left to right),
        burning their labels once over the span they cover (:func:`row_runs` makes the runs).

        Burning one wider window costs less than burning each (the per-call work of the
        capsule rasterizer is paid once); pixel centres, and so the labels, are the same.
        """
        first, last = run[0].window, run[-1].window
        todo = [t for t in run if not all(p.is_file() for p in self.chip_paths(t.chip_id))]
        labels = None
        if todo:
            span = Window(first.col_off, first.row_off, last.col_off + last.width - first.col_off, first.height)
            labels = labeler.burn(reader.window_transform(span), int(span.height), int(span.width))
        outcomes = []
        for t in run:
            sliced = None
            if labels is not None:
                cols = slice(int(t.window.col_off - first.col_off), int(t.window.col_off - first.col_off + t.window.width))
                sliced = type(labels)(labels.mask[:, cols].copy(), labels.orientation[:, cols].copy())
            outcomes.append(self.export_window(reader, labeler, writer, t.window, chip_id=t.chip_id, split=t.split,
                                               source=source, result=result, order=t.order, labels=sliced))
        return outcomes

    def export_window(self, reader, labeler, writer, window: Window, *, chip_id: str, split: str,
                      source: str, result: SourceResult, order: int = 0, labels=None) -> str:
        """Export one window, resume it or skip it; thread-safe (one reader per thread).

        ``labels``: the window's :class:`~geodefect.labels.roads.WindowLabels` when already
        burned (see :meth:`export_row_run`); burned here otherwise.

        Returns:
            ``"exported"``, ``"resumed"``, ``"empty"`` (road-free, not drawn) or ``"nodata"``.
        """
        from geodefect.windows import window_bounds

        transform = reader.window_transform(window)
        bounds = window_bounds(window, reader.transform)
        paths = self.chip_paths(chip_id)
        if all(p.is_file() for p in paths):
            sums, road_frac = self._read_back(paths, reader, window)
            return self._add(result, "resumed", sums, ChipRecord(chip_id, split, road_frac, source, bounds, order, True))
        if labels is None:
            labels = labeler.burn(transform, int(window.height), int(window.width))
        road_frac = float(np.count_nonzero(labels.mask)) / labels.mask.size
        if road_frac == 0 and source not in self.negative_sources and not self.keeps_empty(chip_id):
            return self._add(result, "empty")
        valid = reader.read_valid_mask(window)
        if 1.0 - np.count_nonzero(valid) / valid.size > self.max_nodata:
            return self._add(result, "nodata")
        image = reader.read(window)
        if not valid.all():  # no image there: no road label either (nothing to learn from)
            image[:, ~valid] = 0
            labels.mask[~valid] = 0
            labels.orientation[~valid] = 0
            road_frac = float(np.count_nonzero(labels.mask)) / labels.mask.size
        # the road mask is stored 1 bit per pixel (reads back as uint8 0/1; 8x less to write)
        for path, arr, bilevel in zip(paths, (image, labels.mask, labels.orientation), (False, True, False), strict=True):
            _write_then_rename(writer, path, arr, transform, bilevel=bilevel)
        sums = chip_sums(image, valid)
        return self._add(result, "exported", sums, ChipRecord(chip_id, split, road_frac, source, bounds, order))

    def _add(self, result: SourceResult, outcome: str, sums=None, record: ChipRecord | None = None) -> str:
        attr = {"exported": "n_exported", "resumed": "n_resumed", "empty": "n_empty_dropped",
                "nodata": "n_nodata_dropped"}[outcome]
        with self._lock:
            setattr(result, attr, getattr(result, attr) + 1)
            if record is not None:
                self.stats.add(*sums)
                self.records.append(record)
        return outcome

    def _read_back(self, paths, reader, window):
        import rasterio

        with rasterio.open(paths[0]) as src:
            image = src.read()
        with rasterio.open(paths[1]) as src:
            road_frac = float(src.read(1).mean())
        return chip_sums(image, reader.read_valid_mask(window)), road_frac

    def sorted_records(self) -> list[ChipRecord]:
        """Records in window order (threads finish in any order)."""
        return sorted(self.records, key=lambda r: r.order)


class ChipTask(NamedTuple):
    """One window to export: its chip id, split and position in the output order."""

    window: Window
    chip_id: str
    split: str
    order: int


#: windows whose labels are burned in one call (see :meth:`ChipExporter.export_row_run`)
ROW_RUN_WINDOWS = 4


def row_runs(tasks: Sequence[ChipTask], *, max_windows: int = ROW_RUN_WINDOWS) -> list[list[ChipTask]]:
    """Cut tasks (in grid order) into runs of at most ``max_windows`` windows of one grid row:
    same ``row_off`` and height, each overlapping or touching the previous one."""
    runs: list[list[ChipTask]] = []
    for t in tasks:
        prev = runs[-1][-1].window if runs else None
        w = t.window
        if (prev is not None and len(runs[-1]) < max_windows and w.row_off == prev.row_off
                and w.height == prev.height and prev.col_off < w.col_off <= prev.col_off + prev.width):
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _write_then_rename(writer, path: Path, array: np.ndarray, transform, *, bilevel: bool = False) -> None:
    # one process writes a chip folder at a time, so a pid-tagged name is unique; cheaper
    # than tempfile.mkstemp (which creates and deletes a file) on thousands of chips
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        writer.write(tmp, array, transform=transform, bilevel=bilevel)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run_threaded(fn, tasks: Sequence, *, workers: int, on_done=None) -> None:
    """Call ``fn(task)`` for every task on ``workers`` threads (inline when 1).

    ``on_done(result)`` is called in the calling thread with each task's return value. At
    most ``2 * workers`` tasks are in flight, so an error or Ctrl-C stops the run after the
    chips being written are finished (each is renamed into place or removed).
    """
    if workers <= 1:
        for task in tasks:
            res = fn(task)
            if on_done:
                on_done(res)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chip")
    pending: set = set()
    try:
        for task in tasks:
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, on_done)
            pending.add(pool.submit(fn, task))
        done, pending = wait(pending)
        _collect(done, on_done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(done, on_done) -> None:
    for future in done:
        res = future.result()  # re-raises a worker's exception here, in the main thread
        if on_done:
            on_done(res)


def remove_stale_temp_files(out_dir: Path) -> int:
    """Delete temporary chip files an interrupted run left behind; return how many."""
    n = 0
    for sub in CHIP_SUBDIRS:
        d = Path(out_dir) / sub
        if d.is_dir():
            for p in d.glob(f"{TMP_PREFIX}*"):
                p.unlink(missing_ok=True)
                n += 1
    return n


# ----------------------------------------------------------------------------- outputs


def write_index(records: Sequence[ChipRecord], crs, path: Path) -> None:
    """``index.gpkg`` layer ``chips``: one footprint polygon per chip (raster CRS), atomically."""
    import geopandas as gpd
    from shapely.geometry import box

    from geodefect.io.atomic import atomic_path
    from geodefect.io.qgis_styles import style_chip_index

    data = {
        "chip_id": [r.chip_id for r in records],
        "image": [f"images/{r.chip_id}.tif" for r in records],
        "label": [f"labels/{r.chip_id}.tif" for r in records],
        "orientation": [f"orientation/{r.chip_id}.tif" for r in records],
        "road_frac": [round(r.road_frac, 6) for r in records],
        "split": [r.split for r in records],
        "source": [r.source for r in records],
    }
    gdf = gpd.GeoDataFrame(data, geometry=[box(*r.bounds) for r in records],
                           crs=crs.to_wkt() if crs is not None else None)
    logging.getLogger("pyogrio").setLevel(logging.WARNING)  # its INFO "Created N records"
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer="chips", driver="GPKG", VERSION="1.2")  # readable by QGIS 3.22 without warning
        style_chip_index(tmp)  # outlines coloured by split: the imagery under them stays visible


def footprint_length_m(lines, crs, records: Sequence[ChipRecord]) -> float:
    """Length in metres of the centerlines inside the union of the chips' footprints."""
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    if not records or len(lines) == 0:
        return 0.0
    area = shapely.union_all([box(*r.bounds) for r in records])
    clipped = gpd.GeoSeries(shapely.intersection(np.asarray(lines, dtype=object), area), crs=crs.to_wkt())
    clipped = clipped[~clipped.is_empty]
    if clipped.empty:
        return 0.0
    if clipped.crs.is_geographic:
        clipped = clipped.to_crs(clipped.estimate_utm_crs())
        return float(clipped.length.sum())
    factor = clipped.crs.axis_info[0].unit_conversion_factor or 1.0
    return float(clipped.length.sum() * factor)
