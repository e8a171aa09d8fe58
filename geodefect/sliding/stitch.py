"""Row-band accumulation of weighted window predictions: ``Σ w·p / Σ w`` per named output.

:class:`BandAccumulator` holds the rows of one column strip that windows still being
processed can touch — at most one window height — as float32 sums. Windows must arrive
sorted by ``row_off``; when a window starting at row ``r`` arrives, every row above ``r``
is final (no later window reaches it) and is handed out as a :class:`Block`, then dropped.
Memory is therefore ``window_height × strip_width × (Σ channels + 1) × 4`` bytes, whatever
the raster's height.

Probabilities are averaged, never labels or angles: an argmax of a stitched block is taken
by the caller, after stitching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

#: rows per yielded block (keeps the block copies and the callers' temporaries small)
BLOCK_ROWS = 128


@dataclass(frozen=True)
class HaloChunk:
    """Weighted sums that windows of one strip put past its right edge, for the next strip.

    Attributes:
        row_off: first raster row.
        sums: name -> ``(rows, halo_px, K)`` float32 Σ w·p (channels last).
        weight: ``(rows, halo_px)`` float32 Σ w.
    """

    row_off: int
    sums: dict[str, np.ndarray]
    weight: np.ndarray


class HaloStore:
    """Halo chunks spilled to a temporary file in row order (their total grows with the raster's
    height, so they are not kept in memory); read back once, in the same order."""

    def __init__(self, spill_dir=None) -> None:
        import tempfile

        self._file = tempfile.TemporaryFile(prefix="geodefect-halo-", dir=spill_dir)
        self._index: list[tuple[int, tuple[str, ...]]] = []

    def append(self, chunk: HaloChunk) -> None:
        np.save(self._file, chunk.weight)
        for name in chunk.sums:
            np.save(self._file, chunk.sums[name])
        self._index.append((chunk.row_off, tuple(chunk.sums)))

    def __iter__(self) -> Iterator[HaloChunk]:
        self._file.seek(0)
        for row_off, names in self._index:
            weight = np.load(self._file)
            yield HaloChunk(row_off=row_off, sums={n: np.load(self._file) for n in names}, weight=weight)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Block:
    """A finished block of stitched output: rows ``row_off:row_off+height`` of one strip.

    Attributes:
        row_off, col_off: block origin in raster pixels.
        outputs: name -> ``(K, height, width)`` float32 stitched values (probabilities in
            ``[0, 1]`` for probability outputs); 0 where no window covered the pixel. These are
            views of channels-last ``(height, width, K)`` arrays.
        weight: ``(height, width)`` float32 ``Σ w``; 0 where no window covered the pixel.
    """

    row_off: int
    col_off: int
    outputs: dict[str, np.ndarray]
    weight: np.ndarray

    @property
    def height(self) -> int:
        return int(self.weight.shape[0])

    @property
    def width(self) -> int:
        return int(self.weight.shape[1])

    @property
    def covered(self) -> np.ndarray:
        """``(height, width)`` bool: pixels at least one window covered."""
        return self.weight > 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the block in the raster (for ``full[..., rows, cols] = ...``)."""
        return (slice(self.row_off, self.row_off + self.height), slice(self.col_off, self.col_off + self.width))


class BandAccumulator:
    """Weighted sums for the open rows of one column strip ``[col_start, col_end)``.

    Sums are stored channels-last, ``(rows, cols, K)``: torch models run channels_last on CPU
    and their probabilities arrive as ``(B, K, h, w)`` views of NHWC memory, which then add
    contiguously; block outputs are ``(K, h, w)`` views of channels-last arrays (use
    ``np.moveaxis(out, 0, -1)`` to get the contiguous ``(h, w, K)`` back without a copy).

    Args:
        col_start, col_end: the strip's columns in raster pixels.
        height_px: the raster's height (rows past it are never stored).
        band_rows: rows kept open (the largest window height).
        block_rows: finished rows are handed out in blocks of at most this many rows (the
            callers' temporaries scale with it, not with the stride).
        halo_px: columns kept past ``col_end`` for windows that overhang the strip; their sums
            go to ``on_halo`` as :class:`HaloChunk` objects when rows finish (the next strip
            adds them with :meth:`add_halo`), so no window is predicted twice.
        on_halo: receiver of the halo chunks (None: nothing past ``col_end`` is kept).
    """

    def __init__(self, *, col_start: int, col_end: int, height_px: int, band_rows: int,
                 block_rows: int = BLOCK_ROWS, halo_px: int = 0,
                 on_halo: Callable[[HaloChunk], None] | None = None) -> None:
        self.col_start, self.col_end = int(col_start), int(col_end)
        self.block_rows = max(1, int(block_rows))
        self.height_px = int(height_px)
        self.band_rows = int(max(1, min(band_rows, height_px)))
        self.strip_px = self.col_end - self.col_start
        self.halo_px = int(halo_px) if on_halo is not None else 0
        self.on_halo = on_halo
        self.top = 0  # raster row of the accumulator's first row
        self.sums: dict[str, np.ndarray] = {}
        self.weight = np.zeros((self.band_rows, self.strip_px + self.halo_px), np.float32)
        self.touched = False  # anything accumulated since the last flush
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def nbytes(self) -> int:
        return int(self.weight.nbytes + sum(a.nbytes for a in self.sums.values()))

    def add(
        self, row_off: int, col_off: int, outputs: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> Iterator[Block]:
        """Add one window's predictions; yield the blocks this makes final.

        Args:
            row_off, col_off: window origin (may be the full, padded window).
            outputs: name -> ``(K, h, w)`` float32 for the whole window.
            weights: ``(h, w)`` float32 weight mask of the window.
        """
        yield from self._open_rows(row_off)
        sl = self._overlap(row_off, col_off, weights.shape)
        if sl is None:
            return
        (wr, wc), (ar, ac) = sl
        wgt = weights[wr, wc]
        self.weight[ar, ac] += wgt
        wgt_k = wgt[..., None]
        for name, pred in outputs.items():
            acc = self._sums_for(name, pred.shape[0])[ar, ac]
            # w·p into a reused buffer, then added in place: the same float32 operations as
            # ``acc += p * w`` without allocating (and page-faulting) a window-sized temporary
            tmp = self._scratch_for(acc.shape)
            np.multiply(np.moveaxis(pred[:, wr, wc], 0, -1), wgt_k, out=tmp)
            np.add(acc, tmp, out=acc)
        self.touched = True

    def _scratch_for(self, shape: tuple[int, ...]) -> np.ndarray:
        buf = self._scratch.get(shape)
        if buf is None:
            if len(self._scratch) > 8:  # odd window sizes at the raster's edges: keep a few
                self._scratch.clear()
            buf = self._scratch[shape] = np.empty(shape, np.float32)
        return buf

    def add_halo(self, chunk: HaloChunk) -> Iterator[Block]:
        """Add the overhang of the strip to the left (already weighted sums); yield finished blocks."""
        yield from self._open_rows(chunk.row_off)
        sl = self._overlap(chunk.row_off, self.col_start, chunk.weight.shape)
        if sl is None:
            return
        (wr, wc), (ar, ac) = sl
        self.weight[ar, ac] += chunk.weight[wr, wc]
        for name, sums in chunk.sums.items():
            self._sums_for(name, sums.shape[-1])[ar, ac] += sums[wr, wc]
        self.touched = True

    def _open_rows(self, row_off: int) -> Iterator[Block]:
        if row_off < self.top:
            raise ValueError(f"windows must come sorted by row: got row {row_off} after row {self.top}")
        yield from self.flush(row_off)

    def _overlap(self, row_off: int, col_off: int, shape_hw):
        """``((src rows, src cols), (acc rows, acc cols))`` slices of a patch, or None if outside."""
        h, w = shape_hw
        r0, r1 = row_off, min(row_off + h, self.height_px)
        c0, c1 = max(col_off, self.col_start), min(col_off + w, self.col_start + self.weight.shape[1])
        if r1 <= r0 or c1 <= c0:
            return None
        src = (slice(0, r1 - r0), slice(c0 - col_off, c1 - col_off))
        return src, (slice(r0 - self.top, r1 - self.top), slice(c0 - self.col_start, c1 - self.col_start))

    def _sums_for(self, name: str, n_channels: int) -> np.ndarray:
        acc = self.sums.get(name)
        if acc is None:  # channels last: (rows, cols, K), see the class docstring
            acc = self.sums[name] = np.zeros((*self.weight.shape, n_channels), np.float32)
        return acc

    def flush(self, upto_row: int | None = None) -> Iterator[Block]:
        """Yield the rows above ``upto_row`` (all rows if None) as one block and drop them."""
        end = self.height_px if upto_row is None else min(int(upto_row), self.height_px)
        if end <= self.top:
            return
        n = min(end - self.top, self.band_rows)
        if self.touched:
            for i in range(0, n, self.block_rows):
                i1 = min(i + self.block_rows, n)
                self._pass_halo(i, i1)
                yield self._make_block(i, i1)
        self._shift(n, new_top=end)

    def _make_block(self, i0: int, i1: int) -> Block:
        """Rows ``i0:i1`` of the strip as a finished block (sums divided by weights)."""
        cols = slice(0, self.strip_px)
        wgt = self.weight[i0:i1, cols].copy()
        inv = (1.0 / np.where(wgt > 0, wgt, 1.0)).astype(np.float32)[..., None]
        outs = {name: np.moveaxis(acc[i0:i1, cols] * inv, -1, 0) for name, acc in self.sums.items()}
        return Block(row_off=self.top + i0, col_off=self.col_start, outputs=outs, weight=wgt)

    def _pass_halo(self, i0: int, i1: int) -> None:
        """Hand rows ``i0:i1`` of the overhang (columns past the strip) to the next strip."""
        if not self.halo_px:
            return
        cols = slice(self.strip_px, self.strip_px + self.halo_px)
        wgt = self.weight[i0:i1, cols]
        if wgt.any():
            sums = {name: acc[i0:i1, cols].copy() for name, acc in self.sums.items()}
            self.on_halo(HaloChunk(row_off=self.top + i0, sums=sums, weight=wgt.copy()))

    def _shift(self, n: int, *, new_top: int) -> None:
        """Drop the first ``n`` rows; the accumulator then starts at raster row ``new_top``."""
        keep = self.band_rows - n
        if keep > 0 and new_top == self.top + n:
            self.weight[:keep] = self.weight[n:]
            for acc in self.sums.values():
                acc[:keep] = acc[n:]
        else:  # jumped past the whole band (rows with no window): nothing stays open
            keep = 0
        self.weight[keep:] = 0
        for acc in self.sums.values():
            acc[keep:] = 0
        self.top = new_top
        self.touched = bool(keep) and bool(self.weight[:keep].any())
