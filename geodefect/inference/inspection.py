"""``geodefect infer`` for inspection photos: two-stage cracks (classify -> segment) and rail defects.

Stage 1 (``crack_classify`` package, optional): each image (or each window of
``recipe["window_px"]``, when the classifier was trained on windows) is resized to the
model's ``input_px`` (224 as the paper); the image's crack probability is the maximum over
its windows. Images with probability < ``threshold`` are not segmented (empty mask); the
threshold is the classifier package's (chosen on its validation windows when trained, see
:mod:`geodefect.tasks.classify_threshold`; 0.5 for older packages) unless ``threshold`` is given.

Stage 2 (``crack_segment`` / ``rail_segment`` package): the whole image goes through the
sliding-window engine (:func:`geodefect.sliding.predict_array`) at native resolution with
windows of ``size_px`` and ``stride_px`` (default: the training chip size, 3/4 of it) —
images are tiled and stitched, never squashed. Images smaller than the window are padded by
reflection (a flat grey border made false cracks along it). Defect = probability >
``mask_threshold``, without 8-connected components under ``min_component_px`` pixels: both
default to the values chosen on validation chips after training and stored in the package
(recipe ``mask_threshold``, ``min_component_px``; :mod:`geodefect.evaluation.postprocess`),
else 0.5 and 0; the options override them.
Rail models trained on strips cut on the railhead (recipe ``rail_band_px``) predict only on
that band of each image, found the same way as when chipping
(:func:`geodefect.chips.images.find_rail_columns`); outside it the mask is background.
``rail_band_px`` in the options overrides the width (0 = the whole image).

Outputs in OUT_DIR (written under a temporary name, renamed when complete)::

    masks/<stem>.png      uint8 0/255 predicted defect mask (all 0 when stage 1 says no crack)
    prob/<stem>.png       uint8 defect probability x 255 (segmented images only)
    overlays/<stem>.jpg|png  the image with predicted defects painted red (JPEG for a JPEG photo,
                          quality 95 without chroma subsampling; else PNG)
    predictions.csv       image, height_px, width_px, stage1_prob, flagged, defect_px,
                          defect_area_frac, n_components, crack_length_px, max_width_px,
                          crack_length_mm, max_width_mm (with --pixel-size-mm), seconds
                          (length: skeleton length; width: at the widest point;
                          :mod:`geodefect.inference.crack_geometry`)
    run.json              models, options, timings, images per second
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, InputFileNotFoundError

log = logging.getLogger(__name__)

CSV_FIELDS = ["image", "height_px", "width_px", "stage1_prob", "flagged", "defect_px", "defect_area_frac", "n_components",
              "crack_length_px", "max_width_px", "crack_length_mm", "max_width_mm", "seconds"]


def is_classifier_recipe(recipe: dict) -> bool:
    """True for a stage-1 classifier package (its recipe gives the classifier input side)."""
    return "input_px" in recipe


@dataclass(frozen=True)
class InspectionInferConfig:
    """Options of ``geodefect infer`` for inspection packages.

    Attributes:
        classifier: stage-1 crack_classify package; MODEL (the segmenter) runs only on images it flags.
        threshold: stage-1 crack probability from which stage 2 runs (None = the classifier's own,
            chosen on validation when it was trained).
        mask_threshold: defect probability threshold of the masks (default: the package's, chosen
            on validation chips; 0.5 for packages without one).
        min_component_px: drop predicted defect components (8-connected) smaller than this, in
            pixels; 0 keeps all (default: the package's, chosen on validation chips; else 0).
        size_px, stride_px: window size and stride (default: the training chip size, 3/4 of it).
        batch_size: windows per forward pass.
        blend: weight of overlapping windows: hann | crop | mean.
        device: auto | cpu | cuda | cuda:N.
        rail_band_px: rail models: predict only on a band this wide centred on the railhead, 0 = the
            whole image (default: the strip width the model was trained on).
        backend, threads: model backend (auto = the file's: .pt torch, .onnx onnxruntime) and CPU threads.
        pixel_size_mm: ground size of one image pixel in millimetres: crack length and width are
            also written in mm (predictions.csv).
    """

    classifier: str | None = None
    threshold: float | None = None
    mask_threshold: float | None = None
    min_component_px: int | None = None
    size_px: int | None = None
    stride_px: int | None = None
    batch_size: int = 8
    blend: str = "hann"
    device: str = "auto"
    rail_band_px: int | None = None
    backend: str = "auto"
    threads: int | None = None
    pixel_size_mm: float | None = None


def list_inputs(inputs) -> list[Path]:
    """Image files from a folder, a file, or a list of either (sorted, de-duplicated)."""
    from geodefect.labels.defects import IMAGE_SUFFIXES, list_images

    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"input {str(p)!r} is not an image ({', '.join(IMAGE_SUFFIXES)})")
            files.append(p)
        else:
            raise InputFileNotFoundError(f"input {str(p)!r} does not exist; check the path")
    if not files:
        raise InputError("no input images given")
    return sorted(set(files))


def check_channels(image: np.ndarray, recipe: dict, path: Path) -> np.ndarray:
    """Match the image's channels to the model's: grey -> RGB by repetition, RGB -> grey by mean."""
    want = int(recipe.get("channels") or len(recipe.get("bands") or [3]))
    have = image.shape[0]
    if have == want:
        return image
    if have == 1 and want == 3:
        return np.repeat(image, 3, axis=0)
    if have == 3 and want == 1:
        return image.mean(axis=0, keepdims=True).round().astype(np.uint8)
    raise InputError(f"image {str(path)!r} has {have} channels, the model expects {want}")


class Stage1:
    """The crack classifier of a ``crack_classify`` package."""

    def __init__(self, path: str | Path, *, device: str = "auto", backend: str = "auto", threads: int | None = None) -> None:
        from geodefect.inference.backends import load_predictor

        self.predictor = load_predictor(path, backend=backend, device=device, threads=threads)
        self.recipe = self.predictor.recipe
        if not is_classifier_recipe(self.recipe):
            raise InputError(f"`classifier` {str(path)!r} is a {self.recipe.get('task')!r} package; it must be a "
                             "stage-1 crack classifier package")
        self.input_px = int(self.recipe.get("input_px", 224))
        self.window_px = self.recipe.get("window_px")
        self.threshold = float(self.recipe.get("threshold", 0.5))  # chosen on validation at training

    def probability(self, image: np.ndarray) -> float:
        """Crack probability of a ``(C, H, W) uint8`` image (max over its windows)."""
        from geodefect.chips.images import resize_chip
        from geodefect.windows import iter_windows

        h, w = image.shape[1:]
        if self.window_px:
            wins = iter_windows(h, w, size_px=int(self.window_px), stride_px=int(self.window_px))
            crops = [image[:, int(v.row_off):int(v.row_off + v.height), int(v.col_off):int(v.col_off + v.width)] for v in wins]
        else:
            crops = [image]
        batch = np.stack([resize_chip(c, self.input_px) for c in crops]).astype(np.float32)
        probs = [self.predictor(batch[i:i + 16])["out"][:, 1] for i in range(0, len(batch), 16)]
        return float(np.concatenate(probs).max())


class Stage2:
    """The segmenter of a ``crack_segment`` / ``rail_segment`` package on the sliding engine."""

    def __init__(self, path: str | Path, cfg: InspectionInferConfig) -> None:
        from geodefect.inference.backends import load_predictor
        from geodefect.sliding import SlidingParams

        self.predictor = load_predictor(path, backend=cfg.backend, device=cfg.device, threads=cfg.threads)
        self.recipe = self.predictor.recipe
        if is_classifier_recipe(self.recipe) or "chip_shape_px" not in self.recipe:
            raise InputError(f"model {str(path)!r} is a {self.recipe.get('task')!r} package, not a segmenter")
        size = cfg.size_px or _round_up(int(self.recipe.get("size_px", 256)), 32)
        stride = cfg.stride_px or max(1, size * 3 // 4)
        self.params = SlidingParams(size_px=size, stride_px=min(stride, size), batch_size=cfg.batch_size, blend=cfg.blend)
        if hasattr(self.predictor, "check_window"):  # ONNX graphs have a fixed tile size
            self.predictor.check_window(size)
        self.fill = float(np.mean(self.recipe["normalization"]["mean"]))
        band = cfg.rail_band_px if cfg.rail_band_px is not None else self.recipe.get("rail_band_px")
        if band is not None and (int(band) != band or band < 0):
            raise InputError(f"`rail_band_px` must be an integer >= 0 (0 = the whole image), got {band!r}")
        self.rail_band_px = int(band or 0)
        self.mask_threshold = float(_first_given(cfg.mask_threshold, self.recipe.get("mask_threshold"), 0.5))
        self.min_component_px = int(_first_given(cfg.min_component_px, self.recipe.get("min_component_px"), 0))

    def mask(self, prob: np.ndarray) -> np.ndarray:
        """``(H, W) bool`` defect mask of a probability map: threshold, then small components dropped."""
        from geodefect.evaluation.postprocess import apply_postprocess

        return apply_postprocess(prob, threshold=self.mask_threshold, min_component_px=self.min_component_px)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """``(H, W) float32`` defect probability of a ``(C, H, W) uint8`` image (0 off the rail band)."""
        from geodefect.sliding import predict_array

        c0, c1 = self.band_columns(image)
        out = predict_array(image[:, :, c0:c1], self.predictor, self.params, fill=self.fill, pad="reflect")["out"]
        band = out[0] if out.shape[0] == 1 else out[1]
        if (c0, c1) == (0, image.shape[2]):
            return band
        prob = np.zeros(image.shape[1:], np.float32)
        prob[:, c0:c1] = band
        return prob

    def band_columns(self, image: np.ndarray) -> tuple[int, int]:
        """Columns ``[c0, c1)`` the model looks at: the railhead band of rail models, else all."""
        from geodefect.chips.images import find_rail_columns

        if not self.rail_band_px or self.rail_band_px >= image.shape[2]:
            return 0, image.shape[2]
        return find_rail_columns(image, width_px=self.rail_band_px)


def _stage1_backend(cfg: InspectionInferConfig) -> str:
    """--backend names MODEL's backend; the --classifier file keeps its own unless both are .onnx/.pt alike."""
    from geodefect.inference.backends import is_onnx

    return cfg.backend if is_onnx(cfg.classifier) == (cfg.backend == "onnxruntime") else "auto"


def _first_given(*values):
    return next(v for v in values if v is not None)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def infer_images(model_path, inputs, out_dir, *, cfg: InspectionInferConfig, overwrite: bool = False) -> dict:
    """Run stage 1 and/or stage 2 over images; write masks, overlays, CSV and run.json.

    ``model_path`` is a segmenter package (with ``cfg.classifier`` as stage 1) or a
    classifier package alone (then only probabilities are written).
    """
    from geodefect.inference.backends import read_model_recipe
    from geodefect.io.atomic import atomic_dir, check_output_free

    check_output_free(out_dir, overwrite=overwrite)
    files = list_inputs(inputs)
    stage1 = (Stage1(cfg.classifier, device=cfg.device, backend=_stage1_backend(cfg), threads=cfg.threads)
              if cfg.classifier else None)
    stage2 = None
    if is_classifier_recipe(read_model_recipe(model_path)):
        if stage1 is not None:
            raise InputError("give the segmenter as MODEL and the classifier with --classifier (got two classifiers)")
        stage1 = Stage1(model_path, device=cfg.device, backend=cfg.backend, threads=cfg.threads)
    else:
        stage2 = Stage2(model_path, cfg)
    started = time.perf_counter()
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        rows = _run(files, tmp, stage1, stage2, cfg)
        elapsed = time.perf_counter() - started
        summary = _summary(model_path, cfg, stage1, stage2, rows, elapsed)
        (tmp / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _run(files: list[Path], out: Path, stage1, stage2, cfg: InspectionInferConfig) -> list[dict]:
    from geodefect.chips.images import read_image_chw
    from geodefect.inference.roads import write_behind_blocks
    from geodefect.progress import progress
    from geodefect.sliding.threads import OrderedWorker

    for sub in ("masks", "prob", "overlays") if stage2 else ():
        (out / sub).mkdir()
    rows = []
    # an image's PNGs and measurements are made on a helper thread while the next image is read and
    # predicted, where that thread has a core the model does not use (as road inference's writes)
    with OrderedWorker(lambda item: _finish(out, cfg, *item), max_pending=write_behind_blocks(cfg.device),
                       name="geodefect-images") as post:
        for path in progress(files, desc="images", unit="image"):
            t0 = time.perf_counter()
            image = read_image_chw(path)
            row = {"image": path.name, "height_px": image.shape[1], "width_px": image.shape[2], "stage1_prob": ""}
            flagged = True
            if stage1 is not None:
                p1 = stage1.probability(check_channels(image, stage1.recipe, path))
                row["stage1_prob"] = round(p1, 5)
                flagged = p1 >= (stage1.threshold if cfg.threshold is None else cfg.threshold)
            row["flagged"] = int(flagged)
            rows.append(row)
            prob = None
            if stage2 is not None and flagged:
                prob = stage2.probability(check_channels(image, stage2.recipe, path))
            row["seconds"] = time.perf_counter() - t0
            post.submit((path, row, image, prob, stage2))
    with (out / "predictions.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _finish(out: Path, cfg: InspectionInferConfig, path: Path, row: dict, image, prob, stage2) -> None:
    """An image's outputs: its mask and probability PNGs, its overlay and its row's mask figures
    (``row`` is completed in place; its ``seconds`` get this part's time added)."""
    from geodefect.inference.crack_geometry import label_components, measure_cracks
    from geodefect.io.image import overlay_suffix, write_picture, write_png
    from geodefect.plots.inspection import mask_overlay

    t0 = time.perf_counter()
    if stage2 is not None:
        mask = np.zeros(image.shape[1:], bool) if prob is None else stage2.mask(prob)
        if prob is not None:
            write_png(out / "prob" / f"{path.stem}.png", (np.clip(prob, 0, 1) * 255).round().astype(np.uint8)[None],
                      rle=True)
        write_png(out / "masks" / f"{path.stem}.png", (mask * 255).astype(np.uint8)[None], rle=True)
        write_picture(out / "overlays" / f"{path.stem}{overlay_suffix(path)}", mask_overlay(image, mask).transpose(2, 0, 1))
        labels, n_components = label_components(mask)
        row.update(_mask_stats(mask, n_components))
        row.update(measure_cracks(mask, pixel_size_mm=cfg.pixel_size_mm, labels=labels))
    row["seconds"] = round(row["seconds"] + time.perf_counter() - t0, 4)


def _mask_stats(mask: np.ndarray, n_components: int) -> dict:
    px = int(mask.sum())
    return {"defect_px": px, "defect_area_frac": round(px / mask.size, 6), "n_components": n_components}


def _summary(model_path, cfg, stage1, stage2, rows, elapsed) -> dict:
    import dataclasses

    return {
        "model": str(model_path), "classifier": cfg.classifier,
        "tasks": [s.recipe["task"] for s in (stage1, stage2) if s is not None], "stage1": stage1 is not None,
        "options": dataclasses.asdict(cfg),
        "window": None if stage2 is None else {"size_px": stage2.params.size_px, "stride_px": stage2.params.stride_px,
                                               "blend": stage2.params.blend, "rail_band_px": stage2.rail_band_px or None},
        "postprocess": None if stage2 is None else {"mask_threshold": stage2.mask_threshold,
                                                    "min_component_px": stage2.min_component_px},
        "stage1_threshold": None if stage1 is None else (stage1.threshold if cfg.threshold is None else cfg.threshold),
        "n_images": len(rows), "n_flagged": sum(r["flagged"] for r in rows),
        "seconds": round(elapsed, 3), "images_per_s": round(len(rows) / elapsed, 3) if elapsed > 0 else None,
    }
