"""One rule for empty denominators across binary, multi-class, road and inspection scores."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.evaluation.roads import pixel_scores
from geodefect.metrics.classify import classification_scores
from geodefect.metrics.scores import binary_classification_scores, precision_recall_f1


@pytest.mark.parametrize(("tp", "fp", "fn", "expected"), [
    (0, 0, 0, (1.0, 1.0, 1.0)),  # nothing to find, nothing found
    (0, 0, 3, (0.0, 0.0, 0.0)),  # nothing predicted, something missed
    (0, 2, 0, (0.0, 0.0, 0.0)),  # nothing to find, something wrongly found
    (2, 2, 2, (0.5, 0.5, 0.5)),
])
def test_empty_denominator_rule(tp, fp, fn, expected):
    assert precision_recall_f1(tp, fp, fn) == pytest.approx(expected)
    scores = binary_classification_scores(tp, fp, fn, 5)
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(expected)


def test_multiclass_and_road_scores_follow_the_same_rule():
    # class "b" is never predicted and never true: the same 1.0 as the binary rule, left out of macro means
    matrix = np.array([[3, 0, 1], [0, 0, 0], [1, 0, 2]])
    scores = classification_scores(matrix, ["a", "b", "c"])
    assert (scores["precision_b"], scores["recall_b"], scores["f1_b"]) == (1.0, 1.0, 1.0)
    assert scores["precision"] == pytest.approx(np.mean([3 / 4, 2 / 3]))
    # a class predicted but never true has recall 0 (something was wrongly found), as binary
    only_pred = classification_scores(np.array([[2, 1], [0, 0]]), ["x", "y"])
    assert only_pred["recall_y"] == 0.0 and only_pred["precision_y"] == 0.0
    empty = np.zeros((4, 4), bool)
    some = empty.copy()
    some[1, 1] = True
    assert pixel_scores(some, empty)["recall"] == 0.0 and pixel_scores(empty, empty)["recall"] == 1.0
