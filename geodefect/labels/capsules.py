"""Exact, vectorised rasterization of buffered segments ("capsules") into a pixel window.

Why not ``rasterio.features.rasterize``: it converts every shapely polygon to GeoJSON in
Python (~30 µs a shape), which made labels cost more than reading and writing the chip.
A buffered two-point segment is a capsule, and a capsule meets each pixel row's centre line
in one interval that has a closed form, so a window's labels reduce to a few numpy
operations over (segment, row) pairs. The capsule is exact (no polygonised round ends).

Distances are measured through a per-segment 2x2 ``metric`` matrix that maps a pixel
displacement ``(d_col, d_row)`` to a displacement in the units of ``radius``: the identity
for radii in pixels; the transform's linear part times metres per CRS unit for metres in a
projected CRS; and additionally the local metres per degree of longitude/latitude for a
geographic CRS (so a buffer in metres is an ellipse-ended band in degree pixels).

A pixel belongs to a capsule when its centre ``(col + 0.5, row + 0.5)`` lies within
``radius`` of the segment.
"""

from __future__ import annotations

import numpy as np


def capsule_spans(
    p0: np.ndarray, p1: np.ndarray, metric: np.ndarray, radius: float | np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column intervals of each capsule on each pixel row of a window.

    Args:
        p0, p1: (S, 2) float64 segment endpoints in window pixel coordinates ``(col, row)``.
        metric: (S, 2, 2) or (2, 2) float64; ``metric @ (d_col, d_row)`` is a displacement in
            the units of ``radius``. Columns are the displacement of one column and one row.
        radius: distance from the segment within which pixel centres are inside; a scalar
            or one per segment (S,).
        shape: window ``(height, width)`` in pixels.

    Returns:
        ``(rows, col_start, col_stop, segment)``: int64 arrays, one entry per non-empty span;
        pixels ``row, col_start <= col < col_stop`` are inside segment ``segment``.
    """
    height, width = shape
    metric = np.asarray(metric, np.float64)
    radius = np.broadcast_to(np.asarray(radius, np.float64), (len(p0),))
    if metric.ndim == 2 and np.array_equal(metric, np.eye(2)):
        return _pixel_spans(p0, p1, radius, shape)
    m = np.broadcast_to(metric, (len(p0), 2, 2))
    m1 = (m[:, 0, 0], m[:, 1, 0])  # metric displacement of one column
    m2 = (m[:, 0, 1], m[:, 1, 1])  # ... and of one row
    g00, g11, g01 = _dot(m1, m1), _dot(m2, m2), _dot(m1, m2)
    half_rows = radius * np.sqrt(g00 / (g00 * g11 - g01 * g01))  # row extent of the metric disk
    rows, seg = _row_pairs(p0, p1, half_rows, height)
    y = rows + 0.5
    ax, ay, bx, by = p0[seg, 0], p0[seg, 1], p1[seg, 0], p1[seg, 1]
    m1 = (m1[0][seg], m1[1][seg])
    m2 = (m2[0][seg], m2[1][seg])
    alpha, radius = g00[seg], radius[seg]
    qa = _comb(y - ay, m2, -ax, m1)  # metric position of pixel (c, y) minus A is c*m1 + qa
    qb = _comb(y - by, m2, -bx, m1)
    lo_a, hi_a = _disk_interval(alpha, m1, qa, radius)
    lo_b, hi_b = _disk_interval(alpha, m1, qb, radius)
    lo_s, hi_s = _body_interval(m1, qa, _comb(bx - ax, m1, by - ay, m2), radius)
    return _to_spans(rows, seg, np.fmin(np.fmin(lo_a, lo_b), lo_s), np.fmax(np.fmax(hi_a, hi_b), hi_s), width)


def _pixel_spans(p0: np.ndarray, p1: np.ndarray, radius: np.ndarray, shape: tuple[int, int]):
    """:func:`capsule_spans` for the identity metric (radii in pixels): the same closed form
    with the metric's zero and unit entries multiplied out."""
    height, width = shape
    rows, seg = _row_pairs(p0, p1, radius, height)
    ax, ay, bx, by = p0[seg, 0], p0[seg, 1], p1[seg, 0], p1[seg, 1]
    r2 = radius[seg] ** 2
    dya = rows + 0.5 - ay
    dyb = rows + 0.5 - by
    with np.errstate(invalid="ignore"):
        ha = np.sqrt(r2 - dya * dya)  # NaN where the row misses the end disk
        hb = np.sqrt(r2 - dyb * dyb)
    ux, uy = bx - ax, by - ay
    length = np.hypot(ux, uy)
    # body: 0 <= (c-ax)*ux + dya*uy <= L², |dya*ux - (c-ax)*uy| <= r*L  (c - ax is the unknown)
    lo_t, hi_t = _linear_interval(ux, dya * uy, 0.0, length * length)
    rl = np.sqrt(r2) * length
    lo_n, hi_n = _linear_interval(-uy, dya * ux, -rl, rl)
    lo_s, hi_s = np.maximum(lo_t, lo_n), np.minimum(hi_t, hi_n)
    empty = ~(lo_s <= hi_s)
    lo_s[empty] = np.nan
    hi_s[empty] = np.nan
    c_lo = np.fmin(np.fmin(ax - ha, bx - hb), ax + lo_s)
    c_hi = np.fmax(np.fmax(ax + ha, bx + hb), ax + hi_s)
    return _to_spans(rows, seg, c_lo, c_hi, width)


def _row_pairs(p0: np.ndarray, p1: np.ndarray, half_rows: np.ndarray, height: int):
    """(row, segment) pairs of every window row each capsule can reach."""
    lo = np.ceil(np.minimum(p0[:, 1], p1[:, 1]) - half_rows - 0.5).clip(0, height)
    hi = np.floor(np.maximum(p0[:, 1], p1[:, 1]) + half_rows - 0.5).clip(-1, height - 1)
    n_rows = np.maximum(hi - lo + 1, 0).astype(np.int64)
    seg = np.repeat(np.arange(len(p0)), n_rows)
    rows = _expand(lo.astype(np.int64), n_rows)  # lo[seg] + rank within the segment's rows
    return rows, seg


def _to_spans(rows, seg, c_lo, c_hi, width: int):
    """Pixel columns whose centres fall in ``[c_lo, c_hi]``, as half-open spans."""
    keep = np.isfinite(c_lo) & np.isfinite(c_hi)
    start = np.ceil(c_lo[keep] - 0.5).clip(0, width).astype(np.int64)
    stop = (np.floor(c_hi[keep] - 0.5) + 1).clip(0, width).astype(np.int64)
    rows, seg = rows[keep], seg[keep]
    ok = stop > start
    return rows[ok], start[ok], stop[ok], seg[ok]


def spans_to_mask(rows: np.ndarray, start: np.ndarray, stop: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 0/1 mask of the union of spans.

    Sparse windows write the spans' pixels directly (cost grows with the road pixels);
    dense ones use a difference array and one cumulative sum (fixed cost).
    """
    height, width = shape
    lengths = stop - start
    if lengths.sum() < height * width // 2:
        out = np.zeros(height * width, np.uint8)
        out[_expand(rows * width + start, lengths)] = 1
        return out.reshape(height, width)
    diff = np.zeros(height * (width + 1), np.int32)
    np.add.at(diff, rows * (width + 1) + start, 1)
    np.add.at(diff, rows * (width + 1) + stop, -1)
    inside = np.cumsum(diff.reshape(height, width + 1)[:, :width], axis=1, dtype=np.int32)
    return (inside > 0).view(np.uint8)


def spans_to_values(
    rows: np.ndarray, start: np.ndarray, stop: np.ndarray, segment: np.ndarray, values: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """(H, W) uint8 image of ``values[segment]``; where spans overlap the highest segment wins.

    Spans must come in non-decreasing ``segment`` order (as :func:`capsule_spans` returns
    them); ``np.put`` then writes them in that order, so the last (highest) segment wins —
    its loop is sequential, and a test with crossing bands guards that.
    """
    height, width = shape
    lengths = stop - start
    out = np.zeros(height * width, np.uint8)
    np.put(out, _expand(rows * width + start, lengths), np.repeat(np.asarray(values, np.uint8)[segment], lengths))
    return out.reshape(height, width)


def _expand(first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat pixel indices ``first[i] + 0..lengths[i]-1`` of every span, concatenated.

    Computed as ``arange(total) + repeat(first - offset_of_span)``: one ``repeat`` over
    the pixels, not two (``repeat(first) + rank within span``), and no Python loop.
    """
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(first - starts, lengths)


def _dot(u: tuple[np.ndarray, np.ndarray], v: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return u[0] * v[0] + u[1] * v[1]


def _comb(s: np.ndarray, u: tuple, t: np.ndarray, v: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``s*u + t*v`` for 2-vectors stored as (x, y) component arrays."""
    return s * u[0] + t * v[0], s * u[1] + t * v[1]


def _disk_interval(alpha: np.ndarray, m1: tuple, q: tuple, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns c with ``|c*m1 + q| <= radius`` (NaN when empty); ``alpha = m1·m1``."""
    beta = _dot(m1, q)
    disc = beta * beta - alpha * (_dot(q, q) - radius * radius)
    with np.errstate(invalid="ignore"):
        root = np.sqrt(disc)  # NaN where the row misses the disk
    return (-beta - root) / alpha, (-beta + root) / alpha


def _body_interval(m1: tuple, qa: tuple, u: tuple, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns whose point projects inside the segment and lies within ``radius`` of its line."""
    length2 = _dot(u, u)
    length = np.sqrt(length2)
    normal = (-u[1] / length, u[0] / length)
    lo_t, hi_t = _linear_interval(_dot(m1, u), _dot(qa, u), 0.0, length2)
    lo_n, hi_n = _linear_interval(_dot(m1, normal), _dot(qa, normal), -radius, radius)
    lo, hi = np.maximum(lo_t, lo_n), np.minimum(hi_t, hi_n)  # NaN (empty) propagates
    empty = ~(lo <= hi)
    lo[empty] = np.nan
    hi[empty] = np.nan
    return lo, hi


def _linear_interval(slope: np.ndarray, offset: np.ndarray, low, high) -> tuple[np.ndarray, np.ndarray]:
    """Columns c with ``low <= slope*c + offset <= high`` (±inf when unbounded, NaN when empty)."""
    low, high = np.broadcast_to(low, offset.shape), np.broadcast_to(high, offset.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (low - offset) / slope
        b = (high - offset) / slope
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    flat = np.abs(slope) < 1e-12
    if flat.any():
        inside = (offset[flat] >= low[flat]) & (offset[flat] <= high[flat])
        lo[flat] = np.where(inside, -np.inf, np.nan)
        hi[flat] = np.where(inside, np.inf, np.nan)
    return lo, hi
