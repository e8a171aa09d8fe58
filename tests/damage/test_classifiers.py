"""Contract tests of the registered classifiers: shapes, backward, odd sizes, save -> load -> same outputs."""

from __future__ import annotations

import pytest
import torch

from geodefect.errors import InputError
from geodefect.models.checkpoint import load_package, save_package
from geodefect.models.classifiers import ClassifierOutput, backbone_model_name
from geodefect.models.registry import available_models, build_model

TINY = {
    "classifier_resnet18": {},
    "classifier_vgg16": {"width": 0.125},
    "classifier_mobilenet_v2": {"width": 0.25},
    "classifier_inception_v3": {},
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "classifier_inception_v3" else n for n in sorted(TINY)]
)  # Inception-V3 (22M parameters) takes ~2 s alone, far more on a loaded CI machine: slow mark
def test_classifier_contract(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, n_classes=3, **TINY[name])
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (2, 3) and out.embedding.shape[0] == 2
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())
    model.eval()
    with torch.no_grad():
        odd = model(torch.randn(1, 3, 45, 51)).logits  # odd sizes work (inception upsamples to 75)
        assert odd.shape == (1, 3)
        ref = model(x).logits
    save_package(tmp_path / "m.pt", model=model, recipe={"task": "damage_classify", "model": {"name": name, "kwargs": {"n_classes": 3, **TINY[name]}}})
    loaded, recipe = load_package(tmp_path / "m.pt")
    assert recipe["task"] == "damage_classify"
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, ref, atol=1e-5)


def test_panorama_models_contract(tmp_path):
    stage2 = build_model("panorama_stack_cnn", in_channels=5, width=4)
    out = stage2(torch.randn(2, 5, 17, 63))
    assert out.logits.shape == (2, 1)
    assert set(out.probabilities()) == {"probs"}
    kwargs = {"stage1": {"name": "classifier_mobilenet_v2", "kwargs": {"n_classes": 5, "width": 0.25}},
              "stage2": {"name": "panorama_stack_cnn", "kwargs": {"in_channels": 5, "width": 4}}}
    model = build_model("panorama_stacked", **kwargs).eval()
    save_package(tmp_path / "p.pt", model=model, recipe={"task": "panorama_stack", "model": {"name": "panorama_stacked", "kwargs": kwargs}})
    loaded, _ = load_package(tmp_path / "p.pt")
    x = torch.randn(1, 5, 16, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits, atol=1e-6)
        assert loaded.stage1(torch.randn(1, 3, 32, 32)).logits.shape == (1, 5)


def test_registry_and_errors():
    names = available_models()
    for name in TINY:
        assert name in names
    assert backbone_model_name("vgg16") == "classifier_vgg16"
    with pytest.raises(InputError, match="resnet18"):
        backbone_model_name("resnet50")
    with pytest.raises(InputError, match="n_classes"):
        build_model("classifier_resnet18", n_classes=0)


def test_small_inputs_are_upsampled_to_the_minimum_size():
    from torch import nn

    from geodefect.models.classifiers import PatchClassifier

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return x.mean(dim=(2, 3), keepdim=True)

    model = PatchClassifier(Probe(), 3, 2, min_size_px=75)
    assert model(torch.randn(1, 3, 64, 96)).logits.shape == (1, 2)
    assert seen == [(75, 112)]  # shorter side to 75, aspect kept
    model(torch.randn(1, 3, 80, 80))
    assert seen[-1] == (80, 80)
