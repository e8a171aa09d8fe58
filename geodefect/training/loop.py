"""The one task-agnostic training loop of geodefect (roads, cracks, rail, damage).

A task plugs in through a :class:`TaskAdapter` (loss, metrics, monitored metric, sample
plots); the loop owns everything else: device and mixed precision, AdamW + a per-step
scheduler, the learning-rate range test (``lr="auto"``), early stopping, ``metrics.csv``,
``curves.png``, ``samples.png``, atomic checkpoints (``best.pt``, ``last.pt``), exact
resume, SIGINT/SIGTERM handling and DistributedDataParallel under ``torchrun``.

Usage (a task's workflow)::

    result = fit(model, adapter, train_ds, val_ds, run_dir,
                 config=LoopConfig(epochs=5, batch_size=8, lr=1e-3), recipe=recipe)

Datasets are map-style: ``len(ds)`` and ``ds[i] -> dict[str, Tensor]`` (a "sample";
the default collate stacks them into a batch). Determinism: the order of the training
samples is a pure function of ``(seed, epoch)`` and, before each ``ds[i]``, the loop seeds
Python's, NumPy's and torch's global RNGs from ``(seed, epoch, i)``. Datasets may use those
global RNGs for augmentation and stay reproducible with any number of workers, and a run
killed mid-epoch and resumed from ``last.pt`` ends with the same weights as one that was
never interrupted.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from geodefect.errors import ConfigError, TrainingError
from geodefect.training.report import NullBar, log_epoch, to_cpu, write_reports
from geodefect.training.state import (
    Checkpointer,
    TrainState,
    make_loader,
    move_batch,
    save_best,
    setup_distributed,
)

log = logging.getLogger(__name__)

from geodefect.training.config import SCHEDULERS, LoopConfig  # noqa: E402,F401  (declared once there)


class TaskAdapter(abc.ABC):
    """What a task supplies to :func:`fit`. Subclass it in the task's workflow.

    Class attributes:
        monitor: name of the validation metric (a key of ``new_metrics().compute()``)
            that selects ``best.pt`` and drives early stopping, e.g. ``"miou"``.
        monitor_mode: ``"max"`` if larger is better, ``"min"`` otherwise.
        input_key: the batch key of the model input (moved to channels_last on CPU).
    """

    monitor: str = "miou"
    monitor_mode: str = "max"
    input_key: str = "image"

    def forward(self, model, batch: dict):
        """Run the model on a batch (on the device). Override for multi-input models."""
        return model(batch[self.input_key])

    @abc.abstractmethod
    def compute_loss(self, output, batch: dict):
        """The loss to minimise and its named parts.

        Returns:
            ``(total, parts)``: ``total`` a scalar tensor with grad; ``parts`` a dict of
            name -> scalar tensor (detached is fine) logged as ``train_<name>``/``val_<name>``.
        """

    @abc.abstractmethod
    def new_metrics(self):
        """A fresh streaming metric (see :class:`geodefect.metrics.StreamingMetric`):
        ``update(output, batch)``, ``state() -> 1-D float64 tensor`` (summed across DDP
        ranks), ``load_state(t)``, ``compute() -> dict[str, float]``."""

    def plot_samples(self, batch: dict, output):
        """A matplotlib Figure of a few validation samples (image | truth | prediction), or None.

        ``batch`` and ``output`` are the first validation batch, on the CPU, float32, from
        the model in eval mode. The loop saves the figure as ``samples.png`` each epoch and
        closes it. The default draws nothing.
        """
        return None


@dataclasses.dataclass
class StepInfo:
    """Passed to callbacks after every optimizer step (``step`` counts from 1 within the epoch)."""

    epoch: int
    step: int
    global_step: int
    loss: float


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per finished epoch (the rows of metrics.csv).
        best_metrics: the best epoch's row without the ``train_*`` columns (validation
            metrics, ``val_loss``, ``epoch``, ``lr``, ``time_s``).
        best_epoch: 1-based epoch of ``best.pt``.
        lr: the learning rate used (resolved if ``"auto"``).
        stopped_early: True when patience ran out.
    """

    history: list[dict[str, float]]
    best_metrics: dict[str, float]
    best_epoch: int
    lr: float
    stopped_early: bool


def fit(
    model,
    adapter: TaskAdapter,
    train_data,
    val_data,
    run_dir: str | Path,
    *,
    config: LoopConfig,
    recipe: dict[str, Any],
    resume: bool = False,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
) -> FitResult:
    """Train ``model`` and write ``best.pt``, ``last.pt``, ``metrics.csv``, ``curves.png``, ``samples.png``.

    Args:
        model: a ``torch.nn.Module`` built by the caller (seed torch first for reproducible init).
        adapter: the task's :class:`TaskAdapter`.
        train_data, val_data: map-style datasets of sample dicts (see module docstring).
        run_dir: an existing folder; the caller decides about overwriting.
        config: loop settings.
        recipe: model-package recipe (``task``, ``model``, ...) stored in ``best.pt`` and
            ``last.pt``; the loop adds ``training`` (config, lr, epoch) and ``metrics``.
        resume: continue exactly from ``run_dir/last.pt``.
        callbacks: called with a :class:`StepInfo` after each step (and after any mid-epoch
            checkpoint of that step), e.g. to stop a test run.

    Raises:
        TrainingError: NaN/inf loss (lower the learning rate), an empty dataset, or a
            ``last.pt`` that cannot be resumed.
    """
    if len(train_data) == 0 or len(val_data) == 0:
        raise TrainingError(
            f"need training and validation samples, got {len(train_data)} and {len(val_data)}; "
            "chip a larger area or change the split"
        )
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    ctx = setup_distributed(config.device)
    run = _Run(model, adapter, train_data, val_data, Path(run_dir), config, recipe, ctx, callbacks)
    with _StopSignals() as stop:
        run.stop = stop
        return run.execute(resume=resume)


class _Run:
    """One training run: the state machine behind :func:`fit`."""

    def __init__(self, model, adapter, train_data, val_data, run_dir, config, recipe, ctx, callbacks):
        import torch

        self.adapter, self.cfg, self.ctx, self.run_dir = adapter, config, ctx, run_dir
        self.train_data, self.val_data, self.recipe, self.callbacks = train_data, val_data, recipe, callbacks
        self.model = model.to(ctx.device)
        if ctx.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = ctx.wrap(self.model)
        self.amp_dtype = _amp_dtype(config, ctx.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        n_train = len(train_data) // ctx.world_size
        full = max(1, n_train // config.batch_size)
        self.steps_per_epoch = min(full, config.steps_per_epoch) if config.steps_per_epoch else full
        self.ckpt = Checkpointer(run_dir, ctx, every_steps=config.checkpoint_every_steps, every_s=config.checkpoint_every_s)
        self.stop = None

    # -- setup -------------------------------------------------------------------------------
    def _build_optimizer(self, lr: float):
        import torch

        opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=self.cfg.weight_decay)
        total = self.cfg.epochs * self.steps_per_epoch
        if self.cfg.lr_schedule == "onecycle" and total >= 4:
            # warm-up 25% of the steps (fastai's default), at least 2.5 steps so tiny runs work
            pct = min(0.5, max(0.25, 2.5 / total))
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=pct)
        elif self.cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=lr * 1e-2)
        elif self.cfg.lr_schedule == "step":  # lr x step_gamma every step_epochs epochs (crack stage 1)
            sched = torch.optim.lr_scheduler.StepLR(
                opt, step_size=max(1, self.cfg.step_epochs) * self.steps_per_epoch, gamma=self.cfg.step_gamma)
        else:
            sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        return opt, sched

    def _resolve_lr(self) -> float:
        if self.cfg.lr != "auto":
            return float(self.cfg.lr)
        from geodefect.training.lr_find import find_lr

        loader = make_loader(self.train_data, self.cfg, self.ctx, epoch=-1, skip_batches=0, train=True)
        found = find_lr(self, loader, steps=self.cfg.lr_find_steps)
        lr = self.ctx.broadcast_float(found.lr)
        log.info("lr auto: range test picked %.2e (loss minimum at %.2e, steepest descent at %.2e)",
                 lr, found.lr_at_min, found.lr_steepest)
        if self.ctx.is_main:
            found.save_plot(self.run_dir / "lr_find.png")
        return lr

    def execute(self, *, resume: bool) -> FitResult:
        if resume:
            state = self.ckpt.load_into(self.model, self.recipe)
            self.opt, self.sched = self._build_optimizer(state.lr)
            state.restore(self.opt, self.sched, self.scaler)
            log.info("resuming at epoch %d step %d", state.epoch + 1, state.step)
        else:
            lr = self._resolve_lr()
            self.opt, self.sched = self._build_optimizer(lr)
            state = TrainState.fresh(lr)
        while state.epoch < self.cfg.epochs and not state.stopped_early:
            self._train_epoch(state)
            self._end_epoch(state)
        self.ctx.barrier()
        self.ctx.cleanup()
        best = next((r for r in state.history if r["epoch"] == state.best_epoch), state.history[-1])
        metrics = {k: v for k, v in best.items() if not k.startswith("train_")}
        return FitResult(state.history, metrics, state.best_epoch, state.lr, state.stopped_early)

    # -- one epoch ---------------------------------------------------------------------------
    def _train_epoch(self, state: TrainState) -> None:
        from geodefect.progress import progress

        self.net.train()
        loader = make_loader(self.train_data, self.cfg, self.ctx, epoch=state.epoch, skip_batches=state.step, train=True)
        desc = f"epoch {state.epoch + 1}/{self.cfg.epochs}"
        bar = progress(total=self.steps_per_epoch, initial=state.step, desc=desc) if self.ctx.is_main else NullBar()
        try:
            for batch in loader:
                if state.step >= self.steps_per_epoch:
                    break
                loss = self._train_step(batch, state)
                bar.update(1)
                bar.set_postfix(loss=f"{state.running_mean('loss'):.4f}", lr=f"{self.sched.get_last_lr()[0]:.1e}")
                self._after_step(state, loss)
        finally:
            bar.close()

    def _train_step(self, batch: dict, state: TrainState) -> float:
        import torch

        batch = move_batch(batch, self.ctx.device, self.adapter.input_key)
        with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            output = self.adapter.forward(self.net, batch)
        loss, parts = self.adapter.compute_loss(output, batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()} at epoch {state.epoch + 1} step {state.step + 1} "
                f"with lr {self.sched.get_last_lr()[0]:.2e}; lower the learning rate (e.g. --lr "
                f"{state.lr / 10:.1e}) or check the chips for bad values"
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        value = float(loss.detach())
        state.add_running({"loss": value, **{k: float(v) for k, v in parts.items()}})
        state.step += 1
        state.global_step += 1
        return value

    def _after_step(self, state: TrainState, loss: float) -> None:
        stop_now = self.stop is not None and self.stop.requested
        # periodic saves skip the epoch's last step (the end-of-epoch save follows); a stop request always saves
        if stop_now or (state.step < self.steps_per_epoch and self.ckpt.due(state.global_step)):
            self.ckpt.save_last(self.model, self.recipe, state, self.opt, self.sched, self.scaler, self.cfg)
        info = StepInfo(state.epoch + 1, state.step, state.global_step, loss)
        for cb in self.callbacks:
            cb(info)
        if stop_now:
            raise KeyboardInterrupt(f"stopped by signal; resume with --resume from {self.run_dir / 'last.pt'}")

    def _validate(self) -> tuple[dict[str, float], dict, Any]:
        import torch

        self.model.eval()  # the bare module: no DDP sync, ranks may hold unequal val shards
        metric = self.adapter.new_metrics()
        sums: dict[str, float] = {}
        first = None
        loader = make_loader(self.val_data, self.cfg, self.ctx, epoch=0, skip_batches=0, train=False)
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if self.cfg.val_steps and i >= self.cfg.val_steps:
                    break
                batch = move_batch(batch, self.ctx.device, self.adapter.input_key)
                with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    output = self.adapter.forward(self.model, batch)
                loss, parts = self.adapter.compute_loss(output, batch)
                n = len(batch[self.adapter.input_key])
                for k, v in {"loss": loss, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                sums["_n"] = sums.get("_n", 0.0) + n
                metric.update(output, batch)
                if first is None:
                    first = (to_cpu(batch), to_cpu(output))
        sums = self.ctx.all_reduce_dict(sums)
        metric.load_state(self.ctx.all_reduce_tensor(metric.state()))
        n = max(sums.pop("_n", 0.0), 1.0)
        values = {f"val_{k}": v / n for k, v in sums.items()}
        values.update(metric.compute())
        return values, first

    def _end_epoch(self, state: TrainState) -> None:
        values, first = self._validate()
        train = self.ctx.all_reduce_dict(state.running_sums())
        n = max(train.pop("_n", 0.0), 1.0)
        row = {"epoch": state.epoch + 1, "lr": self.sched.get_last_lr()[0]}
        row.update({f"train_{k}": v / n for k, v in train.items()})
        row.update(values)
        row["time_s"] = round(time.perf_counter() - state.epoch_start, 3)
        state.finish_epoch(row, self.adapter.monitor, self.adapter.monitor_mode, self.cfg.patience)
        # last.pt first: a run killed between the two files can always be resumed
        self.ckpt.save_last(self.model, self.recipe, state, self.opt, self.sched, self.scaler, self.cfg)
        if self.ctx.is_main:
            if state.best_epoch == row["epoch"]:
                save_best(self.run_dir / "best.pt", self.model, self.recipe, self.cfg, state, row)
            write_reports(self.run_dir, state.history, self.adapter, first)
        log_epoch(row, self.adapter.monitor)


def _amp_dtype(cfg: LoopConfig, device):
    import torch

    use = cfg.amp if cfg.amp is not None else device.type == "cuda"
    if not use:
        return None
    if device.type != "cuda":
        raise ConfigError("`amp` is only supported on CUDA (bf16 autocast is very slow on CPUs); use amp: false")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class _StopSignals:
    """First SIGINT/SIGTERM: finish the step, save last.pt, stop. A second SIGINT: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested: saving last.pt after this step (Ctrl-C again to stop at once)")

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
