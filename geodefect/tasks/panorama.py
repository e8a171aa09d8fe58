"""``panorama_stack``: the stacked CNN for street panoramas (after the Amsterdam road-crack study).

Stage 1, a ``damage_classify`` package, is slid over every panorama into per-class heatmaps
(:mod:`geodefect.inference.panorama`); stage 2, a small CNN, is trained here with the shared
loop on image-level labels (``DATA/labels.csv``: ``image,label``). Stage 1 and stage 2 are saved
in one ``panorama_stack`` package; ``RUN_DIR/roc_val.png`` shows stage 2 on the validation images.

Panorama data folder::

    DATA/images/*.jpg     DATA/labels.csv (image,label 0/1)     DATA/masks/<stem>.png (optional)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.config import option
from geodefect.errors import ConfigError, InputError
from geodefect.summary import Summary
from geodefect.tasks.base import Task, TaskData, fit_once, train_summary
from geodefect.training.loop import TaskAdapter

ROI_MODES = ("masks", "model", "none")


@dataclasses.dataclass(frozen=True)
class PanoramaOptions:
    """Options of ``panorama_stack`` training (loop options: LoopConfig)."""

    stage1: str | None = option(None, "panorama_stack: the damage_classify package slid over the panoramas (stage 1).")
    roi: str = option("masks", "panorama_stack: zero heatmaps off the road using masks/<stem>.png or --roi-model.",
                      choices=ROI_MODES)
    roi_model: str | None = option(None, "panorama_stack: road-surface segmentation package (with --roi model).")
    stride_px: int = option(32, "Stage-1 window stride over the panoramas.", cli=False)
    blend: str = option("mean", "Stage-1 window blend.", cli=False)
    downsample: int = option(4, "Average-pooling factor of the heatmaps.", cli=False)
    include_image: bool = option(False, "panorama_stack: also feed the downsampled image to stage 2.")
    width: int = option(16, "Stage-2 CNN width.", cli=False)
    val_fraction: float = option(0.3, "Validation share of the panoramas (stratified).")

    def __post_init__(self) -> None:
        if self.roi not in ROI_MODES:
            raise ConfigError(f"`roi` must be one of {', '.join(ROI_MODES)}, got {self.roi!r}")
        if (self.roi == "model") != bool(self.roi_model):
            raise ConfigError("`roi` model and `roi_model` (a segmentation package of road surface) go together")
        if self.downsample < 1:
            raise ConfigError(f"`downsample` must be >= 1, got {self.downsample!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in (0, 1), got {self.val_fraction!r}")


class PanoramaAdapter(TaskAdapter):
    """Binary cross-entropy on the image-level logit; AUC (histogram, streaming) is monitored."""

    monitor = "auc"
    monitor_mode = "max"

    def compute_loss(self, output, batch):
        import torch.nn.functional as F

        loss = F.binary_cross_entropy_with_logits(output.logits[:, 0], batch["label"].float())
        return loss, {"bce": loss.detach()}

    def new_metrics(self):
        from geodefect.metrics.classify import HistogramAUC

        return HistogramAUC()


class PanoramaTask(Task):
    """Stage 2 of the stacked panorama CNN, trained on stage-1 heatmaps and image-level labels."""

    name = "panorama_stack"
    description = "image-level damage of street panoramas from stage-1 heatmaps (stacked CNN)"
    Options = PanoramaOptions
    loop_defaults = {"epochs": 30, "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-4}
    chip_kind = "raw"
    stage1_task = "damage_classify"

    def owns_data(self, data_dir: Path) -> bool:
        d = Path(data_dir)
        return (d / "labels.csv").is_file() and (d / "images").is_dir() and not (d / "meta.json").is_file()

    def read_meta(self, data_dir: Path) -> dict:
        return {}

    def prepare(self, data_dir: Path, cfg, meta: dict) -> TaskData:
        """Stage-1 heatmaps of every panorama (the expensive part), split stratified by label."""
        import torch

        from geodefect.datasets.panorama import HeatmapDataset
        from geodefect.inference.panorama import compute_inputs, read_labels
        from geodefect.models.checkpoint import load_package
        from geodefect.models.registry import build_model

        opts = cfg.task
        if not opts.stage1:
            raise ConfigError(f"{self.name} training needs `stage1`: a {self.stage1_task} model package "
                              "(--stage1 best.pt)")
        stage1, recipe1 = load_package(opts.stage1)
        if recipe1.get("task") != self.stage1_task:
            raise InputError(f"--stage1 {opts.stage1!r} has task {recipe1.get('task')!r}, expected {self.stage1_task}")
        rows = read_labels(data_dir)
        n_in = len(recipe1["classes"]) + (3 if opts.include_image else 0)
        spec = {"name": "panorama_stacked", "kwargs": {"stage1": recipe1["model"],
                "stage2": {"name": "panorama_stack_cnn", "kwargs": {"in_channels": n_in, "width": opts.width}}}}
        torch.manual_seed(cfg.loop.seed)
        model = build_model(spec["name"], **spec["kwargs"])
        model.stage1.load_state_dict(stage1.state_dict())
        recipe = self._recipe(opts, spec, recipe1)
        masks_dir = Path(data_dir) / "masks" if opts.roi == "masks" else None
        inputs, _ = compute_inputs(model, recipe, [p for p, _ in rows], masks_dir=masks_dir, device=cfg.loop.device)
        labels = np.array([y for _, y in rows])
        val = stratified_val(labels, val_fraction=opts.val_fraction, seed=cfg.loop.seed)
        return TaskData(HeatmapDataset(inputs[~val], labels[~val]), HeatmapDataset(inputs[val], labels[val]),
                        {"model": model, "spec": spec, "recipe": recipe, "val_inputs": inputs[val],
                         "val_labels": labels[val]})

    def _recipe(self, opts: PanoramaOptions, spec: dict, recipe1: dict) -> dict[str, Any]:
        return {"task": self.name, "model": spec,
                "stage1": {k: recipe1[k] for k in ("classes", "normalization", "size_px")},
                "stride_px": opts.stride_px, "blend": opts.blend, "downsample": opts.downsample,
                "include_image": opts.include_image, "roi": opts.roi, "bands": [1, 2, 3],
                "roi_model": str(Path(opts.roi_model).resolve()) if opts.roi_model else None,
                "normalization": recipe1["normalization"], "stage1_from": str(opts.stage1)}

    def model(self, cfg, meta: dict, data: TaskData, *, pretrained: bool):
        return data.info["spec"], data.info["model"]

    def adapter(self, cfg, meta: dict, data: TaskData):
        return PanoramaAdapter()

    def recipe(self, cfg, meta: dict, spec: dict, data: TaskData, data_dir: Path) -> dict[str, Any]:
        return data.info["recipe"]

    def fit(self, data_dir: Path, run_dir: Path, cfg, meta: dict, data: TaskData, *, resume: bool,
            callbacks=()) -> Summary:
        from geodefect.inference.panorama import stage2_scores
        from geodefect.metrics.classify import plot_roc
        from geodefect.models.checkpoint import load_package

        result, timer = fit_once(self, data_dir, run_dir, cfg, meta, data, resume=resume, callbacks=callbacks)
        best, _ = load_package(run_dir / "best.pt")
        scores = stage2_scores(best, data.info["val_inputs"])
        auc = plot_roc(run_dir / "roc_val.png", scores, data.info["val_labels"], title="stage 2, validation panoramas")
        summary = train_summary(self.name, run_dir, result, timer, cfg)
        summary.data.update(val_auc=auc, n_train=len(data.train), n_val=len(data.val))
        summary.lines.append(f"validation AUC {auc:.3f} ({len(data.val)} panoramas): {run_dir / 'roc_val.png'}")
        return summary

    def infer(self, model_path, inputs, out_dir, *, recipe, config_file=None, overrides=None, overwrite=False):
        from geodefect.inference.panorama import infer_panoramas

        result = infer_panoramas(model_path, inputs, out_dir, recipe=recipe, overrides=dict(overrides or {}),
                                 overwrite=overwrite)
        return Summary("infer", self.name, result.pop("text").splitlines(), result)

    def evaluate_model(self, model_path, data_dir, out_dir, *, config_file=None, overrides=None, overwrite=False):
        from geodefect.inference.panorama import evaluate_panorama

        result = evaluate_panorama(model_path, data_dir, out_dir, overrides=overrides, overwrite=overwrite)
        return Summary("evaluate", self.name, [result.pop("text")], result)


def stratified_val(labels: np.ndarray, *, val_fraction: float, seed: int) -> np.ndarray:
    """A validation mask with about ``val_fraction`` of each label (at least one of each when possible)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), bool)
    for y in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == y))
        k = max(1, round(len(idx) * val_fraction)) if len(idx) > 1 else 0
        val[idx[:k]] = True
    return val
