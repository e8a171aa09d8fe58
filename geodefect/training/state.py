"""State, checkpoints, data order and DDP plumbing of the training loop (:mod:`geodefect.training`).

Exact resume rests on three things kept here:

* the training order is :class:`EpochSampler` - a pure function of ``(seed, epoch)``; resuming
  at step ``k`` skips the first ``k`` batches of that same order;
* :class:`SeededDataset` seeds Python's, NumPy's and torch's global RNGs from
  ``(seed, epoch, index)`` before each sample, so augmentation does not depend on history,
  workers or prefetching;
* ``last.pt`` holds everything else that changes during training: weights, optimiser,
  scheduler, grad scaler, epoch, step within the epoch, running loss sums, history, best
  metric, patience counter and the main process's RNG states (dropout).

``last.pt`` is also a valid model package (``load_package`` reads it, ignoring the extra
``training`` entry), written atomically like ``best.pt``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from geodefect.errors import TrainingError
from geodefect.models.checkpoint import FORMAT, FORMAT_VERSION


# -- data order ------------------------------------------------------------------------------
def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for sample ``index`` in ``epoch`` (epoch -1 = the lr range test)."""
    return int(np.random.SeedSequence([seed, epoch + 1, index]).generate_state(1)[0])


class EpochSampler:
    """Yields ``(index, sample_seed)`` for one epoch on one rank.

    The permutation depends only on ``(seed, epoch)``; rank ``r`` of ``w`` takes every
    ``w``-th index starting at ``r`` (truncated so all ranks take the same number), like
    ``torch.utils.data.DistributedSampler`` but without padding duplicates. ``skip`` drops
    that many leading items (resume mid-epoch).
    """

    def __init__(self, n: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 skip: int = 0, equal_shards: bool = True) -> None:
        if shuffle:
            order = np.random.default_rng([seed, epoch + 1]).permutation(n)
        else:
            order = np.arange(n)
        shard = order[rank::world_size]
        if equal_shards:
            shard = shard[: n // world_size]
        self.indices = shard[skip:].tolist()
        self.seeds = [sample_seed(seed, epoch, i) for i in self.indices]

    def __iter__(self):
        return iter(zip(self.indices, self.seeds, strict=True))

    def __len__(self) -> int:
        return len(self.indices)


class SeededDataset:
    """Wraps a map-style dataset: ``ds[(i, s)]`` seeds the global RNGs with ``s``, returns ``base[i]``."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        import torch

        index, seed = key
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return self.base[index]


def make_loader(dataset, cfg, ctx: DistributedContext, *, epoch: int, skip_batches: int, train: bool):
    """A DataLoader over ``dataset`` for one epoch (order per :class:`EpochSampler`)."""
    import torch

    per_rank = len(dataset) // ctx.world_size if train else math.ceil(len(dataset) / ctx.world_size)
    drop_last = train and per_rank >= cfg.batch_size
    sampler = EpochSampler(len(dataset), seed=cfg.seed, epoch=epoch if train else 0, shuffle=train,
                           rank=ctx.rank, world_size=ctx.world_size, skip=skip_batches * cfg.batch_size,
                           equal_shards=train)
    return torch.utils.data.DataLoader(
        SeededDataset(dataset), batch_size=cfg.batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=cfg.num_workers, pin_memory=ctx.device.type == "cuda",
    )


def move_batch(batch: dict, device, input_key: str) -> dict:
    """Tensors of a batch onto ``device``; the input as channels_last on CPU."""
    import torch

    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == input_key and v.ndim == 4 and device.type == "cpu":
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


# -- distributed -----------------------------------------------------------------------------
@dataclasses.dataclass
class DistributedContext:
    """The process's place in a (possibly single-process) run."""

    device: Any
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model):
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def cleanup(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()

    def all_reduce_tensor(self, t):
        """Sum a tensor over ranks (a no-op in a single process)."""
        if not self.distributed:
            return t
        import torch.distributed as dist

        t = t.to(self.device)
        dist.all_reduce(t)
        return t.cpu()

    def all_reduce_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Sum float values over ranks (every rank must hold the same keys)."""
        if not self.distributed:
            return dict(values)
        import torch

        keys = sorted(values)
        t = self.all_reduce_tensor(torch.tensor([values[k] for k in keys], dtype=torch.float64))
        return dict(zip(keys, t.tolist(), strict=True))

    def broadcast_float(self, value: float) -> float:
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())


def setup_distributed(device: str) -> DistributedContext:
    """Resolve ``device``; under ``torchrun`` (WORLD_SIZE > 1) join the process group.

    Backend: NCCL with one GPU per process (``cuda:LOCAL_RANK``) when CUDA is present,
    gloo on CPU.
    """
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and device != "cpu"
        if cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        dev = torch.device("cuda", local) if cuda else torch.device("cpu")
        return DistributedContext(dev, rank=rank, local_rank=local, world_size=world)
    return DistributedContext(resolve_device(device))


def resolve_device(device: str):
    """The torch device for ``device`` (see :func:`geodefect._torch.resolve_device`)."""
    import torch

    from geodefect._torch import resolve_device as resolve

    return torch.device(resolve(device))


# -- state -----------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainState:
    """Counters and history of a run (saved in ``last.pt``)."""

    lr: float
    epoch: int = 0  # finished epochs
    step: int = 0  # finished steps within the current epoch
    global_step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    sums: dict = dataclasses.field(default_factory=dict)
    epoch_start: float = dataclasses.field(default_factory=time.perf_counter)
    _saved: dict = dataclasses.field(default_factory=dict)  # optimiser etc. to restore

    @classmethod
    def fresh(cls, lr: float) -> TrainState:
        return cls(lr=float(lr))

    def add_running(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.sums["_n"] = self.sums.get("_n", 0.0) + 1

    def running_mean(self, key: str) -> float:
        return self.sums.get(key, math.nan) / max(self.sums.get("_n", 0.0), 1.0)

    def running_sums(self) -> dict[str, float]:
        return dict(self.sums) if self.sums else {"_n": 0.0}

    def finish_epoch(self, row: dict, monitor: str, mode: str, patience: int) -> None:
        """Append ``row``; update best epoch and the early-stopping counter; start the next epoch."""
        if monitor not in row:
            raise TrainingError(f"monitored metric {monitor!r} is not among the metrics {sorted(row)}")
        value = row[monitor]
        sign = 1.0 if mode == "max" else -1.0
        better = math.isfinite(value) and (self.best_value is None or sign * value > sign * self.best_value)
        if better or self.best_epoch == 0:
            self.best_value, self.best_epoch, self.bad_epochs = value, row["epoch"], 0
        else:
            self.bad_epochs += 1
        self.history.append(row)
        self.stopped_early = bool(patience) and self.bad_epochs >= patience
        self.epoch += 1
        self.step = 0
        self.sums = {}
        self.epoch_start = time.perf_counter()

    def to_dict(self, opt, sched, scaler) -> dict[str, Any]:
        fields = ("lr", "epoch", "step", "global_step", "history", "best_value", "best_epoch",
                  "bad_epochs", "stopped_early", "sums")
        out = {k: getattr(self, k) for k in fields}
        out.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(), scaler=scaler.state_dict(),
                   rng=capture_rng())
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        keys = ("lr", "epoch", "step", "global_step", "history", "best_value", "best_epoch",
                "bad_epochs", "stopped_early", "sums")
        state = cls(**{k: d[k] for k in keys})
        state._saved = {k: d[k] for k in ("optimizer", "scheduler", "scaler", "rng")}
        return state

    def restore(self, opt, sched, scaler) -> None:
        """Load the saved optimiser, scheduler, scaler and RNG states (after :meth:`from_dict`)."""
        opt.load_state_dict(self._saved["optimizer"])
        sched.load_state_dict(self._saved["scheduler"])
        scaler.load_state_dict(self._saved["scaler"])
        restore_rng(self._saved["rng"])
        self._saved = {}


def capture_rng() -> dict[str, Any]:
    """Global RNG states as tensors/ints (storable with ``weights_only=True``)."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_rest": [int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- checkpoints -----------------------------------------------------------------------------
def training_recipe(recipe: dict, cfg, state: TrainState, row: dict | None) -> dict:
    """The recipe plus the training config, the learning rate used and (for best.pt) metrics."""
    from geodefect.config import config_to_dict

    out = {**recipe, "training": {**config_to_dict(cfg), "lr_used": state.lr}}
    if row is not None:
        out["metrics"] = {k: float(v) for k, v in row.items()}
    return out


def save_best(path: Path, model, recipe: dict, cfg, state: TrainState, row: dict) -> None:
    from geodefect.models.checkpoint import save_package

    save_package(path, model=model, recipe=training_recipe(recipe, cfg, state, row))


class Checkpointer:
    """Writes ``last.pt`` (rank 0 only, atomically) and reads it back for ``--resume``."""

    def __init__(self, run_dir: Path, ctx: DistributedContext, *, every_steps: int, every_s: float) -> None:
        self.path = Path(run_dir) / "last.pt"
        self.ctx, self.every_steps = ctx, every_steps
        self.every_s = 0.0 if ctx.distributed else every_s  # time-based saving would desync ranks
        self._last_save = time.monotonic()

    def due(self, global_step: int) -> bool:
        if self.every_steps and global_step % self.every_steps == 0:
            return True
        return bool(self.every_s) and time.monotonic() - self._last_save >= self.every_s

    def save_last(self, model, recipe, state: TrainState, opt, sched, scaler, cfg) -> None:
        import torch

        from geodefect.io.atomic import atomic_path
        from geodefect.models.checkpoint import _unwrap

        if self.ctx.is_main:
            row = state.history[-1] if state.history else None
            obj = {
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "recipe": training_recipe(recipe, cfg, state, row),
                "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
                "training": state.to_dict(opt, sched, scaler),
            }
            with atomic_path(self.path) as tmp:
                torch.save(obj, tmp)
        self._last_save = time.monotonic()
        self.ctx.barrier()

    def load_into(self, model, recipe: dict) -> TrainState:
        """Load ``last.pt`` weights into ``model``; return its state (call ``restore`` after building the optimiser)."""
        obj = read_checkpoint(self.path)
        saved = obj["recipe"].get("model")
        if saved != recipe.get("model"):
            raise TrainingError(
                f"cannot resume: {str(self.path)!r} holds model {saved!r} but this run builds {recipe.get('model')!r}; "
                "resume with the run's own settings, or start again with --overwrite"
            )
        try:
            model.load_state_dict(obj["state_dict"])
        except RuntimeError as exc:
            raise TrainingError(f"cannot resume: weights in {str(self.path)!r} do not fit the model "
                                f"({str(exc).splitlines()[0]}); start again with --overwrite") from None
        return TrainState.from_dict(obj["training"])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a ``last.pt`` with ``weights_only=True``; TrainingError if missing or unreadable."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise TrainingError(f"cannot resume: {str(path)!r} does not exist; train without --resume to start a run")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise TrainingError(
            f"cannot resume: {str(path)!r} is not a readable checkpoint ({exc.__class__.__name__}); "
            "it may be truncated: start again with --overwrite"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "training" not in obj:
        raise TrainingError(f"cannot resume: {str(path)!r} is not a geodefect training checkpoint; "
                            "start again with --overwrite")
    return obj
