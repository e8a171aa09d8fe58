"""Scores from counts, with ONE rule for empty denominators, used by every metric in geodefect.

The rule: a ratio whose denominator is empty is 1.0 when there was nothing to get wrong and 0.0
otherwise. Precision with no predictions is 1.0 if nothing was missed (no false negatives) and
0.0 if something was; recall with no truth is 1.0 if nothing was wrongly found and 0.0 if
something was; IoU, F1 and accuracy of two empty sets are 1.0.
"""

from __future__ import annotations


def ratio(num: float, den: float, *, empty: float) -> float:
    """``num / den``, or ``empty`` when ``den`` is 0."""
    return float(num / den) if den > 0 else float(empty)


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class under the empty-denominator rule above."""
    precision = ratio(tp, tp + fp, empty=1.0 if fn == 0 else 0.0)
    recall = ratio(tp, tp + fn, empty=1.0 if fp == 0 else 0.0)
    f1 = ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)
    return precision, recall, f1


def binary_classification_scores(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """``accuracy``, ``precision``, ``recall``, ``f1`` of class 1 and the counts."""
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {"accuracy": ratio(tp + tn, tp + fp + fn + tn, empty=1.0), "precision": precision, "recall": recall,
            "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
