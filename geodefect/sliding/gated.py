"""Gated outputs: summed only where another output's stitched value reaches a threshold.

The pieces :class:`~geodefect.sliding.stitch.BandAccumulator` uses for them (see its module):
the :class:`Gate` itself, the :class:`GatedSums` a finished block carries, a held window's
predictions (:class:`HeldWindow`), and the record gathers that sum them at the gate's pixels —
pixels are taken and put as whole ``K``-channel records (``np.take``/``put`` on a void view of
contiguous channels-last arrays), ~3x faster than float fancy indexing for K = 19; channels-first
predictions (ONNX Runtime) are held as they come and gathered one channel plane at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gate:
    """An output needed only where another output's stitched channel reaches a threshold.

    Attributes:
        by: the gating output's name (summed densely).
        threshold: the gate holds where ``stitched[by][channel] >= threshold``.
        channel: channel of ``by``.
        softmax: the predictor gives this output's logits (its softmax deferred, e.g. an int8
            ``.onnx``): the softmax over channels is taken on the values summed, at the gate's
            pixels (and the dense paths' slices), not over whole windows.
    """

    by: str
    threshold: float
    channel: int = 0
    softmax: bool = False


def softmax_last(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax over ``axis`` (default the last: channels-last values), as a new float32 array."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


class GatedSums:
    """Weighted sums of a gated output on its gate's pixels (see :class:`Gate`).

    Either gathered at the gate's pixels (``sums`` given), or — when the gate holds on much of
    the block — a dense ``(height, width, K)`` block of sums (``dense``; its values off the gate
    are not meant to be used). ``rows``, ``cols`` and ``sums`` are available either way
    (computed on first use).

    Attributes:
        mask: ``(height, width)`` bool, the gate.
        dense: ``(height, width, K)`` float32 or None.
    """

    def __init__(self, mask: np.ndarray, *, rows: np.ndarray | None = None, cols: np.ndarray | None = None,
                 sums: np.ndarray | None = None, dense: np.ndarray | None = None) -> None:
        if (sums is None) == (dense is None):
            raise ValueError("GatedSums needs exactly one of `sums` and `dense`")
        self.mask, self.dense = mask, dense
        self._rows, self._cols, self._sums = rows, cols, sums

    @property
    def rows(self) -> np.ndarray:
        """``(n,)`` block rows of the gate's pixels, row-major."""
        if self._rows is None:
            self._rows, self._cols = np.nonzero(self.mask)
        return self._rows

    @property
    def cols(self) -> np.ndarray:
        """``(n,)`` block columns of the gate's pixels."""
        if self._cols is None:
            self._rows, self._cols = np.nonzero(self.mask)
        return self._cols

    @property
    def sums(self) -> np.ndarray:
        """``(n, K)`` float32 ``Σ w·p`` at the gate's pixels."""
        if self._sums is None:
            self._sums = take_pixels(self.dense, self.rows, self.cols)
        return self._sums

    def crop(self, rows: slice, cols: slice) -> GatedSums:
        """The same sums for block rows ``rows`` and columns ``cols`` only (views where possible)."""
        if self.dense is not None:
            return GatedSums(self.mask[rows, cols], dense=self.dense[rows, cols])
        sel = (self.rows >= rows.start) & (self.rows < rows.stop) & (self.cols >= cols.start) & (self.cols < cols.stop)
        return GatedSums(self.mask[rows, cols], rows=self.rows[sel] - rows.start, cols=self.cols[sel] - cols.start,
                         sums=self.sums[sel])


@dataclass
class HeldWindow:
    """A window's gated predictions, kept until its last rows are final: first as views of the
    predictor's arrays, then (:meth:`~geodefect.sliding.stitch.BandAccumulator._trim_held`) as a copy of its rows that
    are not final yet, once a newer row of windows has started."""

    row_off: int
    col_off: int
    preds: dict[str, np.ndarray]  # name -> (h, w, K): contiguous, or a view of (K, h, w) planes until trimmed
    weights: np.ndarray  # (h, w)
    trimmed: bool = False

    def trim(self, first_row: int) -> None:
        """Keep (a copy of) raster rows ``first_row..`` only, letting go of the predictor's array."""
        k = min(max(first_row - self.row_off, 0), self.weights.shape[0])
        self.preds = {name: p[k:].copy(order="K") for name, p in self.preds.items()}  # in its memory layout: no transpose
        self.weights = self.weights[k:]
        self.row_off += k
        self.trimmed = True

    @property
    def end(self) -> int:
        return self.row_off + self.weights.shape[0]

    @property
    def nbytes(self) -> int:
        return int(sum(p.size * p.itemsize for p in self.preds.values()))


def gather_window(h: HeldWindow, name: str, mask, index, sums, r0: int, r1: int, top: int,
                  wc: slice, ac: slice, *, softmax: bool = False) -> None:
    """``sums += p·w`` of window ``h`` at the gate pixels of raster rows ``r0:r1`` and block
    columns ``ac`` (``wc``: the same columns in the window).

    Args:
        mask: the block's ``(h, w)`` gate, its first row raster row ``top``.
        index: ``(h, w)`` int32, a gate pixel's row in ``sums`` (``(n, K)``, row-major).
    """
    flat = np.flatnonzero(mask[r0 - top:r1 - top, ac])  # row-major in the rectangle
    if not flat.size:
        return
    rect_w = ac.stop - ac.start
    r = flat // rect_w
    c = flat - r * rect_w
    at = (r + (r0 - h.row_off)) * h.weights.shape[1] + (c + wc.start)  # in the window
    vals = take_pixels_flat(h.preds[name], at)
    if softmax:
        vals = softmax_last(vals)
    vals *= h.weights.reshape(-1).take(at)[:, None]
    pos = index.reshape(-1).take((r + (r0 - top)) * mask.shape[1] + (c + ac.start))  # in sums
    cur = take_rows(sums, pos)
    cur += vals
    _put_rows(sums, pos, cur)


def channels_last(pred: np.ndarray) -> np.ndarray:
    """``(K, h, w)`` float32 -> an ``(h, w, K)`` view (contiguous for channels-last memory, torch on
    CPU; strided for channels-first, ONNX Runtime: the gathers read it in place rather than paying a
    transposing copy of the whole window, ~0.02 s per 512-px window of 19 bins). Other dtypes: a copy."""
    if pred.dtype != np.float32:
        return np.ascontiguousarray(np.moveaxis(pred, 0, -1), dtype=np.float32)
    return np.moveaxis(pred, 0, -1)


def take_pixels_flat(hwk: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``hwk.reshape(-1, K)[at]`` -> ``(n, K)`` of an ``(h, w, K)`` array without copying it whole:
    record copies when contiguous, one gather per channel when it is a view of ``(K, h, w)``
    planes (the result is then a transposed view)."""
    if hwk.flags.c_contiguous:
        return take_rows(hwk, at)
    planes = np.moveaxis(hwk, -1, 0)
    if planes.flags.c_contiguous:
        return planes.reshape(planes.shape[0], -1).take(at, axis=1).T
    return hwk[at // hwk.shape[1], at % hwk.shape[1]]


def _rows_view(arr: np.ndarray) -> np.ndarray:
    """A contiguous ``(..., K)`` float32 array as a 1-D array of ``K``-channel records."""
    k = arr.shape[-1]
    return arr.reshape(-1, k).view(np.dtype((np.void, k * arr.itemsize))).reshape(-1)


def take_rows(arr: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``arr.reshape(-1, K)[at]`` as a new ``(n, K)`` array (one record copy per row: ~3x faster
    than float fancy indexing for K = 19)."""
    k = arr.shape[-1]
    return _rows_view(arr).take(at).view(arr.dtype).reshape(-1, k)


def take_pixels(hwk: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``hwk[rows, cols]`` -> ``(n, K)`` of an ``(h, w, K)`` array (record copies when contiguous)."""
    if hwk.flags.c_contiguous:
        return take_rows(hwk, rows * hwk.shape[1] + cols)
    return hwk[rows, cols]


def _put_rows(arr: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    """``arr.reshape(-1, K)[at] = rows`` (``arr`` contiguous)."""
    _rows_view(arr).put(at, _rows_view(np.ascontiguousarray(rows)))
