"""Invariants of the window grid (geodefect.windows) over many (shape, size, stride)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import box

from geodefect.errors import InputError
from geodefect.windows import (
    axis_offsets,
    count_windows,
    filter_windows_by_geometry,
    iter_windows,
    window_bounds,
    window_slices,
)

SHAPES = [(1, 1), (5, 7), (63, 64), (64, 64), (65, 64), (100, 37), (257, 513), (1000, 999)]
GRIDS = [(1, 1), (8, 1), (8, 3), (8, 8), (16, 12), (64, 48), (64, 64), (100, 1), (128, 96)]
# stride 1 over a large raster is a million windows: keep the cases small enough to run fast
CASES = [
    (shape, grid)
    for shape, grid in itertools.product(SHAPES, GRIDS)
    if count_windows(*shape, size_px=grid[0], stride_px=grid[1]) <= 5000
]


@pytest.mark.parametrize(("shape", "grid"), CASES)
def test_grid_invariants(shape, grid):
    height, width = shape
    size, stride = grid
    windows = list(iter_windows(height, width, size_px=size, stride_px=stride))
    assert len(windows) == count_windows(height, width, size_px=size, stride_px=stride)
    hits = np.zeros(shape, np.int32)
    for w in windows:
        # no window outside the raster
        assert w.col_off >= 0 and w.row_off >= 0
        assert w.col_off + w.width <= width and w.row_off + w.height <= height
        # full size unless the raster is smaller than a window
        assert w.height == min(size, height) and w.width == min(size, width)
        hits[window_slices(w)] += 1
    assert hits.min() >= 1, "every pixel covered"
    origins = [(w.row_off, w.col_off) for w in windows]
    assert len(set(origins)) == len(origins), "origins distinct"
    # the last row and column end on the raster's edge
    assert max(w.row_off + w.height for w in windows) == height
    assert max(w.col_off + w.width for w in windows) == width
    # overlap bounded: a pixel is read at most ceil(size/stride)+1 times per axis
    per_axis = -(-size // stride) + 1
    assert hits.max() <= per_axis**2


@pytest.mark.parametrize(("length", "size", "stride"), [(10, 4, 3), (100, 64, 48), (1000, 512, 384), (9, 3, 3)])
def test_axis_offsets_regular_then_snapped(length, size, stride):
    offs = axis_offsets(length, size_px=size, stride_px=stride)
    steps = np.diff(offs)
    assert (steps[:-1] == stride).all()
    assert 0 < steps[-1] <= stride
    assert offs[-1] == length - size


def test_stride_equal_size_tiles_without_overlap():
    windows = list(iter_windows(128, 192, size_px=64, stride_px=64))
    assert len(windows) == 2 * 3
    hits = np.zeros((128, 192), int)
    for w in windows:
        hits[window_slices(w)] += 1
    assert (hits == 1).all()


def test_stride_one_visits_every_origin():
    windows = list(iter_windows(10, 12, size_px=4, stride_px=1))
    assert {(w.row_off, w.col_off) for w in windows} == {(r, c) for r in range(7) for c in range(9)}


def test_raster_smaller_than_window_pad():
    clipped = list(iter_windows(30, 50, size_px=64, stride_px=48))
    padded = list(iter_windows(30, 50, size_px=64, stride_px=48, pad=True))
    assert clipped == [Window(0, 0, 50, 30)]
    assert padded == [Window(0, 0, 64, 64)]
    # pad only matters for axes shorter than a window
    assert list(iter_windows(100, 100, size_px=64, stride_px=48, pad=True)) == list(
        iter_windows(100, 100, size_px=64, stride_px=48)
    )


@pytest.mark.parametrize(("size", "stride"), [(64, 0), (64, -1), (64, 65), (0, 1), (64, 2.5)])
def test_bad_grid_raises(size, stride):
    with pytest.raises(InputError, match="stride_px|size_px"):
        list(iter_windows(100, 100, size_px=size, stride_px=stride))


def test_filter_by_geometry_and_bounds():
    transform = Affine(0.5, 0, 1000, 0, -0.5, 2000)
    windows = list(iter_windows(100, 100, size_px=20, stride_px=20))
    assert window_bounds(Window(0, 0, 20, 20), transform) == (1000, 1990, 1010, 2000)
    # AOI = the top-left quarter (50x50 px) of the raster
    aoi = box(1000, 1975, 1025, 2000)
    kept = filter_windows_by_geometry(windows, transform, aoi)
    # windows at col/row 0, 20, 40 intersect (40..60 reaches into the AOI's 0..50)
    assert {(w.row_off, w.col_off) for w in kept} == {(r, c) for r in (0, 20, 40) for c in (0, 20, 40)}
    covered = filter_windows_by_geometry(windows, transform, aoi, min_overlap_frac=0.99)
    assert {(w.row_off, w.col_off) for w in covered} == {(r, c) for r in (0, 20) for c in (0, 20)}
    assert filter_windows_by_geometry([], transform, aoi) == []
