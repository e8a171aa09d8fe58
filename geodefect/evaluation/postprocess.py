"""Segment post-processing chosen on validation data: mask threshold and minimum component size.

A segmenter's probability map becomes a defect mask in two steps (:func:`apply_postprocess`):

1. ``prob > threshold``;
2. 8-connected components smaller than ``min_component_px`` pixels are dropped (0 keeps all):
   isolated speckles, dark marks and dirt are mostly small, defects mostly are not.

After training, :func:`choose_postprocess` grid-searches both on the **validation** chips
(never on test data) for the pair that maximises the task's metric (pixel IoU by default,
pooled over the chips); ties go to the smaller component size, then to the threshold
nearest 0.5. The segment tasks store the choice in the model package's recipe
(``mask_threshold``, ``min_component_px``, ``postprocess``), and ``geodefect infer`` uses it
unless ``--mask-threshold`` / ``--min-component-px`` are given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from geodefect.errors import InputError

#: thresholds tried (0.05 .. 0.95)
THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: minimum component sizes tried, pixels (0 = keep all)
MIN_COMPONENT_PX: tuple[int, ...] = (0, 5, 10, 20, 40, 80, 160)
EIGHT = np.ones((3, 3), bool)


def pixel_scores(tp: float, fp: float, fn: float) -> dict[str, float]:
    """IoU, F1, precision and recall of the defect class from pooled pixel counts (the project's
    empty-denominator rule, :mod:`geodefect.metrics.scores`)."""
    from geodefect.metrics.scores import precision_recall_f1, ratio

    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {"iou": ratio(tp, tp + fp + fn, empty=1.0), "f1": f1, "precision": precision, "recall": recall}


#: metrics the choice can maximise: name -> fn(tp, fp, fn) -> float
METRICS: dict[str, Callable[[float, float, float], float]] = {
    "iou": lambda tp, fp, fn: pixel_scores(tp, fp, fn)["iou"],
    "f1": lambda tp, fp, fn: pixel_scores(tp, fp, fn)["f1"],
}


def remove_small_components(mask: np.ndarray, min_component_px: int) -> np.ndarray:
    """``(H, W) bool`` mask without its 8-connected components of fewer than ``min_component_px`` pixels."""
    from scipy.ndimage import label

    if min_component_px <= 1 or not mask.any():
        return mask
    (r0, r1), (c0, c1) = (_span(mask.any(axis=1)), _span(mask.any(axis=0)))
    labels, _ = label(mask[r0:r1, c0:c1], structure=EIGHT)  # the defects' bounding box: the same components
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_component_px
    keep[0] = False
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = keep[labels]
    return out


def _span(flags: np.ndarray) -> tuple[int, int]:
    """``[first, last + 1)`` of the True entries of a 1-D array (at least one)."""
    idx = np.flatnonzero(flags)
    return int(idx[0]), int(idx[-1]) + 1


def apply_postprocess(prob: np.ndarray, *, threshold: float, min_component_px: int = 0) -> np.ndarray:
    """``(H, W) bool`` defect mask of an ``(H, W)`` probability map in [0, 1]."""
    return remove_small_components(np.asarray(prob) > threshold, int(min_component_px))


@dataclass(frozen=True)
class PostprocessChoice:
    """The chosen pair, its score and the whole grid (``table``: one dict per pair)."""

    threshold: float
    min_component_px: int
    metric: str
    score: float
    scores: dict[str, float]
    n_chips: int
    table: list[dict] = field(default_factory=list, repr=False)

    def to_recipe(self) -> dict:
        """What a package stores: the pair at top level, the details under ``postprocess``."""
        info = {k: v for k, v in asdict(self).items() if k != "table"}
        return {"mask_threshold": self.threshold, "min_component_px": self.min_component_px,
                "postprocess": {**info, "chosen_on": "validation chips"}}


def grid_counts(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, thresholds: Sequence[float],
                min_sizes: Sequence[int]) -> tuple[np.ndarray, int]:
    """Pooled ``(tp, fp, fn)`` per (threshold, min size): ``(T, S, 3)`` float64, and the chip count.

    Args:
        pairs: ``(prob (H, W) float in [0, 1], truth (H, W) bool)`` per chip.
    """
    from scipy.ndimage import label

    counts = np.zeros((len(thresholds), len(min_sizes), 3))
    n = 0
    for prob, truth in pairs:
        truth = np.asarray(truth, bool)
        n_truth = int(truth.sum())
        n += 1
        for i, t in enumerate(thresholds):
            labels, n_comp = label(np.asarray(prob) > t, structure=EIGHT)
            sizes = np.bincount(labels.ravel(), minlength=n_comp + 1)
            hits = np.bincount(labels[truth], minlength=n_comp + 1)  # truth pixels per component
            for j, s in enumerate(min_sizes):
                keep = sizes >= s
                keep[0] = False
                tp = float(hits[keep].sum())
                counts[i, j] += (tp, float(sizes[keep].sum()) - tp, n_truth - tp)
    return counts, n


def choose_postprocess(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, metric: str = "iou",
                       thresholds: Sequence[float] = THRESHOLDS,
                       min_sizes: Sequence[int] = MIN_COMPONENT_PX) -> PostprocessChoice:
    """The (threshold, minimum component size) maximising ``metric`` over validation chips.

    Args:
        pairs: ``(prob, truth)`` per validation chip (see :func:`grid_counts`).
        metric: a key of :data:`METRICS`.

    Raises:
        InputError: unknown metric, or no chips.
    """
    if metric not in METRICS:
        raise InputError(f"`metric` must be one of {', '.join(METRICS)}, got {metric!r}")
    counts, n = grid_counts(pairs, thresholds=thresholds, min_sizes=min_sizes)
    if not n:
        raise InputError("no validation chips to choose the mask threshold on; rechip with a `val_fraction` > 0")
    table, best, best_key = [], None, None
    for i, t in enumerate(thresholds):
        for j, s in enumerate(min_sizes):
            score = METRICS[metric](*counts[i, j])
            table.append({"threshold": float(t), "min_component_px": int(s), metric: round(float(score), 6)})
            key = (round(score, 9), -s, -abs(t - 0.5))
            if best_key is None or key > best_key:
                best, best_key = (i, j), key
    i, j = best
    scores = {k: round(v, 6) for k, v in pixel_scores(*counts[i, j]).items()}
    score = round(float(METRICS[metric](*counts[i, j])), 6)
    return PostprocessChoice(float(thresholds[i]), int(min_sizes[j]), metric, score, scores, n, table)


def iter_val_probabilities(model, dataset, *, batch_size: int = 8, device: str = "cpu"):
    """``(prob (H, W) float32, truth (H, W) bool)`` per chip of a segment dataset, from a torch model.

    The model's defect probability is the sigmoid of its defect logit (1-channel) or its
    softmax defect channel (2-channel); :func:`geodefect.losses.defects.defect_logit` gives both.
    """
    import torch

    from geodefect.losses.defects import defect_logit

    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[k] for k in range(start, min(start + batch_size, len(dataset)))]
            images = torch.stack([s["image"] for s in samples]).to(device)
            probs = defect_logit(model(images)).sigmoid()[:, 0].float().cpu().numpy()
            for prob, sample in zip(probs, samples, strict=True):
                yield prob, sample["mask"][0].numpy() > 0.5
