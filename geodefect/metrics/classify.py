"""Classification metrics: per-class precision/recall/F1 from a confusion matrix, ROC and AUC.

Streaming metrics follow :class:`geodefect.metrics.StreamingMetric` (``update``, ``state``,
``load_state``, ``compute``) so the training loop can use them and sum them across ranks.
The ROC curve and AUC are computed here by hand (no scikit-learn dependency): sort the scores,
accumulate true/false positives, treat ties as one step; AUC is the trapezoid area, equal to
the Mann-Whitney probability that a random positive scores above a random negative (ties 1/2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geodefect.metrics.segmentation import ConfusionMatrix


def classification_scores(matrix: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Scores from a (K, K) confusion matrix (rows = truth, columns = prediction).

    Returns:
        ``accuracy``; per class ``precision_<c>``, ``recall_<c>``, ``f1_<c>``, ``support_<c>``
        (one class against the rest, empty denominators by :mod:`geodefect.metrics.scores`);
        macro averages ``precision``, ``recall``, ``f1`` over classes with support or predictions
        (a class absent from both truth and prediction is left out of the averages).
    """
    from geodefect.metrics.scores import precision_recall_f1, ratio

    m = np.asarray(matrix, np.float64)
    tp, pred, true = np.diag(m), m.sum(0), m.sum(1)
    out: dict[str, float] = {"accuracy": ratio(tp.sum(), m.sum(), empty=1.0)}
    ps, rs, fs = [], [], []
    for i, c in enumerate(classes):
        p, r, f = precision_recall_f1(tp[i], pred[i] - tp[i], true[i] - tp[i])
        out.update({f"precision_{c}": p, f"recall_{c}": r, f"f1_{c}": f, f"support_{c}": float(true[i])})
        if true[i] or pred[i]:
            ps.append(p)
            rs.append(r)
            fs.append(f)
    out["precision"] = float(np.mean(ps)) if ps else 0.0
    out["recall"] = float(np.mean(rs)) if rs else 0.0
    out["f1"] = float(np.mean(fs)) if fs else 0.0
    return out


class ClassificationMetric:
    """Streaming confusion matrix of a K-class classifier with ``logits`` (B, K) and ``label`` (B,)."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.cm = ConfusionMatrix(len(classes))

    def update(self, output: Any, batch: dict) -> None:
        self.cm.update_labels(output.logits.detach().argmax(dim=1), batch["label"])

    def state(self):
        return self.cm.state()

    def load_state(self, state) -> None:
        self.cm.load_state(state)

    def compute(self) -> dict[str, float]:
        return classification_scores(self.cm.matrix.numpy(), self.classes)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of binary ``labels`` (0/1) ranked by ``scores`` (higher = more positive).

    Returns:
        ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf; one point per
        distinct score (ties move diagonally).
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], int)
    tps = np.cumsum(y)[last_of_tie]
    fps = np.cumsum(~y)[last_of_tie]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids); NaN when only one class is present."""
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


class HistogramAUC:
    """Streaming AUC of a binary classifier with one logit (B, 1) and ``label`` (B,) in {0, 1}.

    Scores (sigmoid) are binned in ``n_bins`` equal bins per class, so the state is a fixed-size
    vector that sums across ranks; ties inside a bin count 1/2 (error < 1/n_bins).
    Also reports ``accuracy`` at 0.5.
    """

    def __init__(self, n_bins: int = 1000) -> None:
        self.n_bins = n_bins
        self.hist = np.zeros((2, n_bins), np.float64)
        self.correct = 0.0

    def update(self, output: Any, batch: dict) -> None:
        p = output.logits.detach().float().sigmoid().reshape(-1).cpu().numpy()
        y = batch["label"].detach().reshape(-1).cpu().numpy().astype(int)
        bins = np.clip((p * self.n_bins).astype(int), 0, self.n_bins - 1)
        np.add.at(self.hist, (y, bins), 1.0)
        self.correct += float(((p >= 0.5) == (y == 1)).sum())

    def state(self):
        import torch

        return torch.from_numpy(np.r_[self.hist.reshape(-1), self.correct])

    def load_state(self, state) -> None:
        v = state.numpy() if hasattr(state, "numpy") else np.asarray(state)
        self.hist = v[:-1].reshape(2, self.n_bins).astype(np.float64)
        self.correct = float(v[-1])

    def compute(self) -> dict[str, float]:
        neg, pos = self.hist
        n = neg.sum() + pos.sum()
        if not (neg.sum() and pos.sum()):
            return {"auc": 0.5, "accuracy": float(self.correct / n) if n else 0.0}
        below = np.cumsum(neg) - neg  # negatives in lower bins
        pairs = (pos * (below + neg / 2)).sum()
        return {"auc": float(pairs / (pos.sum() * neg.sum())), "accuracy": float(self.correct / n)}


def plot_roc(path: str | Path, scores: np.ndarray, labels: np.ndarray, *, title: str = "ROC") -> float:
    """Write the ROC curve as a PNG (atomically); returns the AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geodefect.io.atomic import atomic_path

    fpr, tpr, _ = roc_curve(scores, labels)
    auc = roc_auc(scores, labels)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=2, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return auc
