"""Road mask -> one-pixel-wide skeleton (threshold, remove specks, fill small holes, thin).

Arrays in, arrays out: no file I/O, no model. Sizes are given in pixels here; the metre
parameters of :class:`geodefect.graph.vectorize.VectorizeParams` are converted by the caller.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    mask: np.ndarray, *, max_hole_area_px: float, max_extent_rc_px: tuple[float, float] | None = None
) -> np.ndarray:
    """``mask`` with its small, compact holes filled (cars, trees on a road).

    Thinning turns a hole into a ring round it; filled first, the road thins into one line
    through the hole's centre. A hole is a 4-connected background region of the roads'
    bounding box that does not reach the box's edge (or the raster's). It is filled when it
    has at most ``max_hole_area_px`` pixels *and* its bounding box is at most
    ``max_extent_rc_px`` (rows, cols) -- by default the diameter of a disc of that area: a car
    or a tree fits, a piece of the median between two carriageways (long and thin) does not,
    and filling it would merge the two roads into one.

    Args:
        mask: (H, W) bool road mask.
        max_hole_area_px: holes with at most this many pixels may be filled (< 1: none).
        max_extent_rc_px: largest bounding box (rows, cols) of a hole that is filled.

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
    labels, n = ndimage.label(~sub)  # 4-connected background
    if n == 0:
        return out
    area = np.bincount(labels.ravel(), minlength=n + 1)
    small = area <= max_hole_area_px
    small[0] = False
    small[np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]] = False  # open to the outside
    slices = ndimage.find_objects(labels)
    for i in np.flatnonzero(small):
        rows, cols = slices[i - 1]
        small[i] = rows.stop - rows.start <= max_extent_rc_px[0] + 0.5 and cols.stop - cols.start <= max_extent_rc_px[1] + 0.5
    sub[small[labels]] = True
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
