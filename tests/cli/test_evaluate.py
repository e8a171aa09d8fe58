"""`geodefect evaluate` (roads): CliRunner, then the JSON it wrote."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.features import rasterize
from shapely.geometry import LineString, box

from geodefect.cli.main import cli

CRS = "EPSG:32631"
PIXEL_M = 0.5
TRANSFORM = Affine(PIXEL_M, 0, 500_000, 0, -PIXEL_M, 4_000_100)
SHAPE = (200, 200)  # 100 m x 100 m


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    lines = [LineString([(500_000, 4_000_050), (500_100, 4_000_050)]),
             LineString([(500_050, 4_000_050), (500_050, 4_000_000)])]
    truth = d / "truth.geojson"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=lines, crs=CRS).to_crs("EPSG:4326").to_file(truth)
    mask = rasterize([(g.buffer(3), 1) for g in lines], out_shape=SHAPE, transform=TRANSFORM, dtype="uint8")
    mask_tif = d / "road_mask.tif"
    with rasterio.open(mask_tif, "w", driver="GTiff", height=SHAPE[0], width=SHAPE[1], count=1, dtype="uint8",
                       crs=CRS, transform=TRANSFORM, nodata=255) as ds:
        ds.write(mask, 1)
    pred_gpkg = d / "roads.gpkg"
    gpd.GeoDataFrame({"length_m": [100.0]}, geometry=[lines[0]], crs=CRS).to_file(pred_gpkg, layer="roads")
    aoi = d / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(500_000, 4_000_030, 500_100, 4_000_100)], crs=CRS).to_file(aoi)
    return {"truth": truth, "mask": mask_tif, "gpkg": pred_gpkg, "aoi": aoi, "dir": d}


def run(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def test_truth_against_itself_scores_one(scene, tmp_path):
    out = tmp_path / "m.json"
    res = run("--pred", scene["truth"], "--truth", scene["truth"], "--json", out)
    assert res.exit_code == 0, res.output
    assert "APLS" in res.output and "pixel IoU" in res.output
    m = json.loads(out.read_text())
    assert m["apls"]["apls"] == pytest.approx(1.0)
    assert m["pixel"]["iou"] == pytest.approx(1.0)
    assert m["relaxed"]["f1"] == pytest.approx(1.0)
    assert m["km"]["truth"] == pytest.approx(0.15, rel=1e-3)


def test_gpkg_missing_one_road_scores_the_hand_values(scene, tmp_path):
    out = tmp_path / "m.json"
    res = run("--pred", scene["gpkg"], "--truth", scene["truth"], "--json", out, "--buffer-m", "2")
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    # the horizontal road is found, the 50 m vertical one is not
    assert m["relaxed"]["precision"] == pytest.approx(1.0)
    assert m["relaxed"]["recall"] == pytest.approx(100 / 150, abs=0.03)
    assert 0.0 < m["apls"]["apls"] < 0.9
    assert m["apls"]["pred_to_truth"] == pytest.approx(1.0)


def test_road_mask_tif_with_aoi(scene, tmp_path):
    out = tmp_path / "m.json"
    res = run("--pred", scene["mask"], "--truth", scene["truth"], "--aoi", scene["aoi"], "--json", out)
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["relaxed"]["recall"] > 0.9 and m["relaxed"]["precision"] > 0.9
    assert m["apls"]["apls"] > 0.7
    # the AOI keeps 20 m of the 50 m vertical road: 120 m of truth
    assert m["km"]["truth"] == pytest.approx(0.12, rel=0.02)


def test_existing_json_needs_overwrite_and_bad_inputs_exit_1(scene, tmp_path):
    out = tmp_path / "m.json"
    out.write_text("{}")
    res = run("--pred", scene["truth"], "--truth", scene["truth"], "--json", out)
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert out.read_text() == "{}"
    res = run("--pred", tmp_path / "nope.gpkg", "--truth", scene["truth"])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = run("--truth", scene["truth"])
    assert res.exit_code == 2 and "--pred" in res.output


def test_aoi_missing_the_raster_is_an_error(scene, tmp_path):
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame(geometry=[box(600_000, 4_000_000, 600_100, 4_000_100)], crs=CRS).to_file(far)
    res = run("--pred", scene["mask"], "--truth", scene["truth"], "--aoi", far)
    assert res.exit_code == 1 and "does not overlap" in res.output


def test_spacenet_truth_rasterised_and_vectorised_scores_high(shared_data, tmp_path):
    """Real SpaceNet tile (EPSG:4326, ~0.3 m): truth -> 3 m mask -> evaluate the mask against the truth."""
    vegas = shared_data / "spacenet_vegas_rgb"
    truth = vegas / "AOI_2_Vegas_img0_roads.geojson"
    with rasterio.open(vegas / "RGB-PanSharpen_AOI_2_Vegas_img0.tif") as ds:
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    lines = gpd.read_file(truth)
    utm = lines.estimate_utm_crs()
    mask = rasterize([(g, 1) for g in lines.to_crs(utm).buffer(3).to_crs(crs)], out_shape=shape,
                     transform=transform, dtype="uint8")
    pred = tmp_path / "road_mask.tif"
    with rasterio.open(pred, "w", driver="GTiff", height=shape[0], width=shape[1], count=1, dtype="uint8",
                       crs=crs, transform=transform, nodata=255) as ds:
        ds.write(mask, 1)
    out = tmp_path / "m.json"
    res = run("--pred", pred, "--truth", truth, "--json", out)
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["relaxed"]["f1"] > 0.98
    assert m["apls"]["apls"] > 0.9
    assert m["km"]["pred"] == pytest.approx(m["km"]["truth"], rel=0.05)


def test_truth_outside_the_aoi_is_an_error(scene, tmp_path):
    empty_aoi = tmp_path / "south.geojson"
    gpd.GeoDataFrame(geometry=[box(500_000, 3_999_000, 500_100, 3_999_100)], crs=CRS).to_file(empty_aoi)
    res = run("--pred", scene["gpkg"], "--truth", scene["truth"], "--aoi", empty_aoi)
    assert res.exit_code == 1 and "no line inside the AOI" in res.output


def test_raster_predicted_in_an_aoi_scores_the_same_with_and_without_that_aoi(scene, tmp_path):
    """A road_mask.tif made with `infer --aoi` is nodata outside the AOI; the model never saw the
    truth there, so it must not count as missed whether or not `evaluate` is given the AOI."""
    with rasterio.open(scene["mask"]) as ds:
        mask, profile = ds.read(1), ds.profile
    mask[140:, :] = 255  # nodata below y = 4_000_030: outside scene["aoi"]
    cut = tmp_path / "road_mask_aoi.tif"
    with rasterio.open(cut, "w", **profile) as ds:
        ds.write(mask, 1)
    scores = []
    for extra in ((), ("--aoi", scene["aoi"])):
        out = tmp_path / f"m{len(extra)}.json"
        res = run("--pred", cut, "--truth", scene["truth"], "--json", out, *extra)
        assert res.exit_code == 0, res.output
        scores.append(json.loads(out.read_text()))
    assert scores[0]["apls"]["apls"] == pytest.approx(scores[1]["apls"]["apls"], abs=1e-9)
    assert scores[0]["apls"]["apls"] > 0.9
    assert scores[0]["km"]["truth"] == pytest.approx(scores[1]["km"]["truth"], abs=1e-3)


def test_errors_gpkg_holds_missed_and_invented_roads_with_lengths_and_a_style(scene, tmp_path):
    import sqlite3

    import pyogrio

    pred = tmp_path / "pred.geojson"  # finds the east-west road, misses the stem, invents a road
    invented = LineString([(500_010, 4_000_090), (500_090, 4_000_090)])
    gpd.GeoDataFrame(geometry=[LineString([(500_000, 4_000_050), (500_100, 4_000_050)]), invented],
                     crs=CRS).to_file(pred)
    errors = tmp_path / "errors.gpkg"
    res = run("--pred", pred, "--truth", scene["truth"], "--errors", errors, "--json", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    gdf = gpd.read_file(errors, layer="errors")
    by_kind = dict(zip(gdf["error"], gdf["length_m"], strict=True))
    assert sorted(by_kind) == ["false_negative", "false_positive"]
    assert by_kind["false_negative"] == pytest.approx(50 - 2, abs=0.2)  # the stem, minus the 2 m buffer
    assert by_kind["false_positive"] == pytest.approx(80, abs=0.01)
    assert gdf.geometry.length.to_numpy() == pytest.approx(gdf["length_m"].to_numpy())
    assert pyogrio.read_info(errors, layer="errors")["geometry_type"] == "LineString"
    with sqlite3.connect(errors) as con:
        (qml,) = con.execute("SELECT styleQML FROM layer_styles WHERE f_table_name = 'errors' AND useAsDefault").fetchone()
    assert 'attr="error"' in qml and 'value="false_negative"' in qml and 'value="false_positive"' in qml
    assert json.loads((tmp_path / "m.json").read_text())["errors"]["features"] == 2
    res = run("--pred", pred, "--truth", scene["truth"], "--errors", errors)
    assert res.exit_code == 1 and "overwrite" in res.output  # an existing errors.gpkg is not replaced


def test_all_nodata_raster_is_refused_with_one_line(scene, tmp_path):
    with rasterio.open(scene["mask"]) as ds:
        profile = ds.profile
    empty = tmp_path / "nodata.tif"
    with rasterio.open(empty, "w", **profile) as ds:
        ds.write(np.full(SHAPE, 255, np.uint8), 1)
    res = run("--pred", empty, "--truth", scene["truth"], "--errors", tmp_path / "e.gpkg")
    assert res.exit_code == 1 and "holds no data" in res.output
    assert not (tmp_path / "e.gpkg").exists()  # nothing written on refused input


def test_lines_with_z_and_single_vertex_lines_are_read(scene, tmp_path):
    """OSM extracts carry Z; a one-vertex LineString used to raise GEOSException."""
    truth = gpd.read_file(scene["truth"])
    coords = [[[x, y, 12.5] for x, y in g.coords] for g in truth.geometry]
    feats = [{"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": c}}
             for c in coords + [[coords[0][0]]]]
    osm = tmp_path / "osm.geojson"
    osm.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    out = tmp_path / "m.json"
    res = run("--pred", osm, "--truth", osm, "--json", out)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["apls"]["apls"] == pytest.approx(1.0)
