"""Tiled vectorisation (graph/tiled.py, seams.py, block_reader.py) against the whole-raster path."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from geodefect.errors import InputError
from geodefect.evaluation.apls import apls
from geodefect.graph.block_reader import BlockedRaster, MaskWindows, WindowSource
from geodefect.graph.build import skeleton_to_graph
from geodefect.graph.seams import join_pieces, owned_pieces
from geodefect.graph.simplify import EditableGraph, merge_degree_two
from geodefect.graph.skeleton import skeletonize_mask, threshold_probability
from geodefect.graph.tiled import BlockGrid, vectorize_mask_tiled, vectorize_probability_tiled
from geodefect.graph.vectorize import vectorize_road_mask, vectorize_road_probability

CRS = "EPSG:32631"
TRANSFORM = Affine(0.3, 0, 448000.0, 0, -0.3, 5412000.0)


def assert_same_network(whole, tiled, *, min_apls=0.99, length_rel=0.01):
    assert tiled.total_length_m == pytest.approx(whole.total_length_m, rel=length_rel)
    assert apls(whole.graph, tiled.graph)["apls"] >= min_apls


def draw_roads(shape, lines, *, half_width_px):
    """Bool mask of thick polylines ((row, col) vertices) drawn with skimage."""
    from skimage.draw import disk, line

    mask = np.zeros(shape, bool)
    for pts in lines:
        for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:], strict=True):
            rr, cc = line(int(r0), int(c0), int(r1), int(c1))
            for r, c in zip(rr[::2], cc[::2], strict=True):
                mask[disk((r, c), half_width_px, shape=shape)] = True
    return mask


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory):
    """The demo's held-out scene (1024 px, seed 1): its carriageway mask and a probability map of it."""
    import rasterio
    from rasterio.features import geometry_mask
    from scipy import ndimage

    from geodefect.io.vector import read_aoi
    from geodefect.testing.scenes import make_road_scene

    scene = make_road_scene(tmp_path_factory.mktemp("demo"), size_px=1024, seed=1)
    with rasterio.open(scene.road_mask) as ds:
        mask, transform, crs = ds.read(1).astype(bool), ds.transform, ds.crs
    aoi = read_aoi(scene.aoi, to_crs=crs)
    outside = geometry_mask([aoi], out_shape=mask.shape, transform=transform)
    prob = ndimage.gaussian_filter(mask.astype(np.float32), 2.0)
    prob[outside] = np.nan  # roads cut by the AOI end in boundary nodes
    return mask, prob, transform, crs


def test_demo_scene_mask_in_256px_blocks_matches_whole(demo_scene):
    mask, _, transform, crs = demo_scene
    whole = vectorize_road_mask(mask, transform, crs=crs)
    tiled = vectorize_mask_tiled(mask, transform, crs=crs, block_px=256)
    assert tiled.stats["vector_blocks"] == 16
    assert tiled.n_edges == whole.n_edges
    assert_same_network(whole, tiled, min_apls=0.999, length_rel=1e-4)


def test_demo_scene_probability_with_aoi_in_blocks_matches_whole(demo_scene):
    _, prob, transform, crs = demo_scene
    whole = vectorize_road_probability(prob, transform, crs=crs)
    for block_px in (200, 256):  # a grid that does not divide the raster too
        tiled = vectorize_probability_tiled(prob, transform, crs=crs, block_px=block_px)
        assert tiled.stats["ends_extended_to_aoi"] == whole.stats["ends_extended_to_aoi"] > 0
        assert_same_network(whole, tiled, min_apls=0.99, length_rel=0.01)


def test_joined_pixel_graph_is_the_whole_pixel_graph(demo_scene):
    """Before any clean-up: the same chains, point for point, once the seam nodes are merged."""
    mask = demo_scene[0]
    whole = EditableGraph.from_pixel_graph(skeleton_to_graph(skeletonize_mask(mask, border_pad_px=34), max_cluster_span_px=67),
                                           scale_rc=(0.3, 0.3))
    grid = BlockGrid(mask.shape, 256, 134, align_px=67)
    parts = []
    for i, j in grid.blocks():
        rows, cols = grid.read_window(i, j)
        pg = skeleton_to_graph(skeletonize_mask(mask[rows, cols], border_pad_px=34), max_cluster_span_px=67)
        parts += owned_pieces(pg, (rows.start, cols.start), block=i * 4 + j, block_px=256, grid_rc=grid.grid_rc)
    tiled = join_pieces(parts, scale_rc=(0.3, 0.3))
    assert len(tiled.edges) > len(whole.edges)  # cut at the seams
    for g in (whole, tiled):
        merge_degree_two(g)

    def chains(g):
        out = set()
        for e in g.edges.values():
            p = np.rint(e.path * 8).astype(np.int64)
            out.add(min(tuple(map(tuple, p)), tuple(map(tuple, p[::-1]))) if e.u != e.v else (len(p), round(e.length_m, 6)))
        return out

    assert chains(tiled) == chains(whole)


def test_crossing_at_a_block_corner_is_one_junction():
    """An X whose centre is the corner of four blocks, and a diagonal road through another corner."""
    shape = (512, 512)
    mask = draw_roads(shape, [[(20, 20), (490, 490)], [(20, 490), (490, 20)], [(0, 300), (300, 511)]], half_width_px=6)
    whole = vectorize_road_mask(mask, TRANSFORM, crs=CRS)
    tiled = vectorize_mask_tiled(mask, TRANSFORM, crs=CRS, block_px=128)  # corners at 256, 256 and 128k
    assert tiled.n_edges == whole.n_edges and tiled.n_nodes == whole.n_nodes
    degrees = sorted(d for _, d in tiled.graph.degree())
    assert degrees == sorted(d for _, d in whole.graph.degree())
    assert 2 not in degrees  # no node left at a seam
    assert_same_network(whole, tiled, min_apls=0.999, length_rel=1e-6)


@pytest.mark.parametrize("row", [127.5, 128.0, 130.0])
def test_road_along_a_seam(row):
    """A road centred on the seam between block rows (and one wavering across it)."""
    shape = (384, 512)
    cols = np.arange(10, 502, 12)
    wavy = [(row + 3 * np.sin(c / 17.0) + 128, c) for c in cols]  # crosses the seam at 256 many times
    mask = draw_roads(shape, [[(row, 10), (row, 501)], wavy], half_width_px=5)
    whole = vectorize_road_mask(mask, TRANSFORM, crs=CRS)
    tiled = vectorize_mask_tiled(mask, TRANSFORM, crs=CRS, block_px=128)
    assert tiled.n_edges == whole.n_edges == 2
    assert all(d != 2 for _, d in tiled.graph.degree())
    assert_same_network(whole, tiled, min_apls=0.999, length_rel=1e-6)


def _spacenet_tile_mask(shared_data, city: str, img: str):
    """A carriageway mask rasterised from a SpaceNet-3 tile's centerlines (1.8 m per lane, as wide as its lanes)."""
    import rasterio
    import shapely
    from rasterio.features import rasterize

    from geodefect.io.vector import read_lines

    folder = shared_data / "spacenet3_samples" / f"AOI_{city}_Roads_Sample"
    with rasterio.open(folder / "PAN" / f"PAN_AOI_{city}_{img}.tif") as ds:
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    lines = read_lines(folder / "geojson" / f"spacenetroads_AOI_{city}_{img}.geojson", what="centerlines").to_crs(crs)
    inverse = ~transform
    polys = []
    for geom, lanes in zip(lines.geometry, lines.get("lane_number", [2] * len(lines)), strict=True):
        px = shapely.transform(geom, lambda xy: np.stack(inverse * (xy[:, 0], xy[:, 1]), axis=1))
        half_width_px = 1.8 * max(int(lanes or 2), 1) / 2 / 0.3
        polys.append(px.buffer(half_width_px))
    mask = rasterize([(p, 1) for p in polys], out_shape=shape, dtype="uint8").astype(bool)
    return mask, transform, crs


@pytest.mark.parametrize("city, img", [("2_Vegas", "img1454"), ("3_Paris", "img432")])
def test_real_spacenet_tile_in_256px_blocks(shared_data, city, img):
    try:
        mask, transform, crs = _spacenet_tile_mask(shared_data, city, img)
    except FileNotFoundError:
        pytest.skip(f"SpaceNet-3 sample {city} {img} not present")
    assert mask.mean() > 0.02
    whole = vectorize_road_mask(mask, transform, crs=crs)  # EPSG:4326: geodesic lengths
    tiled = vectorize_mask_tiled(mask, transform, crs=crs, block_px=256)
    assert tiled.stats["vector_blocks"] == 36
    assert_same_network(whole, tiled)


def test_mask_windows_are_bit_identical_to_the_whole_mask():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    prob = ndimage.gaussian_filter(rng.random((300, 410)).astype(np.float32), 3) * 2 - 0.5
    prob[40:90, 100:160] = np.nan
    whole = threshold_probability(prob, threshold=0.5, smooth_sigma_px=1.5)
    windows = MaskWindows(WindowSource(prob), lambda m: m, threshold=0.5, smooth_sigma_px=1.5)
    tiles = BlockedRaster(prob.shape, bool, windows.read, tile_px=64, cache_tiles=3)
    assert np.array_equal(tiles[0:300, 0:410], whole)
    assert np.array_equal(tiles[35:97, 95:170], whole[35:97, 95:170])
    rows, cols = rng.integers(0, 300, 500), rng.integers(0, 410, 500)
    assert np.array_equal(tiles[rows, cols], whole[rows, cols])
    assert np.array_equal(tiles[-5:400, 400:999], whole[-5:, 400:])  # numpy's clipping of slices


def test_window_source_reads_a_memory_map_with_file_reads(tmp_path):
    arr = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    np.save(tmp_path / "a.npy", arr)
    source = WindowSource(np.load(tmp_path / "a.npy", mmap_mode="r"))
    assert source._file is not None  # read with file reads, not through the mapping
    for rows, cols in ((slice(10, 50), slice(250, 300)), (slice(0, 200), slice(0, 300)), (slice(199, 400), slice(-3, None))):
        out = source.read(rows, cols)
        assert type(out) is np.ndarray and np.array_equal(out, arr[rows, cols])


def test_empty_raster_and_bad_block_size():
    empty = vectorize_mask_tiled(np.zeros((300, 300), bool), TRANSFORM, crs=CRS, block_px=128)
    assert empty.is_empty and empty.stats["vector_blocks"] == 9
    with pytest.raises(InputError, match="block_px"):
        vectorize_mask_tiled(np.zeros((300, 300), bool), TRANSFORM, crs=CRS, block_px=16)
    with pytest.raises(InputError, match=r"\(H, W\)"):
        vectorize_probability_tiled(np.zeros((3, 30, 30), np.float32), TRANSFORM, crs=CRS)


def test_mask_preparation_options_and_orientation_bins_match_whole(demo_scene):
    """Hole filling and small-object removal read beyond a window; orientation bins steer bridging."""
    from geodefect.graph.vectorize import VectorizeParams

    mask = demo_scene[0].copy()
    mask[500:503, 300:303] = False  # a hole in a road (if on one) and specks
    mask[50:53, 900:903] = True
    params = VectorizeParams(fill_hole_area_m2=4.0, min_object_area_m2=2.0)
    bins = np.zeros((18, *mask.shape), np.float32)
    bins[0] = 1.0  # every road runs along bin 1 (east-west)
    whole = vectorize_road_mask(mask, TRANSFORM, crs=CRS, params=params, orientation=bins, bin_deg=20)
    tiled = vectorize_mask_tiled(mask, TRANSFORM, crs=CRS, params=params, orientation=bins, bin_deg=20, block_px=256)
    assert_same_network(whole, tiled, min_apls=0.999, length_rel=1e-4)


def test_point_chunks_cover_every_path_once():
    from geodefect.graph.network import _point_chunks

    paths = [np.zeros((n, 2)) for n in (5, 70, 3, 3, 200, 1, 9)]
    chunks = _point_chunks(paths, max_points=80)
    assert [i for s in chunks for i in range(len(paths))[s]] == list(range(len(paths)))
    assert all(sum(len(p) for p in paths[s]) <= 80 or s.stop - s.start == 1 for s in chunks)
    assert len(chunks) == 4  # 75 | 6 | 200 | 10
