"""The engine with the next forward on a helper thread (``predict_ahead``): the same blocks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from geodefect.sliding import ArrayReader, Gate, SlidingParams, iter_blocks

THREADS: list[str] = []


def road_and_bins(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A fresh (B, 1+5, h, w) prediction each call: road = brightness, 5 bins from the values."""
    THREADS.append(threading.current_thread().name)
    x = batch.mean(axis=1, keepdims=True) / 255.0
    bins = np.stack([np.sin(batch[:, 0] * (k + 1) / 50.0) ** 2 + 0.01 for k in range(5)], axis=1)
    return {"road": x.astype(np.float32), "bins": (bins / bins.sum(1, keepdims=True)).astype(np.float32)}


def _blocks(img, *, ahead: bool, gates, max_memory_mb: float) -> list:
    params = SlidingParams(size_px=32, stride_px=24, batch_size=3, max_memory_mb=max_memory_mb, predict_ahead=ahead)
    out = []
    for b in iter_blocks(ArrayReader(img), road_and_bins, params, gates=gates):
        out.append((b.slices, {k: np.array(v) for k, v in b.outputs.items()},
                    {k: (np.array(g.mask), np.array(g.sums)) for k, g in (b.gated or {}).items()}))
    return out


@pytest.mark.parametrize("gates", [None, {"bins": Gate("road", 0.5)}])
@pytest.mark.parametrize("max_memory_mb", [256.0, 0.02])  # one strip, or several with halos between
def test_predicting_ahead_gives_the_same_blocks(gates, max_memory_mb):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (3, 150, 170)).astype(np.uint8)
    THREADS.clear()
    plain = _blocks(img, ahead=False, gates=gates, max_memory_mb=max_memory_mb)
    assert set(THREADS) == {threading.current_thread().name}
    THREADS.clear()
    ahead = _blocks(img, ahead=True, gates=gates, max_memory_mb=max_memory_mb)
    on_helper = [name.startswith("geodefect-forward") for name in THREADS]
    assert len(THREADS) > 3 and all(on_helper[1:])  # every forward on the helper (the first: the channel probe)
    assert len(plain) == len(ahead) > 1
    for (s1, o1, g1), (s2, o2, g2) in zip(plain, ahead, strict=True):
        assert s1 == s2 and o1.keys() == o2.keys() and g1.keys() == g2.keys()
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
        for k in g1:
            np.testing.assert_array_equal(g1[k][0], g2[k][0])
            np.testing.assert_array_equal(g1[k][1], g2[k][1])
