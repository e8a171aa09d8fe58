"""Reading windows for the sliding engine: an in-memory image as a reader, and batches of windows.

A *reader* is anything with ``shape`` ``(C, H, W)`` and ``read(window) -> (C, h, w)`` array:
:class:`geodefect.io.raster.RasterReader` for GeoTIFFs (nodata, stretch, resampling), or
:class:`ArrayReader` for a photo already in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from rasterio.windows import Window

from geodefect.errors import InputError


class ArrayReader:
    """Reader over an in-memory ``(C, H, W)`` (or ``(H, W)``) array.

    Pixels outside the array are ``fill`` (``pad="constant"``) or the array mirrored at its
    edge (``pad="reflect"``, NumPy's ``reflect`` mode): photos smaller than the window then
    show the model more of the same surface instead of a flat border whose edge it may read
    as a defect (cracks along the padded border of crack photos).
    """

    PADS = ("constant", "reflect")

    def __init__(self, array: np.ndarray, *, fill: float = 0, pad: str = "constant") -> None:
        arr = np.asarray(array)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"image array must be (C, H, W) or (H, W), got shape {arr.shape}")
        if pad not in self.PADS:
            raise InputError(f"`pad` must be one of {', '.join(self.PADS)}, got {pad!r}")
        self.array, self.fill, self.pad = arr, fill, pad

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    def read(self, window: Window) -> np.ndarray:
        c, h, w = self.shape
        r0, c0 = int(window.row_off), int(window.col_off)
        wh, ww = int(window.height), int(window.width)
        rs, re = max(r0, 0), min(r0 + wh, h)
        cs, ce = max(c0, 0), min(c0 + ww, w)
        if self.pad == "reflect" and re > rs and ce > cs:
            widths = ((0, 0), (rs - r0, r0 + wh - re), (cs - c0, c0 + ww - ce))
            return np.pad(self.array[:, rs:re, cs:ce], widths, mode="reflect")
        out = np.full((c, wh, ww), self.fill, dtype=self.array.dtype)
        if re > rs and ce > cs:
            out[:, rs - r0 : re - r0, cs - c0 : ce - c0] = self.array[:, rs:re, cs:ce]
        return out


def iter_batches(reader, windows: Sequence[Window], batch_size: int) -> Iterator[tuple[list[Window], np.ndarray]]:
    """Read windows in batches: ``(windows, (B, C, h, w) float32)``.

    A batch holds at most ``batch_size`` windows of one size (a change of size starts a new batch).
    """
    chunk: list[Window] = []
    for win in windows:
        if chunk and (len(chunk) == batch_size or (win.height, win.width) != (chunk[0].height, chunk[0].width)):
            yield chunk, _read_stack(reader, chunk)
            chunk = []
        chunk.append(win)
    if chunk:
        yield chunk, _read_stack(reader, chunk)


def _read_stack(reader, windows: Sequence[Window]) -> np.ndarray:
    """``(B, C, h, w)`` float32: each window cast straight into the batch (no per-window float copy)."""
    first = np.asarray(reader.read(windows[0]))
    out = np.empty((len(windows), *first.shape), np.float32)
    out[0] = first
    for i, win in enumerate(windows[1:], start=1):
        out[i] = reader.read(win)
    return out
