"""The inference benchmark's model marks the share of the scene it is asked to (benchmarks/bench_infer.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_infer = pytest.importorskip("bench_infer")


@pytest.mark.parametrize("share", [0.078, 1.0])
def test_bench_model_marks_the_requested_road_share(tmp_path, share):
    import torch

    from geodefect.models.checkpoint import load_package

    path = tmp_path / "model.pt"
    bench_infer.make_model(path, encoder="resnet18", window=256, stride=192, road_share=share)
    model, _ = load_package(path)
    scene = bench_infer.scene_rows(np.random.default_rng(5), 0, 512, 512)  # another sample than the calibration's
    with torch.inference_mode():
        p = torch.sigmoid(model((torch.from_numpy(scene.astype(np.float32))[None] - 128.0) / 40.0).road)
    marked = float((p >= 0.5).float().mean())
    assert marked == pytest.approx(share, abs=0.03)


def test_scene_road_share_matches_its_pixels():
    scene = bench_infer.scene_rows(np.random.default_rng(0), 0, 3000, 3000)
    assert float((scene[0] == 40).mean()) == pytest.approx(bench_infer.SCENE_ROAD_SHARE, abs=1e-6)
