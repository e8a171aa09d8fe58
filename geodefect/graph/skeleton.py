"""Road mask -> one-pixel-wide skeleton (threshold, remove specks and holes, thin).

Arrays in, arrays out: no file I/O, no model. Sizes are given in pixels here; the metre
parameters of :class:`geodefect.graph.vectorize.VectorizeParams` are converted by the caller.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geodefect.errors import InputError


def threshold_probability(prob: np.ndarray, *, threshold: float) -> np.ndarray:
    """Road mask of a probability map.

    Args:
        prob: (H, W) float in [0, 1]; NaN (nodata) counts as background.
        threshold: probability at or above which a pixel is road, in (0, 1).

    Returns:
        (H, W) bool mask.
    """
    if prob.ndim != 2:
        raise InputError(f"`prob` must be a (H, W) array, got shape {prob.shape}")
    if not 0.0 < threshold < 1.0:
        raise InputError(f"`threshold` must be in (0, 1), got {threshold!r}")
    with np.errstate(invalid="ignore"):
        return prob >= threshold


def clean_mask(mask: np.ndarray, *, min_object_area_px: int, max_hole_area_px: int) -> np.ndarray:
    """Remove road blobs smaller than ``min_object_area_px`` and fill holes up to ``max_hole_area_px``.

    Holes in a road mask (a car, a shadow) become loops in the skeleton; filling them first
    avoids spurious cycles. Roads use 8-connectivity (a diagonal road is one object) and holes
    4-connectivity (the complement), as digital topology requires.

    Args:
        mask: (H, W) bool road mask.
        min_object_area_px: road components with fewer pixels are removed (0 = keep all).
        max_hole_area_px: enclosed background components with at most this many pixels are
            filled (0 = fill none). Background touching the raster border is never a hole.

    Returns:
        (H, W) bool mask (a new array).
    """
    out = np.asarray(mask, dtype=bool).copy()
    box = _true_bbox(out)
    if box is None:
        return out
    sub = out[box]
    if min_object_area_px > 1:
        labels, _ = ndimage.label(sub, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_object_area_px
        keep[0] = False
        sub[...] = keep[labels]
        del labels
    if max_hole_area_px > 0 and sub.any():
        sub |= _small_holes(sub, max_hole_area_px)
    return out


def _true_bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def _small_holes(sub: np.ndarray, max_area_px: int) -> np.ndarray:
    """Enclosed background components of ``sub`` (the roads' bounding box) up to ``max_area_px``.

    Background touching the box edge connects to the outside (all background) or to the raster
    border, so it is never a hole: only interior components count.
    """
    labels, n = ndimage.label(~sub)
    if n == 0:
        return np.zeros_like(sub)
    sizes = np.bincount(labels.ravel())
    fill = sizes <= max_area_px
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill[edge] = False
    fill[0] = False
    return fill[labels]


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
    return skeletonize(padded)[pad:-pad, pad:-pad]
