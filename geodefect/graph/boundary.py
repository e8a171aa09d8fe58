"""Road ends where the data stops (the AOI's edge, nodata): straighten them onto that edge.

Thinning treats nodata as background, so a road cut by the AOI ends half its width short of
the cut and, when the cut is oblique, bends into the cut's acute corner: the end node lands
4-9 m beside the true road (measured on SpaceNet-3 tiles cut by a disc AOI) and APLS counts
it as a node with no truth. The raster border does not have this problem (the mask is
mirrored there before thinning, see ``skeleton.skeletonize_mask``). Here the last
``trim_m`` of such an end's path is replaced by a straight line that continues the road's
direction (the chord over the ``tangent_m`` before the trimmed part) up to the last valid pixel
before nodata.
"""

from __future__ import annotations

import numpy as np

from geodefect.graph.simplify import EditableGraph, path_length_m, tangent_direction


def extend_ends_to_nodata(
    g: EditableGraph, prob: np.ndarray, *, ends: list[int], trim_m: float, tangent_m: float, max_px: int
) -> int:
    """Redraw the last ``trim_m`` of each end's edge straight on to the nodata edge.

    Args:
        g: the graph, edited in place (node positions and edge paths).
        prob: (H, W) float probabilities, NaN where the raster has no data (outside the AOI);
            read only along the extensions (a memory map is fine).
        ends: end nodes (degree 1) cut by nodata.
        trim_m: length of path replaced (about a road width: the part that bends).
        tangent_m: length before it whose chord gives the road's direction.
        max_px: the straight part goes at most this far past the trimmed point.

    Returns:
        Number of ends moved.
    """
    moved = 0
    for node in ends:
        if g.degree(node) != 1:
            continue
        eid = g.incident[node][0]
        path = g.path_to(eid, node)
        if path_length_m(path, g.scale_rc) <= trim_m + tangent_m:
            continue  # too short to know its direction
        kept = _trim_end(path, g.scale_rc, trim_m)
        direction = tangent_direction(kept, g.scale_rc, tangent_m=tangent_m)
        if direction is None:
            continue
        tip = _march_to_nodata(kept[-1], direction / np.asarray(g.scale_rc), prob, max_px)
        if tip is None:
            continue
        e = g.remove_edge(eid)
        g.node_rc[node] = tip
        new_path = np.vstack([kept, tip[None, :]])
        g.add_edge(e.u if e.v == node else node, node if e.v == node else e.v,
                   new_path if e.v == node else new_path[::-1], bridged=e.bridged)
        moved += 1
    return moved


def _trim_end(path: np.ndarray, scale_rc, trim_m: float) -> np.ndarray:
    """``path`` without its last ``trim_m`` metres (at least two points kept)."""
    step = np.hypot(*(np.diff(path, axis=0) * np.asarray(scale_rc)).T)
    back = np.r_[np.cumsum(step[::-1])[::-1], 0.0]  # distance from each point to the end
    keep = max(int(np.searchsorted(-back, -trim_m, side="right")), 2)
    return path[:keep]


def _march_to_nodata(start: np.ndarray, step_rc: np.ndarray, prob: np.ndarray, max_px: int) -> np.ndarray | None:
    """Last valid pixel centre along ``start + t * step`` before nodata (None: none within ``max_px``)."""
    unit = step_rc / np.hypot(*step_rc)
    t = np.arange(0.5, max_px + 0.5, 0.5)
    pts = start[None, :] + t[:, None] * unit[None, :]
    rc = np.rint(pts).astype(np.int64)
    h, w = prob.shape
    outside = (rc[:, 0] < 0) | (rc[:, 1] < 0) | (rc[:, 0] >= h) | (rc[:, 1] >= w)
    hit = outside.copy()
    inside = ~outside
    hit[inside] = np.isnan(prob[rc[inside, 0], rc[inside, 1]])
    first = int(np.argmax(hit)) if hit.any() else -1
    if first <= 0:
        return None
    return pts[first - 1]
