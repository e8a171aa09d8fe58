"""Learning-rate range test (Smith 2015; fastai / ArcGIS ``lr_find``) for ``--lr auto``.

The learning rate grows exponentially from ``lr_min`` (1e-7) to ``lr_max`` (10) over ``steps``
training steps while the loss is smoothed with a bias-corrected exponential moving average
(fastai uses beta 0.98 over 100 steps; here beta = 1 - 5/steps within [0.8, 0.98], so a short
sweep does not lag behind by most of its length). The sweep stops early when the smoothed loss
exceeds 4x its minimum. The pick is the smaller of the learning rate at the smoothed-loss
minimum divided by 10 (fastai v1's rule of thumb, "min/10") and the steepest-descent point. The model's weights,
buffers and the RNG states are restored afterwards, so the range test leaves no trace in
training except the chosen learning rate.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

from geodefect.errors import TrainingError


@dataclasses.dataclass
class LRFindResult:
    """Sweep record: ``lrs`` and smoothed ``losses``; ``lr`` is the pick."""

    lrs: list[float]
    losses: list[float]
    lr: float
    lr_at_min: float
    lr_steepest: float

    def save_plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from geodefect.io.atomic import atomic_path

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses)
        ax.axvline(self.lr, color="r", linestyle="--", label=f"picked {self.lr:.1e}")
        ax.axvline(self.lr_steepest, color="g", linestyle=":", label=f"steepest {self.lr_steepest:.1e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("smoothed training loss")
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)


def pick_lr(lrs: list[float], losses: list[float]) -> LRFindResult:
    """Choose from a sweep: min((lr at min loss) / 10, lr of the steepest negative slope)."""
    if len(lrs) < 3:
        raise TrainingError("the learning-rate range test stopped after fewer than 3 steps; pass a number to --lr")
    i_min = min(range(len(losses)), key=losses.__getitem__)
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(lrs) - 1)]
    i_steep = min(range(len(slopes)), key=slopes.__getitem__)
    return LRFindResult(lrs, losses, min(lrs[i_min] / 10, lrs[i_steep]), lrs[i_min], lrs[i_steep])


def find_lr(run, loader, *, steps: int, lr_min: float = 1e-7, lr_max: float = 10.0) -> LRFindResult:
    """Run the range test with ``run``'s model/adapter on batches of ``loader`` (cycled)."""
    import torch

    from geodefect.training.state import capture_rng, move_batch, restore_rng

    model, adapter = run.model, run.adapter
    saved_weights = copy.deepcopy(model.state_dict())
    rng = capture_rng()
    opt = torch.optim.AdamW(model.parameters(), lr=lr_min, weight_decay=run.cfg.weight_decay)
    factor = (lr_max / lr_min) ** (1 / max(steps - 1, 1))
    lrs, losses, avg, best = [], [], 0.0, math.inf
    beta = min(0.98, max(0.8, 1 - 5 / steps))
    model.train()
    batches = _cycle(loader)
    try:
        for i in range(steps):
            lr = lr_min * factor**i
            for group in opt.param_groups:
                group["lr"] = lr
            batch = move_batch(next(batches), run.ctx.device, adapter.input_key)
            loss, _ = adapter.compute_loss(adapter.forward(model, batch), batch)
            if not torch.isfinite(loss):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            avg = beta * avg + (1 - beta) * float(loss.detach())
            smooth = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if i > 5 and smooth > 4 * best:
                break
    finally:
        model.load_state_dict(saved_weights)
        restore_rng(rng)
    return pick_lr(lrs, losses)


def _cycle(loader):
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise TrainingError("the learning-rate range test found no training batches; pass a number to --lr")
