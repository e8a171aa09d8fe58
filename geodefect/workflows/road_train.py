"""``geodefect train`` for road chips: the multitask road model on the shared training loop.

``train(CHIPS_DIR, RUN_DIR, overrides=...)`` resolves :class:`RoadTrainConfig` (defaults <-
``--config`` YAML <- flags), builds the model and the two datasets, runs
:func:`geodefect.training.fit` with :class:`RoadTaskAdapter`, and writes ``model.pt`` (the
best epoch's weights plus the full recipe) next to the loop's outputs::

    RUN_DIR/config.yaml   resolved options            RUN_DIR/metrics.csv  one row per epoch
    RUN_DIR/model.pt      the model package (infer)   RUN_DIR/curves.png   losses and metrics
    RUN_DIR/best.pt       best epoch (package)        RUN_DIR/samples.png  image|truth|prediction
    RUN_DIR/last.pt       resume checkpoint (package + optimiser, scheduler, RNG, counters)
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from geodefect.errors import ConfigError, InputError, OutputExistsError
from geodefect.training import TaskAdapter

log = logging.getLogger(__name__)

ROAD_MODELS = ("road_linknet", "road_hourglass")
#: options that may differ when resuming (they do not change the result)
RESUME_FREE = {"device", "num_workers", "checkpoint_every_steps", "checkpoint_every_s", "cache_mb", "threads"}
RUN_FILES = {"config.yaml", "model.pt", "best.pt", "last.pt", "metrics.csv", "curves.png", "samples.png", "lr_find.png"}


@dataclasses.dataclass(frozen=True)
class RoadTrainConfig:
    """Options of ``geodefect train`` on road chips (YAML keys = these names).

    Model: ``model`` (road_linknet | road_hourglass), ``encoder`` (smp encoder of
    road_linknet), ``encoder_weights`` (none | imagenet | PATH), ``width`` (road_hourglass
    features), ``model_kwargs`` (any further builder kwargs, e.g. ``{stacks: 2, depth: 3}``).
    Loss: ``road_loss`` (see :data:`geodefect.losses.ROAD_LOSSES`), ``road_weight``,
    ``orientation_weight``, ``orientation_ignore_background``. Augmentation:
    ``augment_geometry`` (dihedral | rotations | none), ``color_jitter``. Selection:
    ``monitor`` (validation metric for best.pt and early stopping). The rest are the loop's
    (:class:`geodefect.training.LoopConfig`; ``lr_schedule`` is its ``scheduler``).
    ``init_from``: start from the weights of a model package (path or pretrained name such
    as ``spacenet3-roads``; same task, bands and architecture) -- fine-tuning.
    """

    model: str = "road_linknet"
    encoder: str = "resnet34"
    encoder_weights: str = "none"
    width: int = 64
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 8
    lr: float | str = 1e-3
    lr_schedule: str = "onecycle"
    weight_decay: float = 1e-4
    road_loss: str = "bce_soft_iou"
    road_weight: float = 1.0
    orientation_weight: float = 1.0
    orientation_ignore_background: bool = False
    augment_geometry: str = "dihedral"
    color_jitter: float = 0.15
    monitor: str = "miou"
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    steps_per_epoch: int = 0
    val_steps: int = 0
    checkpoint_every_steps: int = 0
    checkpoint_every_s: float = 300.0
    grad_clip: float = 0.0
    cache_mb: float = 2048.0
    threads: int = 0
    init_from: str | None = None

    def __post_init__(self) -> None:
        from geodefect.datasets.transforms import GEOMETRY_MODES
        from geodefect.losses import ROAD_LOSSES

        if self.model not in ROAD_MODELS:
            raise ConfigError(f"`model` for road chips must be one of {', '.join(ROAD_MODELS)}, got {self.model!r}")
        if self.road_loss not in ROAD_LOSSES:
            raise ConfigError(f"`road_loss` must be one of {', '.join(ROAD_LOSSES)}, got {self.road_loss!r}")
        if self.augment_geometry not in GEOMETRY_MODES:
            raise ConfigError(f"`augment_geometry` must be one of {', '.join(GEOMETRY_MODES)}, got {self.augment_geometry!r}")
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                object.__setattr__(self, "lr", float(self.lr))
            except ValueError:
                raise ConfigError(f"`lr` must be a number or 'auto', got {self.lr!r}") from None
        if not 0 <= self.color_jitter < 1:
            raise ConfigError(f"`color_jitter` must be in [0, 1), got {self.color_jitter!r}")


@dataclasses.dataclass
class TrainSummary:
    """What ``train`` returns (the CLI prints it)."""

    run_dir: Path
    model_path: Path
    best_epoch: int
    epochs_run: int
    metrics: dict[str, float]
    lr: float
    stopped_early: bool
    duration_s: float

    def __str__(self) -> str:
        shown = ("road_iou", "miou", "dice", "orientation_accuracy", "val_loss")
        text = ", ".join(f"{k} {self.metrics[k]:.3f}" for k in shown if k in self.metrics)
        stop = " (early stop)" if self.stopped_early else ""
        return (f"Trained {self.epochs_run} epochs{stop} in {self.duration_s:.0f} s (lr {self.lr:.2g}); best epoch "
                f"{self.best_epoch}: {text}. Model: {self.model_path}")


class RoadTaskAdapter(TaskAdapter):
    """Roads on the shared loop: :class:`~geodefect.losses.RoadLoss`, :class:`~geodefect.metrics.RoadMetrics`."""

    def __init__(self, cfg: RoadTrainConfig, meta: dict) -> None:
        from geodefect.losses import RoadLoss

        self.monitor = cfg.monitor
        self.n_classes = int(meta["orientation"]["n_classes"])
        self.mean, self.std = meta["mean"], meta["std"]
        self.loss = RoadLoss(road_loss=cfg.road_loss, road_weight=cfg.road_weight,
                             orientation_weight=cfg.orientation_weight,
                             orientation_ignore_background=cfg.orientation_ignore_background)

    def compute_loss(self, output, batch):
        return self.loss(output, batch)

    def new_metrics(self):
        from geodefect.metrics import RoadMetrics

        return RoadMetrics(n_classes=self.n_classes)

    def plot_samples(self, batch, output):
        from geodefect.workflows.road_plots import plot_road_samples

        return plot_road_samples(batch, output, mean=self.mean, std=self.std)


def model_spec(cfg: RoadTrainConfig, meta: dict) -> dict[str, Any]:
    """``{"name", "kwargs"}`` of the model (stored in the recipe; weights come from the package)."""
    kwargs: dict[str, Any] = {"in_channels": len(meta["bands"]), "n_classes": int(meta["orientation"]["n_classes"])}
    if cfg.model == "road_linknet":
        kwargs["encoder"] = cfg.encoder
    else:
        kwargs["width"] = cfg.width
    kwargs.update(cfg.model_kwargs)
    kwargs.pop("encoder_weights", None)
    return {"name": cfg.model, "kwargs": kwargs}


def make_recipe(meta: dict, spec: dict, chips_dir: Path, n_train: int, n_val: int) -> dict[str, Any]:
    """The model package recipe: everything ``geodefect infer`` needs besides the weights."""
    return {
        "task": "roads",
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


def loop_config(cfg: RoadTrainConfig):
    from geodefect.training import LoopConfig

    return LoopConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
        scheduler=cfg.lr_schedule, patience=cfg.patience, seed=cfg.seed, device=cfg.device,
        num_workers=cfg.num_workers, steps_per_epoch=cfg.steps_per_epoch, val_steps=cfg.val_steps,
        checkpoint_every_steps=cfg.checkpoint_every_steps, checkpoint_every_s=cfg.checkpoint_every_s,
        grad_clip=cfg.grad_clip, threads=cfg.threads,
    )


def resolve_run_config(run_dir: Path, config_file, overrides: dict, *, resume: bool) -> RoadTrainConfig:
    """Resolve options; on resume start from the run's config.yaml and refuse result-changing edits."""
    from geodefect.config import config_to_dict, load_yaml, resolve_config

    if not resume:
        return resolve_config(RoadTrainConfig, config_file, overrides)
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise InputError(f"cannot resume: {str(saved_path)!r} does not exist; train without --resume to start a run")
    saved = resolve_config(RoadTrainConfig, saved_path, {})
    merged = {**config_to_dict(saved), **(load_yaml(config_file) if config_file else {}), **overrides}
    cfg = resolve_config(RoadTrainConfig, None, merged)
    changed = sorted(k for k, v in config_to_dict(cfg).items()
                     if k not in RESUME_FREE and v != config_to_dict(saved).get(k))
    if changed:
        raise ConfigError(f"cannot change {', '.join(changed)} when resuming (the run was started with other values); "
                          "drop those options, or start a new run with --overwrite")
    return cfg


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Create RUN_DIR; refuse to replace a run without --overwrite, or a folder of other files."""
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise InputError(f"cannot resume: {str(run_dir / 'last.pt')!r} does not exist; train without --resume")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"run folder {str(run_dir)!r} already exists; pass --overwrite to replace it "
                                    "or --resume to continue it")
        foreign = [p.name for p in run_dir.iterdir() if p.name not in RUN_FILES and not p.name.startswith(".tmp-")]
        if foreign:
            raise OutputExistsError(f"run folder {str(run_dir)!r} holds files geodefect train did not write "
                                    f"({', '.join(sorted(foreign)[:3])}); choose another RUN_DIR")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def make_datasets(chips_dir: Path, cfg: RoadTrainConfig, meta: dict):
    from geodefect.datasets.roads import RoadChipDataset
    from geodefect.datasets.transforms import RoadAugment

    augment = RoadAugment(bin_deg=int(meta["orientation"]["bin_deg"]), geometry=cfg.augment_geometry,
                          brightness=cfg.color_jitter, contrast=cfg.color_jitter)
    train_ds = RoadChipDataset(chips_dir, split="train", augment=augment, cache_mb=cfg.cache_mb)
    val_ds = RoadChipDataset(chips_dir, split="val", augment=None, cache_mb=cfg.cache_mb)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise InputError(
            f"chip folder {str(chips_dir)!r} has {len(train_ds)} training and {len(val_ds)} validation chips; both are "
            "needed: chip a larger area, or a smaller --size-px, or raise --val-fraction"
        )
    return train_ds, val_ds


def train(data_dir, run_dir, *, config_file=None, overrides: dict | None = None, resume: bool = False,
          overwrite: bool = False, callbacks=()) -> TrainSummary:
    """Train a road model on a chip folder; see the module docstring for the outputs."""
    import torch

    from geodefect.config import save_config
    from geodefect.datasets.roads import read_road_meta
    from geodefect.models.checkpoint import load_package, save_package
    from geodefect.models.registry import build_model
    from geodefect.training import fit
    from geodefect.training_state import setup_distributed

    t0 = time.perf_counter()
    chips_dir, run_dir = Path(data_dir), Path(run_dir)
    meta = read_road_meta(chips_dir)
    cfg = resolve_run_config(run_dir, config_file, overrides or {}, resume=resume)
    loop_cfg = loop_config(cfg)
    train_ds, val_ds = make_datasets(chips_dir, cfg, meta)
    spec = model_spec(cfg, meta)
    recipe = make_recipe(meta, spec, chips_dir, len(train_ds), len(val_ds))
    if cfg.init_from and not resume:  # checked before RUN_DIR is touched
        from geodefect.models.pretrained import check_init_package

        check_init_package(cfg.init_from, task="roads", recipe=recipe)
    ctx = setup_distributed(cfg.device)  # under torchrun: join the group now, so only rank 0 touches RUN_DIR
    if ctx.is_main:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        save_config(cfg, run_dir / "config.yaml")
    else:
        logging.getLogger("geodefect").setLevel(logging.WARNING)
    ctx.barrier()
    torch.manual_seed(cfg.seed)
    weights = None if resume else cfg.encoder_weights
    model = build_model(spec["name"], **spec["kwargs"], **({"encoder_weights": weights} if cfg.model == "road_linknet" else {}))
    if cfg.init_from and not resume:
        from geodefect.models.pretrained import init_from_package

        init_from_package(model, cfg.init_from, task="roads", recipe=recipe)
        recipe["init_from"] = str(cfg.init_from)
        log.info("starting from the weights of %s", cfg.init_from)
    log.info("training %s on %d chips (%d val) from %s", spec["name"], len(train_ds), len(val_ds), chips_dir)
    result = fit(model, RoadTaskAdapter(cfg, meta), train_ds, val_ds, run_dir, config=loop_cfg, recipe=recipe,
                 resume=resume, callbacks=callbacks)
    if ctx.is_main:
        best, best_recipe = load_package(run_dir / "best.pt")
        best_recipe["final_metrics"] = result.best_metrics
        save_package(run_dir / "model.pt", model=best, recipe=best_recipe)
    return TrainSummary(run_dir, run_dir / "model.pt", result.best_epoch, len(result.history), result.best_metrics,
                        result.lr, result.stopped_early, time.perf_counter() - t0)
