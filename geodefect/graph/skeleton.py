"""Road mask -> one-pixel-wide skeleton (threshold, remove specks, fill small holes, thin).

Arrays in, arrays out: no file I/O, no model. Sizes are given in pixels here; the metre
parameters of :class:`geodefect.graph.vectorize.VectorizeParams` are converted by the caller.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from geodefect.errors import InputError


def threshold_probability(
    prob: np.ndarray, *, threshold: float, smooth_sigma_px: float = 0.0, strip_rows: int = 2048
) -> np.ndarray:
    """Road mask of a probability map, optionally Gaussian-smoothed first.

    Smoothing: a network upsampled with stride-2 layers often leaves a checkerboard in its
    probabilities; thresholded, the dots touch diagonally and thin into a mesh of tiny loops.
    A blur of ~1 px removes that pattern (period-2 contrast x 0.007) and little else. Near
    nodata the blur is normalised by the blurred valid fraction, so roads are not thinned at
    the AOI edge. It runs in strips of ``strip_rows`` rows (+ the kernel radius), so memory
    stays a few strips of float32 whatever the raster size (``prob`` may be a memory map).

    Args:
        prob: (H, W) float in [0, 1]; NaN (nodata) counts as background.
        threshold: probability at or above which a pixel is road, in (0, 1).
        smooth_sigma_px: Gaussian standard deviation in pixels (0 = none).
        strip_rows: rows smoothed at a time.

    Returns:
        (H, W) bool mask.
    """
    if prob.ndim != 2:
        raise InputError(f"`prob` must be a (H, W) array, got shape {prob.shape}")
    if not 0.0 < threshold < 1.0:
        raise InputError(f"`threshold` must be in (0, 1), got {threshold!r}")
    if smooth_sigma_px <= 0:
        with np.errstate(invalid="ignore"):
            return prob >= threshold
    radius = int(np.ceil(3.0 * smooth_sigma_px)) + 1
    out = np.empty(prob.shape, bool)
    height = prob.shape[0]
    for r0 in range(0, height, strip_rows):
        r1 = min(r0 + strip_rows, height)
        a, b = max(r0 - radius, 0), min(r1 + radius, height)
        smooth = _smooth_nan(np.asarray(prob[a:b], dtype=np.float32), smooth_sigma_px)
        with np.errstate(invalid="ignore"):
            out[r0:r1] = smooth[r0 - a : r0 - a + (r1 - r0)] >= threshold
    return out


def _smooth_nan(block: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of a float block with NaN = nodata (normalised; NaN stays NaN)."""
    valid = np.isfinite(block)
    out = ndimage.gaussian_filter(np.where(valid, block, 0).astype(np.float32), sigma_px, truncate=3.0)
    if not valid.all():
        weight = ndimage.gaussian_filter(valid.astype(np.float32), sigma_px, truncate=3.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out /= weight
        out[~valid] = np.nan
    return out


def remove_small_objects(mask: np.ndarray, *, min_object_area_px: int) -> np.ndarray:
    """``mask`` without 8-connected road blobs of fewer than ``min_object_area_px`` pixels.

    Costs a labelling pass over the roads' bounding box (about 1.2 s at 10 000²), so the
    vectorisation leaves it off by default: tiny blobs thin to tiny skeletons, which the
    graph's ``min_component_m`` filter drops anyway. Small holes: :func:`fill_small_holes`.

    Args:
        mask: (H, W) bool road mask.
        min_object_area_px: blobs with fewer pixels are removed (<= 1: nothing removed).

    Returns:
        (H, W) bool mask (a new array).
    """
    out = np.array(mask, dtype=bool)
    box = _true_bbox(out)
    if box is None or min_object_area_px <= 1:
        return out
    sub = out[box]
    labels, _ = ndimage.label(sub, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels[sub])
    keep = sizes >= min_object_area_px
    keep[0] = False
    sub[...] = keep[labels]
    return out


def fill_small_holes(
    mask: np.ndarray,
    *,
    max_hole_area_px: float,
    max_extent_rc_px: tuple[float, float] | None = None,
    strip_rows: int = 2048,
) -> np.ndarray:
    """``mask`` with its small, compact holes filled (cars, trees on a road).

    Thinning turns a hole into a ring round it; filled first, the road thins into one line
    through the hole's centre. A hole is a 4-connected background region of the roads'
    bounding box that does not reach the box's edge (or the raster's). It is filled when it
    has at most ``max_hole_area_px`` pixels *and* its bounding box is at most
    ``max_extent_rc_px`` (rows, cols) -- by default the diameter of a disc of that area: a car
    or a tree fits, a piece of the median between two carriageways (long and thin) does not,
    and filling it would merge the two roads into one.

    It runs in strips of ``strip_rows`` rows that overlap by more than the largest hole, so
    memory stays a few strips; a region touching a strip's inner edge is left to the
    neighbouring strip, where a hole that small is whole. Only short enclosed background runs
    are grouped (:func:`_small_holes`), not the whole background.

    Args:
        mask: (H, W) bool road mask.
        max_hole_area_px: holes with at most this many pixels may be filled (< 1: none).
        max_extent_rc_px: largest bounding box (rows, cols) of a hole that is filled.
        strip_rows: rows labelled at a time.

    Returns:
        (H, W) bool mask (a new array).
    """
    if max_extent_rc_px is None:
        diameter = 2.0 * float(np.sqrt(max(max_hole_area_px, 0.0) / np.pi))
        max_extent_rc_px = (diameter, diameter)
    out = np.array(mask, dtype=bool)
    box = _true_bbox(out)
    if box is None or max_hole_area_px < 1:
        return out
    sub = out[box]
    overlap = int(np.ceil(max_extent_rc_px[0])) + 2
    step = max(strip_rows - overlap, 1)
    for r0 in range(0, max(sub.shape[0] - overlap, 1), step):
        strip = sub[r0 : r0 + strip_rows]
        rows, cols = _small_holes(strip, max_hole_area_px, max_extent_rc_px)
        strip[rows, cols] = True  # a view of ``out``
    return out


def _small_holes(strip: np.ndarray, max_area_px: float, max_extent_rc_px) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels of the small holes of a strip (regions touching its edges excluded).

    Labelling the whole background costs as much as the thinning, so only candidate pixels are
    grouped: a hole no wider than ``max_extent_rc_px`` lies on background runs, enclosed by
    road at both ends, that short along its row and along its column. Candidates are grouped
    into 4-connected components (``scipy.sparse.csgraph``); a component is a hole when none of
    its pixels touches background outside the candidates.
    """
    cand = _short_enclosed_runs(strip, int(max_extent_rc_px[1] + 0.5))
    cand &= _short_enclosed_runs(strip.T, int(max_extent_rc_px[0] + 0.5)).T
    idx = np.flatnonzero(cand)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if idx.size == 0:
        return empty
    height, width = strip.shape
    flat_cand, flat_road = cand.ravel(), strip.ravel()
    a, b, leak = [], [], np.zeros(idx.size, bool)
    for off, ok in ((1, idx % width < width - 1), (-1, idx % width > 0), (width, idx < (height - 1) * width), (-width, idx >= width)):
        nb = idx[ok] + off
        leak[np.flatnonzero(ok)[~(flat_road[nb] | flat_cand[nb])]] = True
        if off > 0:
            hit = flat_cand[nb]
            a.append(np.flatnonzero(ok)[hit])
            b.append(np.searchsorted(idx, nb[hit]))
    a, b = np.concatenate(a), np.concatenate(b)
    n = idx.size
    _, comp = csgraph.connected_components(sparse.coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n, n)), directed=False)
    rows, cols = np.divmod(idx, width)
    size = comp.max() + 1
    area = np.bincount(comp, minlength=size)
    leaks = np.bincount(comp, weights=leak, minlength=size) > 0
    extent_r, extent_c = _extents(comp, rows, size), _extents(comp, cols, size)
    fill = (area <= max_area_px) & ~leaks & (extent_r <= max_extent_rc_px[0] + 0.5) & (extent_c <= max_extent_rc_px[1] + 0.5)
    keep = fill[comp]
    return rows[keep], cols[keep]


def _extents(comp: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    lo = np.full(size, np.iinfo(np.int64).max)
    hi = np.full(size, -1)
    np.minimum.at(lo, comp, values)
    np.maximum.at(hi, comp, values)
    return hi - lo + 1


def _short_enclosed_runs(mask: np.ndarray, max_len: int) -> np.ndarray:
    """(H, W) bool: background pixels on runs along a row of at most ``max_len`` with road at both ends."""
    height, width = mask.shape
    edges = np.diff(np.pad(~mask, ((0, 0), (1, 1))).view(np.int8), axis=1).ravel()  # +1 run start, -1 run end
    at = np.flatnonzero(edges)
    starts, ends = at[edges[at] == 1], at[edges[at] == -1]
    col0, col1 = starts % (width + 1), ends % (width + 1)
    keep = (ends - starts <= max_len) & (col0 > 0) & (col1 < width)
    out = np.zeros(mask.shape, bool)
    if keep.any():
        length = (ends - starts)[keep]
        row = starts[keep] // (width + 1)
        first = row * width + col0[keep]
        pixels = np.repeat(first - np.r_[0, np.cumsum(length)[:-1]], length) + np.arange(length.sum())
        out.ravel()[pixels] = True
    return out


def _true_bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def skeletonize_mask(mask: np.ndarray, *, border_pad_px: int = 16) -> np.ndarray:
    """One-pixel-wide, 8-connected skeleton of a road mask (scikit-image's Zhang–Suen thinning).

    Thinning treats the outside of the raster as background, so a road leaving the raster
    would be eroded back from the edge by about half its width. The mask is therefore
    mirrored across the border by ``border_pad_px`` pixels first (``np.pad(mode="reflect")``)
    and cropped after: a road crossing the border continues in the mirror image, so its
    skeleton keeps its full length and ends on the border (no spurious cut). The price: a road
    running *along* the border, touching it, is drawn on the border row.

    Args:
        mask: (H, W) bool.
        border_pad_px: mirrored padding; at least half the widest road, in pixels.

    Returns:
        (H, W) bool skeleton.
    """
    from skimage.morphology import skeletonize

    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    if border_pad_px <= 0:
        return skeletonize(mask)
    pad = min(int(border_pad_px), min(mask.shape) - 1)
    if pad <= 0:
        return skeletonize(mask)
    padded = np.pad(mask, pad, mode="reflect")
    return np.ascontiguousarray(skeletonize(padded)[pad:-pad, pad:-pad])  # one copy, not one per ravel
