"""ROC/AUC against a brute-force pair count; per-class scores from a confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodefect.metrics.classify import (
    HistogramAUC,
    classification_scores,
    plot_roc,
    roc_auc,
    roc_curve,
)
from geodefect.models.classifiers import ClassifierOutput


def _pair_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_pairwise_probability_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 40) / 5.0  # many ties
    labels = rng.integers(0, 2, 40)
    assert roc_auc(scores, labels) == pytest.approx(_pair_auc(scores, labels))


def test_roc_curve_by_hand():
    fpr, tpr, thr = roc_curve(np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0]))
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    assert thr[0] == np.inf and list(thr[1:]) == [0.9, 0.8, 0.1]
    assert roc_auc([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0]) == pytest.approx(0.875)
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_histogram_auc_streams_close_to_exact():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=200)
    labels = (logits + rng.normal(size=200) > 0).astype(int)
    m = HistogramAUC()
    for i in range(0, 200, 50):
        m.update(ClassifierOutput(torch.tensor(logits[i : i + 50, None]), None), {"label": torch.tensor(labels[i : i + 50])})
    m2 = HistogramAUC()
    m2.load_state(m.state())
    exact = roc_auc(1 / (1 + np.exp(-logits)), labels)
    assert m2.compute()["auc"] == pytest.approx(exact, abs=0.01)


def test_classification_scores_by_hand():
    # truth rows, prediction columns: class a 3 right 1 as b; class b 2 right; class c absent everywhere
    m = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    s = classification_scores(m, ["a", "b", "c"])
    assert s["precision_a"] == 1.0 and s["recall_a"] == 0.75
    assert s["precision_b"] == pytest.approx(2 / 3) and s["recall_b"] == 1.0
    assert s["f1"] == pytest.approx((2 * 0.75 / 1.75 + 2 * (2 / 3) / (5 / 3)) / 2)  # c left out
    assert s["accuracy"] == pytest.approx(5 / 6)


def test_plot_roc_writes_png(tmp_path):
    auc = plot_roc(tmp_path / "roc.png", np.array([0.2, 0.7, 0.6]), np.array([0, 1, 1]))
    assert auc == 1.0
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
