"""Streaming segmentation metrics from confusion counts (reusable by every task).

A streaming metric accumulates counts batch by batch (``update``), exposes them as one
float64 vector (``state``) that the training loop sums across DDP ranks, and turns them
into numbers only at the end (``compute``), so metrics over a whole validation set are
exact (not means of per-batch values).

Conventions for empty denominators: IoU and dice are 1.0 when neither truth nor prediction
has the class (perfect agreement on "nothing"); precision is 1.0 with no predicted positives
only if there are no true positives to find (else 0.0), recall likewise.
"""

from __future__ import annotations

from typing import Any, Protocol


class StreamingMetric(Protocol):
    """What :class:`geodefect.training.loop.TaskAdapter.new_metrics` returns."""

    def update(self, output: Any, batch: dict) -> None: ...

    def state(self): ...  # 1-D float64 tensor of sums

    def load_state(self, state) -> None: ...

    def compute(self) -> dict[str, float]: ...


class ConfusionMatrix:
    """``n_classes`` x ``n_classes`` counts, rows = truth, columns = prediction."""

    def __init__(self, n_classes: int) -> None:
        import torch

        self.n_classes = n_classes
        self.matrix = torch.zeros(n_classes, n_classes, dtype=torch.float64)

    def update_labels(self, pred, truth, valid=None) -> None:
        """Add integer label maps of equal shape; ``valid`` (bool, same shape) masks pixels."""
        import torch

        pred, truth = pred.reshape(-1).long(), truth.reshape(-1).long()
        if valid is not None:
            keep = valid.reshape(-1).bool()
            pred, truth = pred[keep], truth[keep]
        k = self.n_classes
        counts = torch.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
        self.matrix += counts.to(self.matrix.device, torch.float64)

    def state(self):
        return self.matrix.reshape(-1).clone().cpu()

    def load_state(self, state) -> None:
        self.matrix = state.reshape(self.n_classes, self.n_classes).to(self.matrix.dtype).cpu()

    def compute(self) -> dict[str, float]:
        """``pixel_accuracy``, ``iou_<k>`` per class and ``miou`` (mean over classes)."""
        m = self.matrix
        total = float(m.sum())
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        ious = [_ratio(float(tp[i]), float(union[i]), 1.0) for i in range(self.n_classes)]
        out = {"pixel_accuracy": _ratio(float(tp.sum()), total, 1.0)}
        out.update({f"iou_{i}": v for i, v in enumerate(ious)})
        out["miou"] = sum(ious) / len(ious)
        return out


def _ratio(num: float, den: float, empty: float) -> float:
    from geodefect.metrics.scores import ratio

    return ratio(num, den, empty=empty)


def binary_scores(tp: float, fp: float, fn: float, tn: float, *, name: str = "fg") -> dict[str, float]:
    """Scores of a binary segmentation from its four counts.

    Returns:
        ``pixel_accuracy``, ``<name>_iou``, ``background_iou``, ``miou`` (mean of the two),
        ``dice`` (= F1 of the positive class), ``precision``, ``recall``.
    """
    iou = _ratio(tp, tp + fp + fn, 1.0)
    bg_iou = _ratio(tn, tn + fp + fn, 1.0)
    return {
        "pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn, 1.0),
        f"{name}_iou": iou,
        "background_iou": bg_iou,
        "miou": (iou + bg_iou) / 2,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        "precision": _ratio(tp, tp + fp, 1.0 if fn == 0 else 0.0),
        "recall": _ratio(tp, tp + fn, 1.0 if fp == 0 else 0.0),
    }


class BinarySegmentationMetric:
    """Binary segmentation counts from logits (threshold on the sigmoid) and a 0/1 truth."""

    def __init__(self, *, name: str = "fg", threshold: float = 0.5) -> None:
        import math

        self.name = name
        self.logit_threshold = math.log(threshold / (1 - threshold))
        self.cm = ConfusionMatrix(2)

    def update_logits(self, logits, truth, valid=None) -> None:
        """``logits`` and ``truth`` of the same shape (e.g. ``(B,1,H,W)``); truth > 0.5 is positive."""
        self.cm.update_labels(logits.detach() > self.logit_threshold, truth > 0.5, valid)

    def state(self):
        return self.cm.state()

    def load_state(self, state) -> None:
        self.cm.load_state(state)

    def compute(self) -> dict[str, float]:
        (tn, fp), (fn, tp) = self.cm.matrix.tolist()
        return binary_scores(tp, fp, fn, tn, name=self.name)


class RoadMetrics:
    """Road segmentation scores plus orientation accuracy on true road pixels.

    ``orientation_accuracy``: share of road pixels (truth road and truth bin > 0) whose
    most likely angle bin (argmax over classes 1..K-1: whether a pixel is road is the road
    head's job, and a model trained with ``orientation_ignore_background`` never learns
    class 0) equals the truth bin; ``orientation_accuracy_1bin`` also accepts the
    neighbouring bins (circular over the ``n_classes - 1`` angle bins);
    ``orientation_accuracy_undirected`` also accepts the opposite bin (θ + 180°): the
    digitising direction of a road is not visible in an image, so directed bins can be at
    best about half right there, while the undirected score measures the road's axis.
    """

    def __init__(self, *, n_classes: int, threshold: float = 0.5) -> None:
        import torch

        self.n_bins = n_classes - 1
        self.road = BinarySegmentationMetric(name="road", threshold=threshold)
        self.orient = torch.zeros(4, dtype=torch.float64)  # exact, within one bin, undirected, total

    def update(self, output, batch: dict) -> None:
        import torch

        self.road.update_logits(output.road, batch["road"])
        truth = batch["orientation"].long()
        on_road = (truth > 0) & (batch["road"][:, 0] > 0.5)
        pred = output.orientation.detach()[:, 1:].argmax(dim=1) + 1  # the angle bin; road-ness is the road head's job
        t, p = truth[on_road], pred[on_road]
        diff = (p - t).abs()
        near = (p > 0) & ((diff <= 1) | (diff == self.n_bins - 1))
        axis = (p > 0) & ((diff == 0) | (diff == self.n_bins // 2)) if self.n_bins % 2 == 0 else p == t
        counts = [float((p == t).sum()), float(near.sum()), float(axis.sum()), float(t.numel())]
        self.orient += torch.tensor(counts, dtype=torch.float64)

    def state(self):
        import torch

        return torch.cat([self.road.state(), self.orient])

    def load_state(self, state) -> None:
        self.road.load_state(state[:4])
        self.orient = state[4:].clone().to(self.orient.dtype)

    def compute(self) -> dict[str, float]:
        out = self.road.compute()
        exact, near, axis, total = self.orient.tolist()
        out["orientation_accuracy"] = _ratio(exact, total, 1.0)
        out["orientation_accuracy_1bin"] = _ratio(near, total, 1.0)
        out["orientation_accuracy_undirected"] = _ratio(axis, total, 1.0)
        return out
