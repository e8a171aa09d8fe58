"""Road outputs of stitched blocks: probability, mask and orientation rasters + vectoriser inputs.

:class:`RoadBlockWriter` receives the engine's finished blocks (``road`` (1, h, w) and
``orientation`` (K, h, w) probabilities), masks them to the AOI, and writes

* ``road_prob.tif``: uint8 ``round(p × 254)``, nodata 255 outside the AOI (scale 1/254);
* ``road_mask.tif``: uint8 1 where ``p >= threshold``, else 0; nodata 255;
* ``orientation.tif``: uint8 argmax bin (1..n_bins) of the bin probabilities on road pixels,
  0 elsewhere; nodata 255 — the argmax is taken after stitching, never averaged;

block by block (:class:`geodefect.inference.geo.TiledOutputs`); pixels outside the AOI or
where the input has no data (its nodata / mask / alpha) are nodata.

For the vectoriser it also keeps the AOI's bounding box of probability (float32, NaN outside
the AOI) in an ``.npy`` file, and the orientation-bin probabilities of the road pixels only
(:class:`SparseBinsFile`: an index raster plus the bins of each road pixel, float16) — the
vectoriser reads bins on the skeleton alone, and a dense ``(H, W, 18)`` float16 file would take
36 bytes per pixel of disk (60 GB for a 40 000² AOI). Both are written with plain file writes
(:class:`NpyRowFile`) — not through a memory map, whose dirty pages would count in the
process's resident memory — and read back memory-mapped, so only what the vectoriser touches
is loaded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from geodefect.inference.geo import OutputSpec, TiledOutputs, aoi_mask
from geodefect.io.raster import ThreadReaders
from geodefect.sliding import Block
from geodefect.windows import intersect_windows

PROB_SCALE = 254.0
NODATA = 255


def road_output_specs(*, threshold: float, bin_deg: float | None, with_orientation: bool) -> dict[str, OutputSpec]:
    """The single-band output rasters of road inference."""
    specs = {
        "prob": OutputSpec(
            "road_prob.tif", resampling="bilinear", scale=1.0 / PROB_SCALE,
            tags={"content": "road probability x 254 (0..254); 255 = nodata (outside the AOI)"},
        ),
        "mask": OutputSpec("road_mask.tif", tags={"content": f"1 = road (probability >= {threshold}), 0 = background"},
                           colormap=MASK_COLOURS),
    }
    if with_orientation:
        specs["orientation"] = OutputSpec(
            "orientation.tif",
            tags={"content": "orientation bin on road pixels, 0 elsewhere", "bin_deg": bin_deg,
                  "convention": "theta = atan2(-d_row, d_col) CCW from +column; bin = floor(theta/bin_deg)+1"},
            colormap=orientation_colours(bin_deg),
        )
    return specs


#: road_mask.tif: roads orange on dark grey (a GeoTIFF colour table has no alpha; nodata 255
#: outside the AOI is transparent as nodata)
MASK_COLOURS = {0: (40, 40, 40, 255), 1: (255, 127, 0, 255), NODATA: (0, 0, 0, 255)}


def orientation_colours(bin_deg: float | None) -> dict | None:
    """orientation.tif: bins 1..n round the hue circle (cyclic, like the angles), 0 dark grey."""
    import colorsys

    if not bin_deg:
        return None
    n = int(round(360.0 / float(bin_deg)))
    colours = {0: (40, 40, 40, 255), NODATA: (0, 0, 0, 255)}
    for b in range(1, min(n, NODATA - 1) + 1):
        r, g, bl = colorsys.hsv_to_rgb((b - 1) / n, 0.85, 0.95)
        colours[b] = (int(r * 255), int(g * 255), int(bl * 255), 255)
    return colours


@dataclass(frozen=True)
class WindowGrid:
    """The grid of a window of a raster (``shape``, ``transform``, ``crs``), for :class:`TiledOutputs`."""

    shape: tuple[int, int, int]
    transform: Any
    crs: Any

    @classmethod
    def of(cls, reader, window: Window) -> WindowGrid:
        from rasterio.windows import transform as win_transform

        return cls((1, int(window.height), int(window.width)), win_transform(window, reader.transform), reader.crs)


class RoadBlockWriter:
    """Write road blocks for one image (or for one work unit's part of it: ``core``).

    Args:
        work_dir: the image's (temporary) output folder; intermediates go to ``work_dir/.work``.
        reader: the model-grid reader (``shape``, ``transform``, ``crs``, ``pixel_size_m``).
        geo_windows: :class:`geodefect.inference.geo.GeoWindows` (AOI and its bounding window).
        threshold: probability threshold of the road mask.
        bin_deg, n_orientation: orientation bins from the recipe (None: no orientation output).
        core: only this window of the raster is written (a block work unit,
            :mod:`geodefect.inference.road_blocks`): the rasters cover it, the vectoriser's
            inputs cover its part of the AOI box; blocks are cropped to it. None: the whole raster.
    """

    def __init__(self, work_dir: Path, reader, geo_windows, *, threshold: float,
                 bin_deg: float | None, n_orientation: int | None, vectorize: bool = True,
                 core: Window | None = None) -> None:
        self.out_dir = Path(work_dir)
        self.work = self.out_dir / ".work"
        self.work.mkdir(parents=True, exist_ok=True)
        _, h, w = reader.shape
        self.core = core
        self.reader, self.aoi = reader, geo_windows.aoi
        self.bbox = intersect_windows(geo_windows.bbox, core) if core is not None else geo_windows.bbox
        self.crs, self.threshold = reader.crs, float(threshold)
        self.bin_deg = bin_deg
        self.n_orientation = int(n_orientation) if n_orientation and bin_deg else 0
        self.vectorize_enabled = vectorize
        self.inside_px = 0
        self.outputs = TiledOutputs(
            self.work, road_output_specs(threshold=threshold, bin_deg=bin_deg, with_orientation=bool(self.n_orientation)),
            reader if core is None else WindowGrid.of(reader, core),
        )
        self._prob = self._orient = None
        # write() may run on a helper thread (road_infer's write-behind queue): GDAL handles
        # are not thread-safe, so the input's nodata mask is read through a handle per thread
        self._readers = ThreadReaders(reader) if hasattr(reader, "reopen") else None
        if vectorize and self.bbox is not None:
            self._open_memmaps()

    def _open_memmaps(self) -> None:
        """Pixels of the box that no block writes (outside every window) stay 0 = background."""
        h, w = int(self.bbox.height), int(self.bbox.width)
        self._prob = NpyRowFile(self.work / "prob.npy", (h, w), dtype=np.float32)
        if self.n_orientation:  # bins 1.. (the background channel 0 is not used by the vectoriser)
            self._orient = SparseBinsFile(self.work / "orientation", (h, w), n_bins=self.n_orientation - 1)

    def write(self, block: Block) -> None:
        """Mask one block to the AOI, encode and write it."""
        if self.core is not None:
            block = block.crop(int(self.core.row_off), int(self.core.col_off), int(self.core.height), int(self.core.width))
            if block is None:
                return
        win = Window(block.col_off, block.row_off, block.width, block.height)
        inside = aoi_mask(self.aoi, win, self.reader.transform) & block.covered
        if hasattr(self.reader, "read_valid_mask"):  # the input's own nodata stays nodata
            inside &= (self._readers.get() if self._readers is not None else self.reader).read_valid_mask(win)
        self.inside_px += int(inside.sum())
        prob = block.outputs["road"][0]
        road = prob >= self.threshold
        out_win = win if self.core is None else Window(win.col_off - self.core.col_off, win.row_off - self.core.row_off,
                                                       win.width, win.height)
        self.outputs.write("prob", np.where(inside, np.rint(prob * PROB_SCALE), NODATA), out_win)
        self.outputs.write("mask", np.where(inside, road, NODATA), out_win)
        has_orient = bool(self.n_orientation) and "orientation" in block.outputs
        if has_orient:  # argmax of the bins 1.., on road pixels only (from the sums: no division)
            bins = block.argmax("orientation", first=1, where=road, dtype=np.uint8)
            self.outputs.write("orientation", np.where(inside, bins, NODATA), out_win)
        if self._prob is not None:
            # NaN = nodata (outside the AOI, the input's nodata); pixels no window covers are 0,
            # as those of the box no block reaches: the same values whichever windows ran
            vec = np.where(inside, prob, np.where(block.covered, np.float32(np.nan), np.float32(0)))
            self._copy_to_memmaps(block, win, vec, road & inside if has_orient else None)

    def _copy_to_memmaps(self, block: Block, win: Window, prob: np.ndarray, road: np.ndarray | None) -> None:
        b = self.bbox
        r0, r1 = max(win.row_off, b.row_off), min(win.row_off + win.height, b.row_off + b.height)
        c0, c1 = max(win.col_off, b.col_off), min(win.col_off + win.width, b.col_off + b.width)
        if r1 <= r0 or c1 <= c0:
            return
        src = (slice(r0 - win.row_off, r1 - win.row_off), slice(c0 - win.col_off, c1 - win.col_off))
        self._prob.write(r0 - b.row_off, c0 - b.col_off, prob[src])
        if self._orient is not None and road is not None:
            where = np.zeros_like(road)
            where[src] = road[src]
            rows, cols, values = block.values_at("orientation", where)
            self._orient.write(r0 - b.row_off, c0 - b.col_off, where[src].shape,
                               rows - src[0].start, cols - src[1].start, values[:, 1:])

    def vector_inputs(self):
        """``(prob (h, w) float32, orientation bins or None, transform)`` of the AOI box.

        The probability is a read-only memory map; the orientation a :class:`SparseBins`
        (``(n_bins, h, w)``, bins 1.. on road pixels, 0 elsewhere).
        """
        from rasterio.windows import transform as win_transform

        prob = self._prob.open_read()
        orient = None if self._orient is None else self._orient.open_read()
        return prob, orient, win_transform(self.bbox, self.reader.transform)

    def publish(self, *, source=None) -> dict[str, Path]:
        """Write the COGs into the output folder (warped back to ``source`` grid when resampled)."""
        return self.outputs.publish(self.out_dir, source=source)

    def area_km2(self) -> float:
        """Area of the AOI pixels predicted, in km² (pixel count × pixel area)."""
        px_x, px_y = self.reader.pixel_size_m
        return round(self.inside_px * px_x * px_y / 1e6, 6)

    def n_orientation_values(self) -> int:
        """Pixels whose orientation bins were kept for the vectoriser (road pixels in the AOI box)."""
        return self._orient.n if self._orient is not None else 0

    def close_files(self) -> Path:
        """Close the intermediates and keep them (a block work unit's result); returns their folder."""
        for f in (self._prob, self._orient):
            if f is not None:
                f.close()
        if self._readers is not None:
            self._readers.close()
        self.outputs.close()
        return self.work

    def cleanup(self) -> None:
        """Drop the intermediates (tiled files, memmaps)."""
        for f in (self._prob, self._orient):
            if f is not None:
                f.close()
        self._prob = self._orient = None
        if self._readers is not None:
            self._readers.close()
        self.outputs.close()
        shutil.rmtree(self.work, ignore_errors=True)


class NpyRowFile:
    """An ``.npy`` array of shape ``(H, W, *tail)`` filled by row segments with plain file writes.

    Args:
        path: file to create (sparse: unwritten parts read as 0).
        shape_hw: ``(H, W)``.
        tail: trailing dimensions stored per pixel (e.g. ``(K,)`` channels).
        dtype: stored dtype.
    """

    def __init__(self, path: Path, shape_hw: tuple[int, int], *, tail: tuple[int, ...] = (), dtype=np.float32) -> None:
        self.path, self.shape, self.dtype = Path(path), (*shape_hw, *tail), np.dtype(dtype)
        arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)
        self.offset = int(arr.offset)
        del arr
        self.pixel_bytes = int(np.prod(tail, dtype=np.int64)) * self.dtype.itemsize
        self._file = open(self.path, "r+b")  # noqa: SIM115 (closed in close())

    def write(self, row: int, col: int, data: np.ndarray) -> None:
        """Write ``data`` ``(h, w, *tail)`` with its top-left pixel at ``(row, col)``."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        h, w = data.shape[:2]
        width = self.shape[1]
        if col == 0 and w == width:  # whole rows: one contiguous write
            self._file.seek(self.offset + row * width * self.pixel_bytes)
            self._file.write(data.tobytes())
            return
        for i in range(h):
            self._file.seek(self.offset + ((row + i) * width + col) * self.pixel_bytes)
            self._file.write(data[i].tobytes())

    def open_read(self) -> np.ndarray:
        """The whole array, memory-mapped read-only."""
        self._file.flush()
        return np.load(self.path, mmap_mode="r")

    def close(self) -> None:
        self._file.close()


class SparseBinsFile:
    """Orientation-bin probabilities of some pixels of an ``(H, W)`` box, written block by block.

    ``<stem>-index.npy``: ``(H, W)`` int32 (int64 for boxes of 2³¹ pixels or more), 0 where no
    bins were written, else 1 + the pixel's row in ``<stem>-values.bin``: ``(n, n_bins)``
    float16 rows appended in the order written. Disk: 4 bytes per pixel of the box plus
    ``2 × n_bins`` per pixel written (road pixels), instead of ``2 × n_bins`` per pixel.
    """

    def __init__(self, stem: Path, shape_hw: tuple[int, int], *, n_bins: int) -> None:
        self.shape, self.n_bins, self.n = tuple(shape_hw), int(n_bins), 0
        dtype = np.int32 if shape_hw[0] * shape_hw[1] < 2**31 - 1 else np.int64
        self.index = NpyRowFile(Path(f"{stem}-index.npy"), shape_hw, dtype=dtype)
        self.values_path = Path(f"{stem}-values.bin")
        self._values = open(self.values_path, "wb")  # noqa: SIM115 (closed in close())

    def write(self, row: int, col: int, shape_hw: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
              values: np.ndarray) -> None:
        """Bins ``values`` ``(n, n_bins)`` of pixels ``(rows, cols)`` of the ``shape_hw`` patch at ``(row, col)``."""
        idx = np.zeros(shape_hw, self.index.dtype)
        idx[rows, cols] = np.arange(self.n + 1, self.n + 1 + len(rows), dtype=self.index.dtype)
        self.index.write(row, col, idx)
        self._values.write(np.ascontiguousarray(values, np.float16).tobytes())
        self.n += len(rows)

    def open_read(self) -> SparseBins:
        self._values.flush()
        values = (np.memmap(self.values_path, dtype=np.float16, mode="r", shape=(self.n, self.n_bins))
                  if self.n else np.zeros((0, self.n_bins), np.float16))
        return SparseBins(self.index.open_read(), values)

    def close(self) -> None:
        self.index.close()
        self._values.close()


class SparseBins:
    """Read-only ``(n_bins, H, W)`` orientation bins stored for some pixels (0 elsewhere).

    Supports what the vectoriser does with bins: ``.shape``, ``.ndim`` and ``bins[:, rows, cols]``
    (integer arrays) -> ``(n_bins, n)``.
    """

    ndim = 3

    def __init__(self, index: np.ndarray, values: np.ndarray) -> None:
        self.index, self.values = index, values

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.values.shape[1], *self.index.shape)

    def __getitem__(self, key) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 3 and key[0] == slice(None)):
            raise TypeError("SparseBins supports bins[:, rows, cols] only")
        at = np.asarray(self.index[key[1], key[2]])
        out = np.zeros((self.values.shape[1], *at.shape), self.values.dtype)
        has = at > 0
        out[:, has] = np.asarray(self.values[at[has] - 1]).T
        return out
