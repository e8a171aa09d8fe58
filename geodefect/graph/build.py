"""Skeleton -> pixel graph: nodes at junctions and ends, edges as ordered pixel paths.

Built with numpy and scipy only, never one networkx node per pixel (13 s and 2.9 GB on a
10 000² mask, see ENVIRONMENT.md). The steps, all vectorised over skeleton pixels:

1. Skeleton pixels as sorted flat indices; 8-neighbour pairs by ``searchsorted``
   (no full-size label image); degree = number of skeleton neighbours.
2. Node pixels: degree != 2 (ends 1, junctions >= 3, isolated 0). Adjacent junction pixels
   are clustered into one node (connected components), placed at the cluster's centroid.
3. Chain pixels (degree 2) form simple paths between nodes. They are put in path order,
   chain after chain, by one depth-first traversal from a virtual source joined to the end
   pixels of every chain. A closed ring with no node on it gets one of its pixels turned
   into a node ("loop").
4. Each chain's first and last pixels touch one node each -> edge (u, v, path). Nodes that
   touch directly (an end pixel next to a junction) give a two-point edge.

The result is a :class:`PixelGraph`: node coordinates and edges in CSR form (one coordinate
array + offsets), in pixel index coordinates (row, col) where (0, 0) is the centre of the
top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

#: node kinds (values of ``PixelGraph.node_kind``)
END, JUNCTION, LOOP, ISOLATED = 0, 1, 2, 3
NODE_KIND_NAMES = {END: "end", JUNCTION: "junction", LOOP: "loop", ISOLATED: "isolated"}

_FORWARD_OFFSETS = ((0, 1), (1, -1), (1, 0), (1, 1))
#: default: junction clusters spanning this many pixels or more are cut into cells of this size
MAX_CLUSTER_SPAN_PX = 64


@dataclass
class PixelGraph:
    """A road graph in pixel coordinates.

    Attributes:
        node_rc: (N, 2) float64 (row, col) of each node.
        node_kind: (N,) int8, one of END, JUNCTION, LOOP, ISOLATED.
        edge_uv: (E, 2) int64 node ids of each edge's ends.
        coords: (M, 2) float64 (row, col) of all edge paths, concatenated; each path starts at
            its u node and ends at its v node.
        offsets: (E + 1,) int64; edge i's path is ``coords[offsets[i]:offsets[i + 1]]``.
        shape: (H, W) of the raster.
    """

    node_rc: np.ndarray
    node_kind: np.ndarray
    edge_uv: np.ndarray
    coords: np.ndarray
    offsets: np.ndarray
    shape: tuple[int, int]

    @property
    def n_nodes(self) -> int:
        return len(self.node_rc)

    @property
    def n_edges(self) -> int:
        return len(self.edge_uv)

    def edge_path(self, i: int) -> np.ndarray:
        """(K, 2) float64 (row, col) path of edge ``i`` (a view)."""
        return self.coords[self.offsets[i] : self.offsets[i + 1]]


def empty_pixel_graph(shape: tuple[int, int]) -> PixelGraph:
    return PixelGraph(
        node_rc=np.zeros((0, 2)),
        node_kind=np.zeros(0, np.int8),
        edge_uv=np.zeros((0, 2), np.int64),
        coords=np.zeros((0, 2)),
        offsets=np.zeros(1, np.int64),
        shape=tuple(shape),
    )


def skeleton_to_graph(skel: np.ndarray, *, max_cluster_span_px: int = MAX_CLUSTER_SPAN_PX) -> PixelGraph:
    """Graph of a one-pixel-wide skeleton.

    Args:
        skel: (H, W) bool skeleton (8-connected, as from ``skimage.morphology.skeletonize``).
        max_cluster_span_px: junction clusters at least this wide are cut into cells of this
            size (see ``_split_large_clusters``).

    Returns:
        The :class:`PixelGraph`. Isolated pixels become ISOLATED nodes without edges.
    """
    height, width = skel.shape
    flat = np.flatnonzero(skel)
    if flat.size == 0:
        return empty_pixel_graph(skel.shape)
    rows, cols = np.divmod(flat, width)
    pair_a, pair_b = _neighbour_pairs(skel, flat, rows, cols)
    n = flat.size
    degree = np.bincount(pair_a, minlength=n) + np.bincount(pair_b, minlength=n)
    is_node = degree != 2
    ordered, starts, ring_pixels = _trace_chains(is_node, pair_a, pair_b)
    if ring_pixels.size:
        is_node[_ring_breakers(ring_pixels, pair_a, pair_b, n)] = True
        ordered, starts, _ = _trace_chains(is_node, pair_a, pair_b)
    node_of_pixel, node_rc, node_kind = _cluster_nodes(
        rows, cols, degree, is_node, pair_a, pair_b, max_span_px=max_cluster_span_px
    )
    chain_edges = _chain_edges(rows, cols, ordered, starts, is_node, pair_a, pair_b, node_of_pixel, node_rc)
    direct_uv = _direct_edges(is_node, node_of_pixel, pair_a, pair_b)
    edge_uv, coords, offsets = _append_direct_edges(*chain_edges, direct_uv, node_rc)
    edge_uv, coords, offsets = _drop_corner_loops(edge_uv, coords, offsets)
    return PixelGraph(node_rc, node_kind, edge_uv, coords, offsets, (height, width))


def _drop_corner_loops(edge_uv, coords, offsets, *, max_chain_px: int = 3):
    """Drop self-loops of at most ``max_chain_px`` chain pixels.

    A staircase corner in an 8-connected skeleton has a pixel whose two neighbours both
    belong to one junction cluster; it would become a tiny loop on that node. Real loops
    (a roundabout) are far longer.
    """
    n_points = np.diff(offsets)
    drop = (edge_uv[:, 0] == edge_uv[:, 1]) & (n_points - 2 <= max_chain_px)
    if not drop.any():
        return edge_uv, coords, offsets
    keep = ~drop
    point_keep = np.repeat(keep, n_points)
    return edge_uv[keep], coords[point_keep], np.r_[0, np.cumsum(n_points[keep])].astype(np.int64)


def _neighbour_pairs(skel, flat, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Unordered 8-neighbour pairs (i, j) of skeleton pixels, as indices into ``flat``.

    The neighbour test is a lookup in ``skel`` itself; only hits are located in ``flat``.
    """
    height, width = skel.shape
    skel_flat = skel.ravel()
    out_a, out_b = [], []
    for d_row, d_col in _FORWARD_OFFSETS:
        ok = (rows + d_row < height) & (cols + d_col >= 0) & (cols + d_col < width)
        src = np.flatnonzero(ok)
        target = flat[src] + d_row * width + d_col
        hit = skel_flat[target]
        src, target = src[hit], target[hit]
        out_a.append(src)
        out_b.append(src + 1 if d_row == 0 else np.searchsorted(flat, target))
    return np.concatenate(out_a), np.concatenate(out_b)


def _chain_pairs(is_node, pair_a, pair_b) -> tuple[np.ndarray, np.ndarray]:
    keep = ~is_node[pair_a] & ~is_node[pair_b]
    return pair_a[keep], pair_b[keep]


def _trace_chains(is_node, pair_a, pair_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chain pixels in path order, chain by chain, via one depth-first traversal.

    Every chain end pixel gets a virtual node, and the virtual nodes are linked in a path;
    depth-first preorder from the first one walks each chain from one end to the other
    before starting the next, and a chain starts wherever the predecessor is virtual. (One
    virtual source joined to all ends would do the same, but scipy's traversal rescans a
    node's neighbour list each time it returns to it: quadratic in the number of chains.)

    Returns:
        (ordered chain pixels, start index of each chain in ``ordered``, pixels of closed
        rings that no end reaches).
    """
    n = is_node.size
    ca, cb = _chain_pairs(is_node, pair_a, pair_b)
    chain_deg = np.bincount(ca, minlength=n) + np.bincount(cb, minlength=n)
    chain_idx = np.flatnonzero(~is_node)
    ends = chain_idx[chain_deg[chain_idx] < 2]
    if ends.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), chain_idx
    virtual = n + np.arange(ends.size)
    a = np.r_[ca, virtual, virtual[:-1]]
    b = np.r_[cb, ends, virtual[1:]]
    size = n + ends.size
    adj = sparse.coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(size, size)).tocsr()
    order, pred = csgraph.depth_first_order(adj, n, directed=False, return_predecessors=True)
    ordered = order[order < n]
    starts = np.flatnonzero(pred[ordered] >= n)
    visited = np.zeros(size, bool)
    visited[order] = True
    return ordered, starts, chain_idx[~visited[chain_idx]]


def _ring_breakers(ring_pixels, pair_a, pair_b, n) -> np.ndarray:
    """One pixel of every closed ring of degree-2 pixels (it becomes a LOOP node)."""
    in_ring = np.zeros(n, bool)
    in_ring[ring_pixels] = True
    keep = in_ring[pair_a] & in_ring[pair_b]
    adj = sparse.coo_matrix((np.ones(int(keep.sum()), np.int8), (pair_a[keep], pair_b[keep])), shape=(n, n))
    _, labels = csgraph.connected_components(adj.tocsr(), directed=False)
    _, first = np.unique(labels[ring_pixels], return_index=True)
    return ring_pixels[first]


def _cluster_nodes(rows, cols, degree, is_node, pair_a, pair_b, *, max_span_px: int):
    """Node id of every node pixel (-1 for chain pixels), node (row, col) centroids and kinds."""
    n = degree.size
    junction = is_node & (degree >= 3)
    keep = junction[pair_a] & junction[pair_b]
    adj = sparse.coo_matrix((np.ones(int(keep.sum()), np.int8), (pair_a[keep], pair_b[keep])), shape=(n, n))
    _, labels = csgraph.connected_components(adj.tocsr(), directed=False)
    labels = _split_large_clusters(labels.astype(np.int64), np.flatnonzero(junction), rows, cols, cell_px=max_span_px)
    node_pixels = np.flatnonzero(is_node)
    # junction pixels share their cluster's label; every other node pixel is its own cluster
    _, node_ids = np.unique(labels[node_pixels], return_inverse=True)
    node_of_pixel = np.full(n, -1, np.int64)
    node_of_pixel[node_pixels] = node_ids
    n_nodes = int(node_ids.max()) + 1
    count = np.bincount(node_ids, minlength=n_nodes)
    node_rc = np.stack(
        [
            np.bincount(node_ids, weights=rows[node_pixels], minlength=n_nodes) / count,
            np.bincount(node_ids, weights=cols[node_pixels], minlength=n_nodes) / count,
        ],
        axis=1,
    )
    kind_of_pixel = np.select(
        [degree[node_pixels] >= 3, degree[node_pixels] == 1, degree[node_pixels] == 0],
        [JUNCTION, END, ISOLATED],
        default=LOOP,
    ).astype(np.int8)
    node_kind = np.zeros(n_nodes, np.int8)
    node_kind[node_ids] = kind_of_pixel
    return node_of_pixel, node_rc, node_kind


def _split_large_clusters(labels, junction_idx, rows, cols, *, cell_px: int):
    """Cut junction clusters at least ``cell_px`` wide into ``cell_px`` grid cells.

    A clean skeleton's junction clusters span 1-3 pixels, a ragged prediction's up to a road
    width or so. A noisy one can thin into a mesh whose junction pixels touch across the whole
    raster; one node at such a cluster's centroid would pull every edge that touches it into
    long straight spokes. Cells keep each node within ``cell_px`` of its pixels; neighbouring
    cells are joined by direct edges. (Cells much smaller than a road width turn ordinary
    ragged junctions into meshes of tiny triangles: keep ``cell_px`` about a road width or more.)
    """
    if junction_idx.size == 0:
        return labels
    lab = labels[junction_idx]
    r, c = rows[junction_idx], cols[junction_idx]
    size = labels.max() + 1
    r_min, r_max = np.full(size, np.iinfo(np.int64).max), np.full(size, -1)
    c_min, c_max = r_min.copy(), r_max.copy()
    np.minimum.at(r_min, lab, r)
    np.maximum.at(r_max, lab, r)
    np.minimum.at(c_min, lab, c)
    np.maximum.at(c_max, lab, c)
    wide = (r_max - r_min >= cell_px) | (c_max - c_min >= cell_px)
    big = wide[lab]
    if not big.any():
        return labels
    n_cols = int(c.max()) // cell_px + 1
    n_cells = (int(r.max()) // cell_px + 1) * n_cols
    key = lab[big] * n_cells + (r[big] // cell_px) * n_cols + c[big] // cell_px
    _, cell = np.unique(key, return_inverse=True)
    labels = labels.copy()
    labels[junction_idx[big]] = size + cell.ravel()
    return labels


def _chain_edges(rows, cols, ordered, starts, is_node, pair_a, pair_b, node_of_pixel, node_rc):
    """Edges along chains: (E, 2) node ids, CSR coordinates with the node points at both ends."""
    if ordered.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros(1, np.int64)
    lengths = np.diff(np.r_[starts, ordered.size])
    first, last = ordered[starts], ordered[starts + lengths - 1]
    u, v = _chain_end_nodes(first, last, is_node, pair_a, pair_b, node_of_pixel)
    offsets = np.r_[0, np.cumsum(lengths + 2)].astype(np.int64)
    coords = np.empty((offsets[-1], 2))
    coords[offsets[:-1]] = node_rc[u]
    coords[offsets[1:] - 1] = node_rc[v]
    chain_no = np.repeat(np.arange(lengths.size), lengths)
    pos = offsets[chain_no] + 1 + (np.arange(ordered.size) - starts[chain_no])
    coords[pos, 0] = rows[ordered]
    coords[pos, 1] = cols[ordered]
    return np.stack([u, v], axis=1), coords, offsets


def _chain_end_nodes(first, last, is_node, pair_a, pair_b, node_of_pixel):
    """The node touching each chain's first pixel (u) and last pixel (v)."""
    src = np.r_[pair_a, pair_b]
    dst = np.r_[pair_b, pair_a]
    keep = ~is_node[src] & is_node[dst]
    src, dst = src[keep], dst[keep]
    order = np.argsort(src, kind="stable")
    src, node = src[order], node_of_pixel[dst[order]]
    at_first = np.searchsorted(src, first)
    at_last = np.searchsorted(src, last)
    single = first == last  # one-pixel chain: its two node neighbours are u and v
    at_last = np.where(single, np.minimum(at_last + 1, src.size - 1), at_last)
    return node[at_first], node[at_last]


def _direct_edges(is_node, node_of_pixel, pair_a, pair_b) -> np.ndarray:
    """(K, 2) node pairs whose pixels touch directly (e.g. an end pixel next to a junction)."""
    keep = is_node[pair_a] & is_node[pair_b]
    u, v = node_of_pixel[pair_a[keep]], node_of_pixel[pair_b[keep]]
    diff = u != v
    if not diff.any():
        return np.zeros((0, 2), np.int64)
    uv = np.sort(np.stack([u[diff], v[diff]], axis=1), axis=1)
    return np.unique(uv, axis=0)


def _append_direct_edges(edge_uv, coords, offsets, direct_uv, node_rc):
    if direct_uv.size == 0:
        return edge_uv, coords, offsets
    extra = node_rc[direct_uv].reshape(-1, 2)
    extra_offsets = offsets[-1] + 2 * np.arange(1, len(direct_uv) + 1)
    return (
        np.concatenate([edge_uv, direct_uv]),
        np.concatenate([coords, extra]),
        np.concatenate([offsets, extra_offsets]),
    )
