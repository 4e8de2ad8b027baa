"""Helpers for the frontend tests: build small ONNX models, compare against onnx's own evaluator."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from neurohal.frontends.onnx import load_onnx
from neurohal.reference import run


def build_model(nodes, x_shape, inits=None, opset=17, batch="N", output="y"):
    """A one-input ("x", float, batch first) one-output model from onnx.helper nodes."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [batch, *x_shape])
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    opsets = [helper.make_opsetid("", opset)]
    # The checker wants a typed output: take its shape from one evaluation of a draft model.
    draft = helper.make_model(
        helper.make_graph(
            nodes, "test", [x], [helper.make_empty_tensor_value_info(output)], tensors
        ),
        opset_imports=opsets,
    )
    probe = np.zeros((1, *x_shape), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # models made to be refused may hold NaN weights
        (out,) = ReferenceEvaluator(draft).run(None, {"x": probe})
    y = helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, [batch, *out.shape[1:]])
    graph = helper.make_graph(nodes, "test", [x], [y], tensors)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="neurohal-tests")
    if opset <= 17:
        model.ir_version = 8  # readable by onnxruntime as well
    return model


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest absolute difference relative to the largest reference magnitude."""
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12))


def onnx_outputs(model, x, oracle="reference"):
    """The model's first output by onnx's ReferenceEvaluator or by onnxruntime."""
    if oracle == "reference":
        return ReferenceEvaluator(model).run(None, {"x": x})[0]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def matches_onnx(model, x_shape, batch=3, seed=0, oracle="reference"):
    """Load ``model``, run it with the reference interpreter and with onnx's own evaluator
    (``oracle``: onnx's ReferenceEvaluator or onnxruntime) on the same random input; assert
    they agree to 1e-4 relative. Returns the IR graph."""
    x = np.random.default_rng(seed).standard_normal((batch, *x_shape)).astype(np.float32)
    graph = load_onnx(model)
    (ours,) = run(graph, x).outputs.values()
    ref = onnx_outputs(model, x, oracle)
    assert ours.shape == ref.shape
    assert relative_error(ours, ref) <= 1e-4
    return graph
