"""Clean-up steps an analyst would otherwise do by hand (issue 14): literal masks that show each."""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString

from geodefect.graph.junctions import merge_close_junctions
from geodefect.graph.simplify import EditableGraph
from geodefect.graph.skeleton import fill_small_holes
from geodefect.graph.vectorize import (
    VectorizeParams,
    vectorize_road_mask,
    vectorize_road_probability,
)
from tests.graph.test_vectorize import CRS, TRANSFORM, degrees, road_mask

EXACT = VectorizeParams(simplify_tolerance_m=0.0)


def offset_t_pair() -> EditableGraph:
    """An X drawn as two T-junctions 3 m apart: a road A-B with side roads C (at J1) and D (at J2)."""
    g = EditableGraph(node_rc=np.array([[50.0, 0], [50, 100], [0, 48], [100, 51], [50, 48], [50, 51]]), scale_rc=(1.0, 1.0))
    a, b, c, d, j1, j2 = range(6)
    for u, v in ((a, j1), (j1, j2), (j2, b), (c, j1), (j2, d)):
        g.add_edge(u, v, np.stack([g.node_rc[u], g.node_rc[v]]))
    return g


def test_two_offset_t_junctions_become_one_node_of_degree_four():
    g = offset_t_pair()
    assert merge_close_junctions(g, junction_merge_m=6.0) == 1
    junctions = [n for n, inc in g.incident.items() if len(inc) >= 3]
    assert len(junctions) == 1 and g.degree(junctions[0]) == 4
    assert np.allclose(g.node_rc[junctions[0]], [50, 49.5])  # at the centroid of the pair
    assert sorted(len(inc) for inc in g.incident.values() if inc) == [1, 1, 1, 1, 4]
    # every edge still runs from its far end to the merged node
    for e in g.edges.values():
        assert np.allclose(e.path[0], g.node_rc[e.u]) and np.allclose(e.path[-1], g.node_rc[e.v])


def test_junctions_farther_apart_than_the_merge_distance_stay_apart():
    g = offset_t_pair()
    assert merge_close_junctions(g, junction_merge_m=2.0) == 0
    assert sorted(len(inc) for inc in g.incident.values()) == [1, 1, 1, 1, 3, 3]


def test_oblique_crossing_of_wide_roads_vectorises_to_one_degree_four_node():
    lines = [LineString([(0, 100), (200, 100)]), LineString([(60, 0), (140, 200)])]  # 68° crossing
    mask = road_mask(lines, (200, 200), width_px=14)
    merged = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(merged) == [1, 1, 1, 1, 4]
    two_t = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=VectorizeParams(simplify_tolerance_m=0, junction_merge_m=0))
    assert degrees(two_t) == [1, 1, 1, 1, 3, 3]


def test_fill_small_holes_fills_a_compact_hole_only():
    mask = np.ones((20, 40), bool)
    mask[8:11, 5:8] = False  # 9 px, compact: a car
    mask[9, 15:35] = False  # 20 px, a thin median 20 x 1: not a hole to fill
    mask[0:3, 37:40] = False  # 9 px open to the border: not a hole
    out = fill_small_holes(mask, max_hole_area_px=30)
    assert out[8:11, 5:8].all()
    assert not out[9, 15:35].any() and not out[0:3, 37:40].any()
    assert not fill_small_holes(mask, max_hole_area_px=8)[8:11, 5:8].any()  # over the area limit


def test_a_ring_round_a_small_hole_becomes_one_line_through_its_centre():
    mask = road_mask([LineString([(0, 50), (200, 50)])], (100, 200), width_px=15)
    mask[45:48, 60:64] = False  # a car, 12 m², off the road's centre line (row 50)
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=VectorizeParams(simplify_tolerance_m=0, fill_hole_area_m2=12))
    assert net.n_edges == 1
    (_, _, d), = net.graph.edges(data=True)
    rows = TRANSFORM.f - np.asarray(d["geometry"].coords)[:, 1]
    assert np.abs(rows - 50.5).max() <= 1.5  # opening the ring on the graph keeps one side of it, off the centre
    assert net.stats["hole_loops_opened"] == 0


def test_road_cut_by_the_aoi_ends_in_a_boundary_node_on_the_aoi_edge():
    prob = road_mask([LineString([(0, 40), (200, 110)])], (150, 200), width_px=9).astype(np.float32)
    cols = np.arange(200)[None, :].repeat(150, axis=0)
    prob[cols >= 150] = np.nan  # the AOI ends at column 150, cutting the road obliquely
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=EXACT)
    nodes = [(d["kind"], d["x"] - TRANSFORM.c, TRANSFORM.f - d["y"]) for _, d in net.graph.nodes(data=True)]
    assert sorted(k for k, _, _ in nodes) == ["boundary", "boundary"]  # the raster's left border and the AOI's edge
    _, x, y = max(nodes, key=lambda n: n[1])
    assert 148 <= x <= 150.5
    assert abs(y - (40.5 + 70 * x / 200)) <= 1.5  # on the road's centre line, not bent into the cut's corner
    prob[np.isnan(prob)] = 0  # the same road ending in the data: a dead end
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=EXACT)
    assert sorted(d["kind"] for _, d in net.graph.nodes(data=True)) == ["boundary", "end"]


def test_branch_into_a_parking_lot_is_pruned_against_the_road_width():
    from skimage.draw import disk

    mask = road_mask([LineString([(0, 40), (200, 40)])], (120, 200), width_px=7)
    mask[43:49, 97:103] = True  # a 6 m driveway ...
    mask[disk((59, 100), 12, shape=mask.shape)] = True  # ... into a lot 24 m across
    off = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=VectorizeParams(simplify_tolerance_m=0, spur_width_ratio=0))
    assert degrees(off) == [1, 1, 1, 3]  # a 20 m branch: longer than min_spur_m (10 m)
    on = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(on) == [1, 1] and on.stats["wide_spurs_pruned"] == 1  # 20 m < 2.5 x 12 m
    # a side road as wide as the road and 40 m long stays
    side = road_mask([LineString([(0, 40), (200, 40)]), LineString([(100, 40), (100, 80)])], (120, 200), width_px=7)
    assert degrees(vectorize_road_mask(side, TRANSFORM, crs=CRS, params=EXACT)) == [1, 1, 1, 3]


def test_fill_small_holes_in_strips_equals_one_pass():
    rng = np.random.default_rng(3)
    mask = rng.random((300, 200)) > 0.08  # many 1-3 px holes, some touching strip seams
    one = fill_small_holes(mask, max_hole_area_px=6, strip_rows=10_000)
    for strip_rows in (20, 37, 64):
        assert np.array_equal(fill_small_holes(mask, max_hole_area_px=6, strip_rows=strip_rows), one)
    assert one.sum() > mask.sum()


def test_fill_small_holes_matches_labelling_the_whole_background():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    mask = ndimage.binary_opening(rng.random((240, 260)) > 0.3)  # holes of all sizes and shapes
    labels, n = ndimage.label(~mask)
    reference = mask.copy()
    edge = set(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]].tolist())
    for i, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        small = (labels == i).sum() <= 9 and rows.stop - rows.start <= 4 and cols.stop - cols.start <= 3
        if small and i not in edge:
            reference[labels == i] = True
    got = fill_small_holes(mask, max_hole_area_px=9, max_extent_rc_px=(4, 3), strip_rows=50)
    assert np.array_equal(got, reference) and got.sum() > mask.sum()
