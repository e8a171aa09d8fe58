"""Infer on the real SpaceNet Vegas tile (EPSG:4326, RGB + alpha) from ../shared/data; skips without it."""

from __future__ import annotations

import json

import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from road_infer_helpers import build_dark_roads, road_recipe

from geodefect.cli.main import cli
from geodefect.models.checkpoint import save_package


@pytest.mark.slow  # 7-50 s depending on load; skips anyway without ../shared/data
def test_spacenet_tile_outputs_on_its_grid(shared_data, tmp_path):
    image = shared_data / "spacenet_vegas_rgb" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    model = tmp_path / "m.pt"
    save_package(model, model=build_dark_roads(), recipe=road_recipe(size_px=256, stride_px=192, pixel_size_m=0.3))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", str(model), str(image), "-o", str(out), "-q", "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    with rasterio.open(image) as src:
        for name in ("road_prob", "road_mask", "orientation"):
            with rasterio.open(out / f"{name}.tif") as ds:
                assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
                assert ds.overviews(1)  # a COG with overviews
    run = json.loads((out / "run.json").read_text())
    assert 0.10 < run["totals"]["area_km2"] < 0.16  # 1300 px of ~0.27 m squared
    roads = pyogrio.read_dataframe(out / "roads.gpkg", layer="roads")
    assert roads.crs.to_epsg() == 4326
