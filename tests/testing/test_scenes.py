"""Synthetic road scenes: grid, determinism, centerlines on the roads, AOI, and hardness."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pyproj import Transformer

from geodefect.errors import InputError
from geodefect.testing.scenes import PARIS_LONLAT, make_road_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_road_scene(tmp_path_factory.mktemp("scene"), size_px=320, seed=3)


def test_raster_grid_bands_and_tiling(scene):
    with rasterio.open(scene.image) as src:
        assert src.crs.to_epsg() == 32631
        assert (src.count, src.width, src.height) == (3, 320, 320)
        assert src.dtypes == ("uint8",) * 3
        assert src.res == (0.3, 0.3)
        assert src.transform.b == src.transform.d == 0 and src.transform.e < 0
        assert src.block_shapes[0] == (256, 256)
        centre = src.xy(160, 160)
    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(*centre)
    assert (lon, lat) == pytest.approx(PARIS_LONLAT, abs=2e-3)
    with rasterio.open(scene.road_mask) as msk:
        assert msk.transform == src.transform and set(np.unique(msk.read(1))) <= {0, 1}


def test_same_seed_same_scene_other_seed_other_scene(scene, tmp_path):
    again = make_road_scene(tmp_path / "a", size_px=320, seed=3)
    other = make_road_scene(tmp_path / "b", size_px=320, seed=4)
    with rasterio.open(scene.image) as s1, rasterio.open(again.image) as s2, rasterio.open(other.image) as s3:
        first, second, third = s1.read(), s2.read(), s3.read()
    assert np.array_equal(first, second)
    assert not np.array_equal(first, third)
    lines1, lines2 = gpd.read_file(scene.centerlines), gpd.read_file(again.centerlines)
    assert lines1.geometry.geom_equals_exact(lines2.geometry, tolerance=0).all()


def test_centerlines_are_directed_wgs84_lines_with_attributes(scene):
    lines = gpd.read_file(scene.centerlines)
    assert lines.crs.to_epsg() == 4326
    assert (lines.geom_type == "LineString").all() and len(lines) >= 2
    assert {"road_id", "road_class", "width_m"} <= set(lines.columns)
    assert lines["width_m"].between(4.0, 12.0).all()
    assert lines["road_class"].nunique() >= 2
    assert lines["width_m"].max() - lines["width_m"].min() >= 3  # several widths


def test_centerlines_reproject_onto_the_road_pixels(scene):
    lines = gpd.read_file(scene.centerlines).to_crs(32631)
    points = shapely.line_interpolate_point(
        np.repeat(lines.geometry.values, 200), np.tile(np.linspace(0, 1, 200), len(lines)), normalized=True
    )
    xy = shapely.get_coordinates(points)
    with rasterio.open(scene.road_mask) as src:
        rows, cols = rasterio.transform.rowcol(src.transform, xy[:, 0], xy[:, 1])
        rows, cols = np.clip(rows, 0, src.height - 1), np.clip(cols, 0, src.width - 1)
        mask = src.read(1)
    assert mask[rows, cols].mean() > 0.97
    assert 0.08 < mask.mean() < 0.45


def test_network_has_junctions(scene):
    lines = gpd.read_file(scene.centerlines).to_crs(32631).geometry.values
    crossings = sum(shapely.intersects(a, b) for i, a in enumerate(lines) for b in lines[i + 1:])
    assert crossings >= 1


def test_aoi_covers_part_of_the_scene(scene):
    aoi = gpd.read_file(scene.aoi)
    assert scene.aoi.name == "paris.geojson" and aoi.crs.to_epsg() == 4326 and len(aoi) == 1
    with rasterio.open(scene.image) as src:
        footprint = shapely.box(*src.bounds)
    poly = aoi.to_crs(32631).geometry.iloc[0]
    assert poly.within(footprint)
    assert 0.55 < poly.area / footprint.area < 0.85


def test_no_per_pixel_colour_rule_finds_the_roads(scene):
    """Hard enough: the Bayes-optimal colour classifier on the scene itself stays far from the mask."""
    with rasterio.open(scene.image) as src, rasterio.open(scene.road_mask) as msk:
        img, road = src.read(), msk.read(1).ravel() > 0
    code = ((img[0].ravel() // 16) * 16 + img[1].ravel() // 16) * 16 + img[2].ravel() // 16
    is_road = np.bincount(code[road], minlength=4096) > np.bincount(code[~road], minlength=4096)
    pred = is_road[code]
    iou = (pred & road).sum() / (pred | road).sum()
    assert 0.2 < iou < 0.8
    road_grey = img.mean(axis=0).ravel()[road]
    assert road_grey.std() > 12  # roads are not one flat colour


def test_geographic_scene_like_spacenet(tmp_path):
    geo = make_road_scene(tmp_path, size_px=256, seed=1, crs="EPSG:4326")
    with rasterio.open(geo.image) as src, rasterio.open(geo.road_mask) as msk:
        assert src.crs.to_epsg() == 4326
        assert src.res[0] == pytest.approx(src.res[1]) and src.res[1] == pytest.approx(2.7e-6, rel=0.01)
        assert src.xy(128, 128) == pytest.approx(PARIS_LONLAT, abs=1e-4)
        mask, transform = msk.read(1), msk.transform
    lines = gpd.read_file(geo.centerlines)
    xy = shapely.get_coordinates(shapely.segmentize(lines.geometry.values, 1e-6))
    rows, cols = rasterio.transform.rowcol(transform, xy[:, 0], xy[:, 1])
    assert mask[np.clip(rows, 0, 255), np.clip(cols, 0, 255)].mean() > 0.97


@pytest.mark.parametrize(("kwargs", "match"), [({"size_px": 10}, "size_px"), ({"crs": "EPSG:99999"}, "crs"),
                                               ({"pixel_size_m": 0}, "pixel_size_m")])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        make_road_scene(tmp_path, **kwargs)


def test_cli_writes_a_scene(tmp_path):
    from geodefect.cli.main import cli

    result = CliRunner().invoke(cli, ["synth", "roads", str(tmp_path / "s"), "--size-px", "128", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "centerlines:" in result.output
    with rasterio.open(tmp_path / "s" / "scene.tif") as src:
        assert (src.count, src.width) == (3, 128)
    bad = CliRunner().invoke(cli, ["synth", "roads", str(tmp_path / "t"), "--crs", "EPSG:99999"])
    assert bad.exit_code == 1 and "Error:" in bad.output and "crs" in bad.output
    before = (tmp_path / "s" / "scene.tif").read_bytes()
    again = CliRunner().invoke(cli, ["synth", "roads", str(tmp_path / "s"), "--size-px", "128", "--seed", "5"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert (tmp_path / "s" / "scene.tif").read_bytes() == before
    forced = CliRunner().invoke(cli, ["synth", "roads", str(tmp_path / "s"), "--size-px", "128", "--seed", "5",
                                      "--overwrite"])
    assert forced.exit_code == 0 and (tmp_path / "s" / "scene.tif").read_bytes() != before
