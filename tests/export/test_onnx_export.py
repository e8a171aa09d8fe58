"""Export contract: every exportable registered model -> .onnx -> ONNX Runtime gives torch's
probabilities (within 1e-4); metadata round-trips; bad files and missing extras are clear errors.

Parametrised over the model registry (tiny settings): a new model must say here which task it
exports under, or why it does not.
"""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from geodefect.errors import InputError, MissingExtraError, ModelPackageError  # noqa: E402
from geodefect.models.checkpoint import save_package  # noqa: E402
from geodefect.models.registry import available_models, build_model  # noqa: E402

_ROAD = {"bands": [1, 2, 3], "normalization": {"mean": [90.0, 95.0, 100.0], "std": [60.0, 55.0, 50.0]},
         "size_px": 64, "stride_px": 48, "pixel_size_m": 0.5, "orientation": {"bin_deg": 20, "n_classes": 7}}
#: registry name -> (task, tiny kwargs, recipe extras) for exportable models, or a reason string
EXPORTABLE = {
    "road_linknet": ("roads", {"encoder": "resnet18", "n_classes": 7}, _ROAD),
    "road_hourglass": ("roads", {"width": 8, "n_classes": 7}, _ROAD),
    "crack_deeplabv3plus": ("crack_segment", {"encoder": "resnet18", "decoder_channels": 16},
                            {"bands": [1, 2, 3], "normalization": {"mean": [120.0] * 3, "std": [40.0] * 3}, "size_px": 60,
                             "chip_shape_px": [60, 60], "classes": ["background", "crack"]}),
    "crack_densenet169": ("crack_classify", {"variant": "tiny"},
                          {"bands": [1, 2, 3], "normalization": {"mean": [120.0] * 3, "std": [40.0] * 3}, "input_px": 64}),
    "rail_vgg_fcn": ("rail_segment", {"width_mult": 0.125},
                     {"bands": [1], "normalization": {"mean": [110.0], "std": [45.0]}, "size_px": 64,
                      "chip_shape_px": [64, 64], "classes": ["background", "defect"]}),
    "crack_unet": ("crack_segment", {"encoder": "tu-efficientnet_lite0", "decoder_channels": 4,
                                     "input_mean": [120.0] * 3, "input_std": [40.0] * 3},
                   {"bands": [1, 2, 3], "normalization": {"mean": [120.0] * 3, "std": [40.0] * 3}, "size_px": 64,
                    "chip_shape_px": [64, 64], "classes": ["background", "crack"]}),
    "defect_fpn": ("rail_segment", {"encoder": "tu-efficientnet_lite0", "in_channels": 1, "decoder_channels": 32,
                                    "input_mean": [110.0], "input_std": [45.0]},
                   {"bands": [1], "normalization": {"mean": [110.0], "std": [45.0]}, "size_px": 64,
                    "chip_shape_px": [64, 64], "classes": ["background", "defect"]}),
}
NOT_EXPORTABLE = {
    "classifier_inception_v3": "damage_classify: patch classifier run by damage inference, not the predictor",
    "classifier_mobilenet_v2": "damage_classify",
    "classifier_resnet18": "damage_classify",
    "classifier_vgg16": "damage_classify",
    "classifier_efficientnet_lite0": "damage_classify",
    "classifier_efficientnet_lite1": "damage_classify",
    "classifier_efficientnet_lite2": "damage_classify",
    "panorama_stack_cnn": "panorama_stack: two-stage panorama pipeline",
    "panorama_stacked": "panorama_stack",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _package(tmp_path, name):
    import torch

    task, kwargs, extra = EXPORTABLE[name]
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    path = tmp_path / f"{name}.pt"
    save_package(path, model=model.eval(), recipe={"task": task, "model": {"name": name, "kwargs": kwargs}, **extra})
    return path


def test_every_registered_model_is_covered():
    registered = {m for m in available_models() if not m.startswith("_")}
    assert registered == set(EXPORTABLE) | set(NOT_EXPORTABLE)


@pytest.mark.parametrize("name", sorted(EXPORTABLE))
def test_export_matches_torch(tmp_path, name):
    from geodefect.inference.backends import load_predictor
    from geodefect.workflows.export import export

    pt = _package(tmp_path, name)
    summary = export(pt, tmp_path / "m.onnx")
    assert not list(tmp_path.glob("*.onnx.data"))  # weights embedded: one file
    torch_pred = load_predictor(pt, device="cpu")
    onnx_pred = load_predictor(tmp_path / "m.onnx", device="cpu", threads=1)
    size = summary["tile_px"]
    batch = np.random.default_rng(1).integers(0, 256, (3, torch_pred.n_channels, size, size)).astype(np.float32)
    want, got = torch_pred(batch), onnx_pred(batch)  # batch 3 though exported with 2: dynamic batch
    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape
        np.testing.assert_allclose(got[key], want[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(n for n in EXPORTABLE if n in ("road_linknet", "road_hourglass", "rail_vgg_fcn")))
def test_subpixel_graph_matches_torch_without_conv_transpose(tmp_path, name):
    """The graph the int8 quantizer gets: no ConvTranspose left, the same probabilities."""
    import onnx

    from geodefect.export.onnx_export import export_onnx
    from geodefect.inference.backends import load_predictor
    from geodefect.models.checkpoint import load_package

    pt = _package(tmp_path, name)
    model, recipe = load_package(pt)
    export_onnx(model, recipe, tmp_path / "sp.onnx", subpixel=True)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "sp.onnx")).graph.node}
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops
    torch_pred = load_predictor(pt, device="cpu")
    onnx_pred = load_predictor(tmp_path / "sp.onnx", device="cpu", threads=1)
    size = recipe["size_px"]
    batch = np.random.default_rng(2).integers(0, 256, (2, torch_pred.n_channels, size, size)).astype(np.float32)
    want, got = torch_pred(batch), onnx_pred(batch)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-4, rtol=0)


def test_metadata_round_trips(tmp_path):
    import onnx

    from geodefect.inference.backends import read_model_recipe
    from geodefect.models.checkpoint import read_recipe
    from geodefect.workflows.export import export

    pt = _package(tmp_path, "road_linknet")
    export(pt, tmp_path / "m.onnx")
    recipe = read_model_recipe(tmp_path / "m.onnx")
    original = read_recipe(pt)
    assert {k: v for k, v in recipe.items() if k != "onnx"} == json.loads(json.dumps(original))
    assert recipe["onnx"]["tile_px"] == 64 and recipe["onnx"]["precision"] == "fp32"
    model = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["model_type"] == "Segmentor"
    assert meta["tiles_size"] == 64 and meta["tiles_overlap"] == 25  # stride 48 of 64
    assert meta["resolution"] == 50.0  # cm per pixel
    assert meta["class_names"][0] == {"0": "road"}
    assert [o.name for o in model.graph.output] == ["road", "orientation"]
    shape = model.graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param and [d.dim_value for d in shape[1:]] == [3, 64, 64]


def test_metadata_reads_the_same_without_the_onnx_package(tmp_path, monkeypatch):
    """The metadata come from the protobuf (onnx) where installed, else from an ORT session: the same."""
    import sys

    from geodefect.inference.onnx_runtime import read_onnx_metadata
    from geodefect.workflows.export import export

    export(_package(tmp_path, "rail_vgg_fcn"), tmp_path / "m.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with_onnx = read_onnx_metadata(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails
    assert read_onnx_metadata(tmp_path / "m.onnx") == with_onnx and "geodefect_recipe" in with_onnx
    with pytest.raises(ModelPackageError, match="not a readable ONNX"):
        read_onnx_metadata(tmp_path / "junk.onnx")


def test_damage_classifier_is_refused(tmp_path):
    from geodefect.workflows.export import export

    save_package(tmp_path / "d.pt", model=build_model("classifier_mobilenet_v2", width=0.25),
                 recipe={"task": "damage_classify", "model": {"name": "classifier_mobilenet_v2", "kwargs": {"width": 0.25}}})
    with pytest.raises(InputError, match="damage_classify"):
        export(tmp_path / "d.pt", tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()


def test_foreign_onnx_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from geodefect.inference.backends import read_model_recipe

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(ModelPackageError, match="geodefect_recipe.*geodefect export"):
        read_model_recipe(tmp_path / "other.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelPackageError, match="not a readable ONNX"):
        read_model_recipe(tmp_path / "junk.onnx")


def test_backend_must_fit_the_file(tmp_path):
    from geodefect.inference.backends import load_predictor

    pt = _package(tmp_path, "rail_vgg_fcn")
    with pytest.raises(InputError, match="geodefect export"):
        load_predictor(pt, backend="onnxruntime")


def _hide(monkeypatch, *names):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_missing_extra_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from geodefect.cli.main import cli

    pt = _package(tmp_path, "rail_vgg_fcn")
    (tmp_path / "m.onnx").write_bytes(b"x")
    _hide(monkeypatch, "onnxruntime", "onnxscript")
    with pytest.raises(MissingExtraError, match=r"pip install 'geodefect\[onnx\]'"):
        from geodefect.inference.backends import read_model_recipe

        read_model_recipe(tmp_path / "m.onnx")
    result = CliRunner().invoke(cli, ["export", str(pt), "-o", str(tmp_path / "n.onnx")])
    assert result.exit_code == 1
    assert "geodefect[onnx]" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "n.onnx").exists()
