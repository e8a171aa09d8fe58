"""Gap bridging: join road ends across small gaps, end to end and end to the side of a road.

End to end follows CRESI's ``add_small_segments`` (SpaceNet-5): end nodes closer than a short
gap are joined; up to a long gap they are joined only when collinear. Here "collinear" means
the gap's direction is within ``angle_deg`` of the road direction at *both* ends, where the
road direction comes from the predicted orientation bins when given (the multitask model's
point) and otherwise from the edge's tangent near the end.

End to edge (not in CRESI) closes the most common gap of a predicted map, a side road that
fades out just before the road it joins: an end whose direction points at another edge
within the short gap (and ``angle_deg``) is joined to the nearest point of that edge, which
becomes a T junction.
"""

from __future__ import annotations

import numpy as np

from geodefect.graph.simplify import EditableGraph, EndDirection, merge_degree_two


def bridge_gaps(
    g: EditableGraph,
    *,
    short_gap_m: float,
    long_gap_m: float,
    angle_deg: float,
    end_direction: EndDirection,
    short_angle_deg: float = 90.0,
) -> int:
    """Join pairs of end nodes across small gaps (nearest pairs first, each end at most once).

    Args:
        g: the graph, edited in place.
        short_gap_m: ends closer than this are joined when the direction test with
            ``short_angle_deg`` passes (90 = no test, as CRESI).
        long_gap_m: ends up to this far apart are joined only when the gap's direction is
            within ``angle_deg`` of the outward road direction at both ends.
        angle_deg: collinearity tolerance in degrees.
        end_direction: outward unit direction (metric row, col) at the end of a path ending
            at the end node, or None when unknown (then a long gap is not joined).
        short_angle_deg: direction tolerance for short gaps.

    Returns:
        Number of gaps joined. Two ends of the same edge are never joined.
    """
    from scipy.spatial import cKDTree

    ends = [n for n, inc in g.incident.items() if len(inc) == 1 and n not in g.protected]
    if len(ends) < 2:
        return 0
    pos = g.node_rc[ends] * np.asarray(g.scale_rc)
    pairs = cKDTree(pos).query_pairs(r=long_gap_m, output_type="ndarray")
    if len(pairs) == 0:
        return 0
    gaps = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    dists = np.hypot(gaps[:, 0], gaps[:, 1])
    directions: dict[int, np.ndarray | None] = {}
    used: set[int] = set()
    for k in np.argsort(dists, kind="stable"):
        a, b = ends[pairs[k, 0]], ends[pairs[k, 1]]
        if a in used or b in used or g.incident[a][0] == g.incident[b][0]:
            continue
        limit = short_angle_deg if dists[k] <= short_gap_m else angle_deg
        for n in (a, b):
            if n not in directions:
                directions[n] = end_direction(g.path_to(g.incident[n][0], n))
        if not _directions_agree(gaps[k], dists[k], directions[a], directions[b], limit):
            continue
        g.add_edge(a, b, np.stack([g.node_rc[a], g.node_rc[b]]), bridged=True)
        used.update((a, b))
    merge_degree_two(g, used)
    return len(used) // 2


def _directions_agree(gap, dist, dir_a, dir_b, limit_deg) -> bool:
    """Whether ``gap`` (from a to b) leaves a along dir_a and reaches b against dir_b."""
    if limit_deg >= 90.0 or dist == 0:
        return True
    if dir_a is None or dir_b is None:
        return False
    unit = gap / dist
    cos_limit = np.cos(np.radians(limit_deg))
    return float(dir_a @ unit) >= cos_limit and float(dir_b @ -unit) >= cos_limit


def bridge_ends_to_edges(g: EditableGraph, *, max_gap_m: float, angle_deg: float, end_direction: EndDirection) -> int:
    """Join ends to the nearest point of another edge they point at, within ``max_gap_m``.

    The target edge is split there (a new junction node). An end without a known direction
    is not joined. Returns the number of ends joined.
    """
    import shapely

    ends = [n for n, inc in g.incident.items() if len(inc) == 1 and n not in g.protected]
    if not ends or max_gap_m <= 0:
        return 0
    scale = np.asarray(g.scale_rc)
    eids = list(g.edges)
    # candidates by the edges' bounding boxes (not their pixel paths as geometries: those cost
    # memory in proportion to the whole graph's pixels); the exact distance is measured below
    lo = np.array([g.edges[e].path.min(axis=0) for e in eids]) * scale
    hi = np.array([g.edges[e].path.max(axis=0) for e in eids]) * scale
    tree = shapely.STRtree(shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))
    points = shapely.points(g.node_rc[ends] * scale)
    i_end, i_edge = tree.query(points, predicate="dwithin", distance=max_gap_m)
    best: dict[int, tuple[float, int, np.ndarray]] = {}
    for k, j in sorted(zip(i_end.tolist(), i_edge.tolist(), strict=True)):
        end, eid = ends[k], eids[j]
        if eid in g.incident[end]:
            continue
        target = _nearest_on_path(g.edges[eid].path * scale, g.node_rc[end] * scale)
        gap = target - g.node_rc[end] * scale
        dist = float(np.hypot(*gap))
        if dist > max_gap_m:
            continue
        if end not in best or dist < best[end][0]:
            best[end] = (dist, eid, target)
    joined = 0
    for end, (dist, eid, target) in sorted(best.items(), key=lambda kv: kv[1][0]):
        if eid not in g.edges or g.degree(end) != 1 or dist == 0:
            continue
        direction = end_direction(g.path_to(g.incident[end][0], end))
        gap = target - g.node_rc[end] * scale
        if direction is None or float(direction @ gap) / dist < np.cos(np.radians(angle_deg)):
            continue
        node = split_edge(g, eid, target / scale)
        g.add_edge(end, node, np.stack([g.node_rc[end], g.node_rc[node]]), bridged=True)
        merge_degree_two(g, [end])
        joined += 1
    return joined


def _nearest_on_path(path_m: np.ndarray, point_m: np.ndarray) -> np.ndarray:
    """The point of a (K, 2) polyline nearest to ``point_m`` (all metric)."""
    a, b = path_m[:-1], path_m[1:]
    ab = b - a
    denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((point_m - a) * ab).sum(axis=1) / denom, 0.0, 1.0)
    proj = a + t[:, None] * ab
    return proj[np.argmin(((proj - point_m) ** 2).sum(axis=1))]


def split_edge(g: EditableGraph, eid: int, point_rc: np.ndarray) -> int:
    """Split edge ``eid`` at ``point_rc`` (pixel (row, col) on or next to its path); return the node there.

    A point within half a pixel of an end of the edge returns that end instead.
    """
    e = g.edges[eid]
    for n in (e.u, e.v):
        if np.hypot(*(g.node_rc[n] - point_rc)) <= 0.5:
            return n
    seg = int(np.argmin(_segment_distances(e.path, point_rc)))
    node = len(g.node_rc)
    g.node_rc = np.vstack([g.node_rc, point_rc[None, :]])
    g.remove_edge(eid)
    g.add_edge(e.u, node, np.vstack([e.path[: seg + 1], point_rc[None, :]]), bridged=e.bridged)
    g.add_edge(node, e.v, np.vstack([point_rc[None, :], e.path[seg + 1 :]]), bridged=e.bridged)
    return node


def _segment_distances(path: np.ndarray, point: np.ndarray) -> np.ndarray:
    a, b = path[:-1], path[1:]
    ab = b - a
    t = np.clip(((point - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-12), 0.0, 1.0)
    return np.hypot(*(a + t[:, None] * ab - point).T)
