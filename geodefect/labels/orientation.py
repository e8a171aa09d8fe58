"""Orientation classes of road centerlines: the one definition of angle -> bin.

Convention (shared by chips, datasets, models and inference):

* θ is the angle of the *directed* centerline segment (digitising order), measured in
  pixel space counter-clockwise from the +column axis (east on a north-up raster):
  ``θ = atan2(-Δrow, Δcol)`` in [0°, 360°).
* ``bin = floor(θ / bin_deg) + 1``; ``0`` is background. So there are
  ``360 / bin_deg + 1`` classes (19 for ArcGIS's default 20°, 37 for Batra's 10°).
* A segment going east is bin 1, north is ``90 / bin_deg + 1``, west ``180 / bin_deg + 1``,
  south ``270 / bin_deg + 1``.

Angles exactly on a bin edge go to the upper bin (``floor``); angles are rounded to
1e-9° first, so that east computed as 359.9999999999° is still bin 1.
"""

from __future__ import annotations

import numpy as np

from geodefect.errors import InputError

#: the convention string written into chip metadata
ORIENTATION_CONVENTION = (
    "theta = atan2(-d_row, d_col) of the directed centerline segment, degrees CCW from the "
    "+column axis in [0, 360); bin = floor(theta / bin_deg) + 1; 0 = background"
)


def validate_bin_deg(bin_deg: float) -> int:
    """Return ``bin_deg`` as an int; raise InputError unless it divides 360.

    Args:
        bin_deg: width of an orientation bin in degrees (e.g. 20 as in ArcGIS, 10 as in Batra).
    """
    if isinstance(bin_deg, bool) or int(bin_deg) != bin_deg or not 1 <= bin_deg <= 180:
        raise InputError(
            f"`bin_deg` must be an integer in 1..180 that divides 360 (e.g. 10, 20), got {bin_deg!r}"
        )
    if 360 % int(bin_deg):
        raise InputError(
            f"`bin_deg` must divide 360 so that every bin has the same width (e.g. 10, 15, 20, 30), "
            f"got {bin_deg!r}"
        )
    return int(bin_deg)


def n_orientation_classes(bin_deg: float) -> int:
    """Number of orientation classes including background: ``360 / bin_deg + 1``."""
    return 360 // validate_bin_deg(bin_deg) + 1


def angle_to_bin(theta_deg: np.ndarray | float, *, bin_deg: float) -> np.ndarray:
    """Orientation bin (1..360/bin_deg) of angles in degrees (any real value, wrapped to [0, 360)).

    Args:
        theta_deg: angles in degrees, CCW from +column (see module docstring); any shape.
        bin_deg: bin width in degrees; must divide 360.

    Returns:
        uint8 array of the same shape (bins start at 1; 0 is kept for background).
    """
    step = validate_bin_deg(bin_deg)
    theta = np.mod(np.round(np.asarray(theta_deg, dtype=np.float64), 9), 360.0)
    bins = np.floor(theta / step).astype(np.int64) % (360 // step) + 1
    return bins.astype(np.uint8)


def bin_to_angle(bins: np.ndarray | int, *, bin_deg: float) -> np.ndarray:
    """Centre angle in degrees of each bin (NaN for background 0)."""
    step = validate_bin_deg(bin_deg)
    b = np.asarray(bins, dtype=np.float64)
    return np.where(b > 0, (b - 1) * step + step / 2.0, np.nan)


def segment_angles_deg(d_col: np.ndarray, d_row: np.ndarray) -> np.ndarray:
    """Angle θ in [0, 360) of pixel-space displacements: ``atan2(-d_row, d_col)`` in degrees."""
    theta = np.degrees(np.arctan2(-np.asarray(d_row, float), np.asarray(d_col, float)))
    return np.mod(theta, 360.0)


def world_to_pixel_deltas(dx: np.ndarray, dy: np.ndarray, transform) -> tuple[np.ndarray, np.ndarray]:
    """Convert world displacements ``(dx, dy)`` to pixel ``(d_col, d_row)`` under an affine transform.

    Only the linear part of the transform matters, so every window of a raster gives the
    same answer. Works for rotated and for geographic (degree) grids alike.
    """
    a, b, d, e = transform.a, transform.b, transform.d, transform.e
    det = a * e - b * d
    if det == 0:
        raise InputError(f"raster transform is singular (a*e - b*d = 0): {tuple(transform)[:6]}")
    d_col = (e * np.asarray(dx) - b * np.asarray(dy)) / det
    d_row = (-d * np.asarray(dx) + a * np.asarray(dy)) / det
    return d_col, d_row
