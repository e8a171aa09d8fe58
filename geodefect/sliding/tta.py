"""Test-time augmentation for the sliding engine: predict under flips, un-flip, remap, merge.

``params.tta`` makes :func:`~geodefect.sliding.engine.iter_blocks` predict each batch under the
four flips of :data:`TTA_FLIPS`; outputs whose channels change meaning under a flip (orientation
bins) come back through a per-output ``remap``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Predictor = Callable[[np.ndarray], Mapping[str, np.ndarray]]
#: remap(probs (B,K,h,w) predicted on a flipped input, flip "h"|"v"|"hv") -> probs in the original frame's channels
Remap = Callable[[np.ndarray, str], np.ndarray]

#: flips used by test-time augmentation ("" = the input as is)
TTA_FLIPS: tuple[str, ...] = ("", "h", "v", "hv")
TTA_MERGES: tuple[str, ...] = ("mean", "max")


def predict_tta(
    batch: np.ndarray,
    predictor: Predictor,
    *,
    merge: str = "mean",
    remap: Mapping[str, Remap] | None = None,
    flips: Sequence[str] = TTA_FLIPS,
) -> dict[str, np.ndarray]:
    """Predict ``batch`` under each flip, un-flip the outputs, remap channels, merge.

    Args:
        batch: ``(B, C, h, w)`` float32.
        predictor: the predictor protocol.
        merge: ``mean`` or ``max`` over the flips.
        remap: per output name, a callback that maps the channels of a prediction made on a
            flipped input back to the original frame (e.g. orientation bins: a horizontal flip
            turns θ into 180° − θ). Outputs without one are only un-flipped spatially.
        flips: subset of :data:`TTA_FLIPS`.

    Returns:
        name -> ``(B, K, h, w)`` float32.
    """
    merged: dict[str, np.ndarray] = {}
    for flip in flips:
        outs = predictor(flip_array(batch, flip))
        for name, pred in outs.items():
            pred = flip_array(np.asarray(pred, dtype=np.float32), flip)
            if flip and remap and name in remap:
                pred = remap[name](pred, flip)
            if name not in merged:
                merged[name] = pred.copy()
            elif merge == "max":
                np.maximum(merged[name], pred, out=merged[name])
            else:
                merged[name] += pred
    if merge == "mean":
        for pred in merged.values():
            pred /= len(flips)
    return merged


def flip_array(arr: np.ndarray, flip: str) -> np.ndarray:
    """Flip the last two axes: ``h`` = left-right (columns), ``v`` = up-down (rows), ``hv`` = both."""
    if "h" in flip:
        arr = arr[..., ::-1]
    if "v" in flip:
        arr = arr[..., ::-1, :]
    return np.ascontiguousarray(arr) if flip else arr
