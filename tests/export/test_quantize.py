"""The int8 graph's softmax without its max subtraction (``drop_softmax_max``): same values where
the dequantized logits cannot overflow ``exp``, left alone where they could."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from geodefect.export.quantize import MAX_EXP_INPUT, drop_softmax_max  # noqa: E402


def _softmax_graph(scale: float):
    """x -> Q/DQ (uint8, zero point 128) -> exp(x - max) / sum: the int8 export's orientation tail."""
    k = 19
    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("ReduceMax", ["d", "axes"], ["m"], keepdims=1),
             helper.make_node("Sub", ["d", "m"], ["c"]),
             helper.make_node("Exp", ["c"], ["e"]),
             helper.make_node("ReduceSum", ["e", "axes"], ["t"], keepdims=1),
             helper.make_node("Div", ["e", "t"], ["y"])]
    graph = helper.make_graph(nodes, "softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k, 3, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, k, 3, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_max_is_dropped_where_exp_cannot_overflow_and_values_stay():
    scale = 0.25  # uint8 around 128: logits within +-32
    model = _softmax_graph(scale)
    x = np.random.default_rng(0).uniform(-30, 30, (2, 19, 3, 5)).astype(np.float32)
    before = _run(model, x)
    assert drop_softmax_max(model) == 1
    assert {n.op_type for n in model.graph.node} == {"QuantizeLinear", "DequantizeLinear", "Exp", "ReduceSum", "Div"}
    onnx.checker.check_model(model)
    after = _run(model, x)
    assert np.abs(after - before).max() < 1e-6 and np.allclose(after.sum(axis=1), 1, atol=1e-5)


def test_max_is_kept_where_exp_could_overflow():
    scale = 2 * MAX_EXP_INPUT / 255 * 1.01  # the quantized range reaches past +-MAX_EXP_INPUT
    model = _softmax_graph(scale)
    assert drop_softmax_max(model) == 0
    assert "ReduceMax" in {n.op_type for n in model.graph.node}
    x = np.full((2, 19, 3, 5), 100.0, np.float32)  # exp(100) would overflow float32 without the max
    assert np.isfinite(_run(model, x)).all()
