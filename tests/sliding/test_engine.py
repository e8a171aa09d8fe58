"""Invariants of the sliding-window engine: identity, blending, seams, blocks, TTA, imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from geodefect.errors import InputError
from geodefect.sliding import (
    WEIGHT_FLOOR,
    ArrayReader,
    SlidingParams,
    grid_windows,
    iter_blocks,
    plan_strips,
    predict_array,
    predict_tta,
    window_weights,
)


def identity(batch: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": batch.copy(), "first": batch[:, :1] * 0.5}


def window_mean(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A constant per window (its input mean): the worst case for seams."""
    m = batch.mean(axis=(2, 3), keepdims=True)
    return {"x": np.broadcast_to(m, batch.shape).copy()}


def horizontal_gradient(batch: np.ndarray) -> dict[str, np.ndarray]:
    """Two channels: rightward rise and leftward rise (they swap under a left-right flip)."""
    padded = np.pad(batch[:, :1], ((0, 0), (0, 0), (0, 0), (1, 1)), mode="edge")
    d = padded[..., 2:] - padded[..., :-2]
    return {"dir": np.concatenate([np.maximum(d, 0), np.maximum(-d, 0)], axis=1)}


def swap_on_hflip(probs: np.ndarray, flip: str) -> np.ndarray:
    return probs[:, ::-1] if "h" in flip else probs


CASES = [
    # (H, W, size, stride)
    (64, 64, 32, 32),
    (100, 130, 32, 24),
    (97, 61, 32, 16),
    (20, 50, 32, 24),  # height smaller than a window
    (7, 5, 16, 12),  # whole raster smaller than a window
    (33, 33, 32, 1),
    (256, 40, 64, 48),
]


@pytest.mark.parametrize("blend", ["mean", "crop", "hann"])
@pytest.mark.parametrize(("h", "w", "size", "stride"), CASES)
def test_identity_predictor_returns_input(h, w, size, stride, blend):
    rng = np.random.default_rng(h * w + size)
    img = rng.random((2, h, w), dtype=np.float32)
    out = predict_array(img, identity, SlidingParams(size_px=size, stride_px=stride, batch_size=3, blend=blend))
    assert set(out) == {"x", "first"}
    np.testing.assert_allclose(out["x"], img, atol=1e-5)
    np.testing.assert_allclose(out["first"][0], img[0] * 0.5, atol=1e-5)


class CountingIdentity:
    """``identity`` that counts the windows it predicts; ``output_channels`` as an ONNX graph declares them."""

    def __init__(self, declare: bool) -> None:
        self.windows = 0
        self.output_channels = {"x": 2, "first": 1} if declare else None

    def __call__(self, batch):
        self.windows += len(batch)
        return identity(batch)


def test_declared_output_channels_spare_the_probe_window():
    img = np.random.default_rng(3).random((2, 100, 130), dtype=np.float32)
    params = SlidingParams(size_px=32, stride_px=24, batch_size=4, max_memory_mb=0.05)
    n_windows = len(grid_windows((100, 130), params))
    probed, declared = CountingIdentity(declare=False), CountingIdentity(declare=True)
    out_p = predict_array(img, probed, params)
    out_d = predict_array(img, declared, params)
    assert probed.windows == n_windows + 1  # one window predicted first to learn the channels
    assert declared.windows == n_windows
    for k in out_p:
        np.testing.assert_array_equal(out_d[k], out_p[k])


@pytest.mark.parametrize("blend", ["mean", "crop", "hann"])
def test_identity_holds_when_cut_into_strips(blend):
    img = np.random.default_rng(1).random((1, 90, 400), dtype=np.float32)
    params = SlidingParams(size_px=32, stride_px=24, blend=blend, max_memory_mb=0.05)
    plan = plan_strips((90, 400), grid_windows((90, 400), params), n_channels=1, params=params)
    assert len(plan.strips) > 2 and plan.n_repeated == 0  # overhangs are carried, not recomputed
    np.testing.assert_allclose(predict_array(img, identity, params)["x"], img, atol=1e-5)
    seen, done = [], []
    list(iter_blocks(ArrayReader(img), identity, params, on_plan=seen.append, on_progress=done.append))
    assert len(seen) == 1 and sum(done) == seen[0].n_predictions == seen[0].n_windows


@pytest.mark.parametrize("blend", ["crop", "hann"])
def test_weights_partition_unity_on_regular_grid(blend):
    # 32 + 4*24 = 128: a regular grid, no snapped window
    params = SlidingParams(size_px=32, stride_px=24, blend=blend)
    blocks = list(iter_blocks(ArrayReader(np.zeros((1, 128, 128), np.float32)), identity, params))
    weight = np.zeros((128, 128), np.float32)
    for b in blocks:
        weight[b.slices] = b.weight
    np.testing.assert_allclose(weight, 1.0, atol=4 * WEIGHT_FLOOR)


def test_weight_masks_taper_only_inner_sides():
    inner = window_weights(32, 32, blend="hann", overlap_px=8)
    corner = window_weights(32, 32, blend="hann", overlap_px=8, edges=(True, False, True, False))
    assert inner.min() > 0 and inner[0, 0] < 0.01 and inner[16, 16] == 1.0
    assert corner[0, 0] == 1.0 and corner[31, 31] < 0.01  # raster-edge sides keep full weight
    crop = window_weights(32, 32, blend="crop", overlap_px=8)
    assert crop[4, 4] == 1.0 and crop[3, 16] < 0.01 and crop.min() > 0


def test_hann_leaves_no_seam_where_mean_and_crop_do():
    """Windows that disagree by a constant: hann changes at most Δ·π/(2·overlap) per pixel."""
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    img = (0.01 * xx + 0.02 * yy)[None]
    size, stride = 64, 48
    delta = 0.02 * stride  # largest difference between neighbouring window constants
    steps = {}
    for blend in ("mean", "crop", "hann"):
        out = predict_array(img, window_mean, SlidingParams(size_px=size, stride_px=stride, blend=blend))["x"][0]
        steps[blend] = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert steps["hann"] <= 1.05 * delta * np.pi / (2 * (size - stride))
    assert steps["mean"] >= delta / 2 and steps["crop"] >= delta / 2


@pytest.mark.parametrize("budget_mb", [256.0, 0.05])
def test_blocks_cover_every_pixel_exactly_once(budget_mb):
    h, w = 150, 300
    params = SlidingParams(size_px=32, stride_px=20, batch_size=5, max_memory_mb=budget_mb)
    hits = np.zeros((h, w), np.int32)
    for b in iter_blocks(ArrayReader(np.ones((1, h, w), np.float32)), identity, params):
        hits[b.slices] += 1
        assert b.covered.all()
    np.testing.assert_array_equal(hits, 1)


def test_window_filter_yields_only_covered_pixels():
    h, w = 128, 128
    params = SlidingParams(size_px=32, stride_px=24)
    keep = lambda win: win.col_off < 40 and win.row_off < 40  # noqa: E731
    hits = np.zeros((h, w), np.int32)
    img = np.random.default_rng(0).random((1, h, w), dtype=np.float32)
    for b in iter_blocks(ArrayReader(img), identity, params, window_filter=keep):
        rows, cols = b.slices
        hits[rows, cols] += b.covered
        np.testing.assert_allclose(b.outputs["x"][0][b.covered], img[0, rows, cols][b.covered], atol=1e-5)
    assert hits.max() == 1 and hits[:56, :56].all() and not hits[60:].any() and not hits[:, 60:].any()


def test_memory_does_not_grow_with_raster_height():
    """The accumulator's peak holding is the same for a raster 10x taller: the blocks of rows one window
    can span, ceil(32 / BLOCK_ROWS) + 1."""
    from geodefect.sliding.stitch import BLOCK_ROWS

    params = SlidingParams(size_px=32, stride_px=24)
    peaks = []
    for h in (300, 3000):
        gen = iter_blocks(ArrayReader(np.zeros((1, h, 64), np.float32)), identity, params)
        peak = 0
        for _ in gen:
            peak = max(peak, gen.gi_frame.f_locals["acc"].nbytes)
        peaks.append(peak)
    assert peaks[0] == peaks[1] <= 2 * BLOCK_ROWS * 64 * 2 * 4


def test_tta_with_equivariant_predictor_is_identity():
    img = np.random.default_rng(2).random((3, 70, 90), dtype=np.float32)
    for merge in ("mean", "max"):
        out = predict_array(img, identity, SlidingParams(size_px=32, stride_px=24, tta=True, tta_merge=merge))
        np.testing.assert_allclose(out["x"], img, atol=1e-5)


def test_tta_remaps_channels_of_direction_outputs():
    batch = np.random.default_rng(3).random((2, 1, 16, 16), dtype=np.float32)
    plain = horizontal_gradient(batch)["dir"]
    remapped = predict_tta(batch, horizontal_gradient, remap={"dir": swap_on_hflip})["dir"]
    np.testing.assert_allclose(remapped, plain, atol=1e-6)
    not_remapped = predict_tta(batch, horizontal_gradient)["dir"]
    assert np.abs(not_remapped - plain).max() > 0.1


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride_px=0), dict(stride_px=40), dict(blend="gauss"), dict(batch_size=0), dict(tta_merge="median")],
)
def test_invalid_params_raise_input_error(kwargs):
    with pytest.raises(InputError):
        SlidingParams(**{"size_px": 32, "stride_px": 16, **kwargs})


def test_engine_imports_no_torch_or_geopandas():
    code = (
        "import sys, numpy as np\n"
        "from geodefect.sliding import SlidingParams, predict_array\n"
        "predict_array(np.ones((1, 40, 40), 'f4'), lambda b: {'x': b}, SlidingParams(size_px=16, stride_px=12))\n"
        "bad = [m for m in ('torch', 'geopandas', 'pyogrio', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_stitching_buffers_stop_growing_with_raster_width():
    """Strips cap the band buffers at the budget whatever the width; no window is predicted twice."""
    params = SlidingParams(size_px=512, stride_px=384, max_memory_mb=256)
    widths = []
    for width in (4_000, 40_000):
        plan = plan_strips((512, width), grid_windows((512, width), params), n_channels=20, params=params)
        strip_px = max(c1 - c0 for c0, c1 in plan.strips)
        assert (512 + 3 * 128) * (strip_px + 512) * 21 * 4 <= params.max_memory_mb * 2**20
        assert plan.n_repeated == 0 and sum(len(ws) for ws in plan.windows) == plan.n_windows
        widths.append(strip_px)
    assert widths[1] <= widths[0] * 1.5  # 40 000 px wide: strips no wider than for 4 000 px


def test_blocks_the_caller_holds_count_in_the_budget():
    """A write-behind queue holds finished blocks: the strips narrow so the total stays in budget."""
    base = SlidingParams(size_px=512, stride_px=384, max_memory_mb=256)
    queued = SlidingParams(size_px=512, stride_px=384, max_memory_mb=256, held_blocks=3)
    shape = (512, 40_000)
    widths = {}
    for params in (base, queued):
        plan = plan_strips(shape, grid_windows(shape, params), n_channels=20, params=params)
        strip_px = max(c1 - c0 for c0, c1 in plan.strips)
        assert (512 + 128 + (params.held_blocks + 1) * 128) * (strip_px + 512) * 21 * 4 <= 256 * 2**20
        widths[params.held_blocks] = strip_px
    assert widths[3] < widths[1]
    with pytest.raises(InputError, match="held_blocks"):
        SlidingParams(size_px=64, stride_px=48, held_blocks=0)


def test_strips_with_a_window_filter_and_gaps_stay_exact():
    """Windows dropped on one side of a strip boundary: the overhangs still arrive."""
    img = np.random.default_rng(4).random((1, 150, 300), dtype=np.float32)
    params = SlidingParams(size_px=32, stride_px=20, max_memory_mb=0.06)
    keep = lambda win: (win.row_off // 20 + win.col_off // 20) % 3 != 0  # noqa: E731
    hits = np.zeros((150, 300), np.int32)
    for b in iter_blocks(ArrayReader(img), identity, params, window_filter=keep):
        rows, cols = b.slices
        hits[rows, cols] += 1
        np.testing.assert_allclose(b.outputs["x"][0][b.covered], img[0, rows, cols][b.covered], atol=1e-5)
    assert hits.max() == 1


def test_strips_give_the_same_map_as_one_strip():
    yy, xx = np.mgrid[0:120, 0:500].astype(np.float32)
    img = (0.01 * xx + 0.02 * yy)[None]
    one = predict_array(img, window_mean, SlidingParams(size_px=32, stride_px=24))["x"]
    many = predict_array(img, window_mean, SlidingParams(size_px=32, stride_px=24, max_memory_mb=0.05))["x"]
    np.testing.assert_allclose(many, one, atol=1e-5)


def test_the_heap_is_bounded_after_every_batch(monkeypatch):
    """The engine asks glibc to give back free heap above the limit once per batch (tune_malloc
    keeps freed pages otherwise, and the stitcher's changing array sizes make the heap creep)."""
    import geodefect.sliding.engine as engine

    calls = []
    monkeypatch.setattr(engine, "release_between_batches", lambda: calls.append(1) or False)
    params = SlidingParams(size_px=32, stride_px=24, batch_size=3)
    n_windows = len(grid_windows((100, 130), params))
    for _ in iter_blocks(ArrayReader(np.zeros((1, 100, 130), np.float32)), identity, params):
        pass
    assert len(calls) == -(-n_windows // 3) > 1
