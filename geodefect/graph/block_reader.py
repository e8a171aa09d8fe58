"""Window reads of a large 2-D raster without holding it in memory (for the tiled vectoriser).

:class:`WindowSource` copies windows out of an array or a memory-mapped ``.npy`` (read with file reads,
never through the mapping, so the file's pages do not enter the process's resident set).
:class:`MaskWindows` computes the road mask of any window exactly as the whole-raster path does
(threshold with Gaussian smoothing, small objects, small holes), from the window grown by the
reach of those steps. :class:`BlockedRaster` presents such a window function as a read-only
``(H, W)`` array for the clean-up steps, which only read windows near nodes and pixels along
edges: ``shape``, ``dtype``, ``ndim``, ``a[r0:r1, c0:c1]`` and ``a[rows, cols]`` (integer
arrays), computed in tiles of :data:`TILE_PX` kept in a small LRU cache.
"""

from __future__ import annotations

import math
import mmap
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from geodefect.graph.skeleton import threshold_probability

#: side of the tiles that :class:`BlockedRaster` computes and caches (pixels)
TILE_PX = 256
#: tiles kept per :class:`BlockedRaster` (16 x 256² x 4 bytes = 4 MiB for float32)
CACHE_TILES = 16
#: reach (pixels) of ``remove_small_objects`` looked at beyond a window: exact for blobs up to this area
MAX_OBJECT_MARGIN_PX = 512

Window = tuple[slice, slice]


class WindowSource:
    """Windows of a 2-D array-like (ndarray, ``np.memmap``, anything sliceable with ``shape``/``dtype``).

    A C-ordered memory map that owns its mapping (``np.load(..., mmap_mode="r")``) is read with
    plain file reads, one row segment at a time, never through the mapping: a mapped read would
    also map the kernel's fault-around pages (64 KiB per row touched), which count in the
    process's RSS while mapped -- for a wide raster many times the window itself.

    Args:
        array: (H, W) array.
    """

    def __init__(self, array) -> None:
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self._file = None
        if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.filename \
                and array.flags.c_contiguous:
            self._file = (str(array.filename), int(array.offset))

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """A copy of ``array[rows, cols]`` (unit steps)."""
        if self._file is None:
            return np.array(self.array[rows, cols])
        (r0, r1), (c0, c1) = _bounds(rows, self.shape[0]), _bounds(cols, self.shape[1])
        out = np.empty((r1 - r0, c1 - c0), self.dtype)
        path, offset = self._file
        size, width = self.dtype.itemsize, self.shape[1]
        with open(path, "rb", buffering=0) as f:
            for i in range(r1 - r0):
                f.seek(offset + ((r0 + i) * width + c0) * size)
                f.readinto(memoryview(out[i]).cast("B"))
        return out


class MaskWindows:
    """The vectoriser's road mask, window by window (bit-identical to the whole-raster mask).

    Args:
        source: :class:`WindowSource` of probabilities (``threshold`` given) or of a mask.
        prepare: the mask preparation of the whole path (``vectorize.prepare_mask`` bound to
            its params), applied to the grown window.
        threshold: probability threshold, or None when ``source`` is already a mask.
        smooth_sigma_px: Gaussian blur before thresholding (pixels).
        prepare_margin_px: reach of ``prepare`` (hole extent, small-object size) in pixels.
    """

    def __init__(self, source: WindowSource, prepare: Callable[[np.ndarray], np.ndarray], *,
                 threshold: float | None, smooth_sigma_px: float = 0.0, prepare_margin_px: int = 0) -> None:
        self.source, self.prepare, self.threshold = source, prepare, threshold
        self.shape = source.shape
        self.sigma_px = float(smooth_sigma_px) if threshold is not None else 0.0
        smooth_px = int(math.ceil(3.0 * self.sigma_px)) + 1 if self.sigma_px > 0 else 0
        self.margin_px = smooth_px + int(prepare_margin_px)

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """(h, w) bool road mask of the window ``rows`` x ``cols`` (unit steps, within the raster)."""
        (r0, r1), (c0, c1) = _bounds(rows, self.shape[0]), _bounds(cols, self.shape[1])
        m = self.margin_px
        a0, a1 = max(r0 - m, 0), min(r1 + m, self.shape[0])
        b0, b1 = max(c0 - m, 0), min(c1 + m, self.shape[1])
        data = self.source.read(slice(a0, a1), slice(b0, b1))
        if self.threshold is None:
            mask = data.astype(bool, copy=False)
        else:
            mask = threshold_probability(data, threshold=self.threshold, smooth_sigma_px=self.sigma_px)
        del data
        mask = self.prepare(mask)
        return np.ascontiguousarray(mask[r0 - a0 : r1 - a0, c0 - b0 : c1 - b0])


class BlockedRaster:
    """A read-only (H, W) raster whose values come from a window function, tile by tile.

    Args:
        shape: (H, W).
        dtype: dtype of the values.
        read: ``read(rows, cols) -> (h, w) array`` of any window inside the raster.
        tile_px: side of the cached tiles.
        cache_tiles: tiles kept (least recently used dropped first).
    """

    ndim = 2

    def __init__(self, shape, dtype, read: Callable[[slice, slice], np.ndarray], *,
                 tile_px: int = TILE_PX, cache_tiles: int = CACHE_TILES) -> None:
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self._read, self.tile_px, self.cache_tiles = read, int(tile_px), int(cache_tiles)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.tiles_computed = 0

    def __getitem__(self, key) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError("BlockedRaster supports a[rows, cols] only")
        rows, cols = key
        if isinstance(rows, slice) and isinstance(cols, slice):
            return self._window(rows, cols)
        return self._gather(np.asarray(rows), np.asarray(cols))

    def _tile(self, ti: int, tj: int) -> np.ndarray:
        tile = self._cache.get((ti, tj))
        if tile is not None:
            self._cache.move_to_end((ti, tj))
            return tile
        t = self.tile_px
        tile = self._read(slice(ti * t, min((ti + 1) * t, self.shape[0])), slice(tj * t, min((tj + 1) * t, self.shape[1])))
        self.tiles_computed += 1
        self._cache[(ti, tj)] = tile
        while len(self._cache) > self.cache_tiles:
            self._cache.popitem(last=False)
        return tile

    def _window(self, rows: slice, cols: slice) -> np.ndarray:
        if rows.step not in (None, 1) or cols.step not in (None, 1):
            raise TypeError("BlockedRaster windows need unit steps")
        (r0, r1), (c0, c1) = _bounds(rows, self.shape[0]), _bounds(cols, self.shape[1])
        out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)), self.dtype)
        t = self.tile_px
        for ti in range(r0 // t, (r1 - 1) // t + 1 if r1 > r0 else r0 // t):
            for tj in range(c0 // t, (c1 - 1) // t + 1 if c1 > c0 else c0 // t):
                tile = self._tile(ti, tj)
                a0, a1 = max(r0, ti * t), min(r1, (ti + 1) * t)
                b0, b1 = max(c0, tj * t), min(c1, (tj + 1) * t)
                out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = tile[a0 - ti * t : a1 - ti * t, b0 - tj * t : b1 - tj * t]
        return out

    def _gather(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.broadcast_arrays(rows.astype(np.int64), cols.astype(np.int64))
        h, w = self.shape
        if rows.size and (rows.min() < -h or rows.max() >= h or cols.min() < -w or cols.max() >= w):
            raise IndexError(f"index out of bounds for a raster of shape {self.shape}")
        r, c = (rows % h).ravel(), (cols % w).ravel()
        out = np.empty(r.size, self.dtype)
        t = self.tile_px
        n_tj = (w + t - 1) // t
        tile_id = (r // t) * n_tj + c // t
        order = np.argsort(tile_id, kind="stable")
        ids, starts = np.unique(tile_id[order], return_index=True)
        for k, tid in enumerate(ids.tolist()):
            sel = order[starts[k] : starts[k + 1] if k + 1 < len(starts) else None]
            ti, tj = divmod(tid, n_tj)
            out[sel] = self._tile(ti, tj)[r[sel] - ti * t, c[sel] - tj * t]
        return out.reshape(rows.shape)


def _bounds(s: slice, n: int) -> tuple[int, int]:
    start, stop, _ = s.indices(n)
    return start, max(stop, start)
