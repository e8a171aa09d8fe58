"""Block graphs -> one graph: which block keeps which part of an edge, and the join at the seams.

Each block of the tiled vectoriser (:mod:`geodefect.graph.tiled`) thins its core plus a halo,
so an edge near the core's boundary is seen by two (or four) blocks. The rule that gives every
piece of road to exactly one block works on the *segments* of the pixel paths (two consecutive
path points, pixel centres or node centroids, in global (row, col)):

* a point belongs to the block whose core holds the pixel it rounds to
  (``floor(row + 0.5)``, ``floor(col + 0.5)``);
* a segment belongs to the block of its lexicographically smaller end point (row, then col),
  so both blocks that see it decide the same way whatever the direction of their paths;
* a block keeps the maximal runs of consecutive segments it owns: each run is a *piece* whose
  ends are either the edge's own nodes or a path point where ownership changes (a seam point,
  a pixel centre just across the core boundary, present in the neighbouring block's piece too).

Joining (:func:`join_pieces`): piece ends that coincide (within :data:`SNAP_PX`, float noise
of centroids computed in block coordinates) are one node; the result is the
:class:`~geodefect.graph.simplify.EditableGraph` of the whole raster, each piece an edge. A seam
point is then a node of degree 2 joining two pieces of one road, and ``merge_degree_two`` (the
whole path's first clean-up step) restores the edge point for point: no vertex is added or moved
at a seam.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from geodefect.graph.build import PixelGraph
from geodefect.graph.simplify import EditableGraph

#: piece ends closer than this (pixels) are the same node
SNAP_PX = 1e-6


def owner_of_points(rc: np.ndarray, *, block_px: int, grid_rc: tuple[int, int]) -> np.ndarray:
    """(N,) int block index (``i * n_block_cols + j``) of each (row, col) point."""
    pix = np.floor(rc + 0.5).astype(np.int64) // int(block_px)
    i = np.clip(pix[:, 0], 0, grid_rc[0] - 1)
    j = np.clip(pix[:, 1], 0, grid_rc[1] - 1)
    return i * grid_rc[1] + j


def owned_pieces(pg: PixelGraph, origin_rc: tuple[int, int], *, block: int, block_px: int,
                 grid_rc: tuple[int, int]) -> list[np.ndarray]:
    """The pieces of ``pg``'s edges that ``block`` owns, in global (row, col).

    Args:
        pg: pixel graph of the block's window (core + halo), in window coordinates.
        origin_rc: global (row, col) of the window's top-left pixel.
        block: this block's index (``i * n_block_cols + j``).
        block_px: side of a core block.
        grid_rc: number of blocks along rows and columns.

    Returns:
        One (K, 2) float64 array (its own copy, K >= 2) per piece.
    """
    if pg.n_edges == 0:
        return []
    coords = pg.coords + np.asarray(origin_rc, dtype=np.float64)
    a, b = coords[:-1], coords[1:]
    a_first = (a[:, 0] < b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] <= b[:, 1]))
    mine = owner_of_points(np.where(a_first[:, None], a, b), block_px=block_px, grid_rc=grid_rc) == block
    mine[pg.offsets[1:-1] - 1] = False  # the pseudo-segments from one edge's end to the next edge's start
    n_seg = np.diff(pg.offsets) - 1
    owned = np.add.reduceat(mine.astype(np.int64), pg.offsets[:-1]) if mine.size else np.zeros(pg.n_edges, np.int64)
    pieces = []
    for i in np.flatnonzero(owned > 0).tolist():
        s, e = int(pg.offsets[i]), int(pg.offsets[i + 1])
        if owned[i] == n_seg[i]:
            pieces.append(coords[s:e].copy())
            continue
        d = np.diff(np.r_[0, mine[s : e - 1].astype(np.int8), 0])
        for r0, r1 in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            pieces.append(coords[s + int(r0) : s + int(r1) + 1].copy())
    return pieces


def join_pieces(pieces: list[np.ndarray], *, scale_rc: tuple[float, float]) -> EditableGraph:
    """One graph of all blocks' pieces; coinciding piece ends become one node.

    Args:
        pieces: the (K, 2) global (row, col) paths of every block (:func:`owned_pieces`); they
            become the edges' paths as they are (no copy, no concatenation).
        scale_rc: pixel size (row_m, col_m).

    Returns:
        :class:`~geodefect.graph.simplify.EditableGraph` (edge ``k`` is piece ``k``).
    """
    if not pieces:
        return EditableGraph(node_rc=np.zeros((0, 2)), scale_rc=scale_rc)
    n_pieces = len(pieces)
    ends = np.array([p[0] for p in pieces] + [p[-1] for p in pieces], dtype=np.float64)
    pairs = cKDTree(ends).query_pairs(SNAP_PX, output_type="ndarray")
    adj = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(ends), len(ends)))
    _, label = csgraph.connected_components(adj.tocsr(), directed=False)
    _, first = np.unique(label, return_index=True)
    g = EditableGraph(node_rc=ends[first].copy(), scale_rc=scale_rc)
    for k, path in enumerate(pieces):
        g.add_edge(int(label[k]), int(label[n_pieces + k]), path)
    return g
