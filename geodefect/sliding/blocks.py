"""Finished stitched output: the :class:`Block` a strip hands out (sums and weights of its rows,
divided lazily per output, argmax without dividing, gated outputs on their gate only) and the
:class:`HaloChunk` sums that one strip's windows put past its right edge for the next strip
(:class:`HaloStore` spills them to a temporary file). Made by
:class:`~geodefect.sliding.stitch.BandAccumulator`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from geodefect.sliding.gated import GatedSums, take_pixels
from geodefect.sliding.threads import split_rows


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
        sums: name -> ``(K, height, width)`` float32 weighted sums ``Σ w·p`` (views of
            channels-last ``(height, width, K)`` arrays); 0 where no window covered the pixel.
        weight: ``(height, width)`` float32 ``Σ w``; 0 where no window covered the pixel.
        gated: name -> :class:`GatedSums` for gated outputs (not in ``sums``): their values
            exist on the gate's pixels only and are 0 elsewhere in :attr:`outputs`.

    :attr:`outputs` divides the sums by the weights, per name and only when asked for. A
    per-pixel argmax over channels needs no division (``Σ w·p`` and ``Σ w·p / Σ w`` differ by
    a positive factor per pixel): :meth:`argmax` takes it from the sums.
    """

    row_off: int
    col_off: int
    sums: dict[str, np.ndarray]
    weight: np.ndarray
    gated: dict[str, GatedSums] = field(default_factory=dict)

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

    def crop(self, row_off: int, col_off: int, height: int, width: int) -> Block | None:
        """The part of the block inside the raster rectangle ``(row_off, col_off, height, width)``
        (views, same values), or None when they do not overlap."""
        r0, r1 = max(row_off, self.row_off), min(row_off + height, self.row_off + self.height)
        c0, c1 = max(col_off, self.col_off), min(col_off + width, self.col_off + self.width)
        if r1 <= r0 or c1 <= c0:
            return None
        rows, cols = slice(r0 - self.row_off, r1 - self.row_off), slice(c0 - self.col_off, c1 - self.col_off)
        return Block(row_off=r0, col_off=c0, sums={k: v[:, rows, cols] for k, v in self.sums.items()},
                     weight=self.weight[rows, cols], gated={k: g.crop(rows, cols) for k, g in self.gated.items()})

    @property
    def outputs(self) -> _StitchedOutputs:
        """name -> ``(K, height, width)`` float32 stitched values ``Σ w·p / Σ w`` (probabilities in
        ``[0, 1]`` for probability outputs; 0 where no window covered the pixel), computed on
        first access per name. These are views of channels-last ``(height, width, K)`` arrays
        (``np.moveaxis(out, 0, -1)`` gives the contiguous ``(h, w, K)`` back without a copy)."""
        cached = self.__dict__.get("_outputs")
        if cached is None:
            cached = self.__dict__["_outputs"] = _StitchedOutputs(self.sums, self.weight, self.gated)
        return cached

    def values_at(self, name: str, where: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, values (n, K) float32)``: stitched values ``Σ w·p / Σ w`` at the pixels of
        ``where`` ((h, w) bool), row-major — without dividing the whole block. For a gated
        output, pixels of ``where`` off its gate are left out."""
        inv = self.outputs.inverse_weight()
        g = self.gated.get(name)
        if g is not None and g.dense is None:
            sel = where[g.rows, g.cols]
            rows, cols = g.rows[sel], g.cols[sel]
            return rows, cols, g.sums[sel] * inv[rows, cols]
        hwk = g.dense if g is not None else np.moveaxis(self.sums[name], 0, -1)
        rows, cols = np.nonzero(where if g is None else (where & g.mask))
        return rows, cols, take_pixels(hwk, rows, cols) * inv[rows, cols]

    def argmax(self, name: str, *, first: int = 0, where: np.ndarray | None = None, dtype=np.intp) -> np.ndarray:
        """``(height, width)`` index (from ``first``, as ``dtype``) of the largest of channels ``first..``.

        Equal to the argmax of :attr:`outputs` (up to ties within float32 rounding), without
        dividing. With ``where`` ((h, w) bool), only those pixels are computed (0 elsewhere). A
        gated output has values on its gate only: 0 outside it, whatever ``where`` says.
        """
        if name in self.gated:
            g = self.gated[name]
            if g.dense is None:
                out = np.zeros(self.weight.shape, dtype)
                rows, cols, sums = g.rows, g.cols, g.sums
                if where is not None:
                    sel = where[rows, cols]
                    rows, cols, sums = rows[sel], cols[sel], sums[sel]
                out[rows, cols] = np.argmax(sums[:, first:], axis=-1) + first
                return out
            hwk, where = g.dense[..., first:], g.mask if where is None else (g.mask & where)
        else:
            hwk = np.moveaxis(self.sums[name], 0, -1)[..., first:]
        out = np.zeros(hwk.shape[:2], dtype)

        def argmax_rows(rows: slice, part: int) -> None:
            if where is None:
                out[rows] = np.argmax(hwk[rows], axis=-1) + first
            else:
                o, w = out[rows], where[rows]
                o[w] = np.argmax(hwk[rows][w], axis=-1) + first

        split_rows(argmax_rows, out.shape[0], hwk.size)
        return out


class _StitchedOutputs(Mapping):
    """Read-only name -> ``Σ w·p / Σ w`` mapping, divided lazily per name (see :attr:`Block.outputs`)."""

    def __init__(self, sums: dict[str, np.ndarray], weight: np.ndarray, gated: dict[str, GatedSums]) -> None:
        self._sums, self._weight, self._gated = sums, weight, gated
        self._done: dict[str, np.ndarray] = {}
        self._inv: np.ndarray | None = None

    def inverse_weight(self) -> np.ndarray:
        """``(h, w, 1)`` float32 ``1 / Σ w`` (1 where nothing covered the pixel), computed once."""
        if self._inv is None:
            w = self._weight
            self._inv = (1.0 / np.where(w > 0, w, 1.0)).astype(np.float32)[..., None]
        return self._inv

    def __getitem__(self, name: str) -> np.ndarray:
        out = self._done.get(name)
        if out is None:
            inv = self.inverse_weight()
            g = self._gated.get(name)
            if g is not None and g.dense is not None:  # 0 off the gate
                hwk = np.where(g.mask[..., None], g.dense * inv, np.float32(0))
            elif g is not None:
                hwk = np.zeros((*self._weight.shape, g.sums.shape[1]), np.float32)
                hwk[g.rows, g.cols] = g.sums * inv[g.rows, g.cols]
            else:
                hwk = np.moveaxis(self._sums[name], 0, -1) * inv
            out = self._done[name] = np.moveaxis(hwk, -1, 0)
        return out

    def __contains__(self, name: object) -> bool:  # (Mapping's default would compute the output)
        return name in self._sums or name in self._gated

    def __iter__(self) -> Iterator[str]:
        yield from self._sums
        yield from self._gated

    def __len__(self) -> int:
        return len(self._sums) + len(self._gated)
