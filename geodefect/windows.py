"""Window grid maths shared by chipping, training datasets and sliding-window inference.

No I/O here: windows are :class:`rasterio.windows.Window` objects (``col_off, row_off,
width, height`` in pixels), which are plain value objects and cost nothing to import.

The grid rule (``iter_windows``):

* Window origins along an axis are ``0, stride, 2*stride, ...`` while the window fits
  inside the raster; if the last window does not end on the raster's edge, one more window
  is added whose end is *snapped to the edge* (origin ``length - size``). So every pixel is
  covered, no window leaves the raster, and the snapped window overlaps its neighbour by
  more than ``size - stride`` only as much as needed to reach the edge.
* A raster *smaller than a window* along an axis gets one window on that axis: clipped to
  the raster (``width = length``) by default, or of the full ``size_px`` extending past the
  raster (to be padded by the reader) when ``pad=True``. Sliding-window inference uses
  ``pad=True`` so that every batch has the model's input size; chipping uses the default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rasterio.windows import Window

from geodefect.errors import InputError


def validate_grid(*, size_px: int, stride_px: int) -> None:
    """Check ``size_px`` >= 1 and 1 <= ``stride_px`` <= ``size_px``; raise InputError otherwise."""
    if int(size_px) != size_px or size_px < 1:
        raise InputError(f"`size_px` must be a positive integer, got {size_px!r}")
    if int(stride_px) != stride_px or not 1 <= stride_px <= size_px:
        raise InputError(
            f"`stride_px` must be in 1..{size_px} (at most `size_px`, so that windows leave no gap), "
            f"got {stride_px!r}"
        )


def axis_offsets(length_px: int, *, size_px: int, stride_px: int) -> list[int]:
    """Window origins along one axis of ``length_px`` pixels, the last snapped to the edge.

    Returns:
        Sorted, distinct origins. For ``length_px <= size_px`` this is ``[0]``.
    """
    validate_grid(size_px=size_px, stride_px=stride_px)
    if length_px < 1:
        raise InputError(f"raster axis length must be >= 1 px, got {length_px}")
    if length_px <= size_px:
        return [0]
    offsets = list(range(0, length_px - size_px + 1, stride_px))
    if offsets[-1] + size_px < length_px:
        offsets.append(length_px - size_px)
    return offsets


def iter_windows(
    height_px: int,
    width_px: int,
    *,
    size_px: int,
    stride_px: int,
    pad: bool = False,
) -> Iterator[Window]:
    """Yield the grid's windows row by row (row-major, top-left first).

    Args:
        height_px, width_px: raster shape in pixels.
        size_px: window side in pixels.
        stride_px: step between window origins, 1..size_px.
        pad: for rasters smaller than a window, yield full-size windows that extend past
            the raster (the reader pads) instead of windows clipped to the raster.
    """
    rows = axis_offsets(height_px, size_px=size_px, stride_px=stride_px)
    cols = axis_offsets(width_px, size_px=size_px, stride_px=stride_px)
    h = size_px if pad else min(size_px, height_px)
    w = size_px if pad else min(size_px, width_px)
    for r in rows:
        for c in cols:
            yield Window(c, r, w, h)


def count_windows(height_px: int, width_px: int, *, size_px: int, stride_px: int) -> int:
    """Number of windows :func:`iter_windows` yields, without building them."""
    rows = axis_offsets(height_px, size_px=size_px, stride_px=stride_px)
    cols = axis_offsets(width_px, size_px=size_px, stride_px=stride_px)
    return len(rows) * len(cols)


def window_bounds(window: Window, transform) -> tuple[float, float, float, float]:
    """World bounds ``(minx, miny, maxx, maxy)`` of a window under an affine transform."""
    from rasterio.windows import bounds

    left, bottom, right, top = bounds(window, transform)
    return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))


def filter_windows_by_geometry(
    windows: Sequence[Window], transform, geometry, *, min_overlap_frac: float = 0.0
) -> list[Window]:
    """Keep windows whose footprint intersects ``geometry`` (a shapely geometry in the
    raster's CRS). With ``min_overlap_frac`` > 0, keep those whose footprint is covered by
    the geometry at least that much (a fraction of the window's area).
    """
    import shapely
    from shapely.geometry import box

    if not windows:
        return []
    boxes = [box(*window_bounds(w, transform)) for w in windows]
    shapely.prepare(geometry)
    hits = shapely.intersects(geometry, boxes)
    keep = []
    for w, b, hit in zip(windows, boxes, hits, strict=True):
        if not hit:
            continue
        if min_overlap_frac > 0 and b.intersection(geometry).area < min_overlap_frac * b.area:
            continue
        keep.append(w)
    return keep


def window_slices(window: Window) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of a window, for indexing ``(..., H, W)`` arrays."""
    r0, c0 = int(window.row_off), int(window.col_off)
    return slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width))


def intersect_windows(a: Window, b: Window) -> Window | None:
    """The overlap of two windows, or None when they do not overlap."""
    r0, r1 = max(a.row_off, b.row_off), min(a.row_off + a.height, b.row_off + b.height)
    c0, c1 = max(a.col_off, b.col_off), min(a.col_off + a.width, b.col_off + b.width)
    if r1 <= r0 or c1 <= c0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def tile_raster(height_px: int, width_px: int, *, block_px: int) -> list[Window]:
    """Blocks of ``block_px``² (the last ones clipped to the raster) covering it, row-major."""
    return [Window(c, r, min(block_px, width_px - c), min(block_px, height_px - r))
            for r in range(0, height_px, block_px) for c in range(0, width_px, block_px)]
