"""Vectorisation invariants: rasterize known lines -> mask -> graph -> lines recovers them."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.ops
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import LineString

from geodefect.errors import InputError
from geodefect.graph.vectorize import (
    VectorizeParams,
    pixel_size_m,
    vectorize_road_mask,
    vectorize_road_probability,
)

PIXEL_M = 1.0
TRANSFORM = Affine(PIXEL_M, 0, 500_000, 0, -PIXEL_M, 4_000_000)
CRS = "EPSG:32631"
# no RDP: exact pixel geometry, so tests can measure distances in pixels
EXACT = VectorizeParams(simplify_tolerance_m=0.0)


def to_world(line_px: LineString) -> LineString:
    """Pixel (col, row) coordinates -> CRS coordinates through TRANSFORM."""
    return shapely.transform(line_px, lambda c: np.stack(TRANSFORM @ (c[:, 0], c[:, 1]), axis=1))


def road_mask(lines_px, shape, width_px: float = 7.0) -> np.ndarray:
    """Rasterize lines given in pixel (col, row) coordinates, buffered to ``width_px``."""
    shapes = [(to_world(line).buffer(width_px / 2 * PIXEL_M, cap_style="round"), 1) for line in lines_px]
    return rasterize(shapes, out_shape=shape, transform=TRANSFORM, dtype="uint8").astype(bool)


def degrees(net) -> list[int]:
    return sorted(d for _, d in net.graph.degree())


def test_straight_line_crossing_the_raster_is_one_edge_reaching_both_borders():
    line = LineString([(0, 40), (200, 40)])
    net = vectorize_road_mask(road_mask([line], (80, 200)), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 1
    geom = next(iter(net.graph.edges(data=True)))[2]["geometry"]
    xs = sorted(shapely.get_coordinates(geom)[[0, -1], 0] - TRANSFORM.c)
    assert xs[0] < 1.0 and xs[1] > 199.0  # no cut back from the border
    assert net.total_length_m == pytest.approx(199.0, abs=1.5)


def test_curved_and_diagonal_lines_are_recovered_within_two_pixels():
    lines = [
        LineString([(10, 20), (60, 70), (120, 75), (180, 30)]),
        LineString([(20, 150), (190, 110)]),
    ]
    net = vectorize_road_mask(road_mask(lines, (200, 200)), TRANSFORM, crs=CRS, params=EXACT)
    got = shapely.union_all([d["geometry"] for *_, d in net.graph.edges(data=True)])
    truth = shapely.union_all([to_world(line) for line in lines])
    assert net.n_edges == 2
    # every recovered vertex lies within 2 px of the truth ...
    assert shapely.distance(shapely.points(shapely.get_coordinates(got)), truth).max() <= 2.0 * PIXEL_M
    # ... and every truth point is within 2 px of the result, except the free ends, where
    # thinning may shorten a road by up to half its width (3.5 px)
    for line in lines:
        world = to_world(line)
        inner = shapely.ops.substring(world, 4.0, world.length - 4.0)
        pts = shapely.points(shapely.get_coordinates(inner.segmentize(1.0)))
        assert shapely.distance(pts, got).max() <= 2.0 * PIXEL_M


def test_t_junction_gives_one_node_of_degree_three():
    lines = [LineString([(0, 50), (200, 50)]), LineString([(100, 50), (100, 150)])]
    net = vectorize_road_mask(road_mask(lines, (160, 200)), TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(net) == [1, 1, 1, 3]
    # the road's two ends lie on the raster border: the road goes on (boundary), the stem stops (end)
    assert sorted(d["kind"] for _, d in net.graph.nodes(data=True)) == ["boundary", "boundary", "end", "junction"]


def test_x_junction_gives_one_node_of_degree_four_at_the_crossing():
    lines = [LineString([(0, 100), (200, 100)]), LineString([(100, 0), (100, 200)])]
    net = vectorize_road_mask(road_mask(lines, (200, 200)), TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(net) == [1, 1, 1, 1, 4]
    (x, y), = [(d["x"], d["y"]) for _, d in net.graph.nodes(data=True) if d["degree"] == 4]
    assert abs(x - (TRANSFORM.c + 100)) <= 2 and abs(y - (TRANSFORM.f - 100)) <= 2


@pytest.mark.parametrize(("branch_px", "kept"), [(6, False), (30, True)])
def test_spur_shorter_than_min_spur_is_pruned_and_longer_kept(branch_px, kept):
    lines = [LineString([(0, 50), (200, 50)]), LineString([(100, 50), (100, 50 + 3.5 + branch_px)])]
    params = VectorizeParams(min_spur_m=15.0, simplify_tolerance_m=0.0, max_hole_area_m2=0)
    net = vectorize_road_mask(road_mask(lines, (120, 200)), TRANSFORM, crs=CRS, params=params)
    assert net.n_edges == (3 if kept else 1)
    assert (3 in degrees(net)) is kept


def gap_scene(gap_px: int):
    lines = [LineString([(0, 50), (90, 50)]), LineString([(90 + gap_px, 50), (200, 50)])]
    return road_mask(lines, (100, 200))


def uniform_orientation(mask: np.ndarray, *, angle_deg: float, bin_deg: int = 20) -> np.ndarray:
    """(1 + 360/bin_deg, H, W) bin probabilities: every road pixel points at ``angle_deg``."""
    n_bins = 360 // bin_deg
    out = np.zeros((n_bins + 1, *mask.shape), np.float32)
    out[0] = ~mask
    out[int(angle_deg // bin_deg) + 1][mask] = 1.0
    return out


def test_collinear_gap_is_bridged_by_tangent():
    net = vectorize_road_mask(gap_scene(15), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 1
    assert next(iter(net.graph.edges(data=True)))[2]["bridged"]


def test_gap_beyond_collinear_limit_is_not_bridged():
    net = vectorize_road_mask(gap_scene(40), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 2


@pytest.mark.parametrize(("angle_deg", "bridged"), [(None, True), (30.0, False)])
def test_gap_at_an_angle_to_both_ends_is_bridged_by_default(angle_deg, bridged):
    """A road broken where it shifts sideways: a 16-px gap 8 px across, between 30° and 38° off
    both ends' skeleton tangents. The default tolerance (38°, chosen on the SpaceNet-3
    validation tiles) joins it; CRESI's 30° does not."""
    mask = road_mask([LineString([(0, 50), (90, 50)]), LineString([(105, 58), (200, 58)])], (110, 200))
    kw = {} if angle_deg is None else {"bridge_angle_deg": angle_deg}
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=VectorizeParams(simplify_tolerance_m=0.0, **kw))
    assert (net.n_edges == 1) is bridged


@pytest.mark.parametrize(("angle_deg", "bridged"), [(0.0, True), (185.0, True), (90.0, False), (45.0, False)])
def test_gap_bridging_follows_the_predicted_orientation(angle_deg, bridged):
    mask = gap_scene(15)
    orientation = uniform_orientation(mask, angle_deg=angle_deg)
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT, orientation=orientation, bin_deg=20)
    assert (net.n_edges == 1) is bridged


def test_short_gap_is_bridged_even_against_orientation():
    """CRESI joins gaps under 24 px (7.2 m) whatever the direction."""
    mask = gap_scene(5)
    orientation = uniform_orientation(mask, angle_deg=90.0)
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT, orientation=orientation, bin_deg=20)
    assert net.n_edges == 1


@pytest.mark.parametrize(("length_px", "kept"), [(8, False), (40, True)])
def test_component_shorter_than_min_component_is_dropped(length_px, kept):
    lines = [LineString([(0, 20), (200, 20)]), LineString([(50, 70), (50 + length_px, 70)])]
    net = vectorize_road_mask(road_mask(lines, (100, 200)), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == (2 if kept else 1)


def test_rdp_keeps_endpoints_and_drops_vertices():
    line = LineString([(0, 50), (60, 20), (140, 80), (200, 50)])
    mask = road_mask([line], (100, 200))
    exact = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT)
    simple = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=VectorizeParams(simplify_tolerance_m=2.0))
    (ge,) = [d["geometry"] for *_, d in exact.graph.edges(data=True)]
    (gs,) = [d["geometry"] for *_, d in simple.graph.edges(data=True)]
    assert shapely.get_num_coordinates(gs) < shapely.get_num_coordinates(ge) / 5
    np.testing.assert_allclose(shapely.get_coordinates(gs)[[0, -1]], shapely.get_coordinates(ge)[[0, -1]])
    assert shapely.hausdorff_distance(gs, ge) <= 2.0 + 1e-9
    node_xy = {(d["x"], d["y"]) for _, d in simple.graph.nodes(data=True)}
    assert {tuple(p) for p in shapely.get_coordinates(gs)[[0, -1]]} == node_xy


def test_ring_road_is_one_closed_edge():
    ring = LineString([(50, 50), (150, 50), (150, 150), (50, 150), (50, 50)])
    net = vectorize_road_mask(road_mask([ring], (200, 200)), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 1
    (u, v, d), = net.graph.edges(data=True)
    assert u == v and d["length_m"] == pytest.approx(400, rel=0.05)


def test_empty_mask_and_low_probabilities_give_empty_networks():
    assert vectorize_road_mask(np.zeros((50, 60), bool), TRANSFORM, crs=CRS).is_empty
    net = vectorize_road_probability(np.full((50, 60), 0.2, np.float32), TRANSFORM, crs=CRS)
    assert net.is_empty and net.n_nodes == 0
    roads, nodes = net.to_geodataframes()
    assert len(roads) == 0 and len(nodes) == 0 and roads.crs == CRS


def test_probability_input_sets_mean_prob_and_nan_is_background():
    prob = np.full((100, 200), np.nan, np.float32)
    mask = road_mask([LineString([(0, 50), (200, 50)])], (100, 200))
    prob[mask] = 0.8
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS)
    (_, _, d), = net.graph.edges(data=True)
    assert d["mean_prob"] == pytest.approx(0.8, abs=1e-6)


def test_geographic_crs_lengths_are_geodesic_metres():
    from pyproj import Geod

    transform = Affine(2.7e-6, 0, -115.3, 0, -2.7e-6, 36.2)
    mask = np.zeros((100, 400), bool)
    mask[45:55, :] = True
    net = vectorize_road_mask(mask, transform, crs="EPSG:4326", params=EXACT)
    (_, _, d), = net.graph.edges(data=True)
    (x0, y0), (x1, y1) = shapely.get_coordinates(d["geometry"])[[0, -1]]
    expected = Geod(ellps="WGS84").inv(x0, y0, x1, y1)[2]
    assert d["length_m"] == pytest.approx(expected, rel=1e-6)
    assert 0.2 < pixel_size_m(transform, "EPSG:4326", mask.shape)[1] < 0.3


def test_bad_orientation_shape_and_missing_bin_deg_are_input_errors():
    mask = np.zeros((20, 20), bool)
    with pytest.raises(InputError, match="bin_deg"):
        vectorize_road_mask(mask, TRANSFORM, orientation=np.zeros((19, 20, 20)))
    with pytest.raises(InputError, match="channels"):
        vectorize_road_mask(mask, TRANSFORM, orientation=np.zeros((7, 20, 20)), bin_deg=20)
    with pytest.raises(InputError, match="threshold"):
        VectorizeParams(threshold=1.5)


def test_small_hole_in_a_road_gives_no_loop_and_a_large_one_is_kept():
    mask = road_mask([LineString([(0, 50), (200, 50)])], (100, 200), width_px=15)
    mask[48:52, 60:66] = False  # a car: 24 px = 24 m² < 30 m²
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 1 and net.stats["hole_loops_opened"] == 1
    block = np.zeros((100, 200), bool)
    block[20:80, 40:160] = True
    block[30:70, 50:150] = False  # a 4000 m² courtyard is not a hole
    net = vectorize_road_mask(block, TRANSFORM, crs=CRS, params=EXACT)
    assert net.stats["hole_loops_opened"] == 0
    assert any(u == v for u, v in net.graph.edges()) or min(d for _, d in net.graph.degree()) >= 2


def test_min_object_area_removes_blobs_on_request():
    from geodefect.graph.skeleton import remove_small_objects

    mask = np.zeros((30, 30), bool)
    mask[2:4, 2:4] = True  # 4 px
    mask[10:20, 10:20] = True  # 100 px
    out = remove_small_objects(mask, min_object_area_px=10)
    assert not out[2:4, 2:4].any() and out[10:20, 10:20].all()
    assert mask[2:4, 2:4].all()  # input untouched


def test_short_road_to_the_border_is_not_a_spur_and_border_ends_are_not_bridged():
    # a T whose stem leaves the raster after 5 m: not a dead end, so not pruned
    lines = [LineString([(0, 20), (200, 20)]), LineString([(100, 20), (100, 40)])]
    mask = road_mask(lines, (25, 200))
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(net) == [1, 1, 1, 3]
    # two parallel roads leaving the raster 5 m apart are not joined along the border
    lines = [LineString([(0, 40), (100, 40)]), LineString([(0, 46), (100, 46)])]
    net = vectorize_road_mask(road_mask(lines, (100, 100), width_px=3), TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 2 and net.stats["gaps_bridged"] == 0


def test_ends_at_nodata_are_kept_like_border_ends():
    prob = np.zeros((100, 200), np.float32)
    mask = road_mask([LineString([(0, 50), (200, 50)]), LineString([(100, 50), (100, 62)])], (100, 200))
    prob[mask] = 0.9
    prob[58:, :] = np.nan  # the AOI ends 8 m below the junction
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=EXACT)
    assert 3 in degrees(net)
    prob[55:, :] = 0.0  # same stub without nodata: a spur, pruned
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=EXACT)
    assert degrees(net) == [1, 1]


def test_side_road_stopping_short_of_a_road_is_joined_as_a_t():
    main = LineString([(0, 30), (200, 30)])
    stem = LineString([(100, 40), (100, 90)])  # its mask ends 3 m short of the main road's
    params = VectorizeParams(simplify_tolerance_m=0.0, bridge_to_edge_gap_m=12.0)
    net = vectorize_road_mask(road_mask([main, stem], (100, 200)), TRANSFORM, crs=CRS, params=params)
    assert net.stats["ends_joined_to_roads"] == 1
    assert degrees(net) == [1, 1, 1, 3]
    # a parallel road 8 m beside the main road points along it, not at it: left alone
    side = LineString([(60, 45), (140, 45)])
    net = vectorize_road_mask(road_mask([main, side], (100, 200), width_px=5), TRANSFORM, crs=CRS, params=params)
    assert net.stats["ends_joined_to_roads"] == 0 and net.n_edges == 2


def test_split_edge_keeps_geometry_and_returns_existing_end_nodes():
    from geodefect.graph.bridge import split_edge
    from geodefect.graph.simplify import EditableGraph

    g = EditableGraph(node_rc=np.array([[0.0, 0.0], [0.0, 10.0]]), scale_rc=(1.0, 1.0))
    eid = g.add_edge(0, 1, np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 10.0]]))
    assert split_edge(g, eid, np.array([0.0, 0.2])) == 0
    node = split_edge(g, eid, np.array([0.0, 7.0]))
    assert node == 2 and g.degree(2) == 2
    assert sorted(e.length_m for e in g.edges.values()) == pytest.approx([3.0, 7.0])


def test_a_dip_at_a_window_seam_does_not_break_the_road():
    """Two windows stitched with different confidence and a 1-px dip below threshold at the seam."""
    mask = road_mask([LineString([(0, 50), (200, 50)])], (100, 200))
    prob = np.where(mask, 0.9, 0.05).astype(np.float32)
    prob[:, 100:] = np.where(mask[:, 100:], 0.6, 0.1)
    prob[:, 100] = 0.4
    net = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=EXACT)
    assert net.n_edges == 1 and degrees(net) == [1, 1]
    assert net.total_length_m == pytest.approx(199.0, abs=2.0)


@pytest.mark.parametrize(("angle_deg", "bridged"), [(45.0, True), (225.0, True), (135.0, False)])
def test_orientation_convention_on_a_diagonal_gap(angle_deg, bridged):
    """θ = atan2(-Δrow, Δcol): a road running up and to the right (rows decreasing) is 45°."""
    lines = [LineString([(10, 190), (90, 110)]), LineString([(101, 99), (190, 10)])]  # 15.6 m gap
    mask = road_mask(lines, (200, 200))
    orientation = uniform_orientation(mask, angle_deg=angle_deg)
    net = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=EXACT, orientation=orientation, bin_deg=20)
    assert (net.stats["gaps_bridged"] == 1) is bridged


def test_checkerboard_probabilities_are_smoothed_into_one_road():
    """Stride-2 decoders leave a checkerboard; thresholded raw, its dots touch diagonally and
    thin into a mesh beside the road."""
    mask = road_mask([LineString([(0, 50), (200, 50)])], (100, 200), width_px=9)
    checker = (np.indices(mask.shape).sum(axis=0) % 2).astype(bool)
    prob = np.where(mask, 0.9, 0.02).astype(np.float32)
    prob[30:46] = np.where(checker[30:46], 0.6, 0.05)  # an uncertain shoulder north of the road
    raw = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=VectorizeParams(smooth_sigma_m=0.0))
    smooth = vectorize_road_probability(prob, TRANSFORM, crs=CRS, params=VectorizeParams(smooth_sigma_m=1.0))
    assert raw.n_edges > 3
    assert smooth.n_edges == 1 and smooth.total_length_m == pytest.approx(199.0, abs=2.0)


def test_compact_tangle_is_dropped_even_when_long():
    """A roof predicted as road: many loops in a 10 m box, more than 15 m of lines in total."""
    blob = np.zeros((100, 200), bool)
    blob[40:52, 100:112] = True
    for r, c in ((43, 103), (43, 108), (48, 103), (48, 108)):
        blob[r : r + 2, c : c + 2] = False  # holes too large to be filled as cars (4 m²)
    params = VectorizeParams(simplify_tolerance_m=0.0, max_hole_area_m2=1.0)
    net = vectorize_road_mask(blob, TRANSFORM, crs=CRS, params=params)
    assert net.is_empty and net.stats["small_edges_dropped"] > 0
