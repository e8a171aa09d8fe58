"""Road-damage workflows: crop extraction, training across domains, inference, evaluation.

Two tasks share this module (``TASK_WORKFLOWS``):

- ``damage_classify``: patch classifier over domains (RDD countries or ``DOMAIN/CLASS`` folders)
  with the losses of ``geodefect.losses.domain``; :mod:`geodefect.workflows.damage_lodo` runs
  the leave-one-domain-out evaluation.
- ``panorama_stack``: the stacked panorama pipeline (:mod:`geodefect.workflows.panorama`).

``train``/``infer``/``evaluate`` dispatch on the data (a folder with ``labels.csv`` is a
panorama set) or on the model package's task.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.errors import ConfigError, InputError
from geodefect.training.loop import LoopConfig, TaskAdapter

log = logging.getLogger(__name__)

LOOP_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "seed", "device",
               "num_workers", "steps_per_epoch")


@dataclasses.dataclass(frozen=True)
class DamageConfig:
    """Options of ``geodefect train`` for ``damage_classify`` (defaults follow the paper where it says)."""

    backbone: str = "resnet18"
    width_mult: float = 1.0
    encoder_weights: str | None = None
    losses: str = "ce"
    temperature: float = 0.05
    contrastive_weight: float = 1.0
    dg_weight: float = 0.7
    size_px: int = 64
    min_area_px2: float = 400.0
    classes: Any = None
    domains: Any = None
    layout: str = "auto"
    background_per_image: int = 0
    val_fraction: float = 0.2
    augment: bool = True
    dataset: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: Any = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "onecycle"
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        from geodefect.losses.domain import parse_losses
        from geodefect.models.classifiers import backbone_model_name

        backbone_model_name(self.backbone)
        parse_losses(self.losses)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in (0, 1), got {self.val_fraction!r}")
        if self.size_px < 16:
            raise ConfigError(f"`size_px` must be >= 16, got {self.size_px!r}")

    def loop(self) -> LoopConfig:
        return LoopConfig(scheduler=self.lr_schedule, **{k: getattr(self, k) for k in LOOP_FIELDS})

    def weights_file(self) -> str | None:
        """``encoder_weights``: None/"none" -> random init; a path -> that local torchvision state dict."""
        if self.encoder_weights in (None, "none"):
            return None
        if self.encoder_weights == "imagenet":
            raise ConfigError(
                "`encoder_weights` imagenet would need a download for torchvision backbones; give the path of a "
                "local torchvision .pth file (e.g. resnet18-f37072fd.pth) instead"
            )
        return self.encoder_weights

    def loss_config(self):
        from geodefect.losses.domain import DomainLossConfig, parse_losses

        return DomainLossConfig(losses=parse_losses(self.losses), temperature=self.temperature,
                                contrastive_weight=self.contrastive_weight, dg_weight=self.dg_weight)


class DamageAdapter(TaskAdapter):
    """Task adapter: losses of :mod:`geodefect.losses.domain`, macro F1 as the monitored metric.

    The DG term is returned inside the total loss: the loop's single ``backward`` then gives
    the same gradients as Algorithm 1's per-domain accumulation (gradients add; tested against
    :func:`geodefect.losses.domain.dg_training_step`), applied with the loop's step (η = lr).
    """

    monitor = "f1"
    monitor_mode = "max"

    def __init__(self, classes: list[str], loss_cfg) -> None:
        self.classes = classes
        self.loss_cfg = loss_cfg

    def compute_loss(self, output, batch):
        from geodefect.losses.domain import compute_domain_losses

        parts = compute_domain_losses(output, batch["label"], batch["domain"], self.loss_cfg)
        total = parts.pop("loss")
        parts.pop("task", None)
        return total, {k: v.detach() for k, v in parts.items()}

    def new_metrics(self):
        from geodefect.metrics.classify import ClassificationMetric

        return ClassificationMetric(self.classes)


# -- data ------------------------------------------------------------------------------------
def as_list(value: Any) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def resolve_data(data_dir: str | Path | None, cfg: DamageConfig) -> tuple[Path, DamageConfig]:
    """The data root, and the config completed from a catalog entry (``--dataset NAME``)."""
    if cfg.dataset:
        from geodefect.catalog import get_dataset

        entry = get_dataset(cfg.dataset)
        if entry.task != "damage_classify":
            raise InputError(f"dataset {cfg.dataset!r} has task {entry.task!r}, expected damage_classify")
        fill = {k: entry.raw[k] for k in ("domains", "classes", "layout") if k in entry.raw and getattr(cfg, k) in (None, "auto")}
        return entry.root, dataclasses.replace(cfg, **fill)
    if data_dir is None:
        raise InputError("give a data folder or --dataset NAME")
    return Path(data_dir), cfg


def load_domain_crops(data_dir: Path, cfg: DamageConfig):
    """Scan the domains and read every crop: :class:`~geodefect.datasets.damage.CropArrays`."""
    from geodefect.datasets.damage import class_names, describe_counts, load_crops, scan_domains

    domains = scan_domains(
        data_dir, domains=as_list(cfg.domains), layout=cfg.layout, classes=as_list(cfg.classes),
        min_area_px2=cfg.min_area_px2, background_per_image=cfg.background_per_image, seed=cfg.seed,
    )
    crops = load_crops(domains, classes=class_names(domains, classes=as_list(cfg.classes)), size_px=cfg.size_px)
    log.info("crops per domain and class:\n%s", describe_counts(crops))
    return crops


def split_train_val(n: int, *, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation samples (a seeded random ``val_fraction``, at least 1)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, bool)
    mask[rng.permutation(n)[: max(1, round(n * val_fraction))]] = True
    return mask


def detect_task(data_dir: str | Path) -> str | None:
    """Task of a data folder that has no ``meta.json`` (raw RDD, ``DOMAIN/CLASS``, panoramas), else None.

    ``labels.csv`` + ``images/`` -> ``panorama_stack``; an RDD country layout, or sub-folders
    that all hold class folders of images -> ``damage_classify``.
    """
    from geodefect.datasets.damage import detect_layout, list_domains
    from geodefect.io.voc import IMAGE_SUFFIXES

    d = Path(data_dir)
    if not d.is_dir() or (d / "meta.json").is_file():
        return None
    if (d / "labels.csv").is_file() and (d / "images").is_dir():
        return "panorama_stack"
    if detect_layout(d) == "rdd":
        return "damage_classify"
    domains = list_domains(d)
    for name in domains:
        classes = [c for c in (d / name).iterdir() if c.is_dir()]
        if not classes or not any(f.suffix in IMAGE_SUFFIXES for c in classes for f in c.iterdir()):
            return None
    return "damage_classify" if domains else None


# -- train -----------------------------------------------------------------------------------
def train(data_dir, run_dir, *, config_file=None, overrides: dict | None = None, resume: bool = False, overwrite: bool = False):
    """``geodefect train`` for both tasks: a folder with ``labels.csv`` is a panorama set."""
    overrides = dict(overrides or {})
    if data_dir is not None and (Path(data_dir) / "labels.csv").is_file():
        from geodefect.workflows.panorama import train_panorama

        return train_panorama(data_dir, run_dir, config_file=config_file, overrides=overrides, resume=resume, overwrite=overwrite)
    return train_classifier(data_dir, run_dir, config_file=config_file, overrides=overrides, resume=resume, overwrite=overwrite)


def train_classifier(data_dir, run_dir, *, config_file=None, overrides=None, resume=False, overwrite=False) -> dict:
    """Train a ``damage_classify`` model on all domains (random validation split). Returns a summary."""
    from geodefect.config import resolve_config

    cfg = resolve_config(DamageConfig, config_file, overrides)
    root, cfg = resolve_data(data_dir, cfg)
    crops = load_domain_crops(root, cfg)
    val = split_train_val(len(crops), val_fraction=cfg.val_fraction, seed=cfg.seed)
    return fit_classifier(crops.subset(~val), crops.subset(val), Path(run_dir), cfg, resume=resume, overwrite=overwrite)


def fit_classifier(train_crops, val_crops, run_dir: Path, cfg: DamageConfig, *, resume=False, overwrite=False) -> dict:
    """Build the model, run the shared training loop, return ``{"best": path, "metrics": ...}``."""
    import torch

    from geodefect.config import save_config
    from geodefect.datasets.damage import CropDataset, channel_stats
    from geodefect.io.atomic import check_output_free
    from geodefect.models.classifiers import backbone_model_name
    from geodefect.models.registry import build_model
    from geodefect.training.loop import fit

    if not resume:
        check_output_free(run_dir, overwrite=overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    mean, std = channel_stats(train_crops)
    spec = {"name": backbone_model_name(cfg.backbone), "kwargs": {"n_classes": len(train_crops.classes), "width": cfg.width_mult}}
    torch.manual_seed(cfg.seed)
    model = build_model(spec["name"], **spec["kwargs"], weights_file=cfg.weights_file())
    recipe = {
        "task": "damage_classify", "model": spec, "classes": train_crops.classes, "bands": [1, 2, 3],
        "normalization": {"mean": mean, "std": std}, "size_px": cfg.size_px,
        "domains": sorted({train_crops.domain_names[i] for i in np.unique(train_crops.domains)}),
        "losses": cfg.losses, "pretrained_from": cfg.weights_file(),
    }
    result = fit(
        model, DamageAdapter(train_crops.classes, cfg.loss_config()),
        CropDataset(train_crops, mean=mean, std=std, augment=cfg.augment),
        CropDataset(val_crops, mean=mean, std=std), run_dir, config=cfg.loop(), recipe=recipe, resume=resume,
    )
    return {"best": str(run_dir / "best.pt"), "best_epoch": result.best_epoch, "metrics": result.best_metrics}


# -- predict / evaluate ----------------------------------------------------------------------
def predict_crops(model, recipe: dict, crops, *, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, K) of crops with the recipe's normalisation."""
    import torch

    mean = np.asarray(recipe["normalization"]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(recipe["normalization"]["std"], np.float32).reshape(1, 3, 1, 1)
    out = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = (crops.images[i : i + batch_size].astype(np.float32) - mean) / std
            out.append(model(torch.from_numpy(x)).logits.softmax(1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(recipe["classes"])), np.float32)


def score_crops(probs: np.ndarray, crops, classes: list[str]) -> dict[str, float]:
    """Precision/recall/F1 (macro and per class) of predictions against the crops' labels."""
    from geodefect.metrics.classify import classification_scores

    k = len(classes)
    pred = probs.argmax(1)
    matrix = np.bincount(crops.labels * k + pred, minlength=k * k).reshape(k, k)
    return classification_scores(matrix, classes)


def evaluate(model_path, data_dir, out_dir, *, config_file=None, overrides: dict | None = None, overwrite: bool = False) -> dict:
    """Evaluate a ``damage_classify`` package per domain, or a ``panorama_stack`` package (ROC/AUC).

    ``overrides`` with ``leave_one_domain_out: true`` runs the LODO protocol instead (no model).
    """
    overrides = dict(overrides or {})
    if overrides.pop("leave_one_domain_out", False):
        from geodefect.workflows.damage_lodo import leave_one_domain_out

        return leave_one_domain_out(data_dir, out_dir, config_file=config_file, overrides=overrides, overwrite=overwrite)
    from geodefect.models.checkpoint import read_recipe

    recipe = read_recipe(model_path)
    if recipe["task"] == "panorama_stack":
        from geodefect.workflows.panorama import evaluate_panorama

        return evaluate_panorama(model_path, data_dir, out_dir, overrides=overrides, overwrite=overwrite)
    return evaluate_classifier(model_path, data_dir, out_dir, overrides=overrides, overwrite=overwrite)


def evaluate_classifier(model_path, data_dir, out_dir, *, overrides=None, overwrite=False) -> dict:
    """Scores of a classifier on every domain of ``data_dir`` (metrics.json + metrics.csv)."""
    from geodefect.io.atomic import atomic_dir
    from geodefect.models.checkpoint import load_package

    model, recipe = load_package(model_path)
    known = {"domains", "layout", "min_area_px2"}
    unknown = set(overrides or {}) - known
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for damage evaluation; valid: {', '.join(sorted(known))}")
    cfg = DamageConfig(classes=recipe["classes"], size_px=recipe["size_px"], **(overrides or {}))
    crops = load_domain_crops(Path(data_dir), cfg)
    probs = predict_crops(model, recipe, crops)
    rows = {}
    for di, name in enumerate(crops.domain_names):
        sel = crops.domains == di
        rows[name] = score_crops(probs[sel], crops.subset(sel), recipe["classes"])
    rows["all"] = score_crops(probs, crops, recipe["classes"])
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(rows, indent=2))
        _write_rows_csv(tmp / "metrics.csv", rows)
    return {"out_dir": str(out_dir), "metrics": rows}


def _write_rows_csv(path: Path, rows: dict[str, dict[str, float]]) -> None:
    import csv

    keys = sorted({k for r in rows.values() for k in r})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["domain", *keys])
        for name, r in rows.items():
            w.writerow([name, *(f"{r.get(k, float('nan')):.4f}" for k in keys)])


def infer(model_path, inputs, out_dir, *, recipe: dict, config_file=None, overrides: dict | None = None, overwrite: bool = False) -> dict:
    """``geodefect infer``: patch classification (CSV of class probabilities) or panorama scoring."""
    if recipe["task"] == "panorama_stack":
        from geodefect.workflows.panorama import infer_panoramas

        return infer_panoramas(model_path, inputs, out_dir, recipe=recipe, overrides=overrides or {}, overwrite=overwrite)
    if overrides:
        raise ConfigError(f"option(s) {', '.join(sorted(overrides))} do not apply to damage_classify models "
                          "(patch classification takes no options)")
    return infer_patches(model_path, inputs, out_dir, recipe=recipe, overwrite=overwrite)


def infer_patches(model_path, inputs, out_dir, *, recipe: dict, overwrite: bool = False) -> dict:
    """Classify whole images (each resized to the model's ``size_px``); writes ``predictions.csv``."""
    import csv

    from geodefect.datasets.damage import CropArrays, crop_resize, read_rgb
    from geodefect.io.atomic import atomic_dir
    from geodefect.models.checkpoint import load_package

    paths = _expand_images(inputs)
    model, recipe = load_package(model_path)
    size = recipe["size_px"]
    images = np.stack([crop_resize(read_rgb(p), None, size_px=size) for p in paths])
    crops = CropArrays(images, np.zeros(len(paths), np.int64), np.zeros(len(paths), np.int64), recipe["classes"], ["input"])
    probs = predict_crops(model, recipe, crops)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp, (tmp / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "class", *(f"p_{c}" for c in recipe["classes"])])
        for p, row in zip(paths, probs, strict=True):
            w.writerow([str(p), recipe["classes"][int(row.argmax())], *(f"{v:.4f}" for v in row)])
    text = "\n".join(f"{p.name}\t{recipe['classes'][int(r.argmax())]}\t{r.max():.3f}" for p, r in zip(paths, probs, strict=True))
    return {"out_dir": str(out_dir), "n_images": len(paths), "text": text}


def _expand_images(inputs) -> list[Path]:
    from geodefect.io.voc import IMAGE_SUFFIXES

    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"input {str(p)!r} does not exist; give image files or a folder of images")
    if not paths:
        raise InputError(f"no images (.jpg/.png) found in {', '.join(map(str, items))}")
    return paths


# -- crop extraction -------------------------------------------------------------------------
def chip(data_dir, out_dir, *, config_file=None, overrides: dict | None = None, overwrite: bool = False) -> dict:
    """Write every crop as ``OUT/DOMAIN/CLASS/<image>_<k>.png`` (the generic layout) + ``meta.json``."""
    from PIL import Image

    from geodefect.config import resolve_config
    from geodefect.io.atomic import atomic_dir

    cfg = resolve_config(DamageConfig, config_file, overrides)
    root, cfg = resolve_data(data_dir, cfg)
    crops = load_domain_crops(root, cfg)
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for i in range(len(crops)):
            dom, cls = crops.domain_names[crops.domains[i]], crops.classes[crops.labels[i]]
            d = tmp / dom / cls
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crops.images[i].transpose(1, 2, 0)).save(d / f"{Path(crops.sources[i]).stem}_{i:06d}.png")
            counts.setdefault(dom, {}).setdefault(cls, 0)
            counts[dom][cls] += 1
        meta = {"task": "damage_classify", "complete": True, "layout": "folders", "size_px": cfg.size_px,
                "classes": crops.classes, "domains": crops.domain_names, "n_chips": len(crops), "counts": counts,
                "min_area_px2": cfg.min_area_px2, "source": str(root)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
