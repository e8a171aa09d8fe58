"""backends.load_predictor: backend choice, the bf16 gate on the CPU's capability."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.errors import InputError
from geodefect.models.checkpoint import save_package
from geodefect.models.registry import build_model


@pytest.fixture
def rail_pt(tmp_path):
    import torch

    torch.manual_seed(0)
    kwargs = {"width_mult": 0.125}
    path = tmp_path / "rail.pt"
    save_package(path, model=build_model("rail_vgg_fcn", **kwargs).eval(),
                 recipe={"task": "rail_segment", "model": {"name": "rail_vgg_fcn", "kwargs": kwargs}, "bands": [1],
                         "normalization": {"mean": [110.0], "std": [45.0]}, "size_px": 64})
    return path


def test_bf16_is_refused_without_bf16_hardware(rail_pt, monkeypatch):
    import geodefect.inference.backends as backends

    monkeypatch.setattr(backends, "cpu_bf16_supported", lambda: False)
    with pytest.raises(InputError, match="bf16 instructions"):
        backends.load_predictor(rail_pt, backend="torch-bf16", device="cpu")


def test_bf16_follows_fp32_where_supported(rail_pt):
    from geodefect.inference.backends import cpu_bf16_supported, load_predictor

    if not cpu_bf16_supported():
        pytest.skip("this CPU has no native bf16")
    fp32 = load_predictor(rail_pt, device="cpu", threads=1)
    bf16 = load_predictor(rail_pt, backend="torch-bf16", device="cpu", threads=1)
    assert bf16.backend == "torch-bf16" and fp32.backend == "torch"
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 64, 64)).astype(np.float32)
    a, b = fp32(x)["out"], bf16(x)["out"]
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.abs(a - b).max() < 2e-2


def test_unknown_backend_lists_the_valid_ones(rail_pt):
    from geodefect.inference.backends import load_predictor

    with pytest.raises(InputError, match="auto, torch, onnxruntime, torch-bf16"):
        load_predictor(rail_pt, backend="tensorrt")
