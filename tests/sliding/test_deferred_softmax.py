"""A predictor that gives an output's logits (``deferred_softmax``, an int8 ``.onnx``): the engine
takes the softmax where the values are summed — at the gate's pixels, or over the batch where the
output is not gated or under TTA — and stitches the same probabilities as from a predictor that
gives them."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.sliding import ArrayReader, Gate, SlidingParams, iter_blocks


def _logits(batch: np.ndarray) -> dict[str, np.ndarray]:
    x = batch.astype(np.float32) / 255.0
    road = x.mean(axis=1, keepdims=True)
    bins = np.concatenate([np.sin(x[:, :1] * (k + 1) * 3.0) * 4.0 for k in range(7)], axis=1)
    return {"road": road, "bins": bins.astype(np.float32)}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Deferred:
    deferred_softmax = ("bins",)

    def __call__(self, batch):
        return _logits(batch)


def probabilities(batch):
    out = _logits(batch)
    out["bins"] = _softmax(out["bins"])
    return out


def _stitched(predictor, img, params, gates):
    blocks = []
    for b in iter_blocks(ArrayReader(img), predictor, params, gates=gates):
        gated = {k: (np.array(g.mask), np.array(g.sums)) for k, g in (b.gated or {}).items()}
        blocks.append(({k: np.array(v) for k, v in b.outputs.items() if k not in (gates or {})}, gated))
    return blocks


@pytest.mark.parametrize("threshold", [0.7, 0.0])  # a sparse gate (gathers); one that holds everywhere (dense sums)
@pytest.mark.parametrize("max_memory_mb", [256.0, 0.02])  # one strip; several, with halos between
@pytest.mark.parametrize("tta", [False, True])
def test_a_deferred_softmax_stitches_the_same_probabilities(threshold, max_memory_mb, tta):
    img = np.random.default_rng(0).integers(0, 255, (3, 300, 150)).astype(np.uint8)
    params = SlidingParams(size_px=32, stride_px=24, batch_size=3, max_memory_mb=max_memory_mb, tta=tta)
    gates = {"bins": Gate("road", threshold)}
    want = _stitched(probabilities, img, params, gates)
    got = _stitched(Deferred(), img, params, gates)
    assert len(want) == len(got) > 1
    n_gated = 0
    for (o1, g1), (o2, g2) in zip(want, got, strict=True):
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
        np.testing.assert_array_equal(g1["bins"][0], g2["bins"][0])  # the same gate
        np.testing.assert_allclose(g2["bins"][1], g1["bins"][1], atol=1e-6)
        n_gated += g1["bins"][1].shape[0]
    assert n_gated > 0


def test_an_ungated_deferred_output_is_softmaxed_over_the_batch():
    img = np.random.default_rng(1).integers(0, 255, (3, 70, 90)).astype(np.uint8)
    params = SlidingParams(size_px=32, stride_px=24, batch_size=3)
    want, got = _stitched(probabilities, img, params, None), _stitched(Deferred(), img, params, None)
    for (o1, _), (o2, _) in zip(want, got, strict=True):
        np.testing.assert_allclose(o2["bins"], o1["bins"], atol=1e-6)
        assert np.allclose(o2["bins"].sum(axis=0), 1, atol=1e-5)
