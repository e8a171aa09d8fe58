"""`.onnx` models through `geodefect infer` and the int8 gate of `geodefect export`.

The fixed dark-roads model (road_infer_helpers) is exported; infer with the .pt and the .onnx
must give the same road graph on the tiny scene; ONNX-specific bad inputs fail cleanly; int8
passes the gate with good calibration chips and is refused with deliberately broken ones.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from geodefect.cli.main import cli  # noqa: E402
from geodefect.testing.tiny import write_tiny_geotiff  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


@pytest.fixture(scope="module")
def road_onnx(road_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "roads.onnx"
    result = invoke("export", road_model, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert "64 px tiles" in result.output and "road, orientation" in result.output
    return out


def test_infer_onnx_gives_the_same_road_graph(road_model, road_onnx, tiny_scene, tmp_path):
    import networkx as nx
    import pyogrio

    outs = {}
    for tag, model in (("pt", road_model), ("onnx", road_onnx)):
        outs[tag] = tmp_path / tag
        result = invoke("infer", model, tiny_scene.image, "-o", outs[tag], "-q", "--threads", "1")
        assert result.exit_code == 0, result.output
    run = json.loads((outs["onnx"] / "run.json").read_text())
    assert run.get("backend") == "onnxruntime"
    with rasterio.open(outs["pt"] / "road_mask.tif") as a, rasterio.open(outs["onnx"] / "road_mask.tif") as b:
        assert (a.read(1) == b.read(1)).mean() > 0.999
    with rasterio.open(outs["pt"] / "road_prob.tif") as a, rasterio.open(outs["onnx"] / "road_prob.tif") as b:
        assert np.abs(a.read(1).astype(int) - b.read(1).astype(int)).max() <= 1
    lines = {t: pyogrio.read_dataframe(o / "roads.gpkg", layer="roads") for t, o in outs.items()}
    assert len(lines["pt"]) == len(lines["onnx"]) > 0
    assert lines["onnx"].length.sum() == pytest.approx(lines["pt"].length.sum(), rel=1e-3)
    graphs = {t: nx.read_graphml(o / "graph.graphml") for t, o in outs.items()}
    assert graphs["pt"].number_of_nodes() == graphs["onnx"].number_of_nodes()
    assert graphs["pt"].number_of_edges() == graphs["onnx"].number_of_edges()


def test_onnx_runs_in_blocks_with_the_same_files(road_onnx, tiny_scene, tmp_path):
    """A raster larger than --block-px runs as block units (here in this process): with an .onnx
    model too, and the files are those of the whole-raster run."""
    outs = {}
    for tag, extra in (("whole", ()), ("blocks", ("--block-px", "64"))):
        outs[tag] = tmp_path / tag
        result = invoke("infer", road_onnx, tiny_scene.image, "-o", outs[tag], "-q", "--threads", "1", *extra)
        assert result.exit_code == 0, result.output
    run = json.loads((outs["blocks"] / "run.json").read_text())
    assert run["backend"] == "onnxruntime" and run["images"][0]["blocks"] > 1
    for name in ("road_prob.tif", "road_mask.tif", "orientation.tif"):
        assert (outs["whole"] / name).read_bytes() == (outs["blocks"] / name).read_bytes(), name


def test_onnx_predictor_declares_the_channels_it_returns(road_onnx):
    """The sliding engine sizes its buffers from ``output_channels`` instead of a probe window."""
    from geodefect.inference.onnx_runtime import OnnxPredictor

    pred = OnnxPredictor(road_onnx, device="cpu", threads=1)
    out = pred(np.zeros((2, pred.n_channels, pred.size_px, pred.size_px), np.float32))
    assert pred.output_channels == {k: v.shape[1] for k, v in out.items()}
    assert pred.output_channels["orientation"] > 1


def _assert_clean_failure(result, out, match):
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and match in lines[0], result.output
    assert not out.exists()


def test_onnx_refuses_another_tile_size(road_onnx, tiny_scene, tmp_path):
    out = tmp_path / "o"
    result = invoke("infer", road_onnx, tiny_scene.image, "-o", out, "-q", "--size-px", "32")
    _assert_clean_failure(result, out, "fixed tile size 64")


def test_onnx_refuses_a_raster_with_other_bands(road_onnx, tmp_path):
    one_band = tmp_path / "grey.tif"
    write_tiny_geotiff(one_band, np.full((1, 80, 80), 120, np.uint8))
    out = tmp_path / "o"
    result = invoke("infer", road_onnx, one_band, "-o", out, "-q")
    _assert_clean_failure(result, out, "band")


def test_backend_torch_on_onnx_is_refused(road_onnx, tiny_scene, tmp_path):
    out = tmp_path / "o"
    result = invoke("infer", road_onnx, tiny_scene.image, "-o", out, "-q", "--backend", "torch")
    _assert_clean_failure(result, out, "--backend onnxruntime")


def _road_chips(root, *, train_value=None, n=6, size=64):
    """A road chip folder (meta.json + index.gpkg + GeoTIFFs): dark horizontal roads (30) on
    noise (120..200); ``train_value`` replaces every train image by that constant (broken calibration)."""
    import geopandas as gpd
    from shapely.geometry import Point

    rng = np.random.default_rng(0)
    rows = []
    for sub in ("images", "labels", "orientation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        split = "val" if i % 2 else "train"
        image = rng.integers(120, 200, (3, size, size)).astype(np.uint8)
        road = np.zeros((1, size, size), np.uint8)
        r = 10 + 7 * i
        image[:, r:r + 6], road[:, r:r + 6] = 30, 1
        if split == "train" and train_value is not None:
            image[:] = train_value
        names = {sub: f"{sub}/c{i}.tif" for sub in ("images", "labels", "orientation")}
        write_tiny_geotiff(root / names["images"], image)
        write_tiny_geotiff(root / names["labels"], road)
        write_tiny_geotiff(root / names["orientation"], road)
        rows.append({"chip_id": i, "image": names["images"], "label": names["labels"],
                     "orientation": names["orientation"], "split": split})
    gpd.GeoDataFrame(rows, geometry=[Point(0, 0)] * n, crs="EPSG:32631").to_file(root / "index.gpkg", layer="chips")
    (root / "meta.json").write_text(json.dumps({"task": "roads", "complete": True}))
    return root


def test_int8_passes_the_gate_with_good_calibration(road_model, tmp_path):
    chips = _road_chips(tmp_path / "chips")
    out = tmp_path / "int8.onnx"
    result = invoke("export", road_model, "-o", out, "--quantize", "int8", "--calibration", chips, "-q")
    assert result.exit_code == 0, result.output
    assert "int8 gate passed: validation road IoU fp32" in result.output
    from geodefect.inference.backends import read_model_recipe

    gate = read_model_recipe(out)["onnx"]["gate"]
    assert read_model_recipe(out)["onnx"]["precision"] == "int8"
    assert gate["fp32"] > 0.9 and gate["drop"] <= 0.01
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "ConvTranspose" not in ops and "QuantizeLinear" in ops  # every upsampling quantizable
    assert "ReduceMax" not in ops and "Exp" not in ops  # the orientation softmax is left to the engine
    assert read_model_recipe(out)["onnx"]["deferred_softmax"] == ["orientation"]


@pytest.mark.parametrize("extra", [(), ("--block-px", "64")])  # one pass; blocks (a timed predictor per unit)
def test_int8_orientation_from_deferred_logits_is_the_softmax_run(road_model, tiny_scene, tmp_path, monkeypatch, extra):
    """The int8 graph gives the orientation logits; infer's files equal those of a predictor that
    takes the softmax itself (in one pass and in blocks, where each unit times its predictor)."""
    import geodefect.sliding.engine as engine
    from geodefect.inference.onnx_runtime import OnnxPredictor

    out = tmp_path / "int8.onnx"
    assert invoke("export", road_model, "-o", out, "--quantize", "int8", "--calibration",
                  _road_chips(tmp_path / "chips"), "-q").exit_code == 0
    decided, defer = [], engine._defer_softmax

    def spy(gates, deferred, params):
        gates, dense = defer(gates, deferred, params)
        decided.append(bool(gates and gates["orientation"].softmax) or "orientation" in dense)
        return gates, dense

    monkeypatch.setattr(engine, "_defer_softmax", spy)
    runs = {}
    for tag in ("deferred", "softmax"):
        if tag == "softmax":
            call = OnnxPredictor.__call__

            def with_softmax(self, batch, call=call):
                got = call(self, batch)
                e = np.exp(got["orientation"] - got["orientation"].max(axis=1, keepdims=True))
                got["orientation"] = e / e.sum(axis=1, keepdims=True)
                return got

            monkeypatch.setattr(OnnxPredictor, "__call__", with_softmax)
            monkeypatch.setattr(OnnxPredictor, "deferred_softmax", (), raising=False)
            monkeypatch.setattr(OnnxPredictor, "__setattr__",
                                lambda self, k, v: object.__setattr__(self, k, () if k == "deferred_softmax" else v))
        runs[tag] = tmp_path / tag
        result = invoke("infer", out, tiny_scene.image, "-o", runs[tag], "-q", "--threads", "1", *extra)
        assert result.exit_code == 0, result.output
        if tag == "deferred":  # every engine run (each block's, through its timed predictor) took the softmax
            assert decided and all(decided)
    for name in ("road_mask.tif", "orientation.tif"):
        assert (runs["deferred"] / name).read_bytes() == (runs["softmax"] / name).read_bytes(), name
    with rasterio.open(runs["deferred"] / "orientation.tif") as ds:
        bins = ds.read(1)
    assert (bins == 1).sum() > 50  # the test model's roads run west-east: bin 1


def test_int8_gate_refuses_broken_calibration(road_model, tmp_path):
    good = _road_chips(tmp_path / "good")
    broken = _road_chips(tmp_path / "broken", train_value=0)  # calibrated on black tiles only
    out = tmp_path / "int8.onnx"
    result = invoke("export", road_model, "-o", out, "--quantize", "int8", "--calibration", broken,
                    "--validation", good, "-q")
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "int8 refused" in line and "fp32 " in line and "int8 " in line and len(line.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
