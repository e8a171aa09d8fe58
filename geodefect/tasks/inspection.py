"""Inspection tasks on image folders: defect segmentation (cracks, rail) and crack classification.

Two classes, configured in the registry:

* :class:`SegmentTask` -- ``crack_segment`` (stage 2, ``crack_unet`` U-Net + Lite0, dice loss) and
  ``rail_segment`` on strips cut on the railhead: by default ``defect_fpn`` (FPN with the offline
  ImageNet EfficientNet-Lite0, ``bce_dice``), chosen over the paper's net on 72 held-out rail400
  frames (BENCHMARKS.md); ``--model rail_vgg_fcn`` is the slim VGG19 FCN of Kim et al. with its
  measured recipe (``ce_dice``, BatchNorm); the paper's own recipe adds ``--no-batch-norm --loss ce
  --defect-oversample 0 --lr 1e-4 --lr-schedule constant`` (DESIGN.md section 13). After training,
  rail chooses its mask threshold and minimum component size by box scores on the validation
  frames (:mod:`geodefect.evaluation.postprocess_boxes`); the package stores them.
* :class:`ClassifyTask` -- ``crack_classify`` (stage 1, cross-entropy, step schedule). Default:
  EfficientNet-Lite0 from its offline ImageNet weights (``--variant efficientnet_lite0``,
  ``--encoder-weights imagenet`` implied for Lite variants), chosen on CrackForest (BENCHMARKS.md,
  "Pretrained encoders"); the paper's DenseNet-169 from scratch is ``--variant densenet169``.

Chips: :mod:`geodefect.chips.images`; inference: :mod:`geodefect.inference.inspection`;
scores: :mod:`geodefect.evaluation.inspection_eval`. With ``folds`` >= 2 training is a k-fold
cross-validation by source image (``RUN_DIR/fold_<k>/``, ``cv_report.md``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from geodefect.config import option
from geodefect.errors import ConfigError, InputError
from geodefect.losses.defects import SEGMENT_LOSSES
from geodefect.models.encoder_weights import lite_name
from geodefect.summary import Summary
from geodefect.tasks.base import Task, TaskData, fit_once, train_summary
from geodefect.tasks.kfold import fold_groups
from geodefect.training.loop import TaskAdapter

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InspectionOptions:
    """Options of inspection training (None = the task's default)."""

    model: str | None = option(None, "Model name (road_linknet | road_hourglass for roads).")
    variant: str | None = option(None, "crack_densenet169: densenet169 (paper) | densenet121 | tiny | "
                                       "efficientnet_lite0|1|2 (from offline ImageNet weights unless "
                                       "--encoder-weights none).")
    encoder: str | None = option(None, "smp encoder of crack_deeplabv3plus / defect_fpn (e.g. resnet18, tu-efficientnet_lite0|1|2).")
    width_mult: float | None = option(None, "rail_vgg_fcn / vgg16 / mobilenet_v2 width multiplier.")
    batch_norm: bool | None = option(None, "rail_vgg_fcn: BatchNorm after each conv (off = the paper's VGG19).")
    decoder_channels: int | None = option(None, "crack_deeplabv3plus / defect_fpn decoder width (FPN: a multiple of 32).")
    encoder_weights: str | None = option(None, "none | imagenet | PATH to a local state dict.")
    loss: str | None = option(None, "Inspection loss (classifier: ce).", choices=SEGMENT_LOSSES)
    defect_weight: float = option(1.0, "Weight of the defect class in cross-entropy/BCE.")
    defect_oversample: float | None = option(None, "rail, crack_classify: share of defect chips per batch, 0 = the data's own share.")
    crop_width_px: int | None = option(None, "rail: train on random crops of this width (paper: 160).")
    scale_range: float | None = option(None, "Random rescale of training chips by a factor in [1/r, r] "
                                       "(log-uniform; crack widths differ ~10x between sources); 1 = off (default; crack_segment: 2).")
    folds: int = option(0, "k-fold cross-validation by source image (>= 2); 0 = off.")
    augment: bool = option(True, "Random flips (and rot90 of square chips).", cli=False)

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss not in SEGMENT_LOSSES:
            raise ConfigError(f"`loss` must be one of {', '.join(SEGMENT_LOSSES)}, got {self.loss!r}")
        if self.defect_oversample is not None and not 0 <= self.defect_oversample < 1:
            raise ConfigError(f"`defect_oversample` must be in [0, 1) (share of defect chips per batch; 0 = off), "
                              f"got {self.defect_oversample!r}")
        if self.crop_width_px is not None and (int(self.crop_width_px) != self.crop_width_px or self.crop_width_px < 16):
            raise ConfigError(f"`crop_width_px` must be an integer >= 16 (e.g. 160 as Kim et al.), got {self.crop_width_px!r}")
        if self.scale_range is not None and not self.scale_range >= 1:
            raise ConfigError(f"`scale_range` must be >= 1 (1 = no rescaling; 2 = factors 0.5..2), got {self.scale_range!r}")
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"`folds` must be 0 (no cross-validation) or >= 2, got {self.folds!r}")


#: the options a model builder accepts, by model
MODEL_OPTIONS = {
    "crack_densenet169": ("variant", "weights_path"),
    "crack_deeplabv3plus": ("encoder", "decoder_channels", "encoder_weights"),
    "rail_vgg_fcn": ("width_mult", "batch_norm"),
    "defect_fpn": ("encoder", "decoder_channels", "encoder_weights"),
    "crack_unet": ("encoder", "decoder_channels", "encoder_weights"),
}


class InspectionTask(Task):
    """Shared by the segmenters and the classifier: chips from image folders, two-stage inference."""

    chip_kind = "images"
    Options = InspectionOptions
    layout = "segment"            # chip layout (chips.images.LAYOUTS)
    default_size_px: int | None = 256
    default_keep_empty = 1.0      # share of defect-free windows kept when chipping
    defect_class = "crack"
    default_model = ""
    option_defaults: dict[str, Any] = {}
    #: defaults that depend on the model (rail: the pretrained DeepLabV3+ and the paper's FCN
    #: train with different losses); they win over ``option_defaults``, explicit options over both
    model_option_defaults: dict[str, dict[str, Any]] = {}
    fold_keys: tuple[str, ...] = ("iou", "f1", "precision", "recall", "miou")

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = name
        for key, value in attributes.items():
            setattr(self, key, value)

    # -- chip --------------------------------------------------------------------------------
    def chip(self, inputs, out_dir, *, config_file=None, overrides=None, overwrite=False, masks=None, coco=None,
             dataset=None, **_unused) -> Summary:
        from geodefect.chips.images import chip_folder

        overrides = {**(overrides or {}), "task": self.name, "layout": self.layout,
                     "default_size_px": self.default_size_px, "defect_class": self.defect_class,
                     "default_keep_empty": self.default_keep_empty}
        meta, n_images = chip_folder(inputs, out_dir, masks=masks, coco=coco, dataset=dataset,
                                     config_file=config_file, overrides=overrides, overwrite=overwrite)
        share = meta["n_positive"] / max(meta["n_chips"], 1)
        lines = [
            f"{meta['n_chips']} {self.name} chips of {meta['chip_shape_px'][0]}x{meta['chip_shape_px'][1]} px "
            f"({meta['n_positive']} with defects, {share:.0%}) from {n_images} images -> {out_dir}",
            f"split by {meta['split']['by']}: {meta['split']['train']} train / {meta['split']['val']} val chips; "
            f"mean {meta['mean']} std {meta['std']}",
        ]
        if self.layout == "classify" and not 0.05 <= share <= 0.95:
            lines.append(f"warning: {share:.0%} of the chips are {self.defect_class}: one class dominates; "
                         "choose a --size-px that gives both classes (smaller windows: fewer crack windows)")
        return Summary("chip", self.name, lines, meta)

    # -- train -------------------------------------------------------------------------------
    def complete_options(self, opts: InspectionOptions) -> InspectionOptions:
        return self.options_for_run(opts)

    def option_defaults_shown(self) -> dict[str, Any]:
        return {**self.option_defaults, **self.model_option_defaults.get(self.default_model, {}),
                "model": self.default_model}

    def options_for_run(self, opts: InspectionOptions) -> InspectionOptions:
        """``opts`` with this task's defaults (and its model's) filled in where None."""
        model = opts.model or self.default_model
        defaults = {**self.option_defaults, **self.model_option_defaults.get(model, {})}
        fill = {k: v for k, v in defaults.items() if getattr(opts, k) is None}
        if model != "rail_vgg_fcn":
            fill.pop("batch_norm", None)  # a model option of the rail FCN only
        if model != "crack_densenet169":
            fill.pop("variant", None)  # a model option of the stage-1 classifier only
        opts = dataclasses.replace(opts, model=model, **fill)
        if opts.encoder_weights is None and lite_name(opts.variant):
            # a Lite variant starts from its offline ImageNet weights unless told otherwise (BENCHMARKS.md)
            opts = dataclasses.replace(opts, encoder_weights="imagenet")
        return opts

    def prepare(self, data_dir: Path, cfg, meta: dict) -> TaskData:
        from geodefect.chips.images import read_index

        rows = read_index(data_dir)
        if cfg.task.folds:
            fold_groups(rows, folds=cfg.task.folds, seed=cfg.loop.seed)  # validates before the run folder exists
            return TaskData([], [], {"rows": rows})
        train_rows, val_rows = split_rows(rows)
        return self.datasets(data_dir, cfg, meta, train_rows, val_rows, rows)

    def datasets(self, data_dir: Path, cfg, meta: dict, train_rows, val_rows, rows) -> TaskData:
        from geodefect.datasets.inspection import InspectionChipDataset

        opts = self.options_for_run(cfg.task)
        rotate = self.layout != "strips"
        train_ds = InspectionChipDataset(data_dir, train_rows, meta, augment=opts.augment, rotate90=rotate,
                                         defect_share=opts.defect_oversample or 0.0, crop_width_px=opts.crop_width_px,
                                         scale_range=opts.scale_range or 1.0)
        val_ds = InspectionChipDataset(data_dir, val_rows, meta, augment=False, rotate90=rotate)
        return TaskData(train_ds, val_ds, {"rows": rows})

    def model(self, cfg, meta: dict, data: TaskData, *, pretrained: bool):
        from geodefect.models.registry import build_model

        spec = self.model_spec(self.options_for_run(cfg.task), meta)
        model = build_model(spec["name"], **spec["kwargs"])
        # pretrained weights only initialise training: the package's recipe rebuilds without them
        return {"name": spec["name"], "kwargs": {k: v for k, v in spec["kwargs"].items()
                                                 if k not in ("weights_path", "encoder_weights")}}, model

    def model_spec(self, opts: InspectionOptions, meta: dict) -> dict:
        """``{"name", "kwargs"}`` of the model to build, from the options and the chips' channels."""
        kwargs: dict = {"in_channels": int(meta["channels"])}
        options = {"variant": opts.variant, "encoder": opts.encoder, "width_mult": opts.width_mult,
                   "batch_norm": opts.batch_norm, "decoder_channels": opts.decoder_channels,
                   "weights_path": opts.encoder_weights}
        if opts.model in ("crack_deeplabv3plus", "defect_fpn", "crack_unet"):
            options["encoder_weights"] = options.pop("weights_path")
        accepted = MODEL_OPTIONS.get(opts.model, tuple(options))
        for key, value in options.items():
            if value is None:
                continue
            if key not in accepted:
                flag = "encoder_weights" if key in ("weights_path", "encoder_weights") else key
                raise ConfigError(f"`{flag}` does not apply to model {opts.model!r}; it accepts: {', '.join(accepted)}")
            kwargs[key] = value
        kwargs.update(self.extra_model_kwargs(opts))
        from geodefect.models.lite import uses_input_adapter  # imports torch: not at module import

        if uses_input_adapter(opts.model, kwargs):  # the pretrained trunk's input adapter undoes the chips' stats
            kwargs.update(input_mean=[float(v) for v in meta["mean"]], input_std=[float(v) for v in meta["std"]])
        return {"name": opts.model, "kwargs": kwargs}

    def extra_model_kwargs(self, opts: InspectionOptions) -> dict:
        return {}

    def recipe(self, cfg, meta: dict, spec: dict, data: TaskData, data_dir: Path) -> dict[str, Any]:
        """The model package recipe (everything ``geodefect infer`` needs besides the weights)."""
        shape = [int(v) for v in meta["chip_shape_px"]]
        return {
            "task": self.name, "model": spec, "bands": list(range(1, int(meta["channels"]) + 1)),
            "channels": int(meta["channels"]), "normalization": {"mean": meta["mean"], "std": meta["std"]},
            "chip_shape_px": shape, "size_px": max(shape), "classes": meta["classes"], "label": meta["label"],
            "threshold": 0.5, **self.extra_recipe(meta),
        }

    def extra_recipe(self, meta: dict) -> dict:
        return {}

    def fit(self, data_dir: Path, run_dir: Path, cfg, meta: dict, data: TaskData, *, resume: bool,
            callbacks=()) -> Summary:
        if cfg.task.folds:
            from geodefect.tasks.kfold import train_kfold

            return train_kfold(self, data_dir, run_dir, cfg, meta, data.info["rows"], resume=resume)
        result, timer = fit_once(self, data_dir, run_dir, cfg, meta, data, resume=resume, callbacks=callbacks)
        return train_summary(self.name, run_dir, result, timer, cfg)

    def resume_nested(self, cfg) -> bool:
        return bool(cfg.task.folds)

    # -- infer / evaluate / explain ------------------------------------------------------------
    def infer(self, model_path, inputs, out_dir, *, recipe, config_file=None, overrides=None, overwrite=False):
        from geodefect.config import resolve_config
        from geodefect.inference.inspection import InspectionInferConfig, infer_images

        cfg = resolve_config(InspectionInferConfig, config_file, overrides)
        mask_threshold = 0.5 if cfg.mask_threshold is None else cfg.mask_threshold
        if not 0 <= (0.5 if cfg.threshold is None else cfg.threshold) <= 1 or not 0 <= mask_threshold <= 1:
            raise ConfigError(f"`threshold` and `mask_threshold` must be in [0, 1], got {cfg.threshold}, "
                              f"{cfg.mask_threshold}")
        if cfg.min_component_px is not None and (int(cfg.min_component_px) != cfg.min_component_px
                                                 or cfg.min_component_px < 0):
            raise ConfigError(f"`min_component_px` must be an integer >= 0 (0 keeps every component), "
                              f"got {cfg.min_component_px!r}")
        if cfg.pixel_size_mm is not None and not cfg.pixel_size_mm > 0:
            raise ConfigError(f"`pixel_size_mm` must be > 0 (ground size of one pixel in mm), got {cfg.pixel_size_mm!r}")
        data = infer_images(model_path, inputs, out_dir, cfg=cfg, overwrite=overwrite)
        flagged = f" ({data['n_flagged']} flagged by stage 1)" if data.get("stage1") else ""
        lines = [f"{data['n_images']} images{flagged} in {data['seconds']} s ({data['images_per_s']} images/s) "
                 f"-> {out_dir}"]
        return Summary("infer", self.name, lines, data)

    def explain(self, model_path, image, out_dir, *, recipe, layer: str, target: int = 1, max_maps: int = 128,
                overwrite: bool = False, **_unused) -> Summary:
        from geodefect.evaluation.inspection_eval import explain_image

        n_classes = len(recipe.get("classes", [])) or 2
        if not 0 <= target < n_classes:
            raise InputError(f"`--target` must be a class index in 0..{n_classes - 1} of this model "
                             f"({', '.join(recipe.get('classes', []))}), got {target}")
        data = explain_image(model_path, image, out_dir, layer=layer, target=target, max_maps=max_maps,
                             overwrite=overwrite)
        return Summary("explain", self.name, [f"Score-CAM of layer {layer!r} -> {data['overlay']}"], data)


class SegmentTask(InspectionTask):
    """Defect masks from photos or strips (crack_segment, rail_segment).

    After training, :meth:`tune` picks the mask threshold and the minimum component size that
    maximise ``postprocess_metric`` on the validation chips
    (:func:`geodefect.evaluation.postprocess.choose_postprocess`); ``model.pt`` carries them.
    """

    postprocess_metric = "iou"
    #: set (rail: 0.85): choose by box scores instead, the best box precision at this box recall
    #: (:mod:`geodefect.evaluation.postprocess_boxes`)
    postprocess_min_box_recall: float | None = None
    #: encoders whose ImageNet weights install offline: they start from them unless --encoder-weights says otherwise
    offline_pretrained = ("tu-efficientnet_lite0", "tu-efficientnet_lite1", "tu-efficientnet_lite2")

    def options_for_run(self, opts: InspectionOptions) -> InspectionOptions:
        """The task's defaults; encoder defaults only for models with an smp encoder; a Lite encoder implies
        ``encoder_weights`` imagenet (offline, ``geodefect[pretrained]``) unless given."""
        run = super().options_for_run(opts)
        if "encoder" not in MODEL_OPTIONS.get(run.model, ()):  # models without an smp encoder
            return dataclasses.replace(run, encoder=opts.encoder, encoder_weights=opts.encoder_weights)
        if run.encoder_weights is None and run.encoder in self.offline_pretrained:
            return dataclasses.replace(run, encoder_weights="imagenet")
        return run

    def adapter(self, cfg, meta: dict, data: TaskData):
        opts = self.options_for_run(cfg.task)
        return DefectSegmentAdapter(loss=opts.loss, defect_weight=opts.defect_weight, regions=self.fold_keys_have_boxes)

    @property
    def fold_keys_have_boxes(self) -> bool:
        return "box_recall" in self.fold_keys

    def tune(self, model, cfg, data: TaskData) -> dict[str, Any]:
        from geodefect.evaluation.postprocess import choose_postprocess, iter_val_probabilities

        if data.val is None or not len(data.val):
            return {}
        device = next(model.parameters()).device
        pairs = iter_val_probabilities(model, data.val, batch_size=cfg.loop.batch_size, device=device)
        if self.postprocess_min_box_recall is not None:  # box scores: on the val frames, strips pasted back
            from geodefect.evaluation.postprocess_boxes import (
                choose_postprocess_boxes,
                iter_val_frames,
            )

            choice = choose_postprocess_boxes(iter_val_frames(pairs, data.val.rows),
                                              min_box_recall=self.postprocess_min_box_recall)
        else:
            choice = choose_postprocess(pairs, metric=self.postprocess_metric)
        log.info("validation (%d chips): mask threshold %.2f, min component %d px -> %s %.4f", choice.n_chips,
                 choice.threshold, choice.min_component_px, choice.metric, choice.score)
        recipe = choice.to_recipe()
        if self.postprocess_min_box_recall is not None:
            recipe["postprocess"]["chosen_on"] = "validation frames (strips pasted back)"
        return recipe

    def extra_model_kwargs(self, opts: InspectionOptions) -> dict:
        return {"num_classes": 2} if opts.model == "rail_vgg_fcn" and self.layout == "strips" else {}

    def extra_recipe(self, meta: dict) -> dict:
        windows = meta.get("windows", {})
        if self.layout == "strips" and windows.get("strip_width_px"):
            # strips were cut on the railhead: inference looks at the same band (inference/inspection.py)
            return {"rail_band_px": int(windows["strip_width_px"])}
        return {}


class ClassifyTask(InspectionTask):
    """Crack / no crack per image or window (stage 1 of the two-stage crack pipeline).

    Default chips are 128-px windows (``--size-px``; 1/3-1/4 of a CrackForest photo), so that
    crack-free windows exist: whole photos of a crack data set are all "crack". Training draws
    crack and crack-free windows half and half (``--defect-oversample 0.5``) whatever their share.
    """

    layout = "classify"
    default_size_px = 128
    fold_keys = ("accuracy", "precision", "recall", "f1")

    def adapter(self, cfg, meta: dict, data: TaskData):
        return CrackClassifyAdapter()

    def fit(self, data_dir: Path, run_dir: Path, cfg, meta: dict, data: TaskData, *, resume: bool,
            callbacks=()) -> Summary:
        """Train, then choose the stage-1 threshold on the validation windows (tasks/classify_threshold.py)."""
        from geodefect.tasks.base import _is_main_process
        from geodefect.tasks.classify_threshold import store_threshold

        summary = super().fit(data_dir, run_dir, cfg, meta, data, resume=resume, callbacks=callbacks)
        if not cfg.task.folds and _is_main_process():
            choice = store_threshold(run_dir, data.val)
            summary.data["threshold"] = choice
            summary.lines.insert(1, f"stage-1 threshold {choice['threshold']:.3f} (max F1 on {choice['n_val']} "
                                    f"validation windows: F1 {choice['f1']:.3f}, P {choice['precision']:.3f}, "
                                    f"R {choice['recall']:.3f}), stored in the package")
        return summary

    def extra_recipe(self, meta: dict) -> dict:
        windows = meta.get("windows", {})
        return {"input_px": int(windows.get("input_px", meta["chip_shape_px"][0])), "window_px": windows.get("size_px")}


class CrackClassifyAdapter(TaskAdapter):
    monitor = "accuracy"

    def compute_loss(self, output, batch):
        import torch.nn.functional as F

        return F.cross_entropy(output.float(), batch["label"]), {}

    def new_metrics(self):
        from geodefect.metrics.defects import ClassificationCounts

        return ClassificationCounts()

    def plot_samples(self, batch: dict, output):
        from geodefect.plots.inspection import plot_classified

        return plot_classified(batch["image"], batch["label"], output.softmax(1)[:, 1])


class DefectSegmentAdapter(TaskAdapter):
    monitor = "iou"

    def __init__(self, *, loss: str, defect_weight: float = 1.0, regions: bool = False) -> None:
        self.loss = loss
        self.defect_weight = defect_weight
        self.regions = regions

    def compute_loss(self, output, batch):
        from geodefect.losses.defects import defect_segmentation_loss

        total, parts = defect_segmentation_loss(output, batch["mask"], loss=self.loss, defect_weight=self.defect_weight)
        return total, ({k: v.detach() for k, v in parts.items()} if len(parts) > 1 else {})

    def new_metrics(self):
        from geodefect.metrics.defects import DefectSegmentationCounts

        return DefectSegmentationCounts(regions=self.regions)

    def plot_samples(self, batch: dict, output):
        from geodefect.losses.defects import defect_logit
        from geodefect.plots.inspection import plot_segmented

        return plot_segmented(batch["image"], batch["mask"], defect_logit(output).sigmoid())


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    if not train or not val:
        raise InputError(
            f"the chips have {len(train)} train and {len(val)} val chips; need both: rechip with more "
            "images or another `val_fraction`"
        )
    return train, val
