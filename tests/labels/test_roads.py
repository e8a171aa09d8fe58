"""Road masks: metric buffers (projected and geographic CRSs), the Gaussian label, windows."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.features import rasterize
from rasterio.windows import transform as window_transform

from geodefect.errors import InputError
from geodefect.labels import RoadLabeler, gaussian_half_width_px
from geodefect.windows import iter_windows

UTM = "EPSG:32631"
X0, Y0 = 452_000.0, 5_412_000.0
PX = 0.3
GRID = Affine(PX, 0, X0, 0, -PX, Y0)  # 0.3 m pixels, north up


def _line(*xy_m):
    """A line in UTM from offsets in metres relative to the grid's top-left corner."""
    return shapely.LineString([(X0 + x, Y0 - y) for x, y in xy_m])


@pytest.mark.parametrize("buffer_m", [0.9, 1.5, 3.0])
def test_buffer_is_the_half_width_in_metres(buffer_m):
    line = _line((-5, 30.0), (70, 30.0))  # on a pixel edge (30 m = 100 px), crossing the window
    mask = RoadLabeler([line], UTM, buffer_m=buffer_m).burn(GRID, 200, 200).mask
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert ((mask.sum(axis=0)) == round(2 * buffer_m / PX)).all()
    assert mask.sum() == pytest.approx(2 * buffer_m / PX * 200)


def test_buffer_has_round_ends_and_correct_area():
    line = _line((15, 30), (45, 30))
    mask = RoadLabeler([line], UTM, buffer_m=3.0).burn(GRID, 200, 200).mask
    area_m2 = mask.sum() * PX * PX
    assert area_m2 == pytest.approx(30 * 6 + np.pi * 9, rel=0.02)


def test_buffer_in_feet_crs_is_still_metres():
    ft = 0.3048006096012192  # US survey foot (EPSG:2263)
    grid = Affine(1.0, 0, 1_000_000, 0, -1.0, 200_000)  # 1 ft pixels
    line = shapely.LineString([(999_990, 199_900.0), (1_000_210, 199_900.0)])
    mask = RoadLabeler([line], "EPSG:2263", buffer_m=3.0).burn(grid, 200, 200).mask
    assert mask[:, 0].sum() == pytest.approx(2 * 3.0 / ft, abs=1)


def _geographic_setup(buffer_m):
    """The same east-west and north-south lines in UTM and in EPSG:4326 (SpaceNet-like grid)."""
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(X0, Y0)
    deg = 2.7e-6  # ~0.3 m in latitude, ~0.2 m in longitude at 49 N
    grid = Affine(deg, 0, lon0, 0, -deg, lat0)
    east = shapely.LineString([(lon0 - 10 * deg, lat0 - 150 * deg), (lon0 + 310 * deg, lat0 - 150 * deg)])
    north = shapely.LineString([(lon0 + 150 * deg, lat0 + 10 * deg), (lon0 + 150 * deg, lat0 - 310 * deg)])
    return grid, [east, north], (lon0, lat0, deg)


def test_web_mercator_units_are_not_ground_metres():
    """EPSG:3857 "metres" are 1/cos(lat) too long: a 2 m buffer is ~3 CRS units at Paris."""
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(2.35, 48.85)
    grid = Affine(0.3, 0, x, 0, -0.3, y)
    line = shapely.LineString([(x - 5, y - 30.0), (x + 70, y - 30.0)])  # on a pixel edge
    labeler = RoadLabeler([line], "EPSG:3857", buffer_m=2.0)
    rows = labeler.burn(grid, 200, 200).mask[:, 0].sum()
    scale = 1 / np.cos(np.radians(48.85))
    assert rows == 2 * int(2.0 * scale / 0.3 + 0.5)  # pixel centres at 0.15, 0.45, ... units
    assert (labeler.burn(grid, 200, 200).orientation[:, 0] > 0).sum() == 8  # width_px, not metres
    assert labeler.length_m() == pytest.approx(75 / scale, rel=1e-3)


def test_buffer_in_geographic_crs_has_the_metric_width():
    buffer_m = 2.0
    grid, lines, (lon0, lat0, deg) = _geographic_setup(buffer_m)
    mask = RoadLabeler(lines, "EPSG:4326", buffer_m=buffer_m).burn(grid, 300, 300).mask
    geod = Geod(ellps="WGS84")
    m_per_row = geod.inv(lon0, lat0, lon0, lat0 - deg)[2]
    m_per_col = geod.inv(lon0, lat0, lon0 + deg, lat0)[2]
    rows_across = mask[:, 20].sum()  # crossing the east-west line
    cols_across = mask[20, :].sum()  # crossing the north-south line
    assert rows_across * m_per_row == pytest.approx(2 * buffer_m, abs=m_per_row)
    assert cols_across * m_per_col == pytest.approx(2 * buffer_m, abs=m_per_col)
    assert cols_across > rows_across  # longitude pixels are narrower on the ground
    orient = RoadLabeler(lines, "EPSG:4326", buffer_m=buffer_m, width_px=8).burn(grid, 300, 300).orientation
    assert (orient[:, 20] > 0).sum() == (orient[20, :] > 0).sum() == 8  # bands are in pixels


def test_geographic_buffer_matches_a_buffer_made_in_utm():
    grid, lines, _ = _geographic_setup(2.0)
    ours = RoadLabeler(lines, "EPSG:4326", buffer_m=2.0).burn(grid, 300, 300).mask
    utm = gpd.GeoSeries(lines, crs="EPSG:4326").to_crs(UTM).buffer(2.0, cap_style="round", quad_segs=32)
    reference = rasterize(utm.to_crs("EPSG:4326").values, out_shape=(300, 300), transform=grid, dtype="uint8")
    iou = (ours & reference).sum() / (ours | reference).sum()
    assert iou > 0.97


def test_gaussian_label_is_the_thresholded_gaussian():
    assert gaussian_half_width_px(15, 0.76) == pytest.approx(15 * np.sqrt(-2 * np.log(0.76)))
    assert gaussian_half_width_px(15, 0.76) == pytest.approx(11.11, abs=0.01)
    line = _line((-5, 30.0), (70, 30.0))  # on a pixel edge
    mask = RoadLabeler([line], UTM, mode="gaussian", sigma_px=15, threshold=0.76).burn(GRID, 200, 200).mask
    assert (mask.sum(axis=0) == 22).all()  # centres at 0.5 .. 10.5 px either side
    # the same as exp(-d²/2σ²) >= t with d the exact distance of each pixel centre to the line
    rows = np.arange(200) + 0.5
    gauss = np.exp(-((rows - 100) ** 2) / (2 * 15**2)) >= 0.76
    assert (mask[:, 0].astype(bool) == gauss).all()


def test_gaussian_agrees_with_exact_distances_on_curves():
    t = np.linspace(0, np.pi, 40)
    line = _line(*zip(10 + 40 * t / np.pi, 30 + 12 * np.sin(2 * t), strict=True))
    mask = RoadLabeler([line], UTM, mode="gaussian", sigma_px=6, threshold=0.5).burn(GRID, 200, 200).mask
    rows, cols = np.mgrid[0:200, 0:200] + 0.5
    centres = shapely.points(X0 + cols.ravel() * PX, Y0 - rows.ravel() * PX)
    dist_px = (shapely.distance(centres, line) / PX).reshape(200, 200)
    reference = np.exp(-(dist_px**2) / (2 * 6**2)) >= 0.5
    assert reference.sum() > 1000
    assert (mask.astype(bool) == reference).all()


def test_burning_per_window_equals_cropping_the_whole_burn():
    rng = np.random.default_rng(7)
    lines = [_line(*rng.uniform(-5, 95, (5, 2))) for _ in range(25)]
    for mode in ("buffer", "gaussian"):
        labeler = RoadLabeler(lines, UTM, mode=mode, buffer_m=2.0, sigma_px=5, threshold=0.76)
        full = labeler.burn(GRID, 250, 310)
        assert 0.05 < full.mask.mean() < 0.9
        for w in iter_windows(250, 310, size_px=64, stride_px=48):
            part = labeler.burn(window_transform(w, GRID), int(w.height), int(w.width))
            rows, cols = slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width)
            assert (part.mask == full.mask[rows, cols]).all()
            assert (part.orientation == full.orientation[rows, cols]).all()


def test_matches_rasterio_rasterize_of_shapely_buffers():
    rng = np.random.default_rng(11)
    lines = [_line(*rng.uniform(0, 60, (4, 2))) for _ in range(10)]
    ours = RoadLabeler(lines, UTM, buffer_m=1.5).burn(GRID, 200, 200).mask
    polys = [g.buffer(1.5, quad_segs=64) for g in lines]
    reference = rasterize(polys, out_shape=(200, 200), transform=GRID, dtype="uint8")
    assert (ours != reference).sum() <= 0.002 * reference.sum() + 5


def test_lines_in_another_crs_are_reprojected():
    line = _line((-5, 30.0), (70, 30.0))
    gdf = gpd.GeoDataFrame(geometry=[line], crs=UTM).to_crs("EPSG:4326")
    mask = RoadLabeler(gdf, UTM, buffer_m=1.5).burn(GRID, 200, 200).mask
    assert mask[:, 50].sum() == 10


def test_length_m_projected_and_geodesic():
    utm = RoadLabeler([_line((0, 0), (30, 40)), _line((0, 0), (0, 10))], UTM).length_m()
    assert utm == pytest.approx(60 / 0.99963, rel=2e-5)  # UTM grid metres -> ground (scale factor)
    equator = shapely.LineString([(0, 0), (1, 0)])
    assert RoadLabeler([equator], "EPSG:4326").length_m() == pytest.approx(111_319.49, rel=1e-5)


def test_no_lines_and_windows_without_roads_are_empty():
    empty = RoadLabeler([], UTM).burn(GRID, 32, 32)
    assert empty.mask.shape == (32, 32) and empty.mask.sum() == 0 and empty.orientation.sum() == 0
    far = RoadLabeler([_line((1000, 1000), (1100, 1000))], UTM).burn(GRID, 32, 32)
    assert far.mask.sum() == 0 and far.orientation.sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": "dilate"}, "label"), ({"buffer_m": 0}, "buffer_m"), ({"mode": "gaussian", "threshold": 1.2}, "threshold"),
     ({"mode": "gaussian", "sigma_px": -1}, "sigma_px"), ({"bin_deg": 7}, "bin_deg"), ({"width_px": 0}, "width_px")],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        RoadLabeler([_line((0, 0), (1, 1))], UTM, **kwargs)


def test_segments_are_prepared_where_labels_are_burned_not_where_the_labeler_is_made():
    """A chip run makes every source's labeler in the client (to check the options before it
    writes anything); the segments and their ground scales are computed on the first burn, so
    under Dask that work happens in the workers and the pickled labeler is small."""
    import pickle

    lines = [_line((-5, 30.0 + i), (70, 31.0 + i)) for i in range(200)]
    made = RoadLabeler(lines, UTM, buffer_m=1.5)
    assert "_segments" not in vars(made)
    shipped = pickle.loads(pickle.dumps(made))
    used = RoadLabeler(lines, UTM, buffer_m=1.5)
    expected = used.burn(GRID, 200, 200)
    assert "_segments" in vars(used) and used.n_segments == 200
    assert len(pickle.dumps(made)) < len(pickle.dumps(used)) / 2
    got = shipped.burn(GRID, 200, 200)
    assert np.array_equal(got.mask, expected.mask) and np.array_equal(got.orientation, expected.orientation)


def test_non_line_geometries_are_refused():
    with pytest.raises(InputError, match="LineString"):
        RoadLabeler([shapely.Point(X0, Y0).buffer(5)], UTM)


def test_geographic_scale_is_per_segment_over_large_extents():
    """Lines at the equator and at 60 N in one labeler: each gets its own metres per degree."""
    deg = 2.7e-6
    geod = Geod(ellps="WGS84")
    lines = [shapely.LineString([(lon, lat), (lon + 400 * deg, lat)]) for lon, lat in ((0.0, 0.0), (10.0, 60.0))]
    labeler = RoadLabeler(lines, "EPSG:4326", buffer_m=1.5, width_px=6)
    for lon, lat in ((0.0, 0.0), (10.0, 60.0)):
        grid = Affine(deg, 0, lon, 0, -deg, lat + 100 * deg)  # line on a pixel edge, 100 rows down
        labels = labeler.burn(grid, 200, 200)
        m_per_row = geod.inv(lon, lat, lon, lat + deg)[2]
        assert labels.mask[:, 50].sum() * m_per_row == pytest.approx(3.0, abs=m_per_row)
        assert (labels.orientation[:, 50] > 0).sum() == 6


def test_buffer_per_feature_from_a_width_attribute():
    gdf = gpd.GeoDataFrame(
        {"width_m": [4.0, 9.0]},
        geometry=[_line((-5, 15.0), (70, 15.0)), shapely.MultiLineString([[(X0 - 5, Y0 - 45.0), (X0 + 70, Y0 - 45.0)]])],
        crs=UTM,
    )
    mask = RoadLabeler(gdf, UTM, buffer_m=gdf["width_m"] / 2).burn(GRID, 200, 200).mask
    column = mask[:, 100]
    def rows_within(half_m):  # pixel centres 0.15, 0.45, ... m from a line on a pixel edge
        return 2 * int(half_m / PX + 0.5)

    assert column[:100].sum() == rows_within(2.0) and column[100:].sum() == rows_within(4.5)
    with pytest.raises(InputError, match="buffer_m"):
        RoadLabeler(gdf, UTM, buffer_m=[2.0, np.nan])
    with pytest.raises(InputError, match="one half-width per feature"):
        RoadLabeler(gdf, UTM, buffer_m=[2.0])


def test_a_pickled_labeler_burns_the_same_labels():
    """Dask ships labelers to workers: pickled with its lines as WKB, it labels exactly as before."""
    import pickle

    rng = np.random.default_rng(0)
    lines = [_line(*(rng.uniform(0, 60, (4, 2)) + rng.uniform(0, 1e-6))) for _ in range(30)]  # sub-mm coordinates
    widths = rng.uniform(1, 4, 30)
    labeler = RoadLabeler(gpd.GeoDataFrame(geometry=lines, crs=UTM), UTM, buffer_m=widths)
    copy = pickle.loads(pickle.dumps(labeler))
    assert shapely.equals_exact(copy.lines, labeler.lines, tolerance=0).all()
    a, b = labeler.burn(GRID, 200, 200), copy.burn(GRID, 200, 200)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.orientation, b.orientation)
