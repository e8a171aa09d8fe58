"""Sliding-window prediction over large arrays: windows -> batches -> stitched blocks.

Arrays and windows only (no raster I/O, no torch): geo inference
(``geodefect.inference.geo``) and plain-image inference use the same engine.

Quick use::

    from geodefect.sliding import SlidingParams, iter_blocks, predict_array

    params = SlidingParams(size_px=512, stride_px=384, batch_size=8, blend="hann")
    # small image in memory -> {name: (K, H, W) float32}
    probs = predict_array(image_chw, predictor, params)
    # large raster: any reader with .shape -> (C, H, W) and .read(window) -> (C, h, w)
    for block in iter_blocks(reader, predictor, params, window_filter=touches_aoi):
        rows, cols = block.slices          # where the block goes in the raster
        write(block.outputs["road"][0], rows, cols, valid=block.covered)

``predictor`` is any callable ``(B, C, h, w) float32 -> {name: (B, K, h, w) float32}``
returning probabilities; ``geodefect.inference.predictor.TorchPredictor`` wraps a torch model.
Stitching is ``Σ w·p / Σ w`` per named output (weights: :mod:`geodefect.sliding.blend`).
For test-time augmentation (``params.tta``), pass ``remap={name: fn(probs, flip)}`` for outputs
whose channels change meaning under a flip (orientation bins). An output needed only where
another one reaches a threshold can be gated (``gates={"orientation": Gate("road", 0.5)}``):
it is then summed on those pixels only.
"""

from geodefect.sliding.blend import BLEND_MODES, WEIGHT_FLOOR, window_weights
from geodefect.sliding.blocks import Block
from geodefect.sliding.engine import (
    ArrayReader,
    SlidingParams,
    SlidingPlan,
    grid_windows,
    iter_blocks,
    plan_strips,
    predict_array,
)
from geodefect.sliding.gated import Gate, GatedSums
from geodefect.sliding.stitch import BandAccumulator
from geodefect.sliding.tta import TTA_FLIPS, TTA_MERGES, flip_array, predict_tta

__all__ = [
    "BLEND_MODES",
    "TTA_FLIPS",
    "TTA_MERGES",
    "WEIGHT_FLOOR",
    "ArrayReader",
    "BandAccumulator",
    "Block",
    "Gate",
    "GatedSums",
    "SlidingParams",
    "SlidingPlan",
    "flip_array",
    "grid_windows",
    "iter_blocks",
    "plan_strips",
    "predict_array",
    "predict_tta",
    "window_weights",
]
