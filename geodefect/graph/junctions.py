"""Junction clean-up: merge clusters of junctions joined by very short edges into one node.

Thinning a crossing of two wide roads rarely gives one pixel of degree 4: the skeleton's two
diagonals meet the crossing's centre at two points a few metres apart, so an X becomes two
T-junctions joined by a stub (and a wide, oblique or ragged junction a small cluster of
them). An analyst merges them by hand; here junctions linked by edges shorter than
``junction_merge_m`` are grouped (``networkx.connected_components`` of those edges) and each
group is contracted into one node at its centroid; the edges leaving the group are redrawn
from that node.
"""

from __future__ import annotations

import numpy as np

from geodefect.graph.simplify import EditableGraph, merge_degree_two


def merge_close_junctions(g: EditableGraph, *, junction_merge_m: float) -> int:
    """Contract groups of junctions (degree >= 3) linked by edges shorter than ``junction_merge_m``.

    A group whose nodes lie more than ``junction_merge_m`` from their centroid (a chain of
    short edges through a noisy mesh) is left as it is, as is a group holding a protected
    node (a road end at the border or nodata). Edges inside a group that are shorter than
    ``junction_merge_m`` disappear; longer ones become loops on the merged node.

    Args:
        g: the graph, edited in place.
        junction_merge_m: merge distance in metres (0 = off).

    Returns:
        Number of junctions removed (group sizes minus one, summed).
    """
    import networkx as nx

    if junction_merge_m <= 0:
        return 0
    short = nx.Graph()
    for e in g.edges.values():
        if e.u != e.v and e.length_m < junction_merge_m and g.degree(e.u) >= 3 and g.degree(e.v) >= 3:
            short.add_edge(e.u, e.v)
    removed = 0
    for group in nx.connected_components(short):
        if group & g.protected or not _compact(g, group, junction_merge_m):
            continue
        _contract(g, sorted(group), junction_merge_m)
        removed += len(group) - 1
    return removed


def _compact(g: EditableGraph, group: set[int], radius_m: float) -> bool:
    pts = g.node_rc[sorted(group)] * np.asarray(g.scale_rc)
    return bool(np.hypot(*(pts - pts.mean(axis=0)).T).max() <= radius_m)


def _contract(g: EditableGraph, group: list[int], junction_merge_m: float) -> int:
    """Replace ``group``'s nodes by one new node at their centroid; return its id."""
    node = len(g.node_rc)
    centre = g.node_rc[group].mean(axis=0)
    g.node_rc = np.vstack([g.node_rc, centre[None, :]])
    members = set(group)
    eids = sorted({eid for n in group for eid in g.incident.get(n, ())})
    for eid in eids:
        e = g.remove_edge(eid)
        inside = (e.u in members) + (e.v in members)
        if inside == 2 and e.length_m < junction_merge_m:
            continue  # the stub between two merged junctions
        path = e.path.copy()
        if e.u in members:
            path[0] = centre
        if e.v in members:
            path[-1] = centre
        g.add_edge(node if e.u in members else e.u, node if e.v in members else e.v, path, bridged=e.bridged)
    merge_degree_two(g, [node])
    return node
