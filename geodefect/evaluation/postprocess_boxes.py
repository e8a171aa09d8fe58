"""Post-processing chosen on validation by *box* scores, for segmenters trained on box-filled masks (rail).

The generic choice (:mod:`geodefect.evaluation.postprocess`) maximises pixel IoU. Against
filled boxes pixel IoU is capped well below 1 (a box is looser than the dark spot the model
marks) and hardly sees small false components, which are what users of rail maps count: 79 %
of the FCN's components touched no defect box. So rail chooses the mask threshold and the
minimum component size on the same validation chips, with the same mechanism
(:func:`~geodefect.evaluation.postprocess.apply_postprocess` at inference, the same recipe keys),
but by region scores:

* a *truth region* is an 8-connected component of the chip's truth mask (a box clipped to the
  strip); it is *found* when a kept predicted component overlaps it (box recall);
* a kept predicted component is *right* when it overlaps a truth region (box precision).

Box scores are a property of whole frames (a box cut into five strips is one box to find, and
a defect's component is cut by strip borders), so the validation strips are first pasted back
into their frames (:func:`iter_val_frames`: the railhead band of each validation frame, as
``geodefect infer`` predicts it); truth regions are then the components of the frame's
filled boxes (boxes that touch count once).

Rule: the highest box precision among the pairs whose box recall is at least
``min_box_recall`` (rail: 0.85, the recall the untuned model had); when no pair reaches
it, the pair with the highest box recall. Ties: higher pixel IoU, then the smaller component
size, then the threshold nearest 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from geodefect.errors import InputError
from geodefect.evaluation.postprocess import EIGHT, THRESHOLDS, PostprocessChoice, pixel_scores

#: minimum component sizes tried for rail frames (px; 0 = keep all): larger than the generic
#: grid because rail defects are hundreds to thousands of pixels in 2048 x 2000 frames
RAIL_MIN_COMPONENT_PX: tuple[int, ...] = (0, 20, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def region_grid_counts(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, thresholds: Sequence[float],
                       min_sizes: Sequence[int]) -> tuple[np.ndarray, int]:
    """Pooled counts per (threshold, min size): ``(T, S, 7)`` float64 and the chip count.

    The 7 counts are pixel ``tp, fp, fn`` and region ``n_regions, regions_found, n_components,
    components_on_truth`` (see the module docstring).

    Args:
        pairs: ``(prob (H, W) float in [0, 1], truth (H, W) bool)`` per chip.
    """
    from scipy.ndimage import label

    counts = np.zeros((len(thresholds), len(min_sizes), 7))
    sizes_arr = np.asarray(min_sizes)
    n = 0
    for prob, truth in pairs:
        truth = np.asarray(truth, bool)
        regions, n_regions = label(truth, structure=EIGHT)
        n += 1
        for i, t in enumerate(thresholds):
            comps, n_comp = label(np.asarray(prob) > t, structure=EIGHT)
            sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
            hits = np.bincount(comps[truth], minlength=n_comp + 1)          # truth pixels per component
            largest = np.zeros(n_regions + 1)                               # largest component on each region
            both = (regions > 0) & (comps > 0)
            np.maximum.at(largest, regions[both], sizes[comps[both]])
            for j, s in enumerate(sizes_arr):
                keep = sizes >= max(s, 1)
                keep[0] = False
                tp = float(hits[keep].sum())
                counts[i, j] += (tp, float(sizes[keep].sum()) - tp, truth.sum() - tp, n_regions,
                                 np.count_nonzero(largest[1:] >= max(s, 1)), keep.sum(),
                                 np.count_nonzero(keep & (hits > 0)))
    return counts, n


def region_scores(counts: np.ndarray) -> dict[str, float]:
    """Pixel and box scores of one 7-count vector (box precision 1.0 when nothing is predicted)."""
    tp, fp, fn, n_regions, found, n_comp, on_truth = (float(v) for v in counts)
    return {**pixel_scores(tp, fp, fn), "box_recall": found / n_regions if n_regions else 1.0,
            "box_precision": on_truth / n_comp if n_comp else 1.0}


def choose_postprocess_boxes(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, min_box_recall: float = 0.85,
                             thresholds: Sequence[float] = THRESHOLDS,
                             min_sizes: Sequence[int] = RAIL_MIN_COMPONENT_PX) -> PostprocessChoice:
    """The (threshold, minimum component size) by the box rule of the module docstring.

    Raises:
        InputError: ``min_box_recall`` outside [0, 1], or no chips.
    """
    if not 0 <= min_box_recall <= 1:
        raise InputError(f"`min_box_recall` must be in [0, 1], got {min_box_recall!r}")
    counts, n = region_grid_counts(pairs, thresholds=thresholds, min_sizes=min_sizes)
    if not n:
        raise InputError("no validation chips to choose the mask threshold on; rechip with a `val_fraction` > 0")
    table, best, best_key = [], None, None
    for i, t in enumerate(thresholds):
        for j, s in enumerate(min_sizes):
            sc = region_scores(counts[i, j])
            table.append({"threshold": float(t), "min_component_px": int(s),
                          **{k: round(sc[k], 6) for k in ("iou", "box_recall", "box_precision")}})
            ok = sc["box_recall"] >= min_box_recall
            key = (ok, round(sc["box_precision"] if ok else sc["box_recall"], 9), round(sc["iou"], 9), -s, -abs(t - 0.5))
            if best_key is None or key > best_key:
                best, best_key = (i, j), key
    i, j = best
    scores = {k: round(v, 6) for k, v in region_scores(counts[i, j]).items()}
    metric = f"box_precision@box_recall>={min_box_recall:g}"
    return PostprocessChoice(float(thresholds[i]), int(min_sizes[j]), metric, scores["box_precision"], scores, n, table)


def iter_val_frames(pairs: Iterable[tuple[np.ndarray, np.ndarray]], rows: Sequence[dict]):
    """``(prob, truth)`` per source frame, from per-chip pairs in the order of their index ``rows``.

    Chips of one source (consecutive rows, as ``index.csv`` lists them) are pasted at
    ``row_off``/``col_off`` into a canvas spanning them (overlaps: maximum probability, union
    of truth).
    """
    group: list = []
    for (prob, truth), row in zip(pairs, rows, strict=True):
        if group and row["source"] != group[-1][2]["source"]:
            yield _paste(group)
            group = []
        group.append((prob, truth, row))
    if group:
        yield _paste(group)


def _paste(group: list) -> tuple[np.ndarray, np.ndarray]:
    r0 = min(r["row_off"] for *_, r in group)
    c0 = min(r["col_off"] for *_, r in group)
    h = max(r["row_off"] + r["height"] for *_, r in group) - r0
    w = max(r["col_off"] + r["width"] for *_, r in group) - c0
    prob, truth = np.zeros((h, w), np.float32), np.zeros((h, w), bool)
    for p, t, r in group:
        rs = slice(r["row_off"] - r0, r["row_off"] - r0 + r["height"])
        cs = slice(r["col_off"] - c0, r["col_off"] - c0 + r["width"])
        prob[rs, cs] = np.maximum(prob[rs, cs], np.asarray(p)[:r["height"], :r["width"]])
        truth[rs, cs] |= np.asarray(t, bool)[:r["height"], :r["width"]]
    return prob, truth
