"""Orientation convention: angle -> bin, and bins burned along directed centerlines."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from geodefect.errors import InputError
from geodefect.labels import (
    RoadLabeler,
    angle_to_bin,
    bin_to_angle,
    n_orientation_classes,
    validate_bin_deg,
)
from geodefect.labels.orientation import segment_angles_deg, world_to_pixel_deltas

UTM = "EPSG:32631"
GRID = Affine(1.0, 0, 0, 0, -1.0, 200.0)  # 1 m pixels, 200 x 200, north up


@pytest.mark.parametrize("bin_deg", [10, 20, 30, 45, 90])
def test_compass_directions_get_the_documented_bins(bin_deg):
    bins = angle_to_bin(np.array([0, 90, 180, 270]), bin_deg=bin_deg)
    assert bins.tolist() == [1, 90 // bin_deg + 1, 180 // bin_deg + 1, 270 // bin_deg + 1]
    assert n_orientation_classes(bin_deg) == 360 // bin_deg + 1


def test_angles_wrap_and_round_to_the_right_bin():
    bins = angle_to_bin(np.array([-10, 360, 719.0, 359.9999999999999, 19.999, 20.0]), bin_deg=20)
    assert bins.tolist() == [18, 1, 18, 1, 1, 2]
    assert bins.dtype == np.uint8
    assert np.allclose(bin_to_angle(np.array([1, 18]), bin_deg=20), [10, 350])
    assert np.isnan(bin_to_angle(0, bin_deg=20))


@pytest.mark.parametrize("bad", [0, 7, 12.5, 400, -20, True])
def test_bin_deg_must_divide_360(bad):
    with pytest.raises(InputError, match="bin_deg"):
        validate_bin_deg(bad)


def test_pixel_angle_convention_is_ccw_from_plus_column():
    # pixel deltas (d_col, d_row): right, up (row decreasing), left, down
    theta = segment_angles_deg(np.array([1, 0, -1, 0]), np.array([0, -1, 0, 1]))
    assert np.allclose(theta, [0, 90, 180, 270])
    d_col, d_row = world_to_pixel_deltas(np.array([0.0]), np.array([5.0]), GRID)  # north in world
    assert (d_col[0], d_row[0]) == (0.0, -5.0)


@pytest.mark.parametrize(
    ("start", "end", "theta"),
    [((20, 100), (180, 100), 0), ((100, 20), (100, 180), 90), ((180, 100), (20, 100), 180),
     ((100, 180), (100, 20), 270), ((30, 30), (170, 170), 45), ((170, 30), (30, 170), 135)],
)
def test_burned_band_has_the_segment_bin(start, end, theta):
    labeler = RoadLabeler([shapely.LineString([start, end])], UTM, bin_deg=20, width_px=8)
    orient = labeler.burn(GRID, 200, 200).orientation
    values, counts = np.unique(orient[orient > 0], return_counts=True)
    assert values.tolist() == angle_to_bin(theta, bin_deg=20).ravel().tolist()
    length_px = np.hypot(end[0] - start[0], end[1] - start[1])
    assert counts[0] == pytest.approx(8 * length_px + np.pi * 16, rel=0.05)  # band + round ends


def test_band_width_in_pixels():
    line = shapely.LineString([(-10, 100.0), (210, 100.0)])  # on a pixel edge, crosses the window
    orient = RoadLabeler([line], UTM, width_px=6).burn(GRID, 200, 200).orientation
    assert ((orient > 0).sum(axis=0) == 6).all()


def test_later_segments_win_where_bands_overlap():
    east = shapely.LineString([(20, 100), (180, 100)])
    north = shapely.LineString([(100, 20), (100, 180)])
    first = RoadLabeler([east, north], UTM).burn(GRID, 200, 200).orientation
    second = RoadLabeler([north, east], UTM).burn(GRID, 200, 200).orientation
    assert first[100, 100] == angle_to_bin(90, bin_deg=20)
    assert second[100, 100] == angle_to_bin(0, bin_deg=20)
    assert first[100, 30] == second[100, 30] == 1


def test_horizontal_flip_maps_bins_by_180_minus_theta():
    rng = np.random.default_rng(3)
    lines = [shapely.LineString(rng.uniform(10, 190, (4, 2))) for _ in range(6)]
    mirrored = [shapely.transform(g, lambda xy: np.column_stack([200 - xy[:, 0], xy[:, 1]])) for g in lines]
    orient = RoadLabeler(lines, UTM, bin_deg=20).burn(GRID, 200, 200).orientation
    flipped = RoadLabeler(mirrored, UTM, bin_deg=20).burn(GRID, 200, 200).orientation
    expected = np.fliplr(orient).copy()
    fg = expected > 0
    expected[fg] = angle_to_bin(180 - bin_to_angle(expected[fg], bin_deg=20), bin_deg=20)
    assert (flipped == expected).mean() > 0.999
