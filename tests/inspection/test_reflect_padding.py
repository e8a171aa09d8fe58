"""Images smaller than the window are padded by reflection (training chips and inference), not grey."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from geodefect.datasets.inspection import _pad_to
from geodefect.errors import InputError
from geodefect.inference.inspection import InspectionInferConfig, Stage2
from geodefect.models.checkpoint import save_package
from geodefect.models.registry import build_model
from geodefect.sliding import ArrayReader, SlidingParams, predict_array
from geodefect.tasks import get_task
from geodefect.tasks.base import TaskData


def edge_detector(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A 'crack' wherever the image changes from one pixel to the next: what a model sees at a flat border."""
    grad = np.abs(np.diff(batch, axis=-1, append=batch[..., -1:])) + np.abs(np.diff(batch, axis=-2, append=batch[..., -1:, :]))
    return {"out": (grad.sum(1, keepdims=True) > 1).astype(np.float32)}


def test_reflect_reader_mirrors_the_image_at_its_edges():
    img = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    got = ArrayReader(img, pad="reflect").read(Window(0, 0, 16, 12))
    assert got.shape == (2, 12, 16)
    assert np.array_equal(got, np.pad(img, ((0, 0), (0, 7), (0, 9)), mode="reflect"))
    assert np.array_equal(ArrayReader(img, pad="reflect").read(Window(1, 2, 3, 2)), img[:, 2:4, 1:4])
    with pytest.raises(InputError, match="pad"):
        ArrayReader(img, pad="wrap")


def test_small_uniform_image_gets_no_false_defects_at_the_padded_border():
    image = np.full((3, 40, 50), 200, np.uint8)  # smaller than the 64-px window, no defect anywhere
    params = SlidingParams(size_px=64, stride_px=48)
    grey = predict_array(image, edge_detector, params, fill=120.0)["out"][0]
    assert grey.shape == (40, 50) and grey[-1].max() > 0.5  # the flat-grey border reads as a crack
    mirrored = predict_array(image, edge_detector, params, fill=120.0, pad="reflect")["out"][0]
    assert mirrored.max() == 0


def test_segmenter_inference_pads_by_reflection(tmp_path):
    spec = {"name": "rail_vgg_fcn", "kwargs": {"in_channels": 3, "width_mult": 0.125}}
    meta = {"chip_shape_px": [64, 64], "channels": 3, "mean": [120.0] * 3, "std": [40.0] * 3,
            "classes": ["background", "crack"], "label": {}, "windows": {}}
    recipe = get_task("crack_segment").recipe(None, meta, spec, TaskData([], []), None)
    save_package(tmp_path / "m.pt", model=build_model(spec["name"], **spec["kwargs"]), recipe=recipe)
    stage2 = Stage2(tmp_path / "m.pt", InspectionInferConfig(device="cpu"))
    stage2.predictor = lambda batch: edge_detector(batch)  # the model's view of the padded window
    prob = stage2.probability(np.full((3, 40, 50), 200, np.uint8))
    assert prob.shape == (40, 50) and prob.max() == 0


def test_training_chips_are_padded_by_reflection():
    chip = np.arange(3 * 4, dtype=np.float32).reshape(1, 3, 4)
    padded = _pad_to(chip, (6, 8))
    assert np.array_equal(padded, np.pad(chip, ((0, 0), (0, 3), (0, 4)), mode="reflect"))
    mask = np.zeros((1, 3, 4), np.float32)
    mask[0, :, 1] = 1  # a vertical crack stays a crack line in the mirrored part, never a border
    padded = _pad_to(mask, (6, 8))[0]
    assert np.array_equal(padded[:, 1], np.ones(6)) and padded.sum(1).tolist() == [3.0] * 6  # columns 1, 5, 7
