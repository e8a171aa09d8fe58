"""Metrics of the inspection tasks, from arrays and folders of masks.

* Stage 1 (crack classification): accuracy, precision, recall, f1 of class 1 (crack), and
  frames per second of the classifier (images / wall second, reading and resizing included).
* Stage 2 and rail (segmentation): pixel IoU, F1 (= dice), precision, recall of the defect
  class, per image and overall. "Overall" pools the pixel counts of all images (so large
  images weigh more); "mean" averages the per-image scores.
* Rail with box truth: box recall (share of truth boxes that some predicted defect component
  overlaps) and box precision (share of predicted components (8-connected) that overlap some
  truth box), next to the pixel scores against the filled boxes.

Empty denominators follow :mod:`geodefect.metrics.scores`: IoU/F1 are 1.0 when truth and prediction
are both empty; precision/recall are 1.0 when there is nothing to miss / nothing wrongly found.
"""

from __future__ import annotations

import numpy as np

from geodefect.metrics.scores import binary_classification_scores as classification_scores  # noqa: E402,F401
from geodefect.metrics.scores import ratio


def _ratio(num: float, den: float, empty: float) -> float:
    return ratio(num, den, empty=empty)


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` of two ``(H, W) bool`` masks of equal shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return tp, fp, fn, int(pred.size - tp - fp - fn)


def segmentation_scores(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """iou, f1, precision, recall of the defect class; miou (with background); pixel accuracy."""
    iou = _ratio(tp, tp + fp + fn, 1.0)
    bg_iou = _ratio(tn, tn + fp + fn, 1.0)
    return {
        "iou": iou, "f1": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
        "precision": _ratio(tp, tp + fp, 1.0 if fn == 0 else 0.0),
        "recall": _ratio(tp, tp + fn, 1.0 if fp == 0 else 0.0),
        "miou": (iou + bg_iou) / 2, "pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn, 1.0),
    }


def box_hits(pred: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> dict[str, int]:
    """Box-level matching of a predicted ``(H, W) bool`` mask against ``[x, y, w, h]`` boxes.

    Returns:
        ``n_boxes``, ``boxes_found`` (boxes containing at least one predicted pixel),
        ``n_components`` (8-connected predicted components), ``components_on_box``
        (components with at least one pixel inside some box).
    """
    from scipy.ndimage import label

    from geodefect.labels.defects import boxes_to_mask

    h, w = pred.shape
    components, n_comp = label(pred, structure=np.ones((3, 3), bool))
    union = boxes_to_mask(boxes, height_px=h, width_px=w)
    on_box = np.unique(components[union & pred])
    found = sum(bool(pred[boxes_to_mask([b], height_px=h, width_px=w)].any()) for b in boxes)
    return {"n_boxes": len(boxes), "boxes_found": int(found), "n_components": int(n_comp),
            "components_on_box": int(np.count_nonzero(on_box))}


def box_scores(n_boxes: int, boxes_found: int, n_components: int, components_on_box: int) -> dict[str, float]:
    """box_recall and box_precision from summed :func:`box_hits` counts."""
    return {
        "box_recall": _ratio(boxes_found, n_boxes, 1.0),
        "box_precision": _ratio(components_on_box, n_components, 1.0),
    }


class MaskEvaluation:
    """Accumulates per-image and overall scores over (prediction, truth) pairs."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.totals = np.zeros(4)
        self.box_totals = np.zeros(4)
        self.has_boxes = False

    def add(self, name: str, pred: np.ndarray, truth: np.ndarray, boxes=None) -> dict:
        counts = pixel_counts(pred, truth)
        self.totals += counts
        row = {"image": name, **segmentation_scores(*counts), "truth_px": counts[0] + counts[2], "pred_px": counts[0] + counts[1]}
        if boxes is not None:
            self.has_boxes = True
            hits = box_hits(pred, list(boxes))
            self.box_totals += [hits["n_boxes"], hits["boxes_found"], hits["n_components"], hits["components_on_box"]]
            row.update(hits)
            row.update(box_scores(**hits))
        self.rows.append(row)
        return row

    def summary(self) -> dict:
        """``overall`` (pooled counts), ``mean`` (of per-image scores), ``n_images``."""
        keys = ("iou", "f1", "precision", "recall", "miou")
        out = {"n_images": len(self.rows), "overall": segmentation_scores(*self.totals.tolist()),
               "mean": {k: float(np.mean([r[k] for r in self.rows])) if self.rows else float("nan") for k in keys}}
        if self.has_boxes:
            out["boxes"] = {**box_scores(*[int(v) for v in self.box_totals]),
                            "n_boxes": int(self.box_totals[0]), "n_components": int(self.box_totals[2])}
        return out
