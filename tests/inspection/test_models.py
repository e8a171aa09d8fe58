"""Contract tests of the inspection models: shapes (incl. rail strips 100x160, 100x55), backward,
save -> load -> same outputs; the rail FCN's layer structure as Kim et al. describe it."""

from __future__ import annotations

import pytest
import torch

from geodefect.models.checkpoint import load_package, save_package
from geodefect.models.registry import available_models, build_model

CASES = [
    ("crack_densenet169", {"variant": "tiny"}, (2, 3, 48, 40), (2, 2)),
    ("crack_deeplabv3plus", {"encoder": "resnet18", "decoder_channels": 16}, (2, 3, 40, 36), (2, 1, 40, 36)),
    ("rail_vgg_fcn", {"width_mult": 0.125}, (2, 1, 100, 160), (2, 2, 100, 160)),
    ("rail_vgg_fcn", {"width_mult": 0.125}, (2, 1, 100, 55), (2, 2, 100, 55)),
    ("rail_vgg_fcn", {"width_mult": 0.125, "in_channels": 3}, (1, 3, 37, 23), (1, 2, 37, 23)),
    ("rail_vgg_fcn", {"width_mult": 0.125, "batch_norm": True}, (2, 1, 100, 55), (2, 2, 100, 55)),
]


def test_models_are_registered():
    assert {"crack_densenet169", "crack_deeplabv3plus", "rail_vgg_fcn"} <= set(available_models())


@pytest.mark.parametrize("name, kwargs, in_shape, out_shape", CASES)
def test_forward_backward_and_roundtrip(tmp_path, name, kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    x = torch.randn(*in_shape)
    model.train()
    out = model(x)
    assert tuple(out.shape) == out_shape
    out.float().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        before = model(x)
    path = tmp_path / "m.pt"
    save_package(path, model=model, recipe={"task": "rail_segment", "model": {"name": name, "kwargs": kwargs}})
    loaded, recipe = load_package(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), before, atol=1e-6)
    assert recipe["model"]["name"] == name


def test_rail_fcn_has_the_papers_layers():
    model = build_model("rail_vgg_fcn")
    convs = {n: [m for m in getattr(model, n) if isinstance(m, torch.nn.Conv2d)] for n in ("block1", "block2", "block3", "block4")}
    assert [len(v) for v in convs.values()] == [2, 2, 4, 4]
    assert [v[-1].out_channels for v in convs.values()] == [64, 128, 256, 512]
    assert all(c.kernel_size == (3, 3) for v in convs.values() for c in v)
    assert all(isinstance(getattr(model, n)[-1], torch.nn.MaxPool2d) for n in convs)
    for fc in (model.fc6, model.fc7):
        conv, drop = fc[0], fc[2]
        assert conv.out_channels == 1024 and conv.kernel_size == (1, 1) and drop.p == 0.5
    assert model.score.out_channels == 2 and model.score.kernel_size == (1, 1)
    assert model.score_pool3.in_channels == 256 and model.score_pool2.in_channels == 128
    assert [m.stride for m in (model.up2_a, model.up2_b, model.up4)] == [(2, 2), (2, 2), (4, 4)]


def test_rail_fcn_upsampling_starts_bilinear():
    """With zero skip heads, a constant score map upsamples to a constant (bilinear kernels)."""
    model = build_model("rail_vgg_fcn", width_mult=0.125).eval()
    with torch.no_grad():
        up = model.up2_b(torch.ones(1, 2, 6, 6))
    assert torch.allclose(up[..., 1:-1, 1:-1], torch.ones_like(up[..., 1:-1, 1:-1]))


def test_densenet169_is_the_real_one():
    model = build_model("crack_densenet169")
    n_params = sum(p.numel() for p in model.parameters())
    assert 12.0e6 < n_params < 13.0e6  # torchvision densenet169 with a 2-class head: 12.49 M
    assert model.classifier.out_features == 2


def test_bad_kwargs_are_clear():
    from geodefect.errors import InputError

    with pytest.raises(InputError, match="variant"):
        build_model("crack_densenet169", variant="densenet999")
    with pytest.raises(InputError, match="offline"):
        build_model("crack_densenet169", variant="tiny", weights_path="imagenet")
