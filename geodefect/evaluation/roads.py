"""Road metrics on arrays and graphs: pixel IoU/F1, relaxed precision/recall/F1, APLS.

No file I/O here (``geodefect.evaluation.scene`` reads the files, reprojects and
rasterises, then calls these).

* Pixel scores compare a predicted road mask with the buffered truth on the same grid.
* Relaxed scores (Wiedemann's correctness/completeness, Mnih & Hinton's relaxed
  precision/recall) compare *centerline* pixels: a predicted centerline pixel is correct when
  a true centerline pixel lies within ``buffer_m``, and a true one is found when a predicted one
  does; distances come from one Euclidean distance transform per side, in metres.
* APLS (SpaceNet, Van Etten et al. 2018) is implemented from its definition with networkx; see
  :func:`apls` for the steps and the deviations from the CosmiQ reference code.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geodefect.metrics.scores import precision_recall_f1, ratio


def pixel_scores(pred: np.ndarray, truth: np.ndarray, *, valid: np.ndarray | None = None) -> dict[str, float]:
    """IoU, F1 (= Dice), precision and recall of two (H, W) bool masks.

    Args:
        pred: (H, W) bool predicted road mask.
        truth: (H, W) bool buffered truth.
        valid: optional (H, W) bool; only these pixels count (the AOI, the raster's data).

    Returns:
        dict with iou, f1, precision, recall (1.0 when both masks are empty: nothing to find,
        nothing found; precision is 0 for an empty prediction of a non-empty truth), tp, fp, fn.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if valid is not None:
        pred, truth = pred & valid, truth & valid
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {
        "iou": ratio(tp, tp + fp + fn, empty=1.0),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def relaxed_scores(
    pred_lines: np.ndarray,
    truth_lines: np.ndarray,
    *,
    buffer_m: float,
    pixel_size_m: tuple[float, float] = (1.0, 1.0),
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """Relaxed precision, recall and F1 of two centerline rasters.

    Args:
        pred_lines: (H, W) bool predicted centerline pixels (a skeleton or rasterised lines).
        truth_lines: (H, W) bool true centerline pixels.
        buffer_m: tolerance in metres (inclusive).
        pixel_size_m: (row_m, col_m) size of a pixel, for metric distances.
        valid: optional (H, W) bool of pixels that count.

    Returns:
        dict with precision, recall, f1 and the pixel counts behind them.
    """
    pred_lines, truth_lines = np.asarray(pred_lines, bool), np.asarray(truth_lines, bool)
    if valid is not None:
        pred_lines, truth_lines = pred_lines & valid, truth_lines & valid
    n_pred, n_truth = int(pred_lines.sum()), int(truth_lines.sum())
    hits_pred = _within(pred_lines, truth_lines, buffer_m, pixel_size_m)
    hits_truth = _within(truth_lines, pred_lines, buffer_m, pixel_size_m)
    precision = ratio(hits_pred, n_pred, empty=1.0 if n_truth == 0 else 0.0)
    recall = ratio(hits_truth, n_truth, empty=1.0 if n_pred == 0 else 0.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall, empty=0.0),
        "pred_px": n_pred,
        "truth_px": n_truth,
    }


def _within(points: np.ndarray, target: np.ndarray, buffer_m: float, pixel_size_m) -> int:
    """How many True pixels of ``points`` lie within ``buffer_m`` of a True pixel of ``target``."""
    if not points.any() or not target.any():
        return 0
    dist = ndimage.distance_transform_edt(~target, sampling=pixel_size_m)
    return int(np.count_nonzero(dist[points] <= buffer_m + 1e-9))

