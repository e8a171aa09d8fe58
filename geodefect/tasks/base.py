"""The Task protocol: what a task says about its chips, model, loss, inference and scoring.

A task is an *instance* of one class per kind of problem (road multitask, segmentation,
classification, domain-generalised classification, panorama stack), configured in the
registry (:mod:`geodefect.tasks`). The verbs (``geodefect.workflows``) are task-agnostic: they
resolve the config, look the task up and call its hooks:

============  ====================================================================
hook          what it returns
============  ====================================================================
``chip``      writes a chip folder for this task (``meta.json`` names the task)
``prepare``   validated training data: :class:`TaskData` (datasets + facts for the recipe)
``model``     ``(spec, module)``: the registry spec stored in the recipe, the built model
``adapter``   the :class:`~geodefect.training.loop.TaskAdapter` (loss, metrics, monitor, plots)
``recipe``    the model package recipe (everything ``infer`` needs besides the weights)
``fit``       runs the loop (default: one fit; k-fold tasks override)
``tune``      recipe entries chosen on validation data after training (segmenters: mask
              threshold and minimum component size), stored in ``model.pt``
``infer``     runs a package over inputs, writes outputs
``evaluate``  scores predictions or a model on labelled data
============  ====================================================================

``Options`` is the task's own options dataclass (never a copy of a loop field) and
``loop_defaults`` its defaults for loop fields (:class:`~geodefect.training.config.LoopConfig`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from geodefect.errors import InputError
from geodefect.summary import Summary

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A task without options of its own."""


@dataclasses.dataclass
class TaskData:
    """Validated training data: the two datasets and facts the recipe needs (counts, stats, classes)."""

    train: Any
    val: Any
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class Task:
    """Base class of every task; subclasses implement the hooks their kind needs.

    Class or instance attributes:
        name: the registry key, stored in ``meta.json`` and in model recipes.
        Options: the dataclass of this task's own options.
        loop_defaults: defaults of loop fields for this task.
        chip_kind: ``geo`` (GeoTIFFs + vectors), ``images`` (image folders + masks/boxes) or
            ``raw`` (the task trains from a raw folder; ``chip`` converts a known layout).
    """

    name: str = ""
    description: str = ""
    Options: type = NoOptions
    loop_defaults: dict[str, Any] = {}
    chip_kind: str = "images"

    def complete_options(self, opts):
        """``opts`` with the values this task fills in itself (saved in config.yaml as used)."""
        return opts

    def option_defaults_shown(self) -> dict[str, Any]:
        """Defaults of ``Options`` fields that this task fills in itself (shown in ``--help``)."""
        return {}

    # -- data ------------------------------------------------------------------------------
    def owns_data(self, data_dir: Path) -> bool:
        """True when ``data_dir`` is this task's training data (default: its ``meta.json`` says so)."""
        meta = data_dir / "meta.json"
        if not meta.is_file():
            return False
        try:
            return json.loads(meta.read_text()).get("task") == self.name
        except (json.JSONDecodeError, OSError):
            return False

    def read_meta(self, data_dir: Path) -> dict[str, Any]:
        from geodefect.chips.meta import read_chip_meta

        meta = read_chip_meta(data_dir)
        if meta.get("complete") is False:
            raise InputError(f"chip folder {str(data_dir)!r} is incomplete (chipping was interrupted); rerun "
                             "the same `geodefect chip` command to finish it")
        return meta

    # -- training hooks --------------------------------------------------------------------
    def prepare(self, data_dir: Path, cfg, meta: dict) -> TaskData:
        raise NotImplementedError(f"task {self.name!r} does not train")

    def model(self, cfg, meta: dict, data: TaskData, *, pretrained: bool) -> tuple[dict, Any]:
        raise NotImplementedError

    def adapter(self, cfg, meta: dict, data: TaskData):
        raise NotImplementedError

    def recipe(self, cfg, meta: dict, spec: dict, data: TaskData, data_dir: Path) -> dict[str, Any]:
        raise NotImplementedError

    def resume_nested(self, cfg) -> bool:
        """True when a resumable run keeps its state in sub-folders (k-fold)."""
        return False

    def tune(self, model, cfg, data: TaskData) -> dict[str, Any]:
        """Recipe entries chosen on the validation data with the best model (default: none)."""
        return {}

    def fit(self, data_dir: Path, run_dir: Path, cfg, meta: dict, data: TaskData, *, resume: bool,
            callbacks=()) -> Summary:
        """One training run: model, adapter, recipe, the shared loop, then ``model.pt``."""
        result, timer = fit_once(self, data_dir, run_dir, cfg, meta, data, resume=resume, callbacks=callbacks)
        return train_summary(self.name, run_dir, result, timer, cfg)

    # -- other verbs -----------------------------------------------------------------------
    def chip(self, inputs: list, out_dir, *, config_file=None, overrides=None, overwrite=False, **sources) -> Summary:
        raise InputError(f"task {self.name!r} has no `geodefect chip` step; train it on its raw folder")

    def infer(self, model_path, inputs: list, out_dir, *, recipe: dict, config_file=None, overrides=None,
              overwrite: bool = False) -> Summary:
        raise InputError(f"task {self.name!r} has no `geodefect infer`")

    def evaluate_model(self, model_path, data_dir, out_dir, *, config_file=None, overrides=None,
                       overwrite: bool = False) -> Summary:
        raise InputError(f"`geodefect evaluate --model --data` does not score {self.name!r} models")

    def explain(self, model_path, image, out_dir, *, recipe: dict, **options) -> Summary:
        raise InputError(f"`geodefect explain` explains crack and rail models; {str(model_path)!r} is a "
                         f"{self.name!r} model")


class StepTimer:
    """A training-loop callback that records the wall time of each step (first step of an epoch excluded)."""

    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self.durations: list[float] = []
        self._last: float | None = None

    def __call__(self, info) -> None:
        now = self._clock()
        if self._last is not None and info.step > 1:
            self.durations.append(now - self._last)
        self._last = now

    @property
    def mean_s(self) -> float:
        return sum(self.durations) / len(self.durations) if self.durations else float("nan")


BUILT_KEY = "_model_built_first"


def build_model_first(task: Task, cfg, meta: dict, data: TaskData, *, resume: bool) -> None:
    """Build the model before RUN_DIR is touched, so that an option the model refuses (weights
    that would need a download, an option the model does not take) leaves nothing behind.

    The model (and the RNG state after building it) goes into ``data.info`` and
    :func:`fit_once` uses it instead of building again, so results do not change.
    """
    import torch

    torch.manual_seed(cfg.loop.seed)
    spec, model = task.model(cfg, meta, data, pretrained=not resume)
    data.info[BUILT_KEY] = (spec, model, torch.get_rng_state())


def fit_once(task: Task, data_dir: Path, run_dir: Path, cfg, meta: dict, data: TaskData, *, resume: bool,
             callbacks=()):
    """Build the model and adapter, run :func:`~geodefect.training.loop.fit`, write ``model.pt``.

    ``model.pt`` is the best epoch's package with ``final_metrics`` in its recipe. Returns
    ``(FitResult, StepTimer)``.
    """
    import torch

    from geodefect.models.checkpoint import load_package, save_package
    from geodefect.training.loop import fit

    built = data.info.pop(BUILT_KEY, None)
    if built is None:
        torch.manual_seed(cfg.loop.seed)
        spec, model = task.model(cfg, meta, data, pretrained=not resume)
    else:  # built by build_model_first before RUN_DIR was touched: the same model and RNG state
        spec, model, rng_state = built
        torch.set_rng_state(rng_state)
    recipe = task.recipe(cfg, meta, spec, data, data_dir)
    timer = StepTimer()
    log.info("training %s (%s) on %d samples (%d val) from %s", task.name, spec["name"], len(data.train),
             len(data.val), data_dir)
    result = fit(model, task.adapter(cfg, meta, data), data.train, data.val, run_dir, config=cfg.loop,
                 recipe=recipe, resume=resume, callbacks=[timer, *callbacks])
    if _is_main_process():
        best, best_recipe = load_package(run_dir / "best.pt")
        best_recipe["final_metrics"] = result.best_metrics
        best_recipe.update(task.tune(best, cfg, data))
        save_package(run_dir / "model.pt", model=best, recipe=best_recipe)
    return result, timer


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


SHOWN_METRICS = ("road_iou", "miou", "iou", "f1", "accuracy", "precision", "recall", "orientation_accuracy",
                 "box_recall", "box_precision", "val_loss")


def train_summary(task: str, run_dir: Path, result, timer: StepTimer, cfg) -> Summary:
    """The :class:`Summary` of one finished run (also written as ``RUN_DIR/summary.json``)."""
    metrics = {k: float(v) for k, v in result.best_metrics.items()}
    data = {"run_dir": str(run_dir), "model": str(run_dir / "model.pt"), "best": str(run_dir / "best.pt"),
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "stopped_early": result.stopped_early, "lr": float(result.lr),
            "time_per_step_s": timer.mean_s, "metrics": metrics, "config": cfg.to_dict()}
    if _is_main_process():
        from geodefect.io.atomic import write_text_atomic

        write_text_atomic(run_dir / "summary.json", json.dumps({"task": task, **data}, indent=2, default=float))
    shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in SHOWN_METRICS if k in metrics)
    stop = " (early stop)" if result.stopped_early else ""
    lines = [f"Trained {task}: {len(result.history)} epochs{stop} (lr {result.lr:.2g}, {timer.mean_s:.3f} s/step); "
             f"best epoch {result.best_epoch}: {shown}",
             f"model: {run_dir / 'model.pt'}"]
    return Summary("train", task, lines, data)
