"""The shipped `spacenet3-roads` package: loads, carries its card, and finds roads on real imagery.

The real-imagery check skips cleanly when ../shared/data is absent. The crop is a 256 px
window (0.6 m) of a VALIDATION tile (Vegas img1454, never trained on) holding a wide road.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodefect.models.pretrained import PRETRAINED_DIR, model_card, resolve_model

PACKAGE = PRETRAINED_DIR / "spacenet3-roads.pt"
pytestmark = pytest.mark.skipif(not PACKAGE.is_file(), reason="spacenet3-roads.pt not shipped in this checkout")


def test_package_loads_small_with_its_recipe_and_card():
    from geodefect.models.checkpoint import load_package

    assert PACKAGE.stat().st_size < 25 * 2**20
    model, recipe = load_package(resolve_model("spacenet3-roads"))
    assert recipe["task"] == "roads" and recipe["pan_sharpen"] == {"mul_bands": [5, 3, 2]}
    assert recipe["pixel_size_m"] == pytest.approx(0.6, abs=0.01)
    assert recipe["stretch"]["source_dtype"] == ["uint16"]
    card = model_card("spacenet3-roads")
    for needle in ("CC BY-SA 4.0", "SpaceNet", "Maxar", "0.6 m", "5, 3, 2", "geodefect train", "Vegas", "Paris", "Shanghai"):
        assert needle in card, needle


def test_predicts_the_roads_of_a_real_validation_crop(shared_data, tmp_path):
    from rasterio.windows import Window

    from geodefect.io.pansharpen import pansharpened_path
    from geodefect.io.raster import RasterReader
    from geodefect.io.vector import read_lines
    from geodefect.labels import RoadLabeler
    from geodefect.models.checkpoint import load_package

    model, recipe = load_package(PACKAGE)
    d = shared_data / "spacenet3_samples" / "AOI_2_Vegas_Roads_Sample"
    vrt = pansharpened_path(d / "PAN" / "PAN_AOI_2_Vegas_img1454.tif", d / "MUL" / "MUL_AOI_2_Vegas_img1454.tif",
                            recipe["pan_sharpen"]["mul_bands"])
    with RasterReader(vrt, cell_size_m=recipe["pixel_size_m"]) as reader:
        window = Window(0, 192, 256, 256)  # col, row: a wide road and its junctions (10 % road)
        image = reader.read(window).astype(np.float32)
        lines = read_lines(d / "geojson" / "spacenetroads_AOI_2_Vegas_img1454.geojson", to_crs=reader.crs)
        truth = RoadLabeler(lines, reader.crs, buffer_m=2.0).burn(reader.window_transform(window), 256, 256).mask > 0
    mean = np.array(recipe["normalization"]["mean"], np.float32)[:, None, None]
    std = np.array(recipe["normalization"]["std"], np.float32)[:, None, None]
    with torch.no_grad():
        prob = model(torch.from_numpy((image - mean) / std)[None]).road.sigmoid()[0, 0].numpy()
    assert truth.mean() > 0.05  # the crop does hold road
    pred = prob > recipe.get("road_threshold", 0.5)
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert prob[truth].mean() > 2 * prob[~truth].mean()
    assert iou > 0.3, iou


def test_the_shipped_model_exports_by_name(tmp_path):
    """`geodefect export spacenet3-roads -o X.onnx`: the ONNX Runtime path for CPU users (1.5x)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from click.testing import CliRunner

    from geodefect.cli.main import cli
    from geodefect.inference.backends import read_model_recipe

    out = tmp_path / "roads.onnx"
    result = CliRunner().invoke(cli, ["export", "spacenet3-roads", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recipe = read_model_recipe(out)
    assert recipe["task"] == "roads" and recipe["onnx"]["source"] == "spacenet3-roads.pt"
    assert recipe["pixel_size_m"] == pytest.approx(0.6, abs=0.01) and recipe["onnx"]["tile_px"] == 256
