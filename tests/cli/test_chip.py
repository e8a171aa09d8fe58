"""`geodefect chip` end to end (CliRunner), and every bad input of issue #2 §5."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import from_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import LineString, box

from geodefect.cli.main import cli
from geodefect.testing.tiny import make_tiny_scene, write_lines, write_tiny_geotiff

FAST = ["--size-px", "64", "--stride-px", "48", "-q"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_tiny_scene(tmp_path_factory.mktemp("scene"))


def invoke(*args):
    return CliRunner().invoke(cli, ["chip", *map(str, args)], catch_exceptions=False)


def assert_user_error(result, out_dir, *patterns):
    """Exit 1, one line `Error: ...` naming the problem, no traceback, nothing written."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    for pattern in patterns:
        assert pattern in lines[0], (pattern, lines[0])
    assert "Traceback" not in result.output
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_chip_end_to_end(scene, tmp_path):
    out = tmp_path / "chips"
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, *FAST,
                    "--keep-empty", "1", "--bands", "1,2,3", "--orient-bin-deg", "10")
    assert result.exit_code == 0, result.output
    assert "chips" in result.output and "km of road" in result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] and meta["size_px"] == 64 and meta["stride_px"] == 48
    assert meta["orientation"] == {**meta["orientation"], "bin_deg": 10, "n_classes": 37}
    idx = gpd.read_file(out / "index.gpkg", layer="chips")
    assert len(idx) == meta["n_chips"] > 0
    assert set(idx.columns) >= {"chip_id", "image", "label", "orientation", "road_frac", "split", "source"}
    with rasterio.open(scene.image) as src:
        assert idx.crs == src.crs
        for row in idx.head(5).itertuples():
            with rasterio.open(out / row.image) as c, rasterio.open(out / row.label) as lab, \
                    rasterio.open(out / row.orientation) as ori:
                win = from_bounds(*c.bounds, transform=src.transform).round_offsets().round_lengths()
                assert c.crs == src.crs and c.dtypes == ("uint8",) * 3
                assert c.transform.almost_equals(window_transform(win, src.transform), precision=1e-9)
                np.testing.assert_array_equal(c.read(), src.read(window=win))
                assert set(np.unique(lab.read())) <= {0, 1}
                assert ori.read().max() <= 36
                assert lab.read().mean() == pytest.approx(row.road_frac, abs=1e-6)
    # rerun: complete output is kept, summary says so
    again = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, *FAST,
                   "--keep-empty", "1", "--bands", "1,2,3", "--orient-bin-deg", "10")
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_config_file_and_flags(scene, tmp_path):
    cfg = tmp_path / "chip.yaml"
    cfg.write_text("size_px: 32\nstride_px: 32\nbuffer_m: 1.5\n")
    out = tmp_path / "chips"
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, "--config", cfg,
                    "--stride-px", "16", "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["size_px"], meta["stride_px"], meta["label"]["buffer_m"]) == (32, 16, 1.5)


def test_dataset_unknown_lists_valid(tmp_path):
    result = invoke("--dataset", "nope", "-o", tmp_path / "o")
    assert_user_error(result, tmp_path / "o", "unknown dataset 'nope'", "demo", "spacenet_vegas_sample")


# ----------------------------------------------------------------------------- §5 bad inputs


def test_missing_raster(scene, tmp_path):
    out = tmp_path / "o"
    result = invoke(tmp_path / "missing.tif", "--centerlines", scene.centerlines, "-o", out)
    assert_user_error(result, out, "missing.tif", "does not exist")


def test_not_a_raster(scene, tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("not a raster")
    out = tmp_path / "o"
    assert_user_error(invoke(bad, "--centerlines", scene.centerlines, "-o", out), out,
                      "notes.tif", "not a raster")


def test_truncated_geotiff(scene, tmp_path):
    data = scene.image.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    assert_user_error(invoke(cut, "--centerlines", scene.centerlines, "-o", out), out,
                      "cut.tif", "truncated", "again")


def test_raster_without_crs(scene, tmp_path):
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 64, 64), np.uint8))
    out = tmp_path / "o"
    assert_user_error(invoke(p, "--centerlines", scene.centerlines, "-o", out), out,
                      "no CRS", "gdal_edit.py -a_srs EPSG:")


def test_centerlines_elsewhere(scene, tmp_path):
    far = write_lines(tmp_path / "far.geojson", [LineString([(2.0, 10.0), (2.01, 10.01)])],
                      crs="EPSG:4326", to_crs=None)
    out = tmp_path / "o"
    assert_user_error(invoke(scene.image, "--centerlines", far, "-o", out), out,
                      "far.geojson", "do not touch raster", "CRS")


def test_aoi_outside_raster(scene, tmp_path):
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(3.0, 40.0, 3.1, 40.1)], crs="EPSG:4326").to_file(aoi)
    out = tmp_path / "o"
    assert_user_error(invoke(scene.image, "--centerlines", scene.centerlines, "--aoi", aoi, "-o", out),
                      out, "aoi.geojson", "does not overlap")


def test_empty_centerline_file_means_no_roads(scene, tmp_path):
    """Issue 14: a feature-less (or zero-byte, SpaceNet's way) file says "no roads here": negatives."""
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    out = tmp_path / "o"
    result = invoke(scene.image, "--centerlines", empty, "-o", out, *FAST, "--keep-empty", "0",
                    "--width-field", "lane_number")  # an attribute a feature-less file cannot have
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sources"][0]["no_roads"] and meta["n_chips"] > 0  # every window kept but split-overlap drops:
    assert meta["n_chips"] + meta["split"]["n_dropped_overlap"] == meta["sources"][0]["n_windows"]
    for path in (out / "labels").glob("*.tif"):
        with rasterio.open(path) as ds:
            assert not ds.read().any()


def test_invalid_geometries_repaired_with_warning(scene, tmp_path):
    lines = gpd.read_file(scene.centerlines)
    x, y = lines.geometry[0].coords[0]
    feats = [json.loads(lines.to_json())["features"][0],
             {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[x, y], [x, y]]}}]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, ["chip", str(scene.image), "--centerlines", str(bad), "-o", str(out),
                                      "--size-px", "64", "--stride-px", "48"])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and ("repaired" in result.output or "dropped" in result.output)
    assert json.loads((out / "meta.json").read_text())["complete"]


@pytest.mark.parametrize(("stride", "expected"), [("0", "`stride_px` must be in 1..64"), ("-3", "got -3"),
                                                  ("65", "got 65")])
def test_bad_stride(scene, tmp_path, stride, expected):
    out = tmp_path / "o"
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, "--size-px", "64",
                    "--stride-px", stride)
    assert_user_error(result, out, expected)


def test_too_many_bands(scene, tmp_path):
    out = tmp_path / "o"
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, "--bands", "1,2,3,4")
    assert_user_error(result, out, "band(s) 4", "has 3 band(s)", "1..3")


def test_other_settings_without_overwrite(scene, tmp_path):
    out = tmp_path / "chips"
    assert invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, *FAST).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, "--size-px", "32",
                    "--stride-px", "32", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "other settings" in result.output and "size_px 64" in result.output and "--overwrite" in result.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    redo = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, "--size-px", "32",
                  "--stride-px", "32", "-q", "--overwrite")
    assert redo.exit_code == 0
    assert json.loads((out / "meta.json").read_text())["size_px"] == 32
    with rasterio.open(next((out / "images").glob("*.tif"))) as c:
        assert c.shape == (32, 32)


def test_foreign_folder_without_overwrite(scene, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    result = invoke(scene.image, "--centerlines", scene.centerlines, "-o", out, *FAST)
    assert result.exit_code == 1 and "not written by `geodefect chip`" in result.output
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]


def test_verbose_shows_traceback(scene, tmp_path):
    result = CliRunner().invoke(cli, ["chip", str(tmp_path / "missing.tif"), "--centerlines",
                                      str(scene.centerlines), "-o", str(tmp_path / "o"), "-v"])
    assert result.exit_code == 1 and "Traceback" in result.output


def test_geotiff_in_geographic_crs(tmp_path):
    """A raster in EPSG:4326 (like SpaceNet) with a metric buffer."""
    s = make_tiny_scene(tmp_path / "s")
    with rasterio.open(s.image) as src:
        arr = src.read()
    from pyproj import Transformer

    to_ll = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(s.transform.c, s.transform.f)
    geo = tmp_path / "geo.tif"
    write_tiny_geotiff(geo, arr, crs="EPSG:4326", origin=(lon0, lat0), pixel_size_m=5e-6)
    lines = write_lines(tmp_path / "l.geojson", [LineString([(lon0, lat0 - 60.5 * 5e-6), (lon0 + 260 * 5e-6, lat0 - 60.5 * 5e-6)])],
                        crs="EPSG:4326", to_crs=None)
    out = tmp_path / "o"
    result = invoke(geo, "--centerlines", lines, "-o", out, *FAST, "--buffer-m", "2", "--keep-empty", "1")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pixel_size_m"] == pytest.approx((5e-6 * 111_200 + 5e-6 * 111_200 * np.cos(np.radians(lat0))) / 2, rel=0.01)
    lab = rasterio.open(next((out / "labels").glob("*_000048_000000.tif"))).read(1)
    rows = np.nonzero(lab[:, 10])[0] + 48
    # 2 m half-width is 2/0.556 = 3.6 px north-south around row 60.5
    assert rows.min() >= 56 and rows.max() <= 64 and len(rows) >= 6


def test_dataset_vegas_sample(shared_data, tmp_path):
    out = tmp_path / "vegas"
    result = invoke("--dataset", "spacenet_vegas_sample", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["bands"] == [1, 2, 3] and meta["n_chips"] > 0
    assert meta["crs"].startswith("GEOGCS") and 0.2 < meta["pixel_size_m"] < 0.35


def test_missing_centerlines_and_aoi(scene, tmp_path):
    out = tmp_path / "o"
    assert_user_error(invoke(scene.image, "--centerlines", tmp_path / "nope.geojson", "-o", out), out,
                      "nope.geojson", "does not exist")
    assert_user_error(invoke(scene.image, "--centerlines", scene.centerlines, "--aoi", tmp_path / "a.gpkg",
                             "-o", out), out, "a.gpkg", "does not exist")
    result = invoke(scene.image, "-o", out)  # a missing option: a malformed command line, exit 2 as click
    assert result.exit_code == 2 and "--centerlines" in result.output and not out.exists()
