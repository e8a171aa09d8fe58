import threading

import numpy as np
import pytest

from geodefect.sliding import threads
from geodefect.sliding.blocks import Block
from geodefect.sliding.stitch import BandAccumulator


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


def _slow_record(seen, delay_s=0.002):
    import time

    def fn(item):
        time.sleep(delay_s)
        seen.append((item, threading.current_thread().name))

    return fn


def test_ordered_worker_runs_items_in_order_on_its_thread_with_a_bounded_queue(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    seen, most_pending = [], 0
    with threads.OrderedWorker(_slow_record(seen), max_pending=2, name="w-test") as worker:
        assert worker.threaded
        for i in range(20):
            worker.submit(i)
            most_pending = max(most_pending, len(worker._pending))
    assert [i for i, _ in seen] == list(range(20))
    assert all(name.startswith("w-test") for _, name in seen)
    assert most_pending <= 2


@pytest.mark.parametrize("cpus, max_pending", [(1, 2), (2, 0)])
def test_ordered_worker_runs_inline_with_one_cpu_or_no_queue(monkeypatch, cpus, max_pending):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cpus)
    seen = []
    with threads.OrderedWorker(_slow_record(seen, 0), max_pending=max_pending) as worker:
        assert not worker.threaded
        worker.submit("a")
        assert seen == [("a", threading.current_thread().name)]  # done before submit returned


def test_ordered_worker_reraises_the_first_error_and_skips_what_follows(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    done = []

    def fn(item):
        if item == 3:
            raise OSError("disk full")
        done.append(item)

    with pytest.raises(OSError, match="disk full"):  # noqa: PT012 (the error surfaces at a later submit or at close)
        with threads.OrderedWorker(fn, max_pending=2) as worker:
            for i in range(50):
                worker.submit(i)
    assert done == [0, 1, 2]  # items queued after the failure were skipped


def test_ordered_worker_abort_waits_for_the_running_item_and_cancels_the_queue(monkeypatch):
    """An error in the caller (e.g. Ctrl-C): nothing runs after the with-block has left."""
    import time

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    started, finished = threading.Event(), []

    def fn(item):
        started.set()
        time.sleep(0.05)
        finished.append(item)

    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        with threads.OrderedWorker(fn, max_pending=3) as worker:
            worker.submit(0)
            worker.submit(1)
            worker.submit(2)
            started.wait(1)
            raise KeyboardInterrupt
    after = list(finished)
    time.sleep(0.15)
    assert finished == after == [0]  # the running item completed; the queued two never ran


def test_compute_ahead_hands_out_the_same_results_in_order_with_the_next_call_running():
    started, log = [], []
    release = threading.Event()

    def fn(x):
        started.append((x, threading.current_thread().name))
        if x == 1:
            assert release.wait(10)  # item 1 runs while the caller still holds item 0's result
        return x * 10

    out = []
    for key, get in threads.compute_ahead(((f"k{i}", i) for i in range(4)), fn, ahead=True):
        value = get()
        if key == "k0":
            deadline = threading.Event()
            for _ in range(200):  # item 1's call starts before the caller is done with item 0
                if any(x == 1 for x, _ in started):
                    break
                deadline.wait(0.01)
            log.append(any(x == 1 for x, _ in started))
            release.set()
        out.append((key, value))
    assert out == [("k0", 0), ("k1", 10), ("k2", 20), ("k3", 30)]
    assert log == [True] and all(name.startswith("geodefect-forward") for _, name in started)
    inline = [(k, g()) for k, g in threads.compute_ahead(((f"k{i}", i) for i in range(4)), lambda x: x * 10, ahead=False)]
    assert inline == out


def test_compute_ahead_raises_the_calls_error_and_stops_on_close():
    calls = []

    def fn(x):
        calls.append(x)
        if x == 1:
            raise ValueError("bad batch")
        return x

    gen = threads.compute_ahead(((i, i) for i in range(5)), fn, ahead=True)
    assert next(gen)[1]() == 0
    with pytest.raises(ValueError, match="bad batch"):
        next(gen)[1]()
    gen.close()  # the caller gives up: the queued call is cancelled, the running one waited for
    n = len(calls)
    assert n <= 3 and calls == sorted(calls)
    threading.Event().wait(0.05)
    assert len(calls) == n  # nothing runs after close


def test_compute_ahead_passes_an_items_error_on_after_the_running_call():
    """Reading the next batch fails (a corrupt raster block): the caller gets that error, and the
    forward already running finishes first (no helper thread is left behind)."""
    done = []

    def items():
        yield "k0", 0
        raise OSError("corrupt block")

    def fn(x):
        threading.Event().wait(0.05)
        done.append(x)
        return x

    with pytest.raises(OSError, match="corrupt block"):
        for _key, get in threads.compute_ahead(items(), fn, ahead=True):
            get()
    assert done == [0]
    assert not [t for t in threading.enumerate() if t.name.startswith("geodefect-forward")]
