"""``geodefect infer --vector-block-px``: the road network vectorised in blocks matches the whole one."""

from __future__ import annotations

import json

import pyogrio
import rasterio
from click.testing import CliRunner
from road_infer_helpers import write_aoi

from geodefect.cli.main import cli
from geodefect.evaluation.apls import apls, lines_to_graph


def _infer(model, image, out, *extra):
    result = CliRunner().invoke(cli, ["infer", str(model), str(image), "-o", str(out), "-q", *map(str, extra)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    roads = pyogrio.read_dataframe(out / "roads.gpkg", layer="roads")
    return run["images"][0], roads


def test_blocks_of_64px_give_the_whole_network(road_model, tmp_path):
    from geodefect.testing.tiny import make_tiny_scene

    scene = make_tiny_scene(tmp_path / "scene", height_px=300, width_px=400, road_rows=(60, 200), road_cols=(150, 320))
    with rasterio.open(scene.image) as ds:
        b = ds.bounds
    aoi = write_aoi(tmp_path / "aoi.geojson", (b.left + 12, b.bottom + 8, b.right - 15, b.top - 6))
    whole, whole_roads = _infer(road_model, scene.image, tmp_path / "whole", "--aoi", aoi, "--vector-block-px", 0)
    tiled, tiled_roads = _infer(road_model, scene.image, tmp_path / "tiled", "--aoi", aoi, "--vector-block-px", 64)
    assert "vector_blocks" not in whole["graph_stats"]
    assert tiled["graph_stats"]["vector_blocks"] == 5 * 6  # the AOI box, ~272 x 346 px
    assert whole["road_km"] > 0.3
    assert abs(tiled["road_km"] - whole["road_km"]) <= 0.01 * whole["road_km"]
    score = apls(lines_to_graph(whole_roads.geometry.values), lines_to_graph(tiled_roads.geometry.values))
    assert score["apls"] >= 0.99


def test_vector_block_px_below_64_is_refused(road_model, tmp_path):
    from geodefect.testing.tiny import make_tiny_scene

    scene = make_tiny_scene(tmp_path / "scene")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", str(road_model), str(scene.image), "-o", str(out), "-q", "--vector-block-px", "10"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "vector_block_px" in lines[0]
    assert not out.exists()
