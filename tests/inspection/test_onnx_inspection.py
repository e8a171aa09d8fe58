"""Inspection models as .onnx: the two-stage crack pipeline and rail strips give the .pt's
outputs, and `evaluate --model CLASSIFIER.onnx` scores like the .pt (random tiny models)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from geodefect.cli.main import cli  # noqa: E402
from geodefect.models.checkpoint import save_package  # noqa: E402
from geodefect.models.registry import build_model  # noqa: E402

NORM3 = {"mean": [120.0] * 3, "std": [40.0] * 3}


def _run(*args):
    result = CliRunner().invoke(cli, [*map(str, args), "-q"])
    assert result.exit_code == 0, result.output
    return result.output


def _pair(root, name, kwargs, recipe):
    """A random model as .pt and its export as .onnx."""
    import torch

    torch.manual_seed(0)
    pt = root / f"{name}.pt"
    save_package(pt, model=build_model(name, **kwargs).eval(), recipe={**recipe, "model": {"name": name, "kwargs": kwargs}})
    _run("export", pt, "-o", root / f"{name}.onnx")
    return pt, root / f"{name}.onnx"


@pytest.fixture(scope="module")
def cracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("cracks")
    _run("synth", "cracks", root / "data", "--n-images", "4", "--height-px", "80", "--width-px", "96")
    seg = _pair(root, "crack_deeplabv3plus", {"encoder": "resnet18", "decoder_channels": 16},
                {"task": "crack_segment", "bands": [1, 2, 3], "normalization": NORM3, "size_px": 64, "chip_shape_px": [64, 64], "classes": ["background", "crack"]})
    cls = _pair(root, "crack_densenet169", {"variant": "tiny"},
                {"task": "crack_classify", "bands": [1, 2, 3], "normalization": NORM3, "input_px": 64})
    return root, seg, cls


def _read_outputs(out):
    with (out / "predictions.csv").open() as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    probs = {p.name: np.asarray(Image.open(p), np.int16) for p in sorted((out / "prob").glob("*.png"))}
    return rows, probs


def test_two_stage_cracks_onnx_equals_pt(cracks):
    root, (seg_pt, seg_onnx), (cls_pt, cls_onnx) = cracks
    results = {}
    for tag, seg, cls in (("pt", seg_pt, cls_pt), ("onnx", seg_onnx, cls_onnx)):
        out = root / f"out_{tag}"
        _run("infer", seg, root / "data" / "images", "--classifier", cls, "--threshold", "0", "--stride-px", "48", "-o", out)
        results[tag] = _read_outputs(out)
    (rows_pt, probs_pt), (rows_onnx, probs_onnx) = results["pt"], results["onnx"]
    assert rows_pt.keys() == rows_onnx.keys() and len(probs_pt) == 4
    for k in rows_pt:
        assert float(rows_onnx[k]["stage1_prob"]) == pytest.approx(float(rows_pt[k]["stage1_prob"]), abs=1e-3)
    for k in probs_pt:
        assert np.abs(probs_pt[k] - probs_onnx[k]).max() <= 1


def test_evaluate_stage1_accepts_onnx(cracks):
    root, _, (cls_pt, cls_onnx) = cracks
    data = root / "data"
    scores = {}
    for tag, model in (("pt", cls_pt), ("onnx", cls_onnx)):
        _run("evaluate", "--model", model, "--images", data / "images", "--truth", data / "masks",
             "--json", root / f"{tag}.json")
        scores[tag] = json.loads((root / f"{tag}.json").read_text())["overall"]
    assert scores["onnx"] == scores["pt"]


def test_rail_onnx_equals_pt(tmp_path):
    _run("synth", "rail", tmp_path / "data", "--n-images", "2")
    pt, onnx = _pair(tmp_path, "rail_vgg_fcn", {"width_mult": 0.125},
                     {"task": "rail_segment", "bands": [1], "normalization": {"mean": [110.0], "std": [45.0]}, "size_px": 64, "chip_shape_px": [64, 64], "classes": ["background", "defect"]})
    probs = {}
    for tag, model in (("pt", pt), ("onnx", onnx)):
        _run("infer", model, tmp_path / "data" / "images", "-o", tmp_path / f"out_{tag}")
        probs[tag] = _read_outputs(tmp_path / f"out_{tag}")[1]
    probs_pt, probs_onnx = probs["pt"], probs["onnx"]
    assert probs_pt.keys() == probs_onnx.keys() and probs_pt
    for k in probs_pt:
        assert np.abs(probs_pt[k] - probs_onnx[k]).max() <= 1
