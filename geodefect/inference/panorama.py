"""Inference of the stacked CNN for street panoramas (training: :mod:`geodefect.tasks.panorama`) (after the Amsterdam road-crack study).

Stage 1: a ``damage_classify`` patch classifier (trained with ``geodefect train`` on damage
crops, best with a ``background`` class: ``--background-per-image``) is slid over every
panorama by the shared sliding-window engine; each window's class probabilities are spread
over the window and stitched (``Σ w·p / Σ w``) into one heatmap per class, shape (K, H, W).

ROI (``roi``): road-surface masks (``masks``: ``masks/<stem>.png``, 255 = road, from any model or
drawn by hand) or a road-surface segmentation package (``model``: ``roi_model``, any geodefect
segmentation model, e.g. an smp model trained with ``geodefect train`` on road masks, slid over the
panorama by the same engine) zero the heatmaps outside the road, so cracks in facades do not count.

Stage 2: a small CNN (:class:`~geodefect.models.classifiers.PanoramaStackCNN`) takes the
heatmaps, average-pooled by ``downsample`` and resized to one fixed size (plus the
downsampled image with ``include_image``), and predicts the image-level label; it is trained
with the shared loop on image-level labels only (``labels.csv``: ``image,label``).
Stage 1 and stage 2 are saved in one ``panorama_stack`` package.

Panorama data folder::

    DATA/images/*.jpg     DATA/labels.csv (image,label 0/1)     DATA/masks/<stem>.png (optional)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from geodefect.errors import ConfigError, InputError, InputFileNotFoundError

log = logging.getLogger(__name__)

class PatchPredictor:
    """Sliding-engine predictor of a patch classifier: window probabilities (B, K) spread over the window."""

    def __init__(self, torch_predictor):
        self.inner = torch_predictor

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        probs = self.inner(batch)["probs"]  # (B, K)
        h, w = batch.shape[-2:]
        return {"probs": np.broadcast_to(probs[:, :, None, None], (*probs.shape, h, w)).astype(np.float32)}


# -- data ------------------------------------------------------------------------------------
def read_labels(data_dir: str | Path) -> list[tuple[Path, int]]:
    """``(image path, label)`` rows of ``DATA/labels.csv``; clear errors for bad rows or missing images."""
    d = Path(data_dir)
    path = d / "labels.csv"
    if not path.is_file():
        raise InputFileNotFoundError(f"panorama folder {str(d)!r} has no labels.csv (columns image,label)")
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
            raise InputError(f"{str(path)!r} needs columns image,label, got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            if str(row["label"]).strip() not in ("0", "1"):
                raise InputError(f"{str(path)!r} line {n}: label {row['label']!r} must be 0 or 1")
            image = d / "images" / row["image"]
            if not image.is_file():
                raise InputFileNotFoundError(f"{str(path)!r} line {n}: image {str(image)!r} does not exist")
            rows.append((image, int(row["label"])))
    if not rows:
        raise InputError(f"{str(path)!r} lists no images")
    return rows


def find_mask(image: Path, masks_dir: Path | None) -> np.ndarray | None:
    """(H, W) bool road mask from ``masks_dir/<stem>.png`` (any non-zero = road), or None."""
    if masks_dir is None:
        return None
    for suffix in (".png", ".tif", ".jpg"):
        p = masks_dir / f"{image.stem}{suffix}"
        if p.is_file():
            from PIL import Image

            with Image.open(p) as im:
                return np.asarray(im.convert("L")) > 0
    return None


# -- stage 1 ---------------------------------------------------------------------------------
def stage1_predictor(model, recipe1: dict, *, device: str = "auto") -> PatchPredictor:
    """The stage-1 classifier as a sliding-engine predictor (softmax of its logits, named ``probs``)."""
    import torch

    from geodefect.inference.predictor import TorchPredictor

    class LogitsOnly(torch.nn.Module):  # the embedding is not needed for heatmaps
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x).logits

    norm = recipe1["normalization"]
    return PatchPredictor(TorchPredictor(LogitsOnly(model), mean=norm["mean"], std=norm["std"], device=device,
                                         output_name="probs", activations={"probs": "softmax"}))


def stage1_heatmaps(predictor: PatchPredictor, image: np.ndarray, *, size_px: int, stride_px: int, blend: str) -> np.ndarray:
    """(H, W, 3) uint8 panorama -> (K, H, W) float32 class heatmaps via the sliding engine."""
    from geodefect.sliding import SlidingParams, predict_array

    params = SlidingParams(size_px=size_px, stride_px=min(stride_px, size_px), batch_size=32, blend=blend)
    return predict_array(image.transpose(2, 0, 1), predictor, params)["probs"]


def stage2_input(heat: np.ndarray, image: np.ndarray, mask: np.ndarray | None, *, downsample: int,
                 size_hw: tuple[int, int] | None, include_image: bool) -> np.ndarray:
    """ROI-masked, pooled heatmaps (+ image /255) resized to ``size_hw``: (C, h, w) float32."""
    import torch
    import torch.nn.functional as F

    if mask is not None:
        if mask.shape != heat.shape[1:]:
            raise InputError(f"ROI mask shape {mask.shape} differs from the image shape {heat.shape[1:]}")
        heat = heat * mask[None]
    x = heat
    if include_image:
        x = np.concatenate([heat, image.transpose(2, 0, 1).astype(np.float32) / 255.0])
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
    t = F.avg_pool2d(t, downsample, ceil_mode=True) if downsample > 1 else t
    if size_hw is not None and tuple(t.shape[-2:]) != tuple(size_hw):
        t = F.interpolate(t, size=tuple(size_hw), mode="bilinear", align_corners=False)
    return t[0].numpy()


def compute_inputs(model, recipe: dict, images: list[Path], *, masks_dir: Path | None, device: str = "auto",
                   keep_heatmaps: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stage-2 inputs (N, C, h, w) for panoramas; optionally the full-resolution heatmaps too."""
    from geodefect.datasets.damage import read_rgb
    from geodefect.progress import progress

    s1 = recipe["stage1"]
    predictor = stage1_predictor(model.stage1, s1, device=device)
    roi_model = RoiModel(recipe["roi_model"], device=device) if recipe["roi"] == "model" else None
    size_hw = recipe.get("stage2_size_hw")
    inputs, heatmaps = [], []
    for path in progress(images, desc="stage 1 heatmaps"):
        image = read_rgb(path)
        heat = stage1_heatmaps(predictor, image, size_px=s1["size_px"], stride_px=recipe["stride_px"], blend=recipe["blend"])
        mask = roi_mask(recipe, path, image, masks_dir, roi_model)
        x = stage2_input(heat, image, mask, downsample=recipe["downsample"], size_hw=size_hw, include_image=recipe["include_image"])
        size_hw = size_hw or list(x.shape[-2:])
        inputs.append(x)
        if keep_heatmaps:
            heatmaps.append(heat * mask[None] if mask is not None else heat)
    recipe["stage2_size_hw"] = list(size_hw)
    return np.stack(inputs), heatmaps


class RoiModel:
    """A road-surface segmentation package (any geodefect segmentation task, e.g. an smp model trained as
    ``crack_segment`` on road-surface masks) slid over the panorama: probability > threshold = road."""

    def __init__(self, path: str | Path, *, device: str = "auto"):
        from geodefect.inference.predictor import TorchPredictor

        self.predictor, recipe = TorchPredictor.from_package(path, device=device)
        self.size_px = int(recipe.get("size_px") or 256)
        self.threshold = float(recipe.get("threshold", 0.5))

    def mask(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) bool road mask."""
        from geodefect.sliding import SlidingParams, predict_array

        params = SlidingParams(size_px=self.size_px, stride_px=max(1, self.size_px * 3 // 4), batch_size=8, blend="hann")
        out = predict_array(image.transpose(2, 0, 1), self.predictor, params)
        prob = next(iter(out.values()))
        return prob[-1] > self.threshold  # K = 1: the road probability; K > 1: the last class is road


def roi_mask(recipe: dict, path: Path, image: np.ndarray, masks_dir: Path | None, roi_model: RoiModel | None) -> np.ndarray | None:
    if recipe["roi"] == "masks":
        return find_mask(path, masks_dir)
    if recipe["roi"] == "model" and roi_model is not None:
        return roi_model.mask(image)
    return None


def damage_channels(recipe: dict) -> list[int]:
    """Indexes of the stage-1 classes that are damage (all but ``background``)."""
    return [i for i, c in enumerate(recipe["stage1"]["classes"]) if c != "background"]


def stage2_scores(model, inputs: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Image-level probabilities (N,) of stage-2 inputs."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch_size):
            out.append(model(torch.from_numpy(inputs[i : i + batch_size])).logits[:, 0].sigmoid().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


# -- infer / evaluate ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PanoramaInferConfig:
    """Options of ``geodefect infer`` for panorama_stack packages.

    Attributes:
        review: write the N least certain images with heatmaps to OUT_DIR/review/ + review.csv.
        roi_masks: folder of road-surface masks <stem>.png; heatmaps are zeroed off the road
            (default: ../masks beside the images, if present).
        roi_model: road-surface segmentation package (default: the one the model was trained with).
        overlays: write heatmap overlays of every image.
        device: auto | cpu | cuda | cuda:N.
        stride_px: stage-1 window stride (default: the package's).
        blend: stage-1 window blend (default: the package's).
        threads: CPU threads for torch.
    """

    review: int | None = None
    roi_masks: str | None = None
    roi_model: str | None = None
    overlays: bool = True
    device: str = "auto"
    stride_px: int | None = None
    blend: str | None = None
    threads: int | None = None


INFER_OPTIONS = {f.name for f in dataclasses.fields(PanoramaInferConfig)}


def infer_panoramas(model_path, inputs, out_dir, *, recipe: dict, overrides: dict, overwrite: bool = False,
                    labels: dict[str, int] | None = None) -> dict:
    """Score panoramas: ``predictions.csv``, ``overlays/``, and with ``review`` N the ``review/`` folder.

    Overrides: ``review`` (int), ``roi_masks`` (folder of ``<stem>.png``; default ``../masks``
    beside the images when it exists), ``device``, ``overlays`` (bool, default True).
    """
    from geodefect.io.atomic import atomic_dir
    from geodefect.io.image import list_image_files as _expand_images
    from geodefect.io.review import export_review, write_overlay
    from geodefect.models.checkpoint import load_package

    unknown = set(overrides) - INFER_OPTIONS
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for panorama inference; valid: {', '.join(sorted(INFER_OPTIONS))}")
    paths = _expand_images(inputs)
    model, recipe = load_package(model_path)
    recipe.update({k: overrides[k] for k in ("stride_px", "blend", "roi_model") if k in overrides})
    masks_dir = Path(overrides["roi_masks"]) if overrides.get("roi_masks") else paths[0].parent.parent / "masks"
    if recipe["roi"] == "masks" and not masks_dir.is_dir():
        log.warning("model was trained with ROI masks but %s does not exist: heatmaps are not masked", masks_dir)
    x, heatmaps = compute_inputs(model, recipe, paths, masks_dir=masks_dir if masks_dir.is_dir() else None,
                                 device=overrides.get("device", "auto"), keep_heatmaps=True)
    scores = stage2_scores(model.stage2, x)
    channels = damage_channels(recipe)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        _write_predictions(tmp / "predictions.csv", paths, scores, labels)
        if overrides.get("overlays", True):
            (tmp / "overlays").mkdir()
            for p, heat in zip(paths, heatmaps, strict=True):
                write_overlay(tmp / "overlays" / f"{p.stem}.png", p, heat[channels].max(0))
        if overrides.get("review"):
            export_review(tmp / "review", paths, scores, heatmaps, channels, n=int(overrides["review"]))
    text = [f"{p.name}\t{s:.4f}" for p, s in zip(paths, scores, strict=True)]
    if overrides.get("review"):
        text.append(f"review: {min(int(overrides['review']), len(paths))} least certain images in {Path(out_dir) / 'review'}")
    return {"out_dir": str(out_dir), "n_images": len(paths), "scores": scores.tolist(), "text": "\n".join(text)}


def _write_predictions(path: Path, paths: list[Path], scores: np.ndarray, labels: dict[str, int] | None) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "probability", "predicted", "certainty"] + (["label"] if labels else []))
        for p, s in zip(paths, scores, strict=True):
            extra = [labels.get(p.name, "")] if labels else []
            w.writerow([p.name, f"{s:.4f}", int(s >= 0.5), f"{abs(s - 0.5) * 2:.4f}", *extra])


def evaluate_panorama(model_path, data_dir, out_dir, *, overrides=None, overwrite=False) -> dict:
    """ROC curve (roc.png), AUC and accuracy (metrics.json), overlays, predictions of a labelled panorama set."""
    from geodefect.io.atomic import write_text_atomic
    from geodefect.metrics.classify import plot_roc, roc_auc
    from geodefect.models.checkpoint import read_recipe

    rows = read_labels(data_dir)
    labels = np.array([y for _, y in rows])
    overrides = dict(overrides or {})
    overrides.setdefault("roi_masks", str(Path(data_dir) / "masks"))
    result = infer_panoramas(model_path, [p for p, _ in rows], out_dir, recipe=read_recipe(model_path),
                             overrides=overrides, overwrite=overwrite, labels={p.name: y for p, y in rows})
    scores = np.array(result["scores"])
    out = Path(out_dir)
    auc = plot_roc(out / "roc.png", scores, labels, title="stacked CNN: panoramas")
    metrics = {"auc": roc_auc(scores, labels), "accuracy": float(((scores >= 0.5) == labels).mean()),
               "n_images": len(rows), "n_positive": int(labels.sum())}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    text = f"AUC {auc:.3f}  accuracy {metrics['accuracy']:.3f}  ({len(rows)} panoramas)  ROC: {out / 'roc.png'}"
    return {"out_dir": str(out), "auc": auc, "metrics": metrics, "text": text}
