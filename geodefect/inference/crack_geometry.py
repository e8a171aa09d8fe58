"""Crack length and width from a predicted defect mask (the figures users of crack maps report).

* **Length**: the mask is thinned to a one-pixel skeleton (:func:`skimage.morphology.skeletonize`);
  its length is the sum of the steps between 8-connected skeleton pixels, 1 px for a side
  step and √2 px for a diagonal one. A diagonal step is counted only where no side-step path
  (an L through a third skeleton pixel) joins the same two pixels, so staircases are not
  counted twice. Skeletons stop about half a width short of each end of a crack, so a crack
  of length L and width w measures about L − w.
* **Maximum width**: ``2 · d − 1`` where ``d`` is the largest Euclidean distance transform
  value (distance to the nearest background pixel centre, :func:`scipy.ndimage.distance_transform_edt`)
  on the skeleton: the width in pixels across the crack's widest point (exact for odd
  widths, 1 px less for even ones).

With a pixel size in millimetres (``geodefect infer --pixel-size-mm``) both are also given in mm.

Both are computed per 8-connected component on the component's bounding box plus a one-pixel
background margin, not on the whole image: thinning is local (3 × 3), two components never touch,
and a pixel's nearest background pixel is never farther than the margin, so the figures are those
of the whole image (tested) at the cost of the defects' area, not the photo's (a 2048 × 2000 rail
frame with a few defects: 0.5 s → a few ms).
"""

from __future__ import annotations

import math

import numpy as np


def skeleton_length_px(skeleton: np.ndarray) -> float:
    """Length in pixels of a ``(H, W) bool`` one-pixel-wide skeleton (8-connected steps, see module)."""
    sk = np.asarray(skeleton, bool)
    side = np.count_nonzero(sk[:, :-1] & sk[:, 1:]) + np.count_nonzero(sk[:-1, :] & sk[1:, :])
    a, b, c, d = sk[:-1, :-1], sk[:-1, 1:], sk[1:, :-1], sk[1:, 1:]  # top-left, top-right, bottom-left, bottom-right
    diagonal = np.count_nonzero(a & d & ~b & ~c) + np.count_nonzero(b & c & ~a & ~d)
    return float(side + math.sqrt(2) * diagonal)


def measure_cracks(mask: np.ndarray, *, pixel_size_mm: float | None = None,
                   labels: np.ndarray | None = None) -> dict[str, float | str]:
    """Total skeleton length and maximum width of the defects in ``mask``.

    Args:
        mask: ``(H, W) bool`` predicted defect mask.
        pixel_size_mm: ground size of one pixel in millimetres (None: the mm fields are "").
        labels: the mask's 8-connected components (:func:`label_components`) when the caller has them.

    Returns:
        ``{"crack_length_px", "max_width_px", "crack_length_mm", "max_width_mm"}``; 0 for an
        empty mask.
    """
    from scipy.ndimage import find_objects

    mask = np.asarray(mask, bool)
    length, width, depths = 0.0, 0.0, []  # depths: each component's largest distance to background on its skeleton
    if mask.any():
        labels = label_components(mask)[0] if labels is None else labels
        for i, box in enumerate(find_objects(labels), start=1):
            part_length, part_depth = _measure_component(np.pad(labels[box] == i, 1))
            length += part_length
            depths += [part_depth] if part_depth is not None else []
        width = max(2 * max(depths) - 1, 1.0) if depths else 1.0
    out: dict[str, float | str] = {"crack_length_px": round(length, 2), "max_width_px": round(width, 2)}
    mm = pixel_size_mm
    out["crack_length_mm"] = "" if mm is None else round(length * mm, 3)
    out["max_width_mm"] = "" if mm is None else round(width * mm, 3)
    return out


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``(labels, n)``: the 8-connected components of a ``(H, W) bool`` mask (``scipy.ndimage.label``)."""
    from scipy.ndimage import label

    labels, n = label(mask, structure=np.ones((3, 3), bool))
    return labels, int(n)


def _measure_component(crop: np.ndarray) -> tuple[float, float | None]:
    """(skeleton length px, largest distance to background on the skeleton, None if it has none) of one
    component given with a background margin of at least one pixel (outside the image is background)."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    skeleton = skeletonize(crop)
    if not skeleton.any():
        return 0.0, None
    return skeleton_length_px(skeleton), float(distance_transform_edt(crop)[skeleton].max())
