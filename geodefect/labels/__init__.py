"""Labels burned from vectors onto a pixel grid, window by window.

roads.py: road mask (buffer in metres / thresholded Gaussian) and orientation bands via
:class:`RoadLabeler`; orientation.py: the one angle -> bin convention.
"""

from geodefect.labels.orientation import (
    ORIENTATION_CONVENTION,
    angle_to_bin,
    bin_to_angle,
    n_orientation_classes,
    validate_bin_deg,
)
from geodefect.labels.roads import LABEL_MODES, RoadLabeler, WindowLabels, gaussian_half_width_px

__all__ = [
    "LABEL_MODES",
    "ORIENTATION_CONVENTION",
    "RoadLabeler",
    "WindowLabels",
    "angle_to_bin",
    "bin_to_angle",
    "gaussian_half_width_px",
    "n_orientation_classes",
    "validate_bin_deg",
]
