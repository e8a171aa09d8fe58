"""The int8 graph's softmax without its max subtraction (``drop_softmax_max``): same values where
the dequantized logits cannot overflow ``exp``, left alone where they could; and left to the engine
(``defer_softmax``): the output gives the logits whose softmax it was."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from geodefect.export.quantize import MAX_EXP_INPUT, defer_softmax, drop_softmax_max  # noqa: E402


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


def _np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("drop_max_first", [True, False])
def test_a_deferred_softmax_outputs_the_logits_of_the_softmax(drop_max_first):
    model = _softmax_graph(0.25)
    x = np.random.default_rng(1).uniform(-30, 30, (2, 19, 3, 5)).astype(np.float32)
    before = _run(model, x)
    if drop_max_first:
        drop_softmax_max(model)
    assert defer_softmax(model, ["z"]) == [] and defer_softmax(model, ["y"]) == ["y"]
    onnx.checker.check_model(model)
    assert {n.op_type for n in model.graph.node} == {"QuantizeLinear", "DequantizeLinear", "Identity"}
    logits = _run(model, x)
    assert [o.name for o in model.graph.output] == ["y"] and logits.shape == before.shape
    assert np.abs(_np_softmax(logits) - before).max() < 1e-6 and not np.allclose(logits.sum(axis=1), 1)


def test_a_sum_over_other_axes_is_not_a_softmax_to_defer():
    model = _softmax_graph(0.25)
    for t in model.graph.initializer:
        if t.name == "axes":
            t.CopyFrom(numpy_helper.from_array(np.array([2], np.int64), "axes"))
    assert defer_softmax(model, ["y"]) == []
    assert "Exp" in {n.op_type for n in model.graph.node}
