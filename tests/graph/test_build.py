"""skeleton_to_graph on literal and random skeletons: ordering, clusters, rings, no spokes."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import skeletonize

from geodefect.graph.build import JUNCTION, LOOP, skeleton_to_graph


def steps(path: np.ndarray) -> np.ndarray:
    return np.hypot(*np.diff(path, axis=0).T)


def test_x_of_one_pixel_lines_is_one_junction_with_four_ordered_edges():
    skel = np.zeros((9, 9), bool)
    skel[4, :] = True
    skel[:, 4] = True
    g = skeleton_to_graph(skel)
    assert (g.node_kind == JUNCTION).sum() == 1
    j = int(np.flatnonzero(g.node_kind == JUNCTION)[0])
    np.testing.assert_allclose(g.node_rc[j], [4, 4])
    assert g.n_edges == 4 and all(j in uv for uv in g.edge_uv.tolist())
    for i in range(g.n_edges):
        assert steps(g.edge_path(i)).max() <= 2.0  # ordered: no jumps along the path


def test_closed_ring_without_nodes_becomes_one_loop_edge():
    skel = np.zeros((12, 12), bool)
    skel[2, 3:9] = skel[9, 3:9] = True
    skel[3:9, 2] = skel[3:9, 9] = True
    g = skeleton_to_graph(skel)
    assert g.n_nodes == 1 and g.node_kind[0] == LOOP
    assert g.n_edges == 1 and g.edge_uv[0, 0] == g.edge_uv[0, 1]
    assert len(g.edge_path(0)) == skel.sum() + 1  # every ring pixel once, closed at the node


@pytest.mark.parametrize("seed", [0, 1])
def test_random_skeleton_every_pixel_once_and_paths_contiguous(seed):
    rng = np.random.default_rng(seed)
    blobs = rng.random((120, 120)) < 0.55  # a noisy mask thins into a dense mesh
    skel = skeletonize(blobs)
    g = skeleton_to_graph(skel, max_cluster_span_px=6)
    inner = np.concatenate([g.edge_path(i)[1:-1] for i in range(g.n_edges)])
    # chain pixels appear once; with the node pixels they are exactly the skeleton
    assert len(np.unique(inner, axis=0)) == len(inner)
    assert skel[inner[:, 0].astype(int), inner[:, 1].astype(int)].all()
    for i in range(g.n_edges):
        path = g.edge_path(i)
        if len(path) > 3:
            assert steps(path[1:-1]).max() <= np.sqrt(2) + 1e-9
        # node points sit within a 6-px junction cell of the pixels they join (a direct edge
        # joins two neighbouring cells): no long spokes
        assert steps(path).max() <= (2 * 5 + 1) * np.sqrt(2) + 1e-9


def test_empty_skeleton():
    g = skeleton_to_graph(np.zeros((5, 5), bool))
    assert g.n_nodes == 0 and g.n_edges == 0 and g.offsets.tolist() == [0]
