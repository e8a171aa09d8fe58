"""The training loop's options, declared once (:class:`LoopConfig`), and a run's whole config.

A run's configuration is two sections (raster-vision's ``SolverConfig`` inside its
``LearnerConfig``): ``loop`` -- the task-independent options of the one training loop -- and
``task`` -- the options that only one task understands (its ``Options`` dataclass).
A task contributes only its ``Options`` and its ``loop_defaults`` (e.g. roads train 20 epochs,
the crack classifier uses a step schedule), never a copy of a loop field.

YAML files may use the sections (``loop:``, ``task:``) or be flat as before: each flat key
goes to the one section that declares it; unknown keys are an error that lists the valid ones.

Resuming (:func:`resolve_train_config` with ``saved``): options that change the result are
refused; those declared ``resume_free`` (device, threads, data-loading workers, checkpoint
cadence, caches) may change.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from geodefect.config import config_to_dict, load_yaml, option
from geodefect.errors import ConfigError

SCHEDULERS = ("onecycle", "cosine", "constant", "step")
SECTIONS = ("loop", "task")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Settings of the training loop, the same for every task (see each field's help).

    ``lr="auto"`` runs a range test first (:func:`geodefect.training.lr_find.find_lr`).
    ``amp`` None = mixed precision on CUDA (bf16 where supported, else fp16 with a
    GradScaler), never on CPU (bf16 autocast is ~100x slower on CPUs without bf16 units).
    ``threads``: on a CPU shared with other jobs use 1 (OpenMP threads that wait for busy
    cores slow training ~10x).
    """

    epochs: int = option(10, "Training epochs (passes over the training set).")
    batch_size: int = option(8, "Samples per step (per process under DDP).")
    lr: float | str = option(1e-3, "Peak learning rate of AdamW, or 'auto' for a range test (like ArcGIS lr_find).")
    weight_decay: float = option(1e-4, "AdamW decoupled weight decay.")
    lr_schedule: str = option("onecycle", "Learning-rate schedule (onecycle: warm-up then cosine, for short budgets).",
                              choices=SCHEDULERS)
    step_epochs: int = option(10, "--lr-schedule step: epochs between lr drops.")
    step_gamma: float = option(0.1, "--lr-schedule step: lr factor per drop.")
    patience: int = option(0, "Stop after this many epochs without a better validation metric (0 = never).")
    seed: int = option(0, "Seed of model init, data order and augmentation.")
    device: str = option("auto", "auto (CUDA with mixed precision when present) | cpu | cuda | cuda:N.",
                         resume_free=True)
    amp: bool | None = option(None, "Mixed precision (default: on for CUDA, off on CPU).", cli=False)
    num_workers: int = option(0, "Data-loading processes (0 = in the main process).", resume_free=True)
    steps_per_epoch: int = option(0, "Cap on training steps per epoch (0 = one full pass).")
    val_steps: int = option(0, "Cap on validation batches (0 = all).")
    checkpoint_every_steps: int = option(0, "Also write last.pt every N steps mid-epoch (0 = off).", resume_free=True)
    checkpoint_every_s: float = option(300.0, "Also write last.pt mid-epoch when this many seconds passed.",
                                       resume_free=True)
    grad_clip: float = option(0.0, "Clip the gradient norm to this value (0 = off).")
    n_samples: int = option(4, "Validation samples drawn in samples.png.", cli=False)
    lr_find_steps: int = option(60, "Steps of the range test for --lr auto.", cli=False)
    threads: int = option(0, "CPU threads for torch (0 = one per core); 1 is faster on a CPU shared with other jobs.",
                          resume_free=True)

    def __post_init__(self) -> None:
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                object.__setattr__(self, "lr", float(self.lr))
            except ValueError:
                raise ConfigError(f"`lr` must be a number or 'auto', got {self.lr!r}") from None
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.lr == "auto" or (isinstance(self.lr, int | float) and 0 < self.lr < 10), "lr", self.lr,
               "'auto' or a number in (0, 10), e.g. 1e-3")
        _check(self.lr_schedule in SCHEDULERS, "lr_schedule", self.lr_schedule, f"one of {', '.join(SCHEDULERS)}")
        _check(self.patience >= 0, "patience", self.patience, "an integer >= 0 (0 = no early stopping)")
        _check(self.num_workers >= 0, "num_workers", self.num_workers, "an integer >= 0")
        _check(self.step_epochs >= 1, "step_epochs", self.step_epochs, "an integer >= 1")
        _check(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.lr_find_steps >= 5, "lr_find_steps", self.lr_find_steps, "an integer >= 5")
        _check(self.threads >= 0, "threads", self.threads, "an integer >= 0 (0 = one per core)")


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"`{name}` must be {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A run's resolved options: the loop's and the task's (``cfg.loop.epochs``, ``cfg.task.encoder``)."""

    loop: LoopConfig
    task: Any

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Sectioned plain data (what ``config.yaml`` holds)."""
        return {"loop": config_to_dict(self.loop), "task": config_to_dict(self.task)}

    def changed_from(self, other: TrainConfig) -> list[str]:
        """Names of options that differ from ``other`` and are not ``resume_free``."""
        changed = []
        for section in SECTIONS:
            cls = type(getattr(self, section))
            mine, theirs = config_to_dict(getattr(self, section)), config_to_dict(getattr(other, section))
            for f in dataclasses.fields(cls):
                if not f.metadata.get("resume_free") and mine.get(f.name) != theirs.get(f.name):
                    changed.append(f.name)
        return sorted(changed)


def split_sections(data: dict[str, Any], options_cls: type, *, source: str) -> dict[str, dict[str, Any]]:
    """Route a flat or sectioned mapping to ``{"loop": {...}, "task": {...}}``.

    Raises:
        ConfigError: for a key no section declares (the message lists the valid keys), or a
            section key holding something other than a mapping.
    """
    fields = {"loop": {f.name for f in dataclasses.fields(LoopConfig)},
              "task": {f.name for f in dataclasses.fields(options_cls)}}
    out: dict[str, dict[str, Any]] = {"loop": {}, "task": {}}
    unknown: list[str] = []
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source} section `{key}:` must be a mapping of option: value, got {value!r}")
            for sub, v in value.items():
                sub = str(sub).replace("-", "_")
                (out[key].__setitem__(sub, v) if sub in fields[key] else unknown.append(f"{key}.{sub}"))
            continue
        home = [s for s in SECTIONS if key in fields[s]]
        if home:
            out[home[0]][key] = value
        else:
            unknown.append(key)
    if unknown:
        valid = sorted(fields["loop"] | fields["task"])
        raise ConfigError(f"unknown {source} key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(valid)}")
    return out


def resolve_train_config(options_cls: type, loop_defaults: dict[str, Any], config_file: str | Path | None = None,
                         overrides: dict[str, Any] | None = None, *, saved: dict[str, Any] | None = None) -> TrainConfig:
    """Build a run's config: loop defaults <- the task's ``loop_defaults`` <- [saved run] <- YAML <- flags.

    Args:
        options_cls: the task's ``Options`` dataclass.
        loop_defaults: the task's defaults for loop fields.
        config_file: YAML, flat or sectioned.
        overrides: the flags the user gave (flat keys).
        saved: a resumed run's ``config.yaml`` content; when given, result-changing options
            that differ from it raise a ConfigError naming them.
    """
    layers = [("task defaults", {"loop": dict(loop_defaults), "task": {}})]
    if saved is not None:
        layers.append(("saved run config", split_sections(saved, options_cls, source="saved run config")))
    if config_file:
        layers.append(("config file", split_sections(load_yaml(config_file), options_cls, source="config file")))
    layers.append(("options", split_sections(dict(overrides or {}), options_cls, source="options")))
    values: dict[str, dict[str, Any]] = {"loop": {}, "task": {}}
    for _, layer in layers:
        for section in SECTIONS:
            values[section].update({k: v for k, v in layer[section].items() if v is not None})
    cfg = TrainConfig(loop=_build(LoopConfig, values["loop"]), task=_build(options_cls, values["task"]))
    if saved is not None:
        before = _saved_config(options_cls, loop_defaults, saved)
        changed = cfg.changed_from(before)
        if changed:
            raise ConfigError(f"cannot change {', '.join(changed)} when resuming (the run was started with other "
                              "values); drop those options, or start a new run with --overwrite")
    return cfg


def _saved_config(options_cls: type, loop_defaults: dict[str, Any], saved: dict[str, Any]) -> TrainConfig:
    sections = split_sections(saved, options_cls, source="saved run config")
    loop = {**loop_defaults, **{k: v for k, v in sections["loop"].items() if v is not None}}
    return TrainConfig(loop=_build(LoopConfig, loop), task=_build(options_cls, sections["task"]))


def _build(cls: type, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid configuration: {exc}") from None


def save_train_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write ``config.yaml`` (sections ``loop`` and ``task``), atomically."""
    import yaml

    from geodefect.io.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
