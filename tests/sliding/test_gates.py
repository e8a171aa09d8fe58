"""Gated outputs: summed only where another output's stitched value reaches a threshold.

The road model's orientation bins are used on road pixels only; gating them must give the
same sums there as summing everywhere, and nothing elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.sliding import (
    ArrayReader,
    Gate,
    SlidingParams,
    grid_windows,
    iter_blocks,
    plan_strips,
)
from geodefect.sliding.stitch import BandAccumulator

THRESHOLD = 0.5


def road_and_bins(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A road probability from band 0 and 7 bin 'probabilities' from all bands, both depending on
    the window's position (the window's mean shifts them), so overlapping windows disagree."""
    shift = batch.mean(axis=(1, 2, 3), keepdims=True) * 0.2
    road = np.clip(batch[:, :1] + shift - 0.1, 0, 1)
    k = np.arange(7, dtype=np.float32)[None, :, None, None]
    bins = np.sin(batch[:, 1:2] * 9 + k) + batch[:, 2:3] * k * 0.1 + shift
    return {"road": road.astype(np.float32), "bins": np.ascontiguousarray(bins, np.float32)}


def channels_last_predictor(batch: np.ndarray) -> dict[str, np.ndarray]:
    """The same outputs as views of NHWC memory, as a torch model on CPU gives them."""
    return {k: np.moveaxis(np.ascontiguousarray(np.moveaxis(v, 1, -1)), -1, 1) for k, v in road_and_bins(batch).items()}


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random((3, h, w), dtype=np.float32)
    img[0] = 0.05 + 0.05 * img[0]
    img[0, h // 3 : h // 3 + 6] = 0.9  # "roads": bands of high road probability
    img[0, :, w // 2 : w // 2 + 5] = 0.8
    return img


def _maps(img, predictor, params, *, gates=None, window_filter=None):
    """Full-size road probability, bins outputs, bins argmax (where road) and the gate of every block."""
    _, h, w = img.shape
    road = np.zeros((h, w), np.float32)
    bins = np.zeros((7, h, w), np.float32)
    arg = np.zeros((h, w), np.uint8)
    gate = np.zeros((h, w), bool)
    n_gated = 0
    for b in iter_blocks(ArrayReader(img), predictor, params, gates=gates, window_filter=window_filter):
        rows, cols = b.slices
        road[rows, cols] = b.outputs["road"][0]
        is_road = b.outputs["road"][0] >= THRESHOLD
        bins[:, rows, cols] = b.outputs["bins"]
        arg[rows, cols] = b.argmax("bins", first=1, where=is_road, dtype=np.uint8)
        r, c, vals = b.values_at("bins", is_road)  # the vectoriser's path: values at road pixels
        np.testing.assert_array_equal(vals, np.moveaxis(b.outputs["bins"], 0, -1)[r, c])
        assert is_road[r, c].all() and len(r) == is_road.sum()
        if "bins" in b.gated:
            n_gated += 1
            gate[rows, cols] = b.gated["bins"].mask
            np.testing.assert_array_equal(b.gated["bins"].mask, is_road)
            assert "bins" not in b.sums and "bins" in b.outputs
    assert (n_gated > 0) == bool(gates)  # (the tests below use budgets where holding fits)
    return road, bins, arg, gate


GATES = {"bins": Gate("road", THRESHOLD)}


@pytest.fixture(params=["gather", "dense block", "by share"])
def gated_path(request, monkeypatch):
    """Force how gated sums are taken (they must not differ): gathers at the gate's pixels, a
    dense block (chosen when the gate holds on much of a block), or the default choice."""
    from geodefect.sliding import stitch

    share = {"gather": 1.0, "dense block": -1.0, "by share": stitch.DENSE_GATE_SHARE}[request.param]
    monkeypatch.setattr(stitch, "DENSE_GATE_SHARE", share)
    return request.param


@pytest.mark.parametrize("predictor", [road_and_bins, channels_last_predictor])
@pytest.mark.parametrize("blend", ["hann", "mean"])
def test_gated_sums_equal_the_dense_ones_on_the_gate_in_one_strip(predictor, blend, gated_path):
    img = _image(300, 260)
    params = SlidingParams(size_px=64, stride_px=48, batch_size=3, blend=blend)
    road_d, bins_d, arg_d, _ = _maps(img, predictor, params)
    road_g, bins_g, arg_g, gate = _maps(img, predictor, params, gates=GATES)
    np.testing.assert_array_equal(road_g, road_d)
    assert 0.03 < gate.mean() < 0.5  # some roads, mostly background
    np.testing.assert_array_equal(bins_g[:, gate], bins_d[:, gate])  # same operations, same order: bit-equal
    assert not bins_g[:, ~gate].any()  # nothing off the gate
    np.testing.assert_array_equal(arg_g, arg_d)
    assert len(np.unique(arg_g[gate])) > 3


def test_gated_sums_across_strips_and_windows_left_out(gated_path):
    """Several strips (the gated output's overhang passed on densely) and gaps in the windows."""
    img = _image(200, 420, seed=1)
    params = SlidingParams(size_px=48, stride_px=32, batch_size=4, max_memory_mb=0.5)
    shape = img.shape[1:]
    keep = lambda win: (win.row_off // 32 * 3 + win.col_off // 32) % 7 != 3  # noqa: E731
    plan = plan_strips(shape, grid_windows(shape, params, window_filter=keep), n_channels=1, params=params,
                       n_gated_channels=7)
    assert len(plan.strips) >= 3
    road_d, bins_d, arg_d, _ = _maps(img, road_and_bins, params, window_filter=keep)
    road_g, bins_g, arg_g, gate = _maps(img, road_and_bins, params, gates=GATES, window_filter=keep)
    np.testing.assert_array_equal(road_g, road_d)
    # the strip boundaries change the order of a few float32 additions: equal to rounding
    np.testing.assert_allclose(bins_g[:, gate], bins_d[:, gate], rtol=1e-6, atol=1e-6)
    assert not bins_g[:, ~gate].any()
    np.testing.assert_array_equal(arg_g, arg_d)


def test_gated_tta_outputs_stay_equal(gated_path):
    img = _image(150, 170, seed=2)
    params = SlidingParams(size_px=64, stride_px=48, tta=True)
    _, bins_d, arg_d, _ = _maps(img, road_and_bins, params)
    _, bins_g, arg_g, gate = _maps(img, road_and_bins, params, gates=GATES)
    np.testing.assert_array_equal(bins_g[:, gate], bins_d[:, gate])
    np.testing.assert_array_equal(arg_g, arg_d)


def test_held_windows_stay_within_the_budget_and_do_not_grow_with_height():
    params = SlidingParams(size_px=64, stride_px=48, batch_size=2, max_memory_mb=1.0)
    peaks = []
    for h in (400, 2000):
        img = _image(h, 600, seed=3)
        gen = iter_blocks(ArrayReader(img), road_and_bins, params, gates=GATES)
        peak, held = 0, 0
        for _ in gen:
            acc = gen.gi_frame.f_locals["acc"]
            peak, held = max(peak, acc.nbytes), max(held, len(acc.held))
        peaks.append(peak)
        # three rows of windows at most: the accumulator lets go of a window once its rows are final
        assert 0 < held <= 3 * (600 // 48 + 2)
    assert peaks[0] == peaks[1] <= params.max_memory_mb * 2**20


def test_gated_strips_are_narrower_than_dense_ones_for_the_same_budget():
    params = SlidingParams(size_px=512, stride_px=384, batch_size=8, max_memory_mb=256)
    shape = (512, 40_000)
    wins = grid_windows(shape, params)
    dense = plan_strips(shape, wins, n_channels=20, params=params)
    gated = plan_strips(shape, wins, n_channels=1, n_gated_channels=19, params=params)
    assert len(gated.strips) > len(dense.strips)
    assert gated.n_repeated == 0 and gated.n_windows == dense.n_windows


def test_a_gate_must_name_a_dense_output():
    img = _image(64, 64)
    params = SlidingParams(size_px=32, stride_px=24)
    with pytest.raises(ValueError, match="no output 'prob'"):
        list(iter_blocks(ArrayReader(img), road_and_bins, params, gates={"bins": Gate("prob", 0.5)}))
    with pytest.raises(ValueError, match="cannot itself be gated"):
        BandAccumulator(col_start=0, col_end=8, height_px=8, band_rows=8,
                        gates={"a": Gate("b", 0.5), "b": Gate("road", 0.5)})


def test_gathers_and_a_dense_block_give_bit_identical_gated_sums(monkeypatch):
    from geodefect.sliding import stitch

    img = _image(200, 420, seed=5)
    params = SlidingParams(size_px=48, stride_px=32, batch_size=4, max_memory_mb=0.5)
    got = []
    for share in (1.0, -1.0):
        monkeypatch.setattr(stitch, "DENSE_GATE_SHARE", share)
        got.append(_maps(img, road_and_bins, params, gates=GATES)[1])
    np.testing.assert_array_equal(got[0], got[1])


def test_windows_of_earlier_rows_keep_only_their_rows_not_final_yet():
    """Once a newer row of windows starts, older windows hold a copy of their open rows only, so
    the predictor's (batch) arrays are let go; the results are unchanged (the tests above)."""
    img = _image(400, 300, seed=6)
    params = SlidingParams(size_px=64, stride_px=48, batch_size=3)
    seen = {"trimmed": 0, "whole": 0}

    def check(_n):  # after each batch is added
        acc = gen.gi_frame.f_locals["acc"]
        for h in acc.held:
            if h.trimmed:  # a copy of its open rows, at most half the window
                assert h.preds["bins"].flags.owndata and h.row_off >= acc._final_to and h.weights.shape[0] <= 32
                assert np.moveaxis(h.preds["bins"], -1, 0).flags.c_contiguous  # channels-first kept: no transposing copy
                seen["trimmed"] += 1
            else:  # whole: the current row of windows, or less than half of its rows final
                assert h.weights.shape[0] == 64
                assert not h.preds["bins"].flags.owndata  # the predictor's channels-first array, not a transposed copy
                assert h.row_off == acc.top or 2 * (acc._final_to - h.row_off) < 64
                seen["whole"] += 1

    gen = iter_blocks(ArrayReader(img), road_and_bins, params, gates=GATES, on_progress=check)
    for _ in gen:
        pass
    assert seen["trimmed"] > 20 and seen["whole"] > 20


def test_gates_are_dropped_when_holding_would_need_more_strips():
    """Large batches of windows on a wide raster: a batch straddling two rows of windows stays
    whole, which would narrow the strips (more overhangs spilled to disk), so the output is
    summed densely there — same values. Small batches keep the gate (and need fewer strips)."""
    from geodefect.sliding.engine import _plan_with_probe

    img = _image(100, 900, seed=7)
    shape = img.shape[1:]
    for batch, gated in ((32, False), (2, True)):
        params = SlidingParams(size_px=64, stride_px=48, batch_size=batch, max_memory_mb=5.0)
        plan, used = _plan_with_probe(ArrayReader(img), road_and_bins, params, windows=None, window_filter=None,
                                      gates=GATES)
        dense = plan_strips(shape, grid_windows(shape, params), n_channels=8, params=params)
        assert (used == GATES) is gated
        assert len(plan.strips) < len(dense.strips) if gated else len(plan.strips) == len(dense.strips)
        blocks = list(iter_blocks(ArrayReader(img), road_and_bins, params, gates=GATES))
        assert all(bool(b.gated) is gated for b in blocks)
    road_d, bins_d, arg_d, _ = _maps(img, road_and_bins, params)
    road_g, bins_g, arg_g, gate = _maps(img, road_and_bins, params, gates=GATES)
    np.testing.assert_allclose(bins_g[:, gate], bins_d[:, gate], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(arg_g, arg_d)
