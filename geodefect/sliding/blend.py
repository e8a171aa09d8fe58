"""Weight masks for stitching overlapping windows: ``mean``, ``crop`` and ``hann``.

A window's mask is built from two 1-D profiles (rows, columns). A side of a window only
tapers where a neighbouring window can take over, i.e. where the window does *not* touch
the raster's edge; sides on the raster edge keep full weight, so border pixels (covered by
one window only) are never down-weighted to nothing.

* ``mean`` — uniform weight 1: a plain average of the overlapping predictions
  (raster-vision's ``scores / hits``). Cheap, but a window whose context differs from its
  neighbour's leaves a visible step at the window edge.
* ``crop`` — weight 1 in the window's centre, a tiny floor in a margin of half the overlap
  on each inner side: each pixel takes the prediction of the window whose centre it is in
  (the "discard the border" rule). Sharp transitions, but no averaging of border effects.
* ``hann`` (default) — a raised-cosine (Hann) ramp over the overlap ``size - stride`` on
  each inner side, flat in the middle. On a regular grid the ramps of two neighbours are
  ``sin²`` and ``cos²`` of the same angle, so weights sum to exactly 1 (a partition of
  unity) and predictions cross-fade smoothly: no seam. With the default stride of 3/4 of
  the window this is ArcGIS's "padding of tile/4" blending.

Every mask is floored at :data:`WEIGHT_FLOOR` (> 0) so that a pixel covered by only one
window (e.g. next to a window dropped by an AOI filter) still gets that window's value
exactly: ``Σ w·p / Σ w = p`` for a single window, whatever ``w`` is.
"""

from __future__ import annotations

import functools

import numpy as np

#: blend modes accepted by :func:`window_weights`
BLEND_MODES: tuple[str, ...] = ("mean", "crop", "hann")

#: smallest weight any covered pixel gets (keeps Σw > 0 wherever a window covers)
WEIGHT_FLOOR: float = 1e-3


def validate_blend(blend: str) -> str:
    """Return ``blend`` if valid, else raise ValueError listing the modes."""
    if blend not in BLEND_MODES:
        from geodefect.errors import InputError

        raise InputError(f"`blend` must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
    return blend


def axis_profile(
    length_px: int, *, blend: str, overlap_px: int, taper_start: bool, taper_end: bool
) -> np.ndarray:
    """1-D weight profile of one window axis.

    Args:
        length_px: window length along the axis.
        blend: ``mean`` | ``crop`` | ``hann``.
        overlap_px: nominal overlap between neighbours (``size_px - stride_px``).
        taper_start, taper_end: whether the start / end side has a neighbour to hand over to
            (False on the raster's edge).

    Returns:
        ``(length_px,)`` float32 in ``[WEIGHT_FLOOR, 1]``.
    """
    validate_blend(blend)
    prof = np.ones(length_px, dtype=np.float32)
    overlap_px = int(max(0, min(overlap_px, length_px)))
    if blend == "mean" or overlap_px == 0:
        return prof
    if blend == "crop":
        # the start side keeps floor(overlap/2), the end side the rest: neighbours' centres tile exactly
        start_px, end_px = overlap_px // 2, overlap_px - overlap_px // 2
        if taper_start and start_px:
            prof[:start_px] = 0.0
        if taper_end and end_px:
            prof[length_px - end_px :] = 0.0
    else:  # hann: sin² ramp rising over the overlap; the neighbour's falling ramp is cos²
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap_px) + 0.5) / overlap_px) ** 2
        if taper_start:
            prof[:overlap_px] = np.minimum(prof[:overlap_px], ramp)
        if taper_end:
            prof[length_px - overlap_px :] = np.minimum(prof[length_px - overlap_px :], ramp[::-1])
    return np.maximum(prof, WEIGHT_FLOOR).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _cached_mask(
    height_px: int, width_px: int, blend: str, overlap_px: int, edges: tuple[bool, bool, bool, bool]
) -> np.ndarray:
    top, bottom, left, right = edges
    rows = axis_profile(height_px, blend=blend, overlap_px=overlap_px, taper_start=not top, taper_end=not bottom)
    cols = axis_profile(width_px, blend=blend, overlap_px=overlap_px, taper_start=not left, taper_end=not right)
    mask = np.outer(rows, cols).astype(np.float32)
    np.maximum(mask, WEIGHT_FLOOR, out=mask)
    mask.setflags(write=False)
    return mask


def window_weights(
    height_px: int,
    width_px: int,
    *,
    blend: str = "hann",
    overlap_px: int,
    edges: tuple[bool, bool, bool, bool] = (False, False, False, False),
) -> np.ndarray:
    """2-D weight mask of one window (outer product of the row and column profiles).

    Args:
        height_px, width_px: window shape (the full window, padding included).
        blend: ``mean`` | ``crop`` | ``hann``.
        overlap_px: ``size_px - stride_px`` of the grid.
        edges: ``(top, bottom, left, right)`` — True where the window touches the raster's
            edge on that side (that side is not tapered).

    Returns:
        ``(height_px, width_px)`` float32 in ``[WEIGHT_FLOOR, 1]``, read-only (cached).
    """
    return _cached_mask(int(height_px), int(width_px), blend, int(overlap_px), tuple(bool(e) for e in edges))


def window_edges(
    row_off: int, col_off: int, height_px: int, width_px: int, *, raster_shape: tuple[int, int]
) -> tuple[bool, bool, bool, bool]:
    """``(top, bottom, left, right)``: which sides of a window lie on (or past) the raster edge."""
    h, w = raster_shape
    return (row_off <= 0, row_off + height_px >= h, col_off <= 0, col_off + width_px >= w)
