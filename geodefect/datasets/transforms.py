"""Paired augmentations for road chips: geometry moves image and labels together and remaps
orientation bins; colour jitter touches only the image.

Geometric transforms are the 8 elements of the square's symmetry group (dihedral D4), each
written as "optional horizontal flip, then ``k`` counter-clockwise quarter turns". On the
orientation convention θ = atan2(-Δrow, Δcol) (see :mod:`geodefect.labels.orientation`):
horizontal flip θ -> 180° - θ, vertical flip θ -> -θ, quarter turn CCW θ -> θ + 90°.

Which ones are exact on binned labels (bin = floor(θ / bin_deg) + 1)?

* A rotation by ``90k`` degrees maps bins onto bins exactly iff ``90k % bin_deg == 0``
  (edge angles included: half-open intervals stay half-open). With 20° bins that is only
  the 180° turn; with 10°, 15°, 30°, 45°, 90° bins all four turns.
* A reflection reverses the half-open bin intervals: an angle exactly on a bin edge (e.g.
  a perfectly horizontal road, θ = 0°) lands one bin lower than re-burning the reflected
  line would give. Bins are remapped through their centre angles, which is exact for every
  angle that is not on a bin edge and one bin (= ``bin_deg``) off on the edges. We accept
  that (``orientation_accuracy_1bin`` tolerates it) because flips are the most useful
  augmentation; ``geometry="rotations"`` keeps only the exact rotations.

:class:`RoadAugment` draws one allowed element per sample: never a 90° turn that is not
exact for the bin size (no silent approximation).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from geodefect.errors import ConfigError

log = logging.getLogger(__name__)

GEOMETRY_MODES = ("dihedral", "rotations", "none")


@dataclasses.dataclass(frozen=True)
class DihedralTransform:
    """Optional horizontal flip, then ``k`` quarter turns counter-clockwise (as displayed)."""

    flip: bool
    k: int

    def map_angle(self, theta_deg: np.ndarray | float) -> np.ndarray:
        """Where an orientation angle (degrees) goes, in [0, 360)."""
        theta = np.asarray(theta_deg, dtype=np.float64)
        if self.flip:
            theta = 180.0 - theta
        return np.mod(theta + 90.0 * self.k, 360.0)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Transform a ``(..., H, W)`` array (a view when possible)."""
        if self.flip:
            array = array[..., ::-1]
        return np.rot90(array, self.k, axes=(-2, -1)) if self.k else array

    def is_exact(self, bin_deg: int) -> bool:
        """True iff every bin (edges included) maps onto one bin."""
        return not self.flip and (90 * self.k) % bin_deg == 0

    def bin_lut(self, bin_deg: int) -> np.ndarray:
        """uint8 lookup ``new_bin = lut[old_bin]`` (0 stays 0), through bin centres."""
        n_bins = 360 // bin_deg
        centres = (np.arange(n_bins) + 0.5) * bin_deg
        new = np.floor(self.map_angle(centres) / bin_deg).astype(np.int64) % n_bins + 1
        return np.concatenate([[0], new]).astype(np.uint8)


ALL_TRANSFORMS = tuple(DihedralTransform(f, k) for f in (False, True) for k in range(4))


def allowed_transforms(bin_deg: int, geometry: str = "dihedral") -> tuple[DihedralTransform, ...]:
    """The transforms :class:`RoadAugment` draws from.

    ``dihedral``: every reflection (centre remap, see module docstring) and every rotation
    exact for ``bin_deg`` (a reflection followed by a rotation counts as a reflection and is
    kept when that rotation is exact); ``rotations``: only the exact rotations; ``none``.
    """
    if geometry not in GEOMETRY_MODES:
        raise ConfigError(f"`augment_geometry` must be one of {', '.join(GEOMETRY_MODES)}, got {geometry!r}")
    if geometry == "none":
        return (DihedralTransform(False, 0),)
    exact_k = [k for k in range(4) if (90 * k) % bin_deg == 0]
    out = [DihedralTransform(False, k) for k in exact_k]
    if geometry == "dihedral":
        out += [DihedralTransform(True, k) for k in exact_k]
    return tuple(out)


class RoadAugment:
    """Random paired augmentation of one road chip.

    Args:
        bin_deg: orientation bin width of the chips (meta.json ``orientation.bin_deg``).
        geometry: ``dihedral`` | ``rotations`` | ``none`` (see :func:`allowed_transforms`).
        brightness: max relative brightness change (multiplicative, per chip).
        contrast: max relative contrast change around the chip mean.
    """

    def __init__(self, *, bin_deg: int, geometry: str = "dihedral", brightness: float = 0.15,
                 contrast: float = 0.15) -> None:
        self.transforms = allowed_transforms(int(bin_deg), geometry)
        self.luts = [t.bin_lut(int(bin_deg)) for t in self.transforms]
        self.brightness, self.contrast = brightness, contrast
        if geometry != "none" and 90 % int(bin_deg):
            log.info("orientation bins of %s deg: 90-degree turns are not exact and are not used "
                     "(flips and the 180-degree turn are)", bin_deg)

    def __call__(self, image: np.ndarray, road: np.ndarray, orientation: np.ndarray, rng: np.random.Generator):
        """``image`` (C,H,W) float32 0..255, ``road`` (1,H,W), ``orientation`` (H,W) uint8 -> same, transformed."""
        i = int(rng.integers(len(self.transforms)))
        t = self.transforms[i]
        image, road = t.apply(image), t.apply(road)
        orientation = self.luts[i][t.apply(orientation)]
        return jitter_colour(image, rng, brightness=self.brightness, contrast=self.contrast), road, orientation


def jitter_colour(image: np.ndarray, rng: np.random.Generator, *, brightness: float, contrast: float) -> np.ndarray:
    """Random brightness (x [1-b, 1+b]) and contrast (around the mean) on a 0..255 float image."""
    if not brightness and not contrast:
        return image
    b = 1.0 + rng.uniform(-brightness, brightness)
    c = 1.0 + rng.uniform(-contrast, contrast)
    mean = float(image.mean())
    return np.clip((image - mean) * c + mean * b, 0.0, 255.0).astype(np.float32)
