import threading

import numpy as np
import pytest

from geodefect.sliding import threads
from geodefect.sliding.stitch import BandAccumulator, Block


def test_split_rows_covers_every_row_once_on_two_threads_when_large(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    seen, names = np.zeros(101, np.int32), set()

    def fn(rows, part):
        seen[rows] += 1
        names.add((part, threading.current_thread().name.startswith("geodefect-stitch")))

    threads.split_rows(fn, 101, threads.MIN_SPLIT_ELEMENTS)
    assert (seen == 1).all() and names == {(0, False), (1, True)}
    seen[:] = 0
    names.clear()
    threads.split_rows(fn, 101, threads.MIN_SPLIT_ELEMENTS - 1)  # small: the calling thread only
    assert (seen == 1).all() and names == {(0, False)}


def test_split_rows_reraises_the_helpers_error(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)

    def fn(rows, part):
        if part == 1:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        threads.split_rows(fn, 10, threads.MIN_SPLIT_ELEMENTS)


def test_threaded_accumulation_and_argmax_equal_the_plain_numpy_result():
    rng = np.random.default_rng(0)
    k, h, w = 19, 200, 180  # large enough to be split
    probs = [rng.random((k, h, w), dtype=np.float32) for _ in range(2)]
    weights = [rng.random((h, w), dtype=np.float32) + 0.1 for _ in range(2)]
    acc = BandAccumulator(col_start=0, col_end=w, height_px=h, band_rows=h, block_rows=256)
    for p, wt in zip(probs, weights, strict=True):
        list(acc.add(0, 0, {"o": p}, wt))
    (block,) = list(acc.flush())
    expected = sum(np.moveaxis(p, 0, -1) * wt[..., None] for p, wt in zip(probs, weights, strict=True))
    np.testing.assert_array_equal(np.moveaxis(block.sums["o"], 0, -1), expected.astype(np.float32))
    where = rng.random((h, w)) > 0.3
    got = block.argmax("o", first=1, where=where, dtype=np.uint8)
    want = np.where(where, np.argmax(expected[..., 1:], axis=-1) + 1, 0)
    np.testing.assert_array_equal(got, want)
    assert isinstance(block, Block)
    np.testing.assert_array_equal(block.argmax("o"), np.argmax(block.outputs["o"], axis=0))
