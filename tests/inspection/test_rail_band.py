"""Rail inference on the railhead band the model was trained on (recipe ``rail_band_px``)."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.chips.images import find_rail_columns
from geodefect.errors import InputError
from geodefect.inference.inspection import InspectionInferConfig, Stage2
from geodefect.models.checkpoint import save_package
from geodefect.models.registry import build_model
from geodefect.tasks import get_task
from geodefect.tasks.base import TaskData
from geodefect.testing.rail import make_rail_image


def make_recipe(task, meta, spec):
    return get_task(task).recipe(None, meta, spec, TaskData([], []), None)


@pytest.fixture(scope="module")
def rail_package(tmp_path_factory):
    """An untrained tiny rail FCN packaged as if trained on 100 x 48 strips cut on the railhead."""
    import torch

    torch.manual_seed(0)
    spec = {"name": "rail_vgg_fcn", "kwargs": {"in_channels": 1, "num_classes": 2, "width_mult": 0.125}}
    meta = {"chip_shape_px": [100, 48], "channels": 1, "mean": [60.0], "std": [40.0],
            "classes": ["background", "defect"], "label": {"source": "coco"},
            "windows": {"task": "rail_segment", "strip_height_px": 100, "strip_width_px": 48}}
    recipe = make_recipe("rail_segment", meta, spec)
    path = tmp_path_factory.mktemp("rail_pkg") / "model.pt"
    save_package(path, model=build_model(spec["name"], **spec["kwargs"]), recipe=recipe)
    return path, recipe


def test_recipe_of_strips_cut_on_the_railhead_carries_the_band():
    meta = {"chip_shape_px": [100, 48], "channels": 1, "mean": [1.0], "std": [1.0], "classes": ["b", "d"],
            "label": {}, "windows": {"strip_width_px": 48}}
    assert make_recipe("rail_segment", meta, {"name": "x"})["rail_band_px"] == 48
    meta["windows"] = {"strip_width_px": None}  # strips were the whole image width
    assert "rail_band_px" not in make_recipe("rail_segment", meta, {"name": "x"})


def test_prediction_covers_only_the_railhead_band(rail_package):
    path, recipe = rail_package
    sample = make_rail_image(height_px=120, width_px=200, rail_width_px=40, n_defects=2, seed=4)
    image = sample.image[None]
    stage2 = Stage2(path, InspectionInferConfig(device="cpu"))
    assert stage2.rail_band_px == recipe["rail_band_px"] == 48
    c0, c1 = stage2.band_columns(image)
    assert (c0, c1) == find_rail_columns(image, width_px=48) and c1 - c0 == 48
    rail_cols = np.flatnonzero(sample.image.mean(axis=0) > sample.image.mean())
    assert c0 <= rail_cols.mean() <= c1  # the band sits on the bright rail
    prob = stage2.probability(image)
    assert prob.shape == sample.image.shape
    assert not prob[:, :c0].any() and not prob[:, c1:].any() and prob[:, c0:c1].min() > 0
    whole = Stage2(path, InspectionInferConfig(device="cpu", rail_band_px=0)).probability(image)
    assert (whole[:, :c0] > 0).all() and (whole[:, c1:] > 0).all()  # 0 = the whole image


def test_invalid_band_width_is_an_input_error(rail_package):
    with pytest.raises(InputError, match="rail_band_px"):
        Stage2(rail_package[0], InspectionInferConfig(device="cpu", rail_band_px=-3))
