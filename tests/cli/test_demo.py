"""`geodefect demo`: the whole road pipeline on tiny synthetic scenes, resumable step by step."""

from __future__ import annotations

import json

import pyogrio
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from geodefect.cli.main import cli

TINY = {
    "train_scene_size_px": 384,
    "test_scene_size_px": 256,
    "chip": {"size_px": 128, "stride_px": 96, "buffer_m": 3.5, "split_block_px": 128},
    "train": {"model": "road_hourglass", "width": 8, "epochs": 1, "batch_size": 4, "threads": 1},
    "infer": {"batch_size": 4},
    "evaluate": {"buffer_m": 3.5},
}


@pytest.fixture()
def demo_config(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def run_demo(*args):
    return CliRunner().invoke(cli, ["demo", *map(str, args), "-q"])


def test_demo_runs_end_to_end_and_resumes(demo_config, tmp_path):
    out = tmp_path / "demo"
    result = run_demo("--config", demo_config, "-o", out)
    assert result.exit_code == 0, result.output
    assert "pixel IoU" in result.output and "APLS" in result.output

    summary = json.loads((out / "summary.json").read_text())
    ev = summary["evaluation"]
    for value in (ev["pixel"]["iou"], ev["relaxed"]["f1"], ev["apls"]["apls"]):
        assert 0.0 <= value <= 1.0
    assert summary["config"]["train"]["epochs"] == 1  # merged into the file's train options
    assert summary["config"]["train"]["model"] == "road_hourglass"

    # the probability raster sits on the held-out scene's grid, with nodata outside the AOI
    with rasterio.open(out / "scene_test" / "scene.tif") as src, rasterio.open(out / "infer" / "road_prob.tif") as prob:
        assert prob.crs == src.crs and prob.transform == src.transform and prob.shape == src.shape
        assert prob.nodata is not None and (prob.read(1) == prob.nodata).any()
    info = pyogrio.read_info(out / "infer" / "roads.gpkg", layer="roads")
    assert info["crs"] is not None and info["geometry_type"] == "LineString"

    # a second run keeps every finished step: the model is not retrained
    model = out / "run" / "model.pt"
    mtime = model.stat().st_mtime_ns
    again = run_demo("--config", demo_config, "-o", out)
    assert again.exit_code == 0, again.output
    assert model.stat().st_mtime_ns == mtime
    assert json.loads((out / "summary.json").read_text())["timings_s"]["train"] < 5.0


def test_demo_rejects_unknown_config_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_scene_px: 512\n")
    result = run_demo("--config", bad, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "unknown config file key(s) train_scene_px" in result.output
    assert not (tmp_path / "out").exists()
