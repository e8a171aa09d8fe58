"""Spurs measured against the road's width: driveways and parking lots thin into short branches.

A blob of road-like pixels beside a road (a parking lot, a forecourt, a driveway's apron)
thins into a branch from the road into the blob that is about as long as the blob is wide;
a fixed ``min_spur_m`` removes it only when the blob is small. Here a dead end is also
pruned when it is shorter than ``spur_width_ratio`` x the largest half-width of road it
runs through (the distance from its path to the nearest background, measured on the mask
in a window round it). A real side road is long compared with its half-width and stays; a
stub that only crosses the blob it comes from goes. The price: a side road cut by a gap
close to a wide road may go too (its half-width is measured at the junction).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.measure import block_reduce

from geodefect.graph.simplify import EditableGraph, is_spur, merge_degree_two

#: cell size (m) of the distance transform that measures road half-widths
COARSE_M = 1.0
#: half-widths are looked for up to this (m): blobs up to ~50 m across; longer spurs are not measured
MAX_HALF_WIDTH_M = 25.0


def prune_wide_spurs(g: EditableGraph, mask: np.ndarray, *, spur_width_ratio: float) -> int:
    """Remove dead ends shorter than ``spur_width_ratio`` x the widest half-width along them; repeat.

    As :func:`geodefect.graph.simplify.prune_spurs`: the shortest spur at a junction goes
    first, only while the junction keeps degree >= 3, and protected ends (border, nodata) stay.

    Args:
        g: the graph, edited in place.
        mask: (H, W) bool road mask the graph was thinned from.
        spur_width_ratio: 0 = off.

    Returns:
        Number of edges removed.
    """
    if spur_width_ratio <= 0:
        return 0
    removed, checked = 0, {}
    while True:
        spurs = sorted((g.length_m(eid), eid) for eid in list(g.edges) if is_spur(g, eid))
        changed = []
        for length, eid in spurs:
            if length >= spur_width_ratio * MAX_HALF_WIDTH_M:
                break
            if eid not in g.edges or not is_spur(g, eid):
                continue
            if eid not in checked:
                checked[eid] = _spur_half_width_m(g, eid, mask, limit_m=length / spur_width_ratio)
            if length < spur_width_ratio * checked[eid]:
                e = g.remove_edge(eid)
                changed.extend([e.u, e.v])
                removed += 1
        if not changed:
            return removed
        merge_degree_two(g, changed)


def _spur_half_width_m(g: EditableGraph, eid: int, mask: np.ndarray, *, limit_m: float) -> float:
    """Widest half-width of road along a spur, its junction included.

    Measured from the junction on, so a spur into a blob is measured against the blob. (Skipping
    the part inside the road it leaves, so that a side road cut short by a gap is not measured
    against a wide main road, pruned almost nothing on the SpaceNet-3 test: BENCHMARKS.md.)
    """
    path = g.edges[eid].path
    return float(half_widths_m(mask, path, g.scale_rc, limit_m=limit_m).max(initial=0.0))


def half_widths_m(mask: np.ndarray, path: np.ndarray, scale_rc, *, limit_m: float) -> np.ndarray:
    """Distance (m) from each point of ``path`` to the mask's background, looked for up to ``limit_m``.

    The distance transform runs on the path's bounding box grown by ``limit_m`` (and a ring of
    background), so a value above ``limit_m`` may be underestimated -- callers only compare with it --
    in cells of about :data:`COARSE_M` (a cell is road when all its pixels are).
    """
    step = max(1, int(COARSE_M / min(scale_rc)))  # coarser cells: the test needs ~1 m, not a pixel
    margin = int(math.ceil(limit_m / min(scale_rc))) + 2 * step
    rows, cols = np.rint(path[:, 0]).astype(np.int64), np.rint(path[:, 1]).astype(np.int64)
    r0, c0 = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
    r1, c1 = min(rows.max() + margin + 1, mask.shape[0]), min(cols.max() + margin + 1, mask.shape[1])
    window = mask[r0:r1, c0:c1]
    if step > 1:  # a cell is road only if all its pixels are (half-widths err low, by < one cell)
        window = block_reduce(window, (step, step), np.min, cval=False)
    dist = ndimage.distance_transform_edt(np.pad(window, 1), sampling=(scale_rc[0] * step, scale_rc[1] * step))
    return dist[(rows - r0) // step + 1, (cols - c0) // step + 1]
