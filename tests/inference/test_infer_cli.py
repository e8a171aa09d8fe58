"""``geodefect infer`` end to end on a tiny scene with a fixed model, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from road_infer_helpers import build_dark_roads, road_recipe, write_aoi

from geodefect.cli.main import cli
from geodefect.testing.tiny import write_tiny_geotiff


def run_infer(*args):
    return CliRunner().invoke(cli, ["infer", *map(str, args), "-q"])


def assert_failed_cleanly(result, out_dir, *, match: str):
    """Exit 1, one line naming the problem, and no (partial) output folder."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and match in lines[0], result.output
    assert not out_dir.exists()
    assert not any(p.name.startswith(".tmp-") for p in out_dir.parent.iterdir())


@pytest.fixture(scope="module")
def inset_aoi(tiny_scene, tmp_path_factory):
    with rasterio.open(tiny_scene.image) as ds:
        b = ds.bounds
    return write_aoi(tmp_path_factory.mktemp("aoi") / "aoi.geojson", (b.left + 10, b.bottom + 10, b.right - 20, b.top - 5))


@pytest.fixture(scope="module")
def infer_run(road_model, tiny_scene, inset_aoi, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_infer(road_model, tiny_scene.image, "--aoi", inset_aoi, "-o", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_outputs_are_on_the_source_grid_with_nodata_outside_the_aoi(infer_run, tiny_scene, inset_aoi):
    out, result = infer_run
    assert "km²" in result.output and "windows" in result.output
    with rasterio.open(tiny_scene.image) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    from geodefect.inference.geo import aoi_mask, read_aoi_in_crs

    inside = aoi_mask(read_aoi_in_crs(inset_aoi, crs), rasterio.windows.Window(0, 0, shape[1], shape[0]), transform)
    for name in ("road_prob", "road_mask", "orientation"):
        with rasterio.open(out / f"{name}.tif") as ds:
            assert ds.crs == crs and ds.transform == transform and ds.shape == shape
            assert ds.nodata == 255 and ds.dtypes[0] == "uint8"
            data = ds.read(1)
        assert (data[~inside] == 255).all() and (data[inside] != 255).all()
    with rasterio.open(out / "road_prob.tif") as ds:
        prob = ds.read(1)
    assert prob[inside].max() <= 254
    road_row = tiny_scene.road_rows[0]
    assert (prob[road_row, inside[road_row]] > 200).all()  # the dark road is found
    assert np.median(prob[inside]) < 10


def test_road_network_and_run_json(infer_run, tiny_scene):
    out, _ = infer_run
    layers = dict(pyogrio.list_layers(out / "roads.gpkg"))
    assert layers["roads"] == "LineString" and layers["nodes"] == "Point" and "layer_styles" in layers
    roads = pyogrio.read_dataframe(out / "roads.gpkg", layer="roads")
    with rasterio.open(tiny_scene.image) as src:
        assert roads.crs == src.crs
        y_road = (src.transform * (0, tiny_scene.road_rows[0] + 0.5))[1]
    horizontal = roads[roads.geometry.bounds.eval("maxy - miny") < 2]
    assert len(horizontal) and np.allclose(horizontal.geometry.bounds[["miny", "maxy"]], y_road, atol=1.0)
    assert (out / "graph.graphml").stat().st_size > 0
    run = json.loads((out / "run.json").read_text())
    assert run["recipe"]["task"] == "roads" and run["config"]["blend"] == "hann"
    assert run["totals"]["windows"] > 0 and 0.005 < run["totals"]["area_km2"] < 0.013
    assert run["totals"]["road_km"] == pytest.approx(roads["length_m"].sum() / 1000, rel=1e-3)


def test_road_only_model_writes_no_orientation(road_model, tiny_scene, tmp_path):
    """A model trained with orientation_weight 0 has an untrained orientation head: not read."""
    from geodefect.models.checkpoint import load_package, save_package

    model, recipe = load_package(road_model)
    package = tmp_path / "road_only.pt"
    save_package(package, model=model, recipe={**recipe, "orientation_trained": False})
    out = tmp_path / "out"
    result = run_infer(package, tiny_scene.image, "-o", out)
    assert result.exit_code == 0, result.output
    assert not (out / "orientation.tif").exists() and (out / "road_prob.tif").is_file()
    roads = pyogrio.read_dataframe(out / "roads.gpkg", layer="roads")
    assert roads["length_m"].sum() > 50  # the network is still built (directions from edge tangents)


def test_existing_output_needs_overwrite(infer_run, road_model, tiny_scene):
    out, _ = infer_run
    before = (out / "run.json").read_text()
    result = run_infer(road_model, tiny_scene.image, "-o", out)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "run.json").read_text() == before


def test_overwrite_resample_and_several_images(road_model, tiny_scene, tmp_path):
    coarse = tmp_path / "coarse.tif"
    with rasterio.open(tiny_scene.image) as src:
        write_tiny_geotiff(coarse, src.read()[:, ::2, ::2].copy(), pixel_size_m=1.0)
    out = tmp_path / "multi"
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = run_infer(road_model, tiny_scene.image, coarse, "-o", out, "--overwrite", "--no-vectorize")
    assert result.exit_code == 0, result.output
    assert not (out / "old.txt").exists()
    with rasterio.open(out / "coarse" / "road_prob.tif") as ds, rasterio.open(coarse) as src:
        assert ds.transform == src.transform and ds.shape == src.shape  # written back on the source grid
    assert (out / "tiny" / "road_mask.tif").exists() and not (out / "tiny" / "roads.gpkg").exists()


def test_input_nodata_stays_nodata(road_model, tmp_path):
    img = tmp_path / "holes.tif"
    data = np.full((3, 60, 70), 180, np.uint8)
    data[:, 20:26, :] = 30  # a road
    data[:, :, :10] = 0  # nodata strip
    write_tiny_geotiff(img, data, nodata=0)
    out = tmp_path / "out"
    assert run_infer(road_model, img, "-o", out, "--no-vectorize", "--tta", "--tta-merge", "max").exit_code == 0
    with rasterio.open(out / "road_mask.tif") as ds:
        mask = ds.read(1)
    assert (mask[:, :10] == 255).all() and (mask[20:26, 10:] == 1).all()
    assert json.loads((out / "run.json").read_text())["sliding"]["tta"] is True


def test_empty_prediction_gives_a_valid_empty_geopackage(road_model, tmp_path):
    bright = tmp_path / "bright.tif"
    write_tiny_geotiff(bright, np.full((3, 80, 90), 220, np.uint8))
    out = tmp_path / "out"
    result = run_infer(road_model, bright, "-o", out, "--blend", "crop", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "0.00 km" in result.output
    for layer, geom in (("roads", "LineString"), ("nodes", "Point")):
        gdf = pyogrio.read_dataframe(out / "roads.gpkg", layer=layer)
        assert len(gdf) == 0 and dict(pyogrio.list_layers(out / "roads.gpkg"))[layer] == geom


def test_not_a_package_and_corrupt_model(road_model, tiny_scene, tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("not a model")
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(text, tiny_scene.image, "-o", out), out, match="not a readable geodefect model")
    text.write_text("junk\n")  # makes torch's weights-only unpickler raise KeyError
    assert_failed_cleanly(run_infer(text, tiny_scene.image, "-o", out), out, match="not a readable geodefect model")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(road_model.read_bytes()[:500])
    assert_failed_cleanly(run_infer(truncated, tiny_scene.image, "-o", out), out, match="model package")
    assert_failed_cleanly(run_infer(tmp_path / "missing.pt", tiny_scene.image, "-o", out), out, match="does not exist")


@pytest.mark.parametrize(("bands", "match"), [(4, "--bands"), (1, "has 1 data band")])
def test_band_count_mismatch(road_model, tmp_path, bands, match):
    img = tmp_path / "img.tif"
    write_tiny_geotiff(img, np.full((bands, 40, 40), 100, np.uint8), photometric="MINISBLACK", alpha="NO")
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(road_model, img, "-o", out), out, match=match)


def test_rgb_plus_alpha_uses_the_rgb_bands(road_model, tmp_path):
    """SpaceNet's RGB tiles carry a 4th (alpha) band: the 3-band model takes bands 1-3."""
    img = tmp_path / "rgba.tif"
    write_tiny_geotiff(img, np.full((4, 40, 40), 100, np.uint8))  # GDAL marks band 4 as alpha
    out = tmp_path / "out"
    assert run_infer(road_model, img, "-o", out, "--no-vectorize").exit_code == 0
    assert json.loads((out / "run.json").read_text())["images"][0]["windows"] == 1


def test_aoi_that_misses_the_raster(road_model, tiny_scene, tmp_path):
    aoi = write_aoi(tmp_path / "far.geojson", (0, 0, 100, 100))
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(road_model, tiny_scene.image, "--aoi", aoi, "-o", out), out, match="does not overlap")


def test_invalid_aoi_geometry(road_model, tiny_scene, tmp_path):
    with rasterio.open(tiny_scene.image) as ds:
        b = ds.bounds
    bowtie = {"type": "Polygon", "coordinates": [[[b.left, b.bottom], [b.right, b.top], [b.right, b.bottom],
                                                  [b.left, b.top], [b.left, b.bottom]]]}
    aoi = tmp_path / "bowtie.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
                               "features": [{"type": "Feature", "properties": {}, "geometry": bowtie}]}))
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(road_model, tiny_scene.image, "--aoi", aoi, "-o", out), out, match="invalid geometr")


def test_raster_without_crs(road_model, tmp_path):
    img = tmp_path / "nocrs.tif"
    with rasterio.open(img, "w", driver="GTiff", width=40, height=40, count=3, dtype="uint8") as dst:
        dst.write(np.full((3, 40, 40), 100, np.uint8))
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(road_model, img, "-o", out), out, match="no CRS")


def test_unknown_config_key_lists_valid_ones(road_model, tiny_scene, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("blend: hann\nwindow_px: 3\n")
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(road_model, tiny_scene.image, "--config", cfg, "-o", out), out, match="window_px")


def test_non_road_task_is_dispatched_by_recipe(tmp_path, tiny_scene):
    from geodefect.models.checkpoint import save_package

    model = tmp_path / "other.pt"
    save_package(model, model=build_dark_roads(), recipe=road_recipe(task="no_such_task"))
    out = tmp_path / "out"
    assert_failed_cleanly(run_infer(model, tiny_scene.image, "-o", out), out, match="unknown task")


def test_several_images_skip_one_the_aoi_misses(road_model, tiny_scene, inset_aoi, tmp_path):
    far = tmp_path / "far.tif"
    write_tiny_geotiff(far, np.full((3, 40, 40), 150, np.uint8), origin=(500_000.0, 5_000_000.0))
    out = tmp_path / "out"
    result = run_infer(road_model, tiny_scene.image, far, "--aoi", inset_aoi, "-o", out, "--no-vectorize")
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert [im["folder"] for im in run["images"]] == ["tiny"] and not (out / "far").exists()
