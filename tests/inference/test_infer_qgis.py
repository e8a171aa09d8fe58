"""What an analyst sees in QGIS: colour tables, the AOI beside the roads; --no-vectorize says so (issue 17)."""

from __future__ import annotations

import sqlite3

import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from road_infer_helpers import write_aoi

from geodefect.cli.main import cli
from geodefect.testing.tiny import write_tiny_geotiff


@pytest.fixture(scope="module")
def aoi_run(road_model, tiny_scene, tmp_path_factory):
    root = tmp_path_factory.mktemp("qgis")
    with rasterio.open(tiny_scene.image) as ds:
        b = ds.bounds
    aoi = write_aoi(root / "aoi.geojson", (b.left + 10, b.bottom + 10, b.right - 20, b.top - 5))
    out = root / "out"
    res = CliRunner().invoke(cli, ["infer", str(road_model), str(tiny_scene.image), "--aoi", str(aoi),
                                   "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out, (b.left + 10, b.bottom + 10, b.right - 20, b.top - 5)


def test_mask_and_orientation_carry_colour_tables(aoi_run):
    out, _ = aoi_run
    with rasterio.open(out / "road_mask.tif") as ds:
        cmap = ds.colormap(1)
        assert cmap[1] == (255, 127, 0, 255) and cmap[0] == (40, 40, 40, 255)
        assert ds.nodata == 255  # outside the AOI: transparent as nodata
    with rasterio.open(out / "orientation.tif") as ds:
        cmap = ds.colormap(1)
        n_bins = int(round(360 / float(ds.tags(1)["bin_deg"])))
        colours = {cmap[b] for b in range(1, n_bins + 1)}
        assert len(colours) == n_bins and cmap[0] not in colours  # one colour per bin, background apart


def test_roads_gpkg_holds_the_aoi_with_a_style(aoi_run):
    out, bounds = aoi_run
    layers = [name for name, _ in pyogrio.list_layers(out / "roads.gpkg")]
    assert layers[:2] == ["roads", "nodes"] and "aoi" in layers
    aoi = pyogrio.read_dataframe(out / "roads.gpkg", layer="aoi")
    assert aoi.geometry.iloc[0].equals_exact(shapely.box(*bounds), 1e-6) or \
        shapely.box(*bounds).symmetric_difference(aoi.geometry.iloc[0]).area < 1e-6
    with sqlite3.connect(out / "roads.gpkg") as con:
        styled = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles WHERE useAsDefault = 1")}
    assert styled >= {"roads", "nodes", "aoi"}


def test_no_vectorize_says_it_skipped(road_model, tiny_scene, tmp_path):
    res = CliRunner().invoke(cli, ["infer", str(road_model), str(tiny_scene.image), "-o", str(tmp_path / "o"),
                                   "--no-vectorize", "-q"])
    assert res.exit_code == 0, res.output
    assert "vectorising skipped" in res.output and "km of road" not in res.output
    assert "not vectorised" in res.output


def test_colour_table_survives_resampling(road_model, tiny_scene, tmp_path):
    coarse = tmp_path / "coarse.tif"
    with rasterio.open(tiny_scene.image) as src:
        write_tiny_geotiff(coarse, src.read()[:, ::2, ::2].copy(), pixel_size_m=1.0)
    res = CliRunner().invoke(cli, ["infer", str(road_model), str(coarse), "-o", str(tmp_path / "o"),
                                   "--no-vectorize", "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "o" / "road_mask.tif") as ds:
        assert ds.colormap(1)[1] == (255, 127, 0, 255)
