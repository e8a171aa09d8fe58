"""int8 static quantization of an exported ``.onnx`` (ONNX Runtime), calibrated on chips.

Static (not dynamic) quantization: activations are quantized too, with ranges measured on
calibration tiles, which is what makes convolutions int8 (3.7x faster than torch fp32 on a
LinkNet-ResNet34 here; ENVIRONMENT.md). QDQ format, per-channel int8 weights, uint8
activations, MinMax calibration. The quantizer needs the weights inside the ``.onnx`` (no
``.onnx.data``), which :func:`geodefect.export.onnx_export.export_onnx` guarantees.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from geodefect.errors import InputError
from geodefect.inference.onnx_runtime import INPUT_SCALE, require_onnxruntime


def calibration_tiles(chips_dir: str | Path, recipe: dict, *, n_tiles: int) -> np.ndarray:
    """``(N, C, S, S) float32`` graph inputs (0..1) from the *train* chips of a chip folder
    (the val chips are kept for the quality gate)."""
    from geodefect.export.gate import iter_chips, model_input
    from geodefect.models.checkpoint import model_kind

    tiles = [model_input(img, recipe) for img, _ in iter_chips(chips_dir, recipe["task"], split="train", limit=n_tiles,
                                                                      kind=model_kind(recipe))]
    if not tiles:
        raise InputError(f"no calibration chips in {str(chips_dir)!r}; give a chip folder of the model's task")
    return np.stack(tiles).astype(np.float32) / np.float32(INPUT_SCALE)


class _TileReader:
    """onnxruntime's ``CalibrationDataReader`` protocol over an array of tiles (one per call)."""

    def __init__(self, tiles: np.ndarray, input_name: str) -> None:
        self.tiles, self.input_name, self.i = tiles, input_name, 0

    def get_next(self):
        if self.i >= len(self.tiles):
            return None
        self.i += 1
        return {self.input_name: self.tiles[self.i - 1:self.i]}

    def rewind(self) -> None:
        self.i = 0


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, tiles: np.ndarray) -> None:
    """Write the int8 model of ``fp32_path`` to ``int8_path`` (metadata is *not* copied here)."""
    require_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = Path(int8_path).with_name(Path(int8_path).stem + ".pre.onnx")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(max(level, logging.WARNING))  # the quantizer logs one INFO line per weight on the root logger
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(int8_path), _TileReader(tiles, "image"), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)
