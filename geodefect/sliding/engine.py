"""The sliding-window engine: read windows, predict in batches, stitch, yield finished blocks.

Arrays and windows only — no raster I/O, no torch — so the same engine serves GeoTIFFs
(``geodefect.inference.geo``) and plain inspection photos.

Protocols:

* reader: ``.shape -> (C, H, W)`` and ``.read(window) -> (C, h, w)`` array for a
  :class:`rasterio.windows.Window` (``h, w`` = the window's size; pixels outside the raster
  are padding). :class:`ArrayReader` wraps an in-memory array.
* predictor: ``(B, C, h, w) float32 -> {name: (B, K, h, w) float32}`` probabilities (or any
  quantity that may be averaged). ``geodefect.inference.predictor.TorchPredictor`` adapts a
  torch model. A predictor that knows its outputs' channel counts may say so in an
  ``output_channels`` attribute (``{name: K}``, e.g. from an ONNX graph's static shapes); else
  one window is predicted first to learn them.

Windows come from :func:`geodefect.windows.iter_windows` with ``pad=True`` — the grid of
``geodefect chip`` — optionally filtered by a predicate (e.g. "touches the AOI") or given as
a precomputed list. Memory stays flat: the raster is cut into column strips no wider than
``max_memory_mb`` allows, each strip is swept top to bottom with a
:class:`~geodefect.sliding.stitch.BandAccumulator`, and rows are yielded as soon as no later
window can reach them. A window belongs to the strip holding its origin; what it puts past the
strip's right edge is handed to the next strip as weighted sums (``HaloChunk``), spilled to a
temporary file because it grows with the raster's height. So every window is predicted once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from rasterio.windows import Window

from geodefect.alloc import measure_forward, release_between_batches, release_free_memory
from geodefect.errors import InputError
from geodefect.sliding.blend import validate_blend, window_edges, window_weights
from geodefect.sliding.blocks import Block, HaloStore
from geodefect.sliding.gated import Gate, softmax_last
from geodefect.sliding.reading import ArrayReader, iter_batches
from geodefect.sliding.stitch import BLOCK_ROWS, BandAccumulator
from geodefect.sliding.threads import compute_ahead
from geodefect.sliding.tta import TTA_MERGES, Remap, predict_tta
from geodefect.windows import iter_windows, validate_grid

Predictor = Callable[[np.ndarray], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class SlidingParams:
    """How windows are cut, batched, augmented and blended.

    Attributes:
        size_px: window side (the model's input size).
        stride_px: step between windows; ``size_px - stride_px`` is the blended overlap.
        batch_size: windows per predictor call.
        blend: ``hann`` (default: smooth cross-fade over the overlap, no seam) | ``crop`` | ``mean``.
        tta: test-time augmentation with the flips of :data:`~geodefect.sliding.tta.TTA_FLIPS` (4× the compute).
        tta_merge: ``mean`` | ``max`` of the un-flipped predictions.
        max_memory_mb: budget of the stitching buffers; wider rasters are cut into column
            strips (~3 000 px wide for 512-px windows and the road model's 20 channels at the
            default 256 MB), so memory does not grow with the raster's width either.
        held_blocks: finished blocks the caller may hold at once (1: it handles each block
            before asking for the next; more with a write-behind queue such as
            :class:`~geodefect.sliding.threads.OrderedWorker`); counted in the budget.
        predict_ahead: run the next batch's forward on a helper thread while this batch is
            stitched (:func:`~geodefect.sliding.threads.compute_ahead`): for a model that leaves
            a core free (a GPU, or fewer model threads than cores); the same outputs, one more
            batch of predictions in memory.
    """

    size_px: int
    stride_px: int
    batch_size: int = 8
    blend: str = "hann"
    tta: bool = False
    tta_merge: str = "mean"
    max_memory_mb: float = 256.0
    held_blocks: int = 1
    predict_ahead: bool = False

    def __post_init__(self) -> None:
        validate_grid(size_px=self.size_px, stride_px=self.stride_px)
        validate_blend(self.blend)
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise InputError(f"`batch_size` must be a positive integer, got {self.batch_size!r}")
        if self.tta_merge not in TTA_MERGES:
            raise InputError(f"`tta_merge` must be one of {', '.join(TTA_MERGES)}, got {self.tta_merge!r}")
        if not self.max_memory_mb > 0:
            raise InputError(f"`max_memory_mb` must be > 0, got {self.max_memory_mb!r}")
        if int(self.held_blocks) != self.held_blocks or self.held_blocks < 1:
            raise InputError(f"`held_blocks` must be a positive integer, got {self.held_blocks!r}")


@dataclass(frozen=True)
class SlidingPlan:
    """The windows to predict, by column strip.

    Attributes:
        shape: raster ``(H, W)``.
        strips: ``(col_start, col_end)`` per strip.
        windows: per strip, its windows sorted row-major.
        n_windows: distinct windows.
        n_repeated: extra predictions (0: overhangs are carried between strips, not recomputed).
    """

    shape: tuple[int, int]
    strips: list[tuple[int, int]]
    windows: list[list[Window]] = field(repr=False)
    n_windows: int = 0

    @property
    def n_predictions(self) -> int:
        return sum(len(ws) for ws in self.windows)

    @property
    def n_repeated(self) -> int:
        return self.n_predictions - self.n_windows


def grid_windows(
    shape_hw: tuple[int, int],
    params: SlidingParams,
    *,
    window_filter: Callable[[Window], bool] | None = None,
) -> list[Window]:
    """The chip grid's windows (``pad=True``) for a raster, optionally filtered."""
    h, w = shape_hw
    wins = iter_windows(h, w, size_px=params.size_px, stride_px=params.stride_px, pad=True)
    return [win for win in wins if window_filter is None or window_filter(win)]


def plan_strips(
    shape_hw: tuple[int, int], windows: Sequence[Window], *, n_channels: int, params: SlidingParams,
    n_gated_channels: int = 0,
) -> SlidingPlan:
    """Cut the raster into column strips whose stitching buffers fit ``params.max_memory_mb``.

    Args:
        shape_hw: raster ``(H, W)``.
        windows: windows to predict (any order; sorted here).
        n_channels: output channels summed densely, over all named outputs (sizes the buffers).
        n_gated_channels: channels of gated outputs (see :class:`~geodefect.sliding.stitch.Gate`),
            whose window predictions are held instead.
    """
    h, w = shape_hw
    band_rows = min(max((int(win.height) for win in windows), default=1), h)
    # sums + weight of the open blocks (those one window spans, +1), the finished blocks the
    # caller holds, and the caller's temporaries (~1 block)
    open_rows = (math.ceil(band_rows / BLOCK_ROWS) + 1) * BLOCK_ROWS
    bytes_per_col = (open_rows + (params.held_blocks + 1) * BLOCK_ROWS) * (n_channels + 1) * 4
    held_per_col, held_fixed = held_window_bytes(band_rows, params)
    bytes_per_col += held_per_col * n_gated_channels
    budget = max(params.max_memory_mb * 2**20 - held_fixed * n_gated_channels, 0)
    strip_w = int(budget // bytes_per_col) - params.size_px  # minus the halo
    strip_w = max(strip_w, 2 * params.size_px)  # never thinner than two windows
    n_strips = max(1, math.ceil(w / strip_w))
    edges = [round(i * w / n_strips) for i in range(n_strips + 1)]
    ordered = sorted(windows, key=lambda win: (int(win.row_off), int(win.col_off)))
    strips, per_strip = [], []
    for i, (c0, c1) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        strips.append((c0, c1))
        first, last = i == 0, i == n_strips - 1
        # each window belongs to the strip holding its origin (windows left of 0 to the first)
        per_strip.append([win for win in ordered if (first or win.col_off >= c0) and (last or win.col_off < c1)])
    return SlidingPlan(shape=(h, w), strips=strips, windows=per_strip, n_windows=len(ordered))


def held_window_bytes(band_rows: int, params: SlidingParams) -> tuple[float, float]:
    """``(bytes per strip column, fixed bytes)``, per gated channel, of the window predictions
    a strip holds (see :class:`~geodefect.sliding.stitch.Gate`).

    Whole windows of the current row of windows (``band_rows`` rows, ``size / stride`` deep
    per column), plus, for each earlier row of windows still open, the copy of their rows that
    are not final yet (at most ``size - stride + BLOCK_ROWS`` rows each). A batch that
    straddles two rows of windows stays whole while its newest windows are held: up to
    ``batch_size - 1`` windows more, whatever the width.
    """
    depth = params.size_px / params.stride_px
    n_earlier = max(math.ceil((band_rows + BLOCK_ROWS) / params.stride_px) - 1, 1)
    remainder = min(band_rows, max(band_rows - params.stride_px, 0) + BLOCK_ROWS)
    per_col = (band_rows + n_earlier * remainder) * depth * 4
    return per_col, (params.batch_size - 1) * band_rows * params.size_px * 4


def iter_blocks(
    reader,
    predictor: Predictor,
    params: SlidingParams,
    *,
    windows: Sequence[Window] | None = None,
    window_filter: Callable[[Window], bool] | None = None,
    remap: Mapping[str, Remap] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_plan: Callable[[SlidingPlan], None] | None = None,
    spill_dir=None,
    gates: Mapping[str, Gate] | None = None,
) -> Iterator[Block]:
    """Predict a raster window by window and yield finished, stitched blocks.

    Args:
        reader: the reader protocol (``shape``, ``read(window)``).
        predictor: the predictor protocol.
        params: window size, stride, batch, blend, TTA, memory budget.
        windows: the windows to predict (default: the whole grid), e.g. those touching an AOI.
        window_filter: keep only grid windows for which this returns True (ignored when
            ``windows`` is given).
        remap: per output name, the channel remap for TTA flips (see :func:`~geodefect.sliding.tta.predict_tta`).
        on_progress: called with the number of windows predicted after each batch.
        on_plan: called once with the :class:`SlidingPlan` before predicting (e.g. to size a
            progress bar with ``plan.n_predictions``).
        spill_dir: folder for the temporary files that carry window overhangs from one strip
            to the next (default: the system's temp folder); only used for rasters wider than
            one strip.
        gates: name -> :class:`~geodefect.sliding.stitch.Gate` for outputs needed only where
            another output reaches a threshold (orientation bins on road pixels): summed at
            those pixels only, in ``Block.gated`` (exact there, 0 elsewhere in ``outputs``).
            The predictor's arrays for them are kept until their rows are final, so a
            predictor must return fresh arrays on each call.

    Yields:
        :class:`Block` objects; over one call every pixel that a window covers is yielded in
        exactly one block (rows of a column strip, top to bottom; strips left to right).
        Pixels no window covers are either absent or have ``weight == 0``.
    """
    plan, gates = _plan_with_probe(reader, predictor, params, windows=windows, window_filter=window_filter, gates=gates)
    gates, dense_softmax = _defer_softmax(gates, getattr(predictor, "deferred_softmax", ()), params)
    if on_plan is not None:
        on_plan(plan)
    halo_in = None
    band_rows = max((int(w.height) for ws in plan.windows for w in ws), default=1)
    for (c0, c1), strip_windows in zip(plan.strips, plan.windows, strict=True):
        halo_out = HaloStore(spill_dir) if c1 < plan.shape[1] else None
        acc = BandAccumulator(
            col_start=c0, col_end=c1, height_px=plan.shape[0], band_rows=band_rows,
            halo_px=min(params.size_px, plan.shape[1] - c1), on_halo=halo_out.append if halo_out else None,
            gates=gates,
        )
        chunks = iter(halo_in) if halo_in is not None else iter(())
        pending = next(chunks, None)
        batches = iter_batches(reader, strip_windows, params.batch_size)
        for chunk, forward in compute_ahead(batches, lambda b: _predict(b, predictor, params, remap, dense_softmax),
                                            ahead=params.predict_ahead):
            # hand out the rows this batch's first window makes final before asking for its
            # predictions: held gated predictions go before the forward allocates the next ones
            # (same blocks, same order; with predict_ahead this forward is already running)
            while pending is not None and pending.row_off <= chunk[0].row_off:
                yield from acc.add_halo(pending)
                pending = next(chunks, None)
            yield from acc.flush_until(int(chunk[0].row_off))
            preds = measure_forward(forward)
            for i, win in enumerate(chunk):
                while pending is not None and pending.row_off <= win.row_off:  # merge by row
                    yield from acc.add_halo(pending)
                    pending = next(chunks, None)
                weights = _weights_for(win, plan.shape, params)
                yield from acc.add(int(win.row_off), int(win.col_off), {k: v[i] for k, v in preds.items()}, weights)
            if on_progress is not None:
                on_progress(len(chunk))
            release_between_batches()  # the heap's free chunks stay bounded between batches
        while pending is not None:
            yield from acc.add_halo(pending)
            pending = next(chunks, None)
        yield from acc.flush()
        if halo_in is not None:
            halo_in.close()
        halo_in = halo_out
        del acc
        # the strip's buffers are free now: hand them back (under geodefect.alloc.tune_malloc the
        # heap keeps what it frees, and blocks of other widths then make it grow strip after strip)
        release_free_memory()


def _plan_with_probe(reader, predictor, params, *, windows, window_filter, gates=None):
    """``(plan, gates to use)``. The buffer size needs the outputs' channel counts: the
    predictor's ``output_channels`` when it has them, else one window is predicted first.
    Gates are dropped (None) when holding the gated predictions would need more strips than
    summing them densely (large windows with large batches on wide rasters: every extra strip
    boundary spills its overhang to disk)."""
    c, h, w = reader.shape
    wins = list(windows) if windows is not None else grid_windows((h, w), params, window_filter=window_filter)
    if not wins:
        return SlidingPlan(shape=(h, w), strips=[], windows=[], n_windows=0), None
    probe = getattr(predictor, "output_channels", None)
    if not probe:
        out = predictor(np.asarray(reader.read(wins[0]), dtype=np.float32)[None])
        probe = {k: int(np.shape(v)[1]) for k, v in out.items()}
    n_all = sum(probe.values())
    if not gates:
        return plan_strips((h, w), wins, n_channels=n_all, params=params), None
    for name, gate in gates.items():
        if gate.by not in probe:
            raise ValueError(f"gate of {name!r}: the predictor has no output {gate.by!r} (it gives {sorted(probe)})")
    n_gated = sum(k_ch for k, k_ch in probe.items() if k in gates)
    gated = plan_strips((h, w), wins, n_channels=n_all - n_gated, params=params, n_gated_channels=n_gated)
    dense = plan_strips((h, w), wins, n_channels=n_all, params=params)
    if len(gated.strips) > len(dense.strips):
        return dense, None
    return gated, gates


def _defer_softmax(gates, deferred, params):
    """``(gates, outputs to softmax right after the forward)`` for a predictor that gives some
    outputs' logits (``predictor.deferred_softmax``): a gated one's softmax is taken where it is
    summed (``Gate.softmax``: at road pixels only), the others' over the whole batch (also under
    TTA, whose merge averages probabilities)."""
    deferred = frozenset(deferred or ())
    lazy = {n for n in deferred if gates and n in gates and not params.tta}
    if lazy:
        gates = {n: replace(g, softmax=True) if n in lazy else g for n, g in gates.items()}
    return gates, deferred - lazy


def _predict(batch, predictor, params, remap, softmax=frozenset()) -> dict[str, np.ndarray]:
    def run(b):
        out = {k: np.asarray(v, dtype=np.float32) for k, v in predictor(b).items()}
        for name in softmax & out.keys():
            out[name] = softmax_last(out[name], axis=1)  # (B, K, h, w): over the channels
        return out

    if params.tta:
        return predict_tta(batch, run if softmax else predictor, merge=params.tta_merge, remap=remap)
    return run(batch)


def _weights_for(win: Window, shape_hw: tuple[int, int], params: SlidingParams) -> np.ndarray:
    r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
    edges = window_edges(r0, c0, h, w, raster_shape=shape_hw)
    return window_weights(h, w, blend=params.blend, overlap_px=params.size_px - params.stride_px, edges=edges)


def predict_array(
    image: np.ndarray,
    predictor: Predictor,
    params: SlidingParams,
    *,
    remap: Mapping[str, Remap] | None = None,
    fill: float = 0,
    pad: str = "constant",
) -> dict[str, np.ndarray]:
    """Sliding-window prediction of a whole in-memory image (plain photos, small rasters).

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` array.
        predictor, params, remap: as for :func:`iter_blocks`.
        fill: padding value for windows larger than the image (``pad="constant"``).
        pad: ``constant`` (``fill``) | ``reflect`` (the image mirrored at its edges), see
            :class:`ArrayReader`.

    Returns:
        name -> ``(K, H, W)`` float32 stitched outputs.
    """
    reader = ArrayReader(image, fill=fill, pad=pad)
    _, h, w = reader.shape
    full: dict[str, np.ndarray] = {}
    for block in iter_blocks(reader, predictor, params, remap=remap):
        rows, cols = block.slices
        for name, arr in block.outputs.items():
            if name not in full:
                full[name] = np.zeros((arr.shape[0], h, w), np.float32)
            full[name][:, rows, cols] = arr
    return full

