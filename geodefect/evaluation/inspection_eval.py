"""Evaluation and Score-CAM explanation steps of the inspection workflows (files in, numbers out)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, OutputExistsError


def _pred_folder(pred) -> Path:
    """The mask folder of a prediction: ``PRED/masks`` for an infer output folder, else ``PRED``."""
    p = Path(pred)
    return p / "masks" if (p / "masks").is_dir() else p


def _truth_items(truth, coco, coco_category) -> dict[str, tuple]:
    """stem -> (loader of the (H, W) bool truth, boxes or None, (H, W))."""
    from geodefect.labels.defects import boxes_to_mask, image_size, list_images, read_mask

    if coco:
        from geodefect.io.coco import read_coco

        data = read_coco(coco)
        by_image = data.boxes_by_image(list(coco_category) if coco_category else None)
        out = {}
        for img in data.images.values():
            boxes = [a.bbox for a in by_image[img.id]]
            out[Path(img.file_name).stem] = (
                lambda b=boxes, h=img.height, w=img.width: boxes_to_mask(b, height_px=h, width_px=w),
                boxes, (img.height, img.width))
        return out
    if truth is None:
        raise InputError("give the truth: --truth MASKS_DIR or --coco FILE.json")
    return {p.stem: (lambda p=p: read_mask(p), None, image_size(p)) for p in list_images(truth, what="truth mask folder")}


def evaluate_masks(pred, truth=None, *, coco=None, coco_category=None) -> dict:
    """Compare predicted masks (0/255 PNGs by stem) with truth masks or COCO boxes.

    Every truth image needs a prediction (missing ones are named in the error); predictions
    without truth are ignored. Returns ``{"n_images", "overall", "mean", "per_image",
    "boxes"?}`` (see :class:`geodefect.evaluation.inspection.MaskEvaluation`).
    """
    from geodefect.evaluation.inspection import MaskEvaluation
    from geodefect.labels.defects import list_images, read_mask

    preds = {p.stem: p for p in list_images(_pred_folder(pred), what="prediction folder")}
    items = _truth_items(truth, coco, coco_category)
    missing = sorted(set(items) - set(preds))
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise InputError(f"no predicted mask for {len(missing)} truth images: {shown}; run `geodefect infer` on all of them")
    ev = MaskEvaluation()
    for stem in sorted(items):
        load, boxes, shape = items[stem]
        mask = read_mask(preds[stem])
        if mask.shape != tuple(shape):
            raise InputError(f"predicted mask {str(preds[stem])!r} is {mask.shape[1]}x{mask.shape[0]} px, its truth {shape[1]}x{shape[0]}")
        ev.add(stem, mask, load(), boxes=boxes)
    return {**ev.summary(), "per_image": ev.rows}


def _image_labels(images, truth) -> dict[str, int]:
    """stem -> 1 (crack) / 0 from a mask folder (any pixel > 127) or a CSV ``image,has_crack``."""
    from geodefect.labels.defects import list_images, read_mask

    t = Path(truth)
    if t.is_file() and t.suffix.lower() == ".csv":
        with t.open() as fh:
            return {Path(r["image"]).stem: int(r["has_crack"]) for r in csv.DictReader(fh)}
    return {p.stem: int(read_mask(p).any()) for p in list_images(t, what="truth mask folder")}


def evaluate_classifier(model, images, truth, *, device: str = "auto", backend: str = "auto") -> dict:
    """Stage-1 accuracy, precision, recall, f1 and frames per second over an image folder."""
    from geodefect.chips.images import read_image_chw
    from geodefect.evaluation.inspection import classification_scores
    from geodefect.inference.inspection import Stage1, check_channels, list_inputs

    if images is None or truth is None:
        raise InputError("stage-1 evaluation needs --images DIR and --truth MASKS_DIR (or labels.csv)")
    labels = _image_labels(images, truth)
    files = [f for f in list_inputs(images) if f.stem in labels]
    if not files:
        raise InputError(f"no image in {str(images)!r} has a truth label in {str(truth)!r}; names pair by stem")
    stage1 = Stage1(model, device=device, backend=backend)
    rows, counts = [], np.zeros(4)
    start = time.perf_counter()
    for f in files:
        prob = stage1.probability(check_channels(read_image_chw(f), stage1.recipe, f))
        pred, true = int(prob >= stage1.threshold), labels[f.stem]
        counts += [pred & true, pred & (1 - true), (1 - pred) & true, (1 - pred) & (1 - true)]
        rows.append({"image": f.name, "prob": prob, "pred": pred, "truth": true})
    elapsed = time.perf_counter() - start
    return {"n_images": len(files), "threshold": stage1.threshold, "overall": classification_scores(*counts.tolist()),
            "fps": len(files) / elapsed if elapsed > 0 else float("nan"), "per_image": rows}


def explain_image(model_path, image_path, out_dir, *, layer: str, target: int = 1, max_maps: int = 128,
                  overwrite: bool = False) -> dict:
    """Score-CAM for one image -> ``OUT/<stem>_<layer>_scorecam.png`` (jet overlay) and
    ``OUT/<stem>_<layer>_heat.png`` (heat 0..255); dots in the layer name become dashes."""
    import torch
    from PIL import Image

    from geodefect.chips.images import read_image_chw, resize_chip
    from geodefect.explain.scorecam import heatmap_overlay, score_cam
    from geodefect.inference.inspection import check_channels, is_classifier_recipe
    from geodefect.io.atomic import atomic_path
    from geodefect.models.checkpoint import load_package

    out = Path(out_dir)
    stem = Path(image_path).stem
    tag = f"{stem}_{layer.replace('.', '-')}"
    overlay_path, heat_path = out / f"{tag}_scorecam.png", out / f"{tag}_heat.png"
    if not overwrite and (overlay_path.exists() or heat_path.exists()):
        raise OutputExistsError(f"output {str(overlay_path)!r} already exists; pass --overwrite to replace it")
    model, recipe = load_package(model_path)
    image = check_channels(read_image_chw(image_path), recipe, Path(image_path))
    if is_classifier_recipe(recipe):
        image_in = resize_chip(image, int(recipe.get("input_px", 224)))
    else:
        image_in = image
    norm = recipe["normalization"]
    x = (image_in.astype(np.float32) - np.asarray(norm["mean"], np.float32)[:, None, None]) / np.asarray(norm["std"], np.float32)[:, None, None]
    heat = score_cam(model, torch.from_numpy(x)[None], layer=layer, target=target, max_maps=max_maps)
    if heat.shape != image.shape[1:]:
        heat = np.asarray(Image.fromarray(heat).resize((image.shape[2], image.shape[1]), Image.BILINEAR))
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(overlay_path) as tmp:
        Image.fromarray(heatmap_overlay(rgb.transpose(1, 2, 0), heat)).save(tmp, format="PNG")
    with atomic_path(heat_path) as tmp:
        Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).save(tmp, format="PNG")
    return {"overlay": str(overlay_path), "heat": str(heat_path), "layer": layer, "target": target,
            "task": recipe.get("task")}
