"""Chips for int8 calibration and the quality gate's task metric, from a chip folder.

* Road chip folders (``geodefect chip`` on rasters: ``meta.json`` task ``roads``, ``index.gpkg``)
  give uint8 images and road masks; the metric is the road IoU at the recipe's threshold.
* Inspection chip folders (``index.csv``; tasks crack_segment / rail_segment / crack_classify)
  give images and masks or labels; the metric is the defect IoU or the crack accuracy.

Every image goes through the same sliding engine as ``geodefect infer`` (windows of the
model's tile, no overlap), so the gate scores what inference will produce.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from geodefect.errors import InputError
from geodefect.models.checkpoint import model_kind


def iter_chips(chips_dir: str | Path, task: str, *, split: str | None, limit: int | None = None,
               kind: str = "segment") -> Iterator[tuple[np.ndarray, np.ndarray | int]]:
    """``(image (C, H, W) uint8, target)`` per chip of ``split`` (None = every chip).

    ``target`` is a ``(H, W) bool`` mask (segmenters) or an ``int`` label (classifiers).
    """
    from geodefect.chips.meta import read_chip_meta

    meta = read_chip_meta(chips_dir)
    chip_task = meta.get("task")
    if chip_task != task:
        raise InputError(f"chip folder {str(chips_dir)!r} holds {chip_task!r} chips but the model is {task!r}; "
                         "give chips of the model's task")
    rows = _road_rows(chips_dir, split) if kind == "road" else _inspection_rows(chips_dir, split)
    if not rows:
        raise InputError(f"chip folder {str(chips_dir)!r} has no {split or 'any'} chips; "
                         "give a folder written by `geodefect chip` with a validation split")
    reader = _read_road if kind == "road" else _read_inspection
    for row in rows[:limit]:
        yield reader(Path(chips_dir), row, kind)


def _road_rows(chips_dir, split) -> list[tuple]:
    from geodefect.datasets.roads import read_chip_index

    df = read_chip_index(chips_dir)
    if split is not None:
        df = df[df["split"] == split]
    return list(zip(df["image"], df["label"], strict=True))


def _read_road(root: Path, row: tuple, kind: str):
    import rasterio

    with rasterio.open(root / row[0]) as src:
        image = src.read()
    with rasterio.open(root / row[1]) as src:
        road = src.read(1) > 0
    return image, road


def _inspection_rows(chips_dir, split) -> list[dict]:
    from geodefect.chips.images import read_index

    return [r for r in read_index(chips_dir) if split is None or r["split"] == split]


def _read_inspection(root: Path, row: dict, kind: str):
    from geodefect.chips.images import read_image_chw

    image = read_image_chw(root / row["image"])
    if kind == "classify":
        return image, int(row["label"])
    return image, read_image_chw(root / row["mask"])[0] > 127


def model_input(image: np.ndarray, recipe: dict) -> np.ndarray:
    """A chip as the exported graph sees one tile: ``(C, S, S)`` (resized for classifiers,
    cropped or padded with the band means for segmenters)."""
    from geodefect.chips.images import resize_chip

    size = int(recipe["onnx"]["tile_px"])
    if model_kind(recipe) == "classify":
        return resize_chip(image, size)
    fill = np.asarray((recipe.get("normalization") or {}).get("mean") or [0.0] * image.shape[0], np.float32)
    out = np.broadcast_to(fill[:, None, None], (image.shape[0], size, size)).astype(np.float32)
    h, w = min(size, image.shape[1]), min(size, image.shape[2])
    out[:, :h, :w] = image[:, :h, :w]
    return out


def score(predictor, chips_dir: str | Path, recipe: dict, *, split: str = "val", limit: int | None = None) -> float:
    """The task metric of ``predictor`` on the chips: IoU (segmenters) or accuracy (classifiers)."""
    kind = model_kind(recipe)
    chips = iter_chips(chips_dir, recipe["task"], split=split, limit=limit, kind=kind)
    if kind == "classify":
        hits = [int(predictor(model_input(img, recipe)[None].astype(np.float32))["out"][0].argmax() == lab)
                for img, lab in chips]
        return float(np.mean(hits))
    inter = union = 0
    for image, mask in chips:
        pred = predicted_mask(predictor, image, recipe)
        inter += int(np.count_nonzero(pred & mask))
        union += int(np.count_nonzero(pred | mask))
    return inter / union if union else 1.0


def predicted_mask(predictor, image: np.ndarray, recipe: dict) -> np.ndarray:
    """``(H, W) bool`` road / defect mask of one chip through the sliding engine."""
    from geodefect.sliding import SlidingParams, predict_array

    size = int(recipe["onnx"]["tile_px"])
    params = SlidingParams(size_px=size, stride_px=size, batch_size=8, blend="mean")
    fill = float(np.mean((recipe.get("normalization") or {}).get("mean") or [0.0]))
    probs = predict_array(image, predictor, params, fill=fill)
    if model_kind(recipe) == "road":
        return probs["road"][0] > float(recipe.get("road_threshold", 0.5))
    out = probs["out"]
    return (out[0] if out.shape[0] == 1 else out[1]) > 0.5
