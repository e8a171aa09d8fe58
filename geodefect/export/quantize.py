"""int8 static quantization of an exported ``.onnx`` (ONNX Runtime), calibrated on chips.

Static (not dynamic) quantization: activations are quantized too, with ranges measured on
calibration tiles, which is what makes convolutions int8 (3.7x faster than torch fp32 on a
LinkNet-ResNet34 here; ENVIRONMENT.md). QDQ format, per-channel int8 weights, uint8
activations, MinMax calibration. The quantizer needs the weights inside the ``.onnx`` (no
``.onnx.data``), which :func:`geodefect.export.onnx_export.export_onnx` guarantees.

After quantizing, a written-out softmax over int8 logits loses its max subtraction
(:func:`drop_softmax_max`): the logits come from a uint8 tensor whose range calibration fixed,
so ``exp`` cannot overflow, and the subtraction made ONNX Runtime dequantize the logits twice
(once per consumer): 25 of 159 ms of a batch of eight 256² tiles through the shipped road model.
Then the written-out softmax of an output is left to the engine (:func:`defer_softmax`): the graph
gives that output's logits, and the recipe says so (``onnx.deferred_softmax``).
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


#: outputs whose softmax an int8 export leaves to the engine: those it only uses at a gate's pixels
#: (the road model's orientation bins); other outputs keep theirs (callers outside the engine read them)
DEFERRABLE_SOFTMAX = ("orientation",)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, tiles: np.ndarray) -> list[str]:
    """Write the int8 model of ``fp32_path`` to ``int8_path`` (metadata is *not* copied here);
    returns the outputs whose softmax was left to the engine (:func:`defer_softmax` of
    :data:`DEFERRABLE_SOFTMAX`), for the recipe's ``onnx.deferred_softmax``."""
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
    import onnx

    model = onnx.load(str(int8_path))
    drop_softmax_max(model)
    deferred = defer_softmax(model, DEFERRABLE_SOFTMAX)
    onnx.save(model, str(int8_path))
    return deferred


def defer_softmax(model, names) -> list[str]:
    """Make each graph output of ``names`` computed as a written-out softmax over channels (``Exp`` →
    ``ReduceSum`` over axis 1 → ``Div``, with or without a max subtraction) output its logits
    instead, in place; returns those outputs' names. The sliding engine applies the softmax where
    the values are used — for the road model's orientation bins, at road pixels only
    (``Gate.softmax``): 13 % of the shipped model's int8 forward was this softmax over every pixel
    of the 19 bins."""
    from onnx import helper, numpy_helper

    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    deferred = []
    for out in graph.output:
        div = made_by.get(out.name) if out.name in names else None
        if div is None or div.op_type != "Div":
            continue
        exp, total = made_by.get(div.input[0]), made_by.get(div.input[1])
        if (exp is None or exp.op_type != "Exp" or total is None or total.op_type != "ReduceSum"
                or total.input[0] != exp.output[0] or not _reduces_channels(total, consts)):
            continue
        logits = _unshifted(exp.input[0], made_by)
        graph.node.insert(list(graph.node).index(div), helper.make_node("Identity", [logits], [out.name]))
        graph.node.remove(div)
        deferred.append(out.name)
    if deferred:
        _drop_unused(graph)
    return deferred


def _reduces_channels(node, consts: dict) -> bool:
    axes = consts.get(node.input[1]) if len(node.input) > 1 else None
    if axes is None:
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    keep = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    return axes is not None and [int(a) for a in np.ravel(axes)] == [1] and keep == 1


def _unshifted(x: str, made_by: dict) -> str:
    """``x`` itself, or ``y`` when ``x = y - max(y)`` (a softmax does not change under the shift)."""
    sub = made_by.get(x)
    if sub is not None and sub.op_type == "Sub":
        top = made_by.get(sub.input[1])
        if top is not None and top.op_type == "ReduceMax" and top.input[0] == sub.input[0]:
            return sub.input[0]
    return x


def _drop_unused(graph) -> None:
    """Remove nodes no graph output depends on (and the initializers only they used)."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    unused = [t for t in graph.initializer if t.name not in needed]
    for t in unused:
        graph.initializer.remove(t)


#: the largest |logit| a softmax may exponentiate without subtracting the max (exp(80) ~ 5.5e34:
#: a sum of thousands of them stays finite in float32)
MAX_EXP_INPUT = 80.0


def drop_softmax_max(model) -> int:
    """Rewrite ``exp(x - max(x))`` to ``exp(x)`` in ``model`` (an ``onnx.ModelProto``, in place)
    where ``x`` is a DequantizeLinear output whose whole quantized range lies within
    ±:data:`MAX_EXP_INPUT`; the softmax's value is the same (its divide normalises). Returns how
    many were rewritten."""
    from onnx import numpy_helper

    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    used_by: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            used_by.setdefault(name, []).append(node)
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    dropped = []
    for sub in [n for n in graph.node if n.op_type == "Sub"]:
        x, amax = sub.input
        reduce, dq = made_by.get(amax), made_by.get(x)
        if (reduce is None or reduce.op_type != "ReduceMax" or reduce.input[0] != x or dq is None
                or dq.op_type != "DequantizeLinear" or len(used_by.get(amax, [])) != 1
                or any(n.op_type != "Exp" for n in used_by.get(sub.output[0], []))  # a softmax's, nothing else
                or _dequantized_bound(dq, consts) > MAX_EXP_INPUT):
            continue
        for node in used_by.get(sub.output[0], []):
            node.input[:] = [x if name == sub.output[0] else name for name in node.input]
        dropped += [sub, reduce]
    for node in dropped:
        graph.node.remove(node)
    return len(dropped) // 2


def _dequantized_bound(dq, consts: dict) -> float:
    """The largest |value| a DequantizeLinear node can output (inf when its scale is not a constant)."""
    if dq.input[1] not in consts or len(dq.input) < 3 or dq.input[2] not in consts:
        return float("inf")
    scale, zero = consts[dq.input[1]].astype(np.float64), consts[dq.input[2]]
    info = np.iinfo(zero.dtype)
    return float(np.max(np.abs(scale * (np.array([info.min, info.max], np.float64) - zero.astype(np.float64)))))
