"""Contract every registered road model passes (smp's BaseModelTester idea).

Output names and shapes for odd input sizes, backward, save_package -> load_package ->
identical outputs. Parametrised over the registry's road models (tiny settings).
"""

from __future__ import annotations

import pytest
import torch

from geodefect.models.checkpoint import load_package, save_package
from geodefect.models.outputs import RoadOutput
from geodefect.models.registry import available_models, build_model

#: tiny kwargs per road model (a new road model must add itself here to be tested)
TINY = {
    "road_linknet": {"encoder": "resnet18", "n_classes": 7},
    "road_hourglass": {"width": 8, "n_classes": 7},
}

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and two threads crawl when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



def test_every_road_model_is_covered():
    road_models = [m for m in available_models() if m.startswith("road_")]
    assert sorted(road_models) == sorted(TINY)


@pytest.fixture(scope="module", params=sorted(TINY))
def model_spec(request):
    torch.manual_seed(0)
    return request.param, TINY[request.param], build_model(request.param, **TINY[request.param])


@pytest.mark.parametrize("hw", [(67, 45), (32, 32)])
def test_output_names_and_shapes(model_spec, hw):
    _, kwargs, model = model_spec
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *hw))
    assert isinstance(out, RoadOutput)
    assert out.road.shape == (2, 1, *hw)
    assert out.orientation.shape == (2, kwargs["n_classes"], *hw)
    assert out.aux == ()
    assert torch.isfinite(out.road).all() and torch.isfinite(out.orientation).all()


def test_backward_reaches_every_parameter(model_spec):
    _, _, model = model_spec
    model.train()
    out = model(torch.rand(2, 3, 45, 67))
    loss = sum(o.road.mean() + o.orientation.mean() for o in out.all_outputs())
    model.zero_grad()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    for aux in out.aux:
        assert aux.road.shape == out.road.shape and aux.orientation.shape == out.orientation.shape


def test_save_load_package_gives_identical_outputs(model_spec, tmp_path):
    name, kwargs, model = model_spec
    model.eval()
    recipe = {"task": "roads", "model": {"name": name, "kwargs": kwargs}}
    save_package(tmp_path / "m.pt", model=model, recipe=recipe)
    loaded, loaded_recipe = load_package(tmp_path / "m.pt")
    assert loaded_recipe["model"] == recipe["model"]
    x = torch.rand(1, 3, 67, 45)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.road, b.road) and torch.equal(a.orientation, b.orientation)


def test_packages_load_without_random_init_and_fall_back_when_meta_fails(model_spec, tmp_path, monkeypatch):
    """load_package builds on the meta device and assigns the weights; if that fails it builds as usual."""
    from geodefect.models import checkpoint
    from geodefect.models.registry import build_model

    name, kwargs, model = model_spec
    sd = model.state_dict()
    fast = checkpoint._build_on_meta(build_model, name, kwargs, sd)
    assert fast is not None
    assert all(torch.equal(t, sd[k]) for k, t in fast.state_dict().items())
    assert not any(t.is_meta for t in (*fast.parameters(), *fast.buffers()))
    # weights that do not fit: no meta model, and load_package reports the package as inconsistent
    bad = {k: v for k, v in sd.items() if not k.endswith("running_var")}
    assert checkpoint._build_on_meta(build_model, name, kwargs, bad) is None
    monkeypatch.setattr(checkpoint, "_build_on_meta", lambda *a: None)  # the plain path still loads
    save_package(tmp_path / "m.pt", model=model, recipe={"task": "roads", "model": {"name": name, "kwargs": kwargs}})
    loaded, _ = load_package(tmp_path / "m.pt")
    assert all(torch.equal(t, sd[k]) for k, t in loaded.state_dict().items())
