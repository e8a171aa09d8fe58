"""Score-CAM highlights a planted crack more than the background (with a model that detects dark lines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.ndimage import binary_dilation

from geodefect.errors import InputError
from geodefect.explain import layer_names, score_cam
from geodefect.testing.cracks import make_crack_image


class DarkLineDetector(nn.Module):
    """Fixed weights: 4 oriented 'dark thin line' filters -> ReLU -> global max -> crack logit."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(1, 4, 7, padding=3, bias=False)
        ys, xs = np.mgrid[-3:4, -3:4]
        with torch.no_grad():
            for k, theta in enumerate(np.arange(4) * np.pi / 4):
                dist = np.abs(-np.sin(theta) * xs + np.cos(theta) * ys)
                kernel = np.where(dist < 0.8, -1.0, 0.0)
                kernel -= kernel.mean()
                conv.weight[k, 0] = torch.tensor(kernel / np.abs(kernel).sum())
        self.features = nn.Sequential(conv, nn.ReLU())
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.head.weight[:] = torch.tensor([[-1.0] * 4, [1.0] * 4])
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.features(x.mean(1, keepdim=True)).amax(dim=(2, 3)))


@pytest.mark.parametrize("seed", [1, 3])
def test_scorecam_highlights_planted_crack(seed):
    sample = make_crack_image(height_px=96, width_px=96, has_crack=True, distractors=False, seed=seed)
    x = torch.tensor((sample.image.astype(np.float32) - 160) / 30).permute(2, 0, 1)[None]
    model = DarkLineDetector().eval()
    assert model(x).argmax().item() == 1
    cam = score_cam(model, x, layer="features")
    assert cam.shape == (96, 96) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    crack = binary_dilation(sample.mask > 127, iterations=2)
    assert cam[crack].mean() > 2 * cam[~crack].mean()


def test_scorecam_on_a_segmenter_and_unknown_layer():
    from geodefect.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("rail_vgg_fcn", width_mult=0.125).eval()
    x = torch.randn(1, 1, 48, 32)
    cam = score_cam(model, x, layer="block3", max_maps=8)
    assert cam.shape == (48, 32) and np.isfinite(cam).all()
    assert "block4" in layer_names(model)
    with pytest.raises(InputError, match="valid layers: .*block1"):
        score_cam(model, x, layer="conv99")
