"""Clean-up of a pixel road graph: prune spurs, bridge gaps, drop small pieces, merge chains.

Works on a small mutable graph (:class:`EditableGraph`: a dict of edges with their pixel paths,
and node -> incident edges) whose size is the number of *edges*, not pixels, so plain Python
is fast enough. Lengths are measured in metres with the pixel size ``(row_m, col_m)``.

Gap bridging lives in :mod:`geodefect.graph.bridge`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from geodefect.graph.build import PixelGraph

#: a function giving the outward unit direction (metric row, col) at the end of a path
EndDirection = Callable[[np.ndarray], np.ndarray | None]


@dataclass
class Edge:
    """One edge: node ids and its (K, 2) float64 (row, col) path from ``u`` to ``v``."""

    u: int
    v: int
    path: np.ndarray
    bridged: bool = False
    length_m: float = 0.0


@dataclass
class EditableGraph:
    """A multigraph of nodes (pixel coordinates) and edges (pixel paths) that can be edited."""

    node_rc: np.ndarray
    scale_rc: tuple[float, float]
    edges: dict[int, Edge] = field(default_factory=dict)
    incident: dict[int, list[int]] = field(default_factory=dict)
    #: nodes on the raster border or next to nodata: roads leave the data there, so these
    #: ends are not pruned as spurs, not bridged, and keep their component
    protected: set[int] = field(default_factory=set)
    _next_id: int = 0

    @classmethod
    def from_pixel_graph(cls, pg: PixelGraph, *, scale_rc: tuple[float, float]) -> EditableGraph:
        g = cls(node_rc=pg.node_rc.copy(), scale_rc=scale_rc)
        step = np.diff(pg.coords, axis=0) * np.asarray(scale_rc)
        step_m = np.r_[np.hypot(step[:, 0], step[:, 1]), 0.0]
        cum = np.r_[0.0, np.cumsum(step_m)]
        lengths = (cum[pg.offsets[1:] - 1] - cum[pg.offsets[:-1]]).tolist()
        offsets = pg.offsets.tolist()
        # paths are views into pg.coords: edges are never edited in place, only replaced
        for i, (u, v) in enumerate(pg.edge_uv.tolist()):
            g.add_edge(u, v, pg.coords[offsets[i] : offsets[i + 1]], length_m=lengths[i])
        return g

    def add_edge(self, u: int, v: int, path: np.ndarray, *, bridged: bool = False, length_m: float | None = None) -> int:
        eid = self._next_id
        self._next_id += 1
        if length_m is None:
            length_m = path_length_m(path, self.scale_rc)
        self.edges[eid] = Edge(u, v, path, bridged, length_m)
        self.incident.setdefault(u, []).append(eid)
        self.incident.setdefault(v, []).append(eid)
        return eid

    def remove_edge(self, eid: int) -> Edge:
        e = self.edges.pop(eid)
        self.incident[e.u].remove(eid)
        self.incident[e.v].remove(eid)
        return e

    def degree(self, node: int) -> int:
        return len(self.incident.get(node, ()))

    def length_m(self, eid: int) -> float:
        return self.edges[eid].length_m

    def path_to(self, eid: int, node: int) -> np.ndarray:
        """The edge's path oriented so that it ends at ``node``."""
        e = self.edges[eid]
        return e.path if e.v == node else e.path[::-1]


def path_length_m(path: np.ndarray, scale_rc: tuple[float, float]) -> float:
    """Length in metres of a (K, 2) (row, col) path with pixel size ``scale_rc`` (m)."""
    if len(path) < 2:
        return 0.0
    step = np.diff(path, axis=0) * np.asarray(scale_rc)
    return float(np.hypot(step[:, 0], step[:, 1]).sum())


def merge_degree_two(g: EditableGraph, nodes=None) -> None:
    """Join the two edges at every node of degree 2 into one (the node disappears)."""
    todo = list(g.incident) if nodes is None else list(nodes)
    for n in todo:
        inc = g.incident.get(n, [])
        if len(inc) != 2 or inc[0] == inc[1]:
            continue
        e1, e2 = inc
        if g.edges[e1].u == g.edges[e1].v or g.edges[e2].u == g.edges[e2].v:
            continue
        p1 = g.path_to(e1, n)
        p2 = g.path_to(e2, n)[::-1]
        a = g.edges[e1].u if g.edges[e1].v == n else g.edges[e1].v
        b = g.edges[e2].u if g.edges[e2].v == n else g.edges[e2].v
        bridged = g.edges[e1].bridged or g.edges[e2].bridged
        g.remove_edge(e1)
        g.remove_edge(e2)
        g.add_edge(a, b, np.concatenate([p1, p2[1:]]), bridged=bridged)


def prune_spurs(g: EditableGraph, *, min_spur_m: float) -> int:
    """Remove dead-end edges shorter than ``min_spur_m`` that hang off a junction; repeat.

    The shortest spur at a junction goes first and a spur is removed only while its junction
    still has degree >= 3, so a road ending in a small fork keeps one branch (no truncation).

    Returns:
        Number of edges removed.
    """
    removed = 0
    while True:
        spurs = sorted((g.length_m(eid), eid) for eid in list(g.edges) if is_spur(g, eid))
        changed = []
        for length, eid in spurs:
            if length >= min_spur_m:
                break
            if eid in g.edges and is_spur(g, eid):
                e = g.remove_edge(eid)
                changed.extend([e.u, e.v])
                removed += 1
        if not changed:
            return removed
        merge_degree_two(g, changed)


def is_spur(g: EditableGraph, eid: int) -> bool:
    """A dead-end edge hanging off a junction (neither end protected: raster border, nodata)."""
    e = g.edges[eid]
    du, dv = g.degree(e.u), g.degree(e.v)
    if e.u in g.protected or e.v in g.protected:
        return False
    return (du == 1 and dv >= 3) or (dv == 1 and du >= 3)


def drop_small_components(g: EditableGraph, *, min_component_m: float) -> int:
    """Remove connected components with less than ``min_component_m`` of road, or smaller across.

    "Across" is the diagonal of the component's bounding box: a blob predicted on a roof thins
    into a small tangle whose total length can exceed the limit while it spans only a few
    metres. Components touching a protected node (raster border, nodata) are kept.

    Returns:
        Number of edges removed.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not g.edges:
        return 0
    eids = list(g.edges)
    uv = np.array([(g.edges[e].u, g.edges[e].v) for e in eids], dtype=np.int64)
    n = len(g.node_rc)
    adj = coo_matrix((np.ones(len(uv)), (uv[:, 0], uv[:, 1])), shape=(n, n))
    _, labels = connected_components(adj.tocsr(), directed=False)
    comp = labels[uv[:, 0]]
    size = labels.max() + 1
    comp_len = np.bincount(comp, weights=[g.length_m(e) for e in eids], minlength=size)
    comp_span = _component_spans_m(g, eids, comp, size)
    small = (comp_len < min_component_m) | (comp_span < min_component_m)
    small[labels[list(g.protected)]] = False  # a piece cut by the border may be longer outside
    drop = [e for e, c in zip(eids, comp, strict=True) if small[c]]
    for e in drop:
        g.remove_edge(e)
    return len(drop)


def _component_spans_m(g: EditableGraph, eids: list[int], comp: np.ndarray, size: int) -> np.ndarray:
    """Bounding-box diagonal in metres of each component's edge paths."""
    paths = [g.edges[e].path for e in eids]
    points = np.concatenate(paths)
    starts = np.r_[0, np.cumsum([len(p) for p in paths])[:-1]]
    lo = np.full((size, 2), np.inf)
    hi = np.full((size, 2), -np.inf)
    np.minimum.at(lo, comp, np.minimum.reduceat(points, starts, axis=0))  # per edge, then per component
    np.maximum.at(hi, comp, np.maximum.reduceat(points, starts, axis=0))
    extent = (hi - lo) * np.asarray(g.scale_rc)
    return np.hypot(extent[:, 0], extent[:, 1])


def tangent_direction(path_to_end: np.ndarray, scale_rc: tuple[float, float], *, tangent_m: float) -> np.ndarray | None:
    """Outward unit direction (metric row, col) at the last point of a path.

    Uses the chord from the point ``tangent_m`` back along the path (or the path's start if
    it is shorter) to the end; None for a degenerate path.
    """
    pts = path_to_end * np.asarray(scale_rc)
    step = np.hypot(*np.diff(pts, axis=0).T)
    back = np.cumsum(step[::-1])
    k = int(np.searchsorted(back, tangent_m))
    start = pts[max(len(pts) - 2 - k, 0)]
    chord = pts[-1] - start
    norm = float(np.hypot(*chord))
    return chord / norm if norm > 0 else None


def remove_small_loops(g: EditableGraph, mask: np.ndarray, *, max_hole_area_px: float) -> int:
    """Open loops that only go round a small hole in the road mask (a car, a shadow).

    Thinning turns a hole into a ring; filling holes in the mask first would need a
    labelling pass over the whole background (1-2 s at 10 000², about as long as the thinning
    itself), so the rings are removed on the graph instead. Candidate loops are self-loops,
    pairs of parallel edges and triangles. A loop is a hole when the mask pixels it encloses
    hold at most ``max_hole_area_px`` background pixels; its longest edge is then removed
    (the road keeps the shorter way round, off the hole's centre by at most half its width).

    Returns:
        Number of edges removed.
    """
    if max_hole_area_px <= 0 or not g.edges:
        return 0
    removed = 0
    for cycle in _candidate_cycles(g):
        if any(e not in g.edges for e in cycle):
            continue
        ring = _cycle_ring(g, cycle)
        if ring is None or _enclosed_background_px(ring, mask, limit_px=max_hole_area_px) > max_hole_area_px:
            continue
        longest = max(cycle, key=g.length_m)
        e = g.remove_edge(longest)
        merge_degree_two(g, [e.u, e.v])
        removed += 1
    return removed


def _candidate_cycles(g: EditableGraph) -> list[tuple[int, ...]]:
    """Self-loops, parallel edge pairs and triangles, as tuples of edge ids."""
    by_pair: dict[tuple[int, int], list[int]] = {}
    cycles: list[tuple[int, ...]] = []
    for eid, e in g.edges.items():
        if e.u == e.v:
            cycles.append((eid,))
        else:
            by_pair.setdefault((min(e.u, e.v), max(e.u, e.v)), []).append(eid)
    for eids in by_pair.values():
        cycles.extend((a, b) for i, a in enumerate(eids) for b in eids[i + 1 :])
    neighbours: dict[int, set[int]] = {}
    for u, v in by_pair:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    for u, v in by_pair:
        for w in neighbours[u] & neighbours[v]:
            if w > v:  # each triangle once (u < v < w)
                cycles.append((by_pair[(u, v)][0], by_pair[(min(v, w), max(v, w))][0], by_pair[(u, w)][0]))
    return cycles


def _cycle_ring(g: EditableGraph, cycle: tuple[int, ...]) -> np.ndarray | None:
    """The (K, 2) (row, col) closed ring walked along the cycle's edges, or None."""
    first = g.edges[cycle[0]]
    parts, node = [first.path], first.v
    for eid in cycle[1:]:
        e = g.edges[eid]
        if node not in (e.u, e.v):
            return None
        parts.append(e.path if e.u == node else e.path[::-1])
        node = e.v if e.u == node else e.u
    return np.concatenate(parts)


def _enclosed_background_px(ring: np.ndarray, mask: np.ndarray, *, limit_px: float) -> float:
    """Background pixels of ``mask`` strictly inside ``ring`` (inf when the ring is too big to be a hole)."""
    from skimage.draw import polygon

    rows, cols = ring[:, 0], ring[:, 1]
    area_px = 0.5 * abs(float(np.dot(rows, np.roll(cols, 1)) - np.dot(cols, np.roll(rows, 1))))
    if area_px > 10 * limit_px + 200:
        return float("inf")
    if area_px <= limit_px:
        return area_px  # cannot enclose more background than its own area
    # every 5th vertex (moves the outline ~1 px, far less than the road between ring and
    # hole): skimage's fill costs bounding box x vertices
    pts = ring[::5] if len(ring) > 40 else ring
    rr, cc = polygon(pts[:, 0], pts[:, 1], shape=mask.shape)
    return float(np.count_nonzero(~mask[rr, cc]))
