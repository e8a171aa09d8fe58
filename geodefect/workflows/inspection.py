"""Inspection workflows (tunnel-lining cracks, rail defects): chip, train, infer, evaluate, explain.

The CLI calls only these. Tasks: ``crack_classify`` (stage 1), ``crack_segment`` (stage 2),
``rail_segment``. A chip folder's meta.json and a model package's recipe carry the task.
See README.md (chip/train/infer/evaluate/explain sections) for the commands end to end.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from geodefect.errors import ConfigError, InputError

log = logging.getLogger(__name__)


class Summary(dict):
    """What a workflow returns: a dict of results whose ``"text"`` key (and ``text()``) holds
    the lines for the terminal (the chip CLI calls ``text()``, infer/evaluate read ``["text"]``)."""

    def __init__(self, data: dict, lines: list[str]) -> None:
        super().__init__(data)
        self["text"] = "\n".join(lines)

    @property
    def data(self) -> dict:
        return {k: v for k, v in self.items() if k != "text"}

    def text(self) -> str:
        return self["text"]

    def __str__(self) -> str:
        return self["text"]


# -- chip ------------------------------------------------------------------------------------
def chip(images, out_dir, *, masks=None, coco=None, dataset=None, config_file=None, overrides=None,
         overwrite: bool = False, **_ignored) -> Summary:
    """Chip an image folder with a mask folder (``masks``) or COCO boxes (``coco``).

    ``overrides`` keys: the fields of :class:`geodefect.chips.images.InspectionChipConfig`.
    The task defaults to the catalog entry's, else ``rail_segment`` with COCO boxes and
    ``crack_segment`` with masks.
    """
    from geodefect.chips.images import InspectionChipConfig, chip_images, write_meta
    from geodefect.config import resolve_config
    from geodefect.io.atomic import atomic_dir, check_output_free
    from geodefect.labels.defects import pair_coco, pair_masks

    overrides = dict(overrides or {})
    images_dir, masks, coco, defaults = _resolve_sources(images, masks, coco, dataset)
    overrides = {**defaults, **overrides}
    overrides.setdefault("task", "rail_segment" if coco else "crack_segment")
    if overrides.get("coco_category"):
        overrides["coco_category"] = list(overrides["coco_category"])
    cfg = resolve_config(InspectionChipConfig, config_file, overrides)
    check_output_free(out_dir, overwrite=overwrite)
    if masks:
        items, source = pair_masks(images_dir, masks), "masks"
    else:
        items, source = pair_coco(images_dir, coco, categories=cfg.coco_category), "coco"
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        meta = chip_images(items, tmp, cfg, label_source=source)
        write_meta(tmp, meta)
    lines = [
        f"{meta['n_chips']} {cfg.task} chips of {meta['chip_shape_px'][0]}x{meta['chip_shape_px'][1]} px "
        f"({meta['n_positive']} with defects) from {len(items)} images -> {out_dir}",
        f"split by image: {meta['split']['train']} train / {meta['split']['val']} val chips; "
        f"mean {meta['mean']} std {meta['std']}",
    ]
    return Summary(meta, lines)


def _resolve_sources(images, masks, coco, dataset):
    """``(images_dir, masks, coco, config defaults)`` from CLI inputs or a catalog dataset."""
    defaults: dict = {}
    if dataset:
        from geodefect.catalog import get_dataset

        entry = get_dataset(dataset)
        pattern = str(entry.raw.get("images", "images/*"))
        images = [entry.root / Path(pattern).parent]
        masks = masks or (entry.root / entry.raw["masks"] if entry.raw.get("masks") else None)
        coco = coco or (entry.root / entry.raw["coco"] if entry.raw.get("coco") else None)
        defaults["task"] = entry.task
        if entry.raw.get("coco_category"):
            defaults["coco_category"] = list(_as_list(entry.raw["coco_category"]))
        for key in ("size_px", "stride_px", "strip_height_px", "strip_stride_px", "strip_width_px", "input_px"):
            if entry.raw.get(key) is not None:
                defaults[key] = entry.raw[key]
    images = [images] if isinstance(images, str | Path) else list(images or [])
    if len(images) != 1 or not Path(images[0]).is_dir():
        raise InputError(
            f"inspection chipping takes ONE image folder, got {[str(p) for p in images]}; "
            "e.g. geodefect chip IMAGES_DIR --masks MASKS_DIR -o CHIPS"
        )
    if bool(masks) == bool(coco):
        raise InputError("give exactly one label source: --masks MASKS_DIR or --coco FILE.json")
    return Path(images[0]), masks, coco, defaults


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


# -- train -----------------------------------------------------------------------------------
def train(data_dir, run_dir, *, config_file=None, overrides=None, resume: bool = False, overwrite: bool = False) -> Summary:
    """Train on inspection chips; with ``folds`` >= 2, k-fold cross-validation (see :func:`train_kfold`)."""
    import shutil

    from geodefect.chips.images import INSPECTION_TASKS, read_index
    from geodefect.config import config_to_dict, resolve_config, save_config
    from geodefect.io.atomic import check_output_free
    from geodefect.workflows import read_chip_meta
    from geodefect.workflows.inspection_train import InspectionTrainConfig, fit_one, split_rows

    meta = read_chip_meta(data_dir)
    task = meta.get("task")
    if task not in INSPECTION_TASKS or not meta.get("complete"):
        raise InputError(f"chip folder {str(data_dir)!r} holds {task!r} chips (complete={meta.get('complete')}); expected complete {', '.join(INSPECTION_TASKS)} chips")
    cfg = resolve_config(InspectionTrainConfig, config_file, overrides).resolved(task)
    run = Path(run_dir)
    if not resume:
        check_output_free(run, overwrite=overwrite)
        if overwrite and run.exists():
            shutil.rmtree(run)
    elif not run.is_dir():
        raise InputError(f"`--resume` needs the run folder {str(run)!r} of an earlier run; it does not exist")
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "config.yaml")
    rows = read_index(data_dir)
    if cfg.folds:
        return train_kfold(Path(data_dir), run, meta, rows, cfg, resume=resume)
    train_rows, val_rows = split_rows(rows)
    result, timer = fit_one(Path(data_dir), run, meta, train_rows, val_rows, cfg, resume=resume)
    data = {"task": task, "best_epoch": result.best_epoch, "metrics": result.best_metrics, "lr": result.lr,
            "time_per_step_s": timer.mean_s, "config": config_to_dict(cfg), "model": str(run / "model.pt")}
    (run / "summary.json").write_text(json.dumps(data, indent=2, default=float))
    shutil.copyfile(run / "best.pt", run / "model.pt")
    shown = {k: round(v, 4) for k, v in result.best_metrics.items() if k in ("accuracy", "iou", "f1", "precision", "recall", "miou")}
    return Summary(data, [f"{task}: best epoch {result.best_epoch} {shown}; {timer.mean_s:.3f} s/step",
                          f"model: {run / 'model.pt'} (= best.pt)"])


FOLD_KEYS = {"crack_classify": ("accuracy", "precision", "recall", "f1"), "default": ("iou", "f1", "precision", "recall", "miou"),
             "rail_segment": ("iou", "f1", "precision", "recall", "miou", "box_recall", "box_precision")}


def train_kfold(data_dir: Path, run: Path, meta: dict, rows: list[dict], cfg, *, resume: bool = False) -> Summary:
    """K-fold cross-validation by source image: ``run/fold_<k>/`` per fold, then ``folds.csv``
    and ``cv_report.md`` (per-fold and mean +- std IoU and F1, time per step: Kim et al.'s
    Tables 5-7 layout). Normalisation uses the chips' train statistics for every fold."""
    import numpy as np

    from geodefect.workflows.inspection_train import fit_one, fold_groups

    keys = FOLD_KEYS.get(meta["task"], FOLD_KEYS["default"])
    records = []
    for k, val_sources in enumerate(fold_groups(rows, folds=cfg.folds, seed=cfg.seed), start=1):
        fold_dir = run / f"fold_{k}"
        done = fold_dir / "fold.json"
        if resume and done.is_file():
            records.append(json.loads(done.read_text()))
            continue
        fold_dir.mkdir(exist_ok=True)
        val_set = set(val_sources)
        train_rows = [r for r in rows if r["source"] not in val_set]
        val_rows = [r for r in rows if r["source"] in val_set]
        result, timer = fit_one(data_dir, fold_dir, meta, train_rows, val_rows, cfg,
                                resume=resume and (fold_dir / "last.pt").is_file())
        record = {"fold": k, "n_train": len(train_rows), "n_val": len(val_rows), "best_epoch": result.best_epoch,
                  **{key: float(result.best_metrics.get(key, float("nan"))) for key in keys},
                  "time_per_step_s": timer.mean_s}
        done.write_text(json.dumps(record))
        records.append(record)
        log.info("fold %d/%d: %s", k, cfg.folds, {key: round(record[key], 4) for key in keys})
    mean = {key: float(np.mean([r[key] for r in records])) for key in (*keys, "time_per_step_s")}
    std = {key: float(np.std([r[key] for r in records])) for key in (*keys, "time_per_step_s")}
    _write_fold_reports(run, records, mean, std, keys)
    data = {"task": meta["task"], "folds": records, "mean": mean, "std": std}
    (run / "summary.json").write_text(json.dumps(data, indent=2))
    return Summary(data, [(run / "cv_report.md").read_text().rstrip()])


def _write_fold_reports(run: Path, records, mean, std, keys) -> None:
    import csv

    columns = ["fold", "n_train", "n_val", "best_epoch", *keys, "time_per_step_s"]
    with (run / "folds.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        writer.writerow({"fold": "mean", **mean})
        writer.writerow({"fold": "std", **std})
    head = "| fold | " + " | ".join(k.upper() if k in ("iou", "f1") else k for k in keys) + " | time/step (s) |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for r in records:
        lines.append(f"| {r['fold']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['time_per_step_s']:.3f} |")
    lines.append("| **mean** | " + " | ".join(f"**{mean[k]:.3f}** ± {std[k]:.3f}" for k in keys) + f" | {mean['time_per_step_s']:.3f} |")
    (run / "cv_report.md").write_text("\n".join(lines) + "\n")


# -- infer -----------------------------------------------------------------------------------
def infer(model_path, inputs, out_dir, *, recipe=None, config_file=None, overrides=None, overwrite: bool = False) -> Summary:
    """Two-stage inference over images (see :mod:`geodefect.inference.inspection`)."""
    from geodefect.config import resolve_config
    from geodefect.inference.inspection import InspectionInferConfig, infer_images

    cfg = resolve_config(InspectionInferConfig, config_file, overrides)
    if not 0 <= cfg.threshold <= 1 or not 0 <= cfg.mask_threshold <= 1:
        raise ConfigError(f"`threshold` and `mask_threshold` must be in [0, 1], got {cfg.threshold}, {cfg.mask_threshold}")
    data = infer_images(model_path, inputs, out_dir, cfg=cfg, overwrite=overwrite)
    flagged = f" ({data['n_flagged']} flagged by stage 1)" if "crack_classify" in data["tasks"] else ""
    lines = [f"{data['n_images']} images{flagged} in {data['seconds']} s ({data['images_per_s']} images/s) -> {out_dir}"]
    return Summary(data, lines)


# -- evaluate ---------------------------------------------------------------------------------
def evaluate(pred=None, truth=None, *, coco=None, coco_category=None, model=None, images=None,
             json_path=None, device: str = "auto", backend: str = "auto") -> Summary:
    """Stage-2 / rail masks (``pred`` vs ``truth`` masks or ``coco`` boxes) or stage 1
    (``model`` classifier on ``images`` with ``truth`` masks). See :mod:`geodefect.evaluation.inspection`."""
    from geodefect.workflows.inspection_eval import evaluate_classifier, evaluate_masks

    if model is not None:
        data = evaluate_classifier(model, images, truth, device=device, backend=backend)
        s = data["overall"]
        lines = [f"stage 1 on {data['n_images']} images: accuracy {s['accuracy']:.4f} precision {s['precision']:.4f} "
                 f"recall {s['recall']:.4f} f1 {s['f1']:.4f}; {data['fps']:.2f} frames/s"]
    else:
        data = evaluate_masks(pred, truth, coco=coco, coco_category=coco_category)
        o, m = data["overall"], data["mean"]
        lines = [f"{data['n_images']} images, overall: IoU {o['iou']:.4f} F1 {o['f1']:.4f} precision {o['precision']:.4f} "
                 f"recall {o['recall']:.4f}; per-image mean IoU {m['iou']:.4f} F1 {m['f1']:.4f}"]
        if "boxes" in data:
            b = data["boxes"]
            lines.append(f"boxes: recall {b['box_recall']:.4f} ({b['n_boxes']} boxes), precision {b['box_precision']:.4f} "
                         f"({b['n_components']} predicted components)")
    if json_path:
        from geodefect.io.atomic import write_text_atomic

        write_text_atomic(json_path, json.dumps(data, indent=2))
    return Summary(data, lines)


# -- explain ----------------------------------------------------------------------------------
def explain(model_path, image_path, out_dir, *, layer: str, target: int = 1, max_maps: int = 128,
            overwrite: bool = False) -> Summary:
    """Score-CAM of one image for a layer of a crack/rail package -> PNG overlay and heatmap."""
    from geodefect.workflows.inspection_eval import explain_image

    data = explain_image(model_path, image_path, out_dir, layer=layer, target=target, max_maps=max_maps, overwrite=overwrite)
    return Summary(data, [f"Score-CAM of layer {layer!r} -> {data['overlay']}"])
