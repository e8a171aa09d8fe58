"""Row-band accumulation of weighted window predictions: ``Σ w·p / Σ w`` per named output.

:class:`BandAccumulator` holds the rows of one column strip that windows still being
processed can touch as float32 sums, in blocks of ``BLOCK_ROWS`` rows. Windows must arrive
sorted by ``row_off``; when a window starting at row ``r`` arrives, every row above ``r``
is final (no later window reaches it), and each block that lies wholly above ``r`` is
handed out as a :class:`Block` (its own arrays, no copy) and dropped. Memory is therefore
at most ``ceil(window_height / BLOCK_ROWS) + 1`` blocks of ``BLOCK_ROWS × strip_width ×
(Σ channels + 1) × 4`` bytes, whatever the raster's height.

Probabilities are averaged, never labels or angles: an argmax of a stitched block is taken
by the caller, after stitching (:meth:`Block.argmax` takes it from the sums, no division).

Gated outputs (:class:`Gate`): an output that is only needed where another one ends up above
a threshold — the road model's 19 orientation-bin probabilities, used only on road pixels — is
not summed densely. Each window's prediction of it is held (a reference to the predictor's
array; once a newer row of windows starts, a copy of its rows that are not final yet) until
the block holding the window's last rows is final. When a block is final, its gate is
evaluated on the stitched gating output and only the gate's pixels are summed, window by
window in arrival order — the same float32 operations, in the same order, as the dense sum at
those pixels (through a dense block when the gate covers much of it). Columns that overhang
the strip (the halo) are still summed densely, since the next strip decides their gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from geodefect.sliding.blocks import Block, HaloChunk
from geodefect.sliding.gated import (
    Gate,
    GatedSums,
    HeldWindow,
    channels_last,
    gather_window,
    softmax_last,
)
from geodefect.sliding.threads import split_rows

#: rows per yielded block (keeps the block copies and the callers' temporaries small)
BLOCK_ROWS = 128


class _RowBlock:
    """Sums and weights of rows ``top:top+n`` of a strip (its columns plus the halo)."""

    def __init__(self, top: int, n_rows: int, width_px: int) -> None:
        self.top, self.n_rows = top, n_rows
        self.weight = np.zeros((n_rows, width_px), np.float32)
        self.sums: dict[str, np.ndarray] = {}
        #: gated outputs: dense sums the strip to the left put in this strip's first columns
        self.gated_in: dict[str, np.ndarray] = {}

    @property
    def end(self) -> int:
        return self.top + self.n_rows

    def sums_for(self, name: str, n_channels: int) -> np.ndarray:
        acc = self.sums.get(name)
        if acc is None:  # channels last: (rows, cols, K), see BandAccumulator
            acc = self.sums[name] = np.zeros((*self.weight.shape, n_channels), np.float32)
        return acc

    @property
    def nbytes(self) -> int:
        arrays = (self.weight, *self.sums.values(), *self.gated_in.values())
        return int(sum(a.nbytes for a in arrays))


#: rows per multiply-add pass in :meth:`BandAccumulator.add` (keeps its temporary in cache)
_ADD_ROWS = 16

#: gated outputs are summed through a dense block when their gate holds on more than this share
#: of a block's pixels (a gather costs ~4x a streaming multiply-add per value)
DENSE_GATE_SHARE = 0.25


class BandAccumulator:
    """Weighted sums for the open rows of one column strip ``[col_start, col_end)``.

    Rows are held in blocks aligned to multiples of ``block_rows`` (counted from raster row 0),
    allocated when a window first touches them. When a window starting at row ``r`` arrives,
    every block that ends at or above ``r`` is final and is handed out as a :class:`Block`
    — its own arrays, not a copy — and the accumulator lets go of it. At most
    ``ceil(band_rows / block_rows) + 1`` blocks are open at a time, whatever the raster's height.

    Sums are stored channels-last, ``(rows, cols, K)``: torch models run channels_last on CPU
    and their probabilities arrive as ``(B, K, h, w)`` views of NHWC memory, which then add
    contiguously; block sums are ``(K, h, w)`` views of channels-last arrays.

    Gated outputs (``gates``) are not summed into the blocks: each window's prediction is held
    until the block with its last rows is handed out, and the block's sums are then taken at
    the gate's pixels only (:class:`GatedSums` in ``Block.gated``). Their columns past the
    strip (the halo) are summed densely, as the next strip decides the gate there.

    Args:
        col_start, col_end: the strip's columns in raster pixels.
        height_px: the raster's height (rows past it are never stored).
        band_rows: the largest window height (documents the memory bound).
        block_rows: rows per block handed out (the callers' temporaries scale with it).
        halo_px: columns kept past ``col_end`` for windows that overhang the strip; their sums
            go to ``on_halo`` as :class:`HaloChunk` objects when rows finish (the next strip
            adds them with :meth:`add_halo`), so no window is predicted twice.
        on_halo: receiver of the halo chunks (None: nothing past ``col_end`` is kept).
        gates: name -> :class:`Gate` for outputs needed only where the gate holds.
    """

    def __init__(self, *, col_start: int, col_end: int, height_px: int, band_rows: int,
                 block_rows: int = BLOCK_ROWS, halo_px: int = 0,
                 on_halo: Callable[[HaloChunk], None] | None = None,
                 gates: Mapping[str, Gate] | None = None) -> None:
        self.col_start, self.col_end = int(col_start), int(col_end)
        self.block_rows = max(1, int(block_rows))
        self.height_px = int(height_px)
        self.band_rows = int(max(1, min(band_rows, height_px)))
        self.strip_px = self.col_end - self.col_start
        self.halo_px = int(halo_px) if on_halo is not None else 0
        self.width_px = self.strip_px + self.halo_px
        self.on_halo = on_halo
        self.gates = dict(gates or {})
        for name, gate in self.gates.items():
            if gate.by in self.gates or gate.by == name:
                raise ValueError(f"gate of {name!r}: the gating output {gate.by!r} cannot itself be gated")
        self.top = 0  # rows above this raster row are final (the last window's row)
        self.blocks: dict[int, _RowBlock] = {}  # block index -> rows, in row order
        self.held: list[HeldWindow] = []  # windows with gated outputs, in arrival order
        self._final_to = 0  # rows above this are final (the end of the last block handed out)
        self._trimmed_before = 0
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def nbytes(self) -> int:
        """Bytes of the sums and weights held now (held gated predictions included)."""
        return sum(b.nbytes for b in self.blocks.values()) + sum(h.nbytes for h in self.held)

    def add(
        self, row_off: int, col_off: int, outputs: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> Iterator[Block]:
        """Add one window's predictions; yield the blocks this makes final.

        Args:
            row_off, col_off: window origin (may be the full, padded window).
            outputs: name -> ``(K, h, w)`` float32 for the whole window. Gated outputs are
                kept by reference until the window's rows are final: the caller must not
                overwrite the arrays in the meantime.
            weights: ``(h, w)`` float32 weight mask of the window.
        """
        yield from self._open_rows(row_off)
        if self.held and row_off > self._trimmed_before:
            self._trim_held(row_off)
        cols = self._col_overlap(col_off, weights.shape[1])
        if cols is None:
            return
        gated = {name: channels_last(pred) for name, pred in outputs.items() if name in self.gates}
        if gated and row_off < self.height_px:
            self.held.append(HeldWindow(int(row_off), int(col_off), gated, np.ascontiguousarray(weights)))
        wc, ac = cols
        for blk, src, dst in self._spans(row_off, weights.shape[0]):
            wgt = weights[src, wc]
            blk.weight[dst, ac] += wgt
            for name, pred in outputs.items():
                if name not in self.gates:
                    acc = blk.sums_for(name, pred.shape[0])[dst, ac]
                    self._add_weighted(acc, np.moveaxis(pred[:, src, wc], 0, -1), wgt)

    def _trim_held(self, row_off: int) -> None:
        """A new row of windows starts at ``row_off``: the windows of earlier rows with at least
        half of their rows final keep a copy of the others (a quarter to a half of the window for
        256-px windows at stride 192), so the predictor's arrays go — the strip then holds about
        one row of whole windows plus those remainders, instead of up to three rows of whole
        windows. (Copying more than half a window would cost more than it frees.)"""
        for h in self.held:
            if h.row_off < row_off and not h.trimmed and 2 * (self._final_to - h.row_off) >= h.weights.shape[0]:
                h.trim(self._final_to)
        self._trimmed_before = row_off

    def _add_weighted(self, acc: np.ndarray, pred_hwk: np.ndarray, wgt: np.ndarray) -> None:
        """``acc += pred · wgt`` in row slices through reused buffers: the same float32 operations
        as ``acc += p * w``, without a window-sized temporary (which would leave the cache);
        large windows are split between two threads (:func:`~geodefect.sliding.threads.split_rows`)."""

        def add_rows(rows: slice, part: int) -> None:
            a_rows, p_rows, w_rows = acc[rows], pred_hwk[rows], wgt[rows]
            for r in range(0, a_rows.shape[0], _ADD_ROWS):
                sl = slice(r, r + _ADD_ROWS)
                a = a_rows[sl]
                tmp = self._scratch_for((part, *a.shape))
                np.multiply(p_rows[sl], w_rows[sl, :, None], out=tmp)
                np.add(a, tmp, out=a)

        split_rows(add_rows, acc.shape[0], acc.size)

    def _scratch_for(self, key: tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of shape ``key[1:]`` for thread part ``key[0]``."""
        buf = self._scratch.get(key)
        if buf is None:
            if len(self._scratch) > 8:  # odd window sizes at the raster's edges: keep a few
                self._scratch.clear()
            buf = self._scratch[key] = np.empty(key[1:], np.float32)
        return buf

    def add_halo(self, chunk: HaloChunk) -> Iterator[Block]:
        """Add the overhang of the strip to the left (already weighted sums); yield finished blocks."""
        yield from self._open_rows(chunk.row_off)
        cols = self._col_overlap(self.col_start, chunk.weight.shape[1])
        if cols is None:
            return
        wc, ac = cols
        for blk, src, dst in self._spans(chunk.row_off, chunk.weight.shape[0]):
            blk.weight[dst, ac] += chunk.weight[src, wc]
            for name, sums in chunk.sums.items():
                if name in self.gates:  # dense over the chunk's columns (the strip's first ones)
                    acc = blk.gated_in.get(name)
                    if acc is None or acc.shape[1] < ac.stop:
                        grown = np.zeros((blk.n_rows, ac.stop, sums.shape[-1]), np.float32)
                        if acc is not None:
                            grown[:, : acc.shape[1]] = acc
                        acc = blk.gated_in[name] = grown
                    acc[dst, ac] += sums[src, wc]
                else:
                    blk.sums_for(name, sums.shape[-1])[dst, ac] += sums[src, wc]

    def flush_until(self, row_off: int) -> Iterator[Block]:
        """Yield the blocks a window starting at ``row_off`` would make final (windows arriving
        later must not start above ``row_off``)."""
        yield from self._open_rows(row_off)

    def _open_rows(self, row_off: int) -> Iterator[Block]:
        if row_off < self.top:
            raise ValueError(f"windows must come sorted by row: got row {row_off} after row {self.top}")
        self.top = int(row_off)
        yield from self.flush(row_off)

    def _col_overlap(self, col_off: int, width_px: int):
        """``(source cols, accumulator cols)`` slices of a patch, or None if outside the strip."""
        c0, c1 = max(col_off, self.col_start), min(col_off + width_px, self.col_start + self.width_px)
        if c1 <= c0:
            return None
        return slice(c0 - col_off, c1 - col_off), slice(c0 - self.col_start, c1 - self.col_start)

    def _spans(self, row_off: int, n_rows: int) -> Iterator[tuple[_RowBlock, slice, slice]]:
        """``(block, source rows, block rows)`` for rows ``row_off:row_off+n_rows`` inside the raster."""
        r, r1 = max(row_off, 0), min(row_off + n_rows, self.height_px)
        while r < r1:
            idx = r // self.block_rows
            blk = self.blocks.get(idx)
            if blk is None:
                top = idx * self.block_rows
                blk = self.blocks[idx] = _RowBlock(top, min(self.block_rows, self.height_px - top), self.width_px)
            e = min(r1, blk.end)
            yield blk, slice(r - row_off, e - row_off), slice(r - blk.top, e - blk.top)
            r = e

    def flush(self, upto_row: int | None = None) -> Iterator[Block]:
        """Yield (and let go of) every block that ends at or above ``upto_row`` (all if None)."""
        while self.blocks:
            idx, blk = next(iter(self.blocks.items()))
            if upto_row is not None and blk.end > upto_row:
                return
            del self.blocks[idx]
            cols = slice(0, self.strip_px)
            sums = {name: np.moveaxis(acc[:, cols], -1, 0) for name, acc in blk.sums.items()}
            block = Block(row_off=blk.top, col_off=self.col_start, sums=sums, weight=blk.weight[:, cols])
            halo_gated = self._sum_gated(blk, block)
            self._pass_halo(blk, halo_gated)
            self.held = [h for h in self.held if h.end > blk.end]  # every row of the rest is final
            self._final_to = blk.end
            yield block

    def _sum_gated(self, blk: _RowBlock, block: Block) -> dict[str, np.ndarray]:
        """Fill ``block.gated`` from the held windows; return the gated outputs' dense halo sums."""
        halo: dict[str, np.ndarray] = {}
        if not self.gates:
            return halo
        windows = [h for h in self.held if h.row_off < blk.end and h.end > blk.top]
        for name, gate in self.gates.items():
            mine = [h for h in windows if name in h.preds]
            n_ch = next((h.preds[name].shape[-1] for h in mine), None)
            if n_ch is None and name in blk.gated_in:
                n_ch = blk.gated_in[name].shape[-1]
            if n_ch is None:
                continue
            if gate.by in block.sums:
                mask = block.outputs[gate.by][gate.channel] >= gate.threshold
            else:
                mask = np.zeros(block.weight.shape, bool)
            if np.count_nonzero(mask) > DENSE_GATE_SHARE * mask.size:
                dense, halo_sums = self._sum_gated_densely(blk, name, n_ch, mine)
                block.gated[name] = GatedSums(mask, dense=dense)
            else:
                rows, cols = np.nonzero(mask)
                sums, halo_sums = self._sum_gated_sparsely(blk, name, n_ch, mine, mask, rows, cols)
                block.gated[name] = GatedSums(mask, rows=rows, cols=cols, sums=sums)
            if halo_sums is not None:
                halo[name] = halo_sums
        return halo

    def _sum_gated_sparsely(self, blk, name, n_ch, windows, mask, rows, cols):
        """``(sums (n, K) at the gate pixels, dense halo sums or None)``: gathered window by window."""
        sums = np.zeros((rows.size, n_ch), np.float32)
        dense_in = blk.gated_in.get(name)
        if dense_in is not None:  # the strip to the left's overhang, first
            sel = cols < dense_in.shape[1]
            sums[sel] = dense_in[rows[sel], cols[sel]]
        halo = np.zeros((blk.n_rows, self.halo_px, n_ch), np.float32) if self.halo_px else None
        index = None
        for h in windows:
            r0, r1 = max(h.row_off, blk.top), min(h.end, blk.end)
            if rows.size:
                if index is None:  # block pixel -> its position in rows/cols (row-major)
                    index = np.empty(mask.shape, np.int32)
                    index[rows, cols] = np.arange(rows.size, dtype=np.int32)
                cols_h = self._strip_overlap(h)
                if cols_h is not None:
                    gather_window(h, name, mask, index, sums, r0, r1, blk.top, *cols_h,
                                  softmax=self.gates[name].softmax)
            if halo is not None:
                self._add_window_halo(h, name, halo, r0, r1, blk.top)
        return sums, halo

    def _sum_gated_densely(self, blk, name, n_ch, windows):
        """``(dense (rows, strip, K) sums, dense halo sums or None)``: the same sums as
        :meth:`_sum_gated_sparsely` at the gate (same operations, same order), summed densely —
        cheaper when the gate holds on much of the block (e.g. an untrained model)."""
        dense = np.zeros((blk.n_rows, self.width_px, n_ch), np.float32)
        dense_in = blk.gated_in.get(name)
        if dense_in is not None:
            dense[:, : dense_in.shape[1]] = dense_in
        for h in windows:
            cols_h = self._col_overlap(h.col_off, h.weights.shape[1])
            if cols_h is None:
                continue
            wc, ac = cols_h
            r0, r1 = max(h.row_off, blk.top), min(h.end, blk.end)
            src = slice(r0 - h.row_off, r1 - h.row_off)
            self._add_weighted(dense[r0 - blk.top:r1 - blk.top, ac], self._held(h, name, src, wc), h.weights[src, wc])
        halo = dense[:, self.strip_px:] if self.halo_px else None
        return dense[:, : self.strip_px], halo

    def _strip_overlap(self, h: HeldWindow) -> tuple[slice, slice] | None:
        """``(window cols, block cols)`` of a held window inside the strip (not its halo)."""
        cols = self._col_overlap(h.col_off, h.weights.shape[1])
        if cols is None:
            return None
        wc, ac = cols
        stop = min(ac.stop, self.strip_px)
        if stop <= ac.start:
            return None
        return slice(wc.start, wc.start + stop - ac.start), slice(ac.start, stop)

    def _add_window_halo(self, h: HeldWindow, name: str, halo: np.ndarray, r0: int, r1: int, top: int) -> None:
        """Dense ``halo += p·w`` of window ``h`` over the strip's overhang columns, rows ``r0:r1``."""
        cols = self._col_overlap(h.col_off, h.weights.shape[1])
        if cols is None:
            return
        wc, ac = cols
        lo = max(ac.start, self.strip_px)
        if ac.stop <= lo:
            return
        wc = slice(wc.start + lo - ac.start, wc.stop)
        src = slice(r0 - h.row_off, r1 - h.row_off)
        acc = halo[r0 - top:r1 - top, lo - self.strip_px:ac.stop - self.strip_px]
        self._add_weighted(acc, self._held(h, name, src, wc), h.weights[src, wc])

    def _held(self, h: HeldWindow, name: str, rows: slice, cols: slice) -> np.ndarray:
        """A held window's ``(h, w, K)`` values of output ``name`` — probabilities (the gate's
        deferred softmax taken here, over these pixels only)."""
        values = h.preds[name][rows, cols]
        return softmax_last(values) if self.gates[name].softmax else values

    def _pass_halo(self, blk: _RowBlock, halo_gated: dict[str, np.ndarray]) -> None:
        """Hand the block's overhang (columns past the strip) to the next strip."""
        if not self.halo_px:
            return
        cols = slice(self.strip_px, self.width_px)
        wgt = blk.weight[:, cols]
        if wgt.any():
            sums = {name: acc[:, cols].copy() for name, acc in blk.sums.items()}
            sums.update(halo_gated)
            self.on_halo(HaloChunk(row_off=blk.top, sums=sums, weight=wgt.copy()))
