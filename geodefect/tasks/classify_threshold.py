"""The stage-1 (``crack_classify``) decision threshold, chosen on the validation chips after training.

Rule: the crack probability threshold ``t`` ("crack" when ``p >= t``) with the highest F1 on the
validation windows (the crack class), ties broken towards the lower threshold (higher recall:
stage 1 must not skip cracks). Candidates are the validation probabilities themselves, so the
chosen ``t`` is a probability some validation window has. With no crack among the validation
windows, or none free of cracks, nothing can be chosen and the threshold stays 0.5.

The threshold goes into the recipe of ``best.pt`` and ``model.pt`` as ``threshold`` (with the
rule and its validation scores as ``threshold_rule``); ``geodefect infer --classifier`` and
``geodefect evaluate --model`` use it unless ``--threshold`` is given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
RULE = "max F1 of the crack class on the validation windows (ties: lower threshold)"


def choose_threshold(probs: np.ndarray, labels: np.ndarray) -> dict:
    """The max-F1 threshold of crack probabilities ``probs`` (N,) against 0/1 ``labels`` (N,).

    Returns:
        ``{"threshold", "f1", "precision", "recall", "n_val", "n_crack", "rule"}``; ``threshold``
        is :data:`DEFAULT_THRESHOLD` (and the scores are those at it) when ``labels`` hold one
        class only.
    """
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        return {**_scores(probs, labels, DEFAULT_THRESHOLD), "n_val": len(labels), "n_crack": n_pos,
                "rule": "0.5: the validation windows hold one class only"}
    order = np.argsort(-probs, kind="stable")
    p_sorted, tp = probs[order], np.cumsum(labels[order])
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # last index of each run of equal probabilities
    k = np.flatnonzero(last)
    n_pred = k + 1
    f1 = 2 * tp[k] / (n_pred + n_pos)
    best = k[len(f1) - 1 - int(np.argmax(f1[::-1]))]  # the lowest threshold among the best
    return {**_scores(probs, labels, float(p_sorted[best])), "n_val": len(labels), "n_crack": n_pos, "rule": RULE}


def _scores(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    pred = probs >= threshold
    tp, n_pred, n_pos = int((pred & labels).sum()), int(pred.sum()), int(labels.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * tp / (n_pred + n_pos) if n_pred + n_pos else 0.0
    return {"threshold": round(float(threshold), 6), "f1": round(f1, 4), "precision": round(precision, 4),
            "recall": round(recall, 4)}


def predict_dataset(model, dataset, *, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``(probs, labels)``: crack probabilities (softmax class 1) and labels of a chip dataset."""
    import torch

    probs, labels = [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            x = torch.stack([s["image"] for s in samples])
            probs.append(model(x).float().softmax(1)[:, 1].numpy())
            labels += [int(s["label"]) for s in samples]
    return np.concatenate(probs), np.asarray(labels)


def store_threshold(run_dir: Path, val_dataset) -> dict:
    """Choose the threshold with ``best.pt`` on ``val_dataset``; write it into ``best.pt`` and ``model.pt``."""
    from geodefect.models.checkpoint import load_package, save_package

    model, recipe = load_package(run_dir / "best.pt")
    choice = choose_threshold(*predict_dataset(model, val_dataset))
    for name in ("best.pt", "model.pt"):
        path = run_dir / name
        if path.is_file():
            _, rec = (model, recipe) if name == "best.pt" else load_package(path)
            save_package(path, model=model, recipe={**rec, "threshold": choice["threshold"], "threshold_rule": choice})
    log.info("stage-1 threshold %.4f (%s): F1 %.3f, P %.3f, R %.3f on %d validation windows",
             choice["threshold"], choice["rule"], choice["f1"], choice["precision"], choice["recall"], choice["n_val"])
    return choice
