"""Per-epoch reports of the training loop: ``metrics.csv``, ``curves.png``, ``samples.png``
(written atomically), the epoch log line, and helpers for them."""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

from geodefect.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger("geodefect.training")

#: metrics drawn in curves.png when present (the monitored one always; all are in metrics.csv)
CURVE_METRICS = ("road_iou", "miou", "dice", "orientation_accuracy", "iou", "f1", "accuracy")


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    """One row per epoch; columns are the union of keys in first-seen order."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    write_text_atomic(path, buf.getvalue())


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(path: Path, history: list[dict], *, monitor: str) -> None:
    """Loss curves (train/val) on the left, validation metrics on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "val_loss"):
        ax_loss.plot(epochs, [r.get(key, float("nan")) for r in history], marker="o", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    metric_keys = [k for k in history[-1] if not k.startswith(("train_", "val_")) and k not in ("epoch", "lr", "time_s")]
    shown = [k for k in metric_keys if k in CURVE_METRICS or k == monitor]
    metric_keys = shown or metric_keys[:6]
    for key in metric_keys:
        ax_metric.plot(epochs, [r.get(key, float("nan")) for r in history], marker="o", label=key,
                       linewidth=2.5 if key == monitor else 1.0)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("validation metric")
    ax_metric.set_ylim(0, 1.05)
    ax_metric.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def to_cpu(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().float().cpu() if obj.is_floating_point() else obj.detach().cpu()
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_cpu(v) for v in obj))
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def write_reports(run_dir: Path, history: list[dict], adapter, first) -> None:
    """metrics.csv, curves.png and (if the adapter draws one) samples.png of the first val batch."""
    write_metrics_csv(run_dir / "metrics.csv", history)
    plot_curves(run_dir / "curves.png", history, monitor=adapter.monitor)
    fig = adapter.plot_samples(*first) if first is not None else None
    if fig is not None:
        import matplotlib.pyplot as plt

        from geodefect.io.atomic import atomic_path

        with atomic_path(run_dir / "samples.png") as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)


def log_epoch(row: dict, monitor: str) -> None:
    shown = {k: v for k, v in row.items() if k in ("train_loss", "val_loss", monitor)}
    text = "  ".join(f"{k} {v:.4f}" for k, v in shown.items() if isinstance(v, float) and math.isfinite(v))
    log.info("epoch %d: %s", row["epoch"], text)


class NullBar:
    """Stands in for the progress bar on DDP ranks other than 0."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass
