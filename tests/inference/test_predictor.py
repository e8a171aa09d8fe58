"""TorchPredictor: normalisation, activations per output type, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from road_infer_helpers import N_ORIENT, build_dark_roads
from torch import nn

from geodefect.errors import ConfigError, InputError
from geodefect.inference.predictor import TorchPredictor, resolve_device
from geodefect.sliding import SlidingParams, predict_array


class Passthrough(nn.Module):
    def forward(self, x):
        return x


class TwoHeads(nn.Module):
    def forward(self, x):
        return {"seg": x[:, :1] * 10, "cls": torch.cat([x, -x], dim=1)}


def test_normalisation_is_applied_before_the_model():
    pred = TorchPredictor(Passthrough(), mean=[10.0, 20.0], std=[2.0, 4.0], device="cpu", activations={"out": "none"})
    batch = np.full((2, 2, 5, 7), 30.0, np.float32)
    out = pred(batch)["out"]
    assert out.shape == (2, 2, 5, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], 10.0)
    np.testing.assert_allclose(out[:, 1], 2.5)


def test_road_output_gives_sigmoid_and_softmax_probabilities():
    pred = TorchPredictor(build_dark_roads(), mean=[0.0] * 3, std=[255.0] * 3, device="cpu")
    batch = np.random.default_rng(0).integers(0, 255, (3, 3, 16, 16)).astype(np.float32)
    out = pred(batch)
    assert set(out) == {"road", "orientation"}
    assert out["road"].shape == (3, 1, 16, 16) and out["orientation"].shape == (3, N_ORIENT, 16, 16)
    assert 0 <= out["road"].min() and out["road"].max() <= 1
    np.testing.assert_allclose(out["orientation"].sum(axis=1), 1.0, atol=1e-5)


def test_dict_and_tensor_outputs_default_activations():
    pred = TorchPredictor(TwoHeads(), mean=[0.0, 0.0], std=[1.0, 1.0], device="cpu")
    out = pred(np.ones((1, 2, 4, 4), np.float32))
    np.testing.assert_allclose(out["seg"], 1 / (1 + np.exp(-10.0)), rtol=1e-5)  # 1 channel: sigmoid
    np.testing.assert_allclose(out["cls"].sum(axis=1), 1.0, atol=1e-6)  # 4 channels: softmax
    single = TorchPredictor(Passthrough(), mean=[0.0, 0.0], std=[1.0, 1.0], device="cpu", output_name="logits")
    assert set(single(np.zeros((1, 2, 3, 3), np.float32))) == {"logits"}


def test_channels_last_does_not_change_results():
    model = build_dark_roads()
    batch = np.random.default_rng(1).integers(0, 255, (2, 3, 24, 24)).astype(np.float32)
    a = TorchPredictor(model, mean=[0.0] * 3, std=[255.0] * 3, device="cpu", channels_last=True)(batch)
    b = TorchPredictor(model, mean=[0.0] * 3, std=[255.0] * 3, device="cpu", channels_last=False)(batch)
    np.testing.assert_allclose(a["road"], b["road"], atol=1e-6)


def test_predictor_runs_inside_the_sliding_engine():
    pred = TorchPredictor(build_dark_roads(), mean=[0.0] * 3, std=[255.0] * 3, device="cpu")
    img = np.full((3, 50, 70), 180, np.uint8)
    img[:, 20:26, :] = 30
    out = predict_array(img, pred, SlidingParams(size_px=32, stride_px=24))
    road = out["road"][0] > 0.5
    assert road[20:26].all() and not road[:18].any() and not road[28:].any()


def test_bad_inputs_raise_input_error():
    pred = TorchPredictor(Passthrough(), mean=[0.0] * 3, std=[1.0] * 3, device="cpu")
    with pytest.raises(InputError, match="expects"):
        pred(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(InputError, match="std"):
        TorchPredictor(Passthrough(), mean=[0.0], std=[0.0], device="cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "cuda")


def test_from_package_reads_normalisation(road_model):
    pred, recipe = TorchPredictor.from_package(road_model, device="cpu")
    assert recipe["task"] == "roads" and pred.n_channels == 3
    out = pred(np.full((1, 3, 8, 8), 30.0, np.float32))
    assert out["road"].min() > 0.5


def test_road_output_matches_its_own_probabilities_on_channels_last():
    from geodefect.models.outputs import RoadOutput

    class Rand(nn.Module):
        def forward(self, x):
            torch.manual_seed(0)
            orient = torch.randn(x.shape[0], 19, 9, 11).contiguous(memory_format=torch.channels_last)
            return RoadOutput(road=torch.randn(x.shape[0], 1, 9, 11), orientation=orient)

    model = Rand()
    batch = np.zeros((2, 3, 9, 11), np.float32)
    x = torch.zeros(2, 3, 9, 11)
    ref = {k: v.numpy() for k, v in model(x).probabilities().items()}
    out = TorchPredictor(model, mean=[0.0] * 3, std=[1.0] * 3, device="cpu")(batch)
    assert not out["orientation"].flags.c_contiguous  # the NHWC softmax path was taken
    for name in ("road", "orientation"):
        np.testing.assert_allclose(out[name], ref[name], atol=1e-6)
