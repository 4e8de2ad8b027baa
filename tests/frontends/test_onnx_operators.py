"""Every supported ONNX operator, at opsets 9, 11, 13, 17 and the newest this onnx knows, where
it exists: the canonical IR graph run by neurohal's reference interpreter matches onnx's own
ReferenceEvaluator (onnxruntime where that deviates from the spec)."""

import numpy as np
import onnx
import pytest
from frontend_helpers import build_model, matches_onnx
from onnx import helper

from neurohal.ir import NODE_TYPES, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, Scale

OPSETS = (9, 11, 13, 17, onnx.defs.onnx_opset_version())
REFERENCE_DEVIATES_BELOW = {"BatchNormalization": 14, "Softmax": 13}
"""Operators whose older versions onnx 1.23's ReferenceEvaluator computes against the spec, so
onnxruntime is the oracle there: BatchNormalization-9 fills in the momentum default and then
normalises with the batch's own statistics (training mode) although a single-output node is
inference mode; Softmax-1/11 normalises over ``axis`` alone instead of over all axes from
``axis`` on (the input coerced to 2-D)."""
R = np.random.default_rng(7)


def w(*shape):
    return R.standard_normal(shape).astype(np.float32)


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, name=f"{op.lower()}_{outs[0]}", **attrs)


def unsqueeze(opset, src, out, axes, inits):
    """Unsqueeze: axes as an attribute before opset 13, as an input from 13 on."""
    if opset < 13:
        return node("Unsqueeze", [src], [out], axes=axes)
    inits[f"{out}_axes"] = np.array(axes, dtype=np.int64)
    return node("Unsqueeze", [src, f"{out}_axes"], [out])


def clip(opset, src, out, lo, hi, inits):
    if opset < 11:
        kw = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        return node("Clip", [src], [out], **kw)
    names = []
    for key, v in (("lo", lo), ("hi", hi)):
        if v is None:
            names.append("")
        else:
            inits[f"{out}_{key}"] = np.array(v, dtype=np.float32)
            names.append(f"{out}_{key}")
    return node("Clip", [src, *names], [out])


# Each case: opset -> (nodes, initializers, per-sample input shape), or None where the
# operator (or attribute) does not exist at that opset.


def conv_groups_dilation_asym_pads(opset):
    inits = {"W": w(4, 2, 3, 3), "B": w(4)}
    n = node(
        "Conv", ["x", "W", "B"], ["y"], group=2, strides=[2, 1], dilations=[2, 1], pads=[1, 0, 2, 1]
    )
    return [n], inits, (4, 9, 9)


def conv_auto_pad(mode):
    def case(opset):
        inits = {"W": w(3, 3, 3, 2)}
        n = node("Conv", ["x", "W"], ["y"], auto_pad=mode, strides=[2, 2])
        return [n], inits, (3, 8, 7)

    case.__name__ = f"conv_auto_pad_{mode}"
    return case


def gemm(trans_b, c_shape, alpha=0.5, beta=2.0):
    def case(opset):
        if c_shape is None and opset < 11:
            return None  # C is optional from opset 11 on
        inits = {"B": w(4, 6) if trans_b else w(6, 4)}
        ins = ["x", "B"]
        if c_shape is not None:
            inits["C"] = w(*c_shape)
            ins.append("C")
        n = node("Gemm", ins, ["y"], alpha=alpha, beta=beta, transB=trans_b)
        return [n], inits, (6,)

    case.__name__ = f"gemm_transB{trans_b}_C{c_shape}"
    return case


def matmul_add(opset):
    inits = {"W": w(6, 4), "b": w(4)}
    return [node("MatMul", ["x", "W"], ["h"]), node("Add", ["h", "b"], ["y"])], inits, (6,)


def relu(opset):
    return [node("Relu", ["x"], ["y"])], {}, (3, 4, 4)


def clip_case(lo, hi):
    def case(opset):
        inits = {}
        return [clip(opset, "x", "y", lo, hi, inits)], inits, (3, 4, 4)

    case.__name__ = f"clip_{lo}_{hi}"
    return case


def batchnorm_params(c):
    return {"g": w(c) + 2, "be": w(c), "m": w(c), "v": np.abs(w(c)) + 0.5}


def bn_after_conv(opset):
    inits = {"W": w(5, 3, 3, 3), **batchnorm_params(5)}
    nodes = [
        node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], epsilon=1e-3),
    ]
    return nodes, inits, (3, 6, 6)


def bn_alone(opset):
    nodes = [
        node("Relu", ["x"], ["r"]),
        node("BatchNormalization", ["r", "g", "be", "m", "v"], ["y"]),
    ]
    return nodes, batchnorm_params(3), (3, 5, 5)


def bn_after_gemm(opset):
    inits = {"B": w(4, 6), "C": w(4), **batchnorm_params(4)}
    nodes = [
        node("Gemm", ["x", "B", "C"], ["h"], transB=1),
        node("BatchNormalization", ["h", "g", "be", "m", "v"], ["y"]),
    ]
    return nodes, inits, (6,)


def avgpool_pads(opset):
    n = node(
        "AveragePool",
        ["x"],
        ["y"],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 0, 1, 2],
        count_include_pad=1,
    )
    return [n], {}, (2, 7, 8)


def avgpool_no_pads(opset):
    n = node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    return [n], {}, (2, 8, 8)


def avgpool_ceil_even(opset):
    if opset < 10:
        return None
    n = node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    return [n], {}, (2, 8, 8)


def global_avgpool(opset):
    return [node("GlobalAveragePool", ["x"], ["y"])], {}, (3, 5, 6)


def maxpool_pads(opset):
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return [n], {}, (2, 7, 7)


def maxpool_ceil(opset):
    if opset < 10:
        return None
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    return [n], {}, (2, 8, 8)


def maxpool_same_upper(opset):
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    return [n], {}, (2, 7, 7)


def add_residual(opset):
    inits = {"W": w(3, 3, 3, 3)}
    nodes = [
        node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        node("Relu", ["x"], ["r"]),
        node("Add", ["c", "r"], ["y"]),
    ]
    return nodes, inits, (3, 5, 5)


def sum_three(opset):
    inits = {"W": w(3, 3, 1, 1), "k": w(3, 1, 1)}
    nodes = [
        node("Conv", ["x", "W"], ["c"]),
        node("Relu", ["x"], ["r"]),
        node("Sum", ["x", "c", "r", "k"], ["y"]),
    ]
    return nodes, inits, (3, 4, 4)


def add_constant_after_relu(opset):
    nodes = [node("Relu", ["x"], ["r"]), node("Add", ["r", "k"], ["y"])]
    return nodes, {"k": w(1, 3, 1, 1)}, (3, 4, 4)


def mul_scalar(opset):
    nodes = [node("Relu", ["x"], ["r"]), node("Mul", ["r", "k"], ["y"])]
    return nodes, {"k": np.array(0.37, np.float32)}, (3, 4, 4)


def mul_constant_first_per_channel(opset):
    nodes = [node("Relu", ["x"], ["r"]), node("Mul", ["k", "r"], ["y"])]
    return nodes, {"k": w(1, 3, 1, 1)}, (3, 4, 4)


def mul_after_gemm_per_feature(opset):
    nodes = [node("Gemm", ["x", "B", "C"], ["h"], transB=1), node("Mul", ["h", "k"], ["y"])]
    return nodes, {"B": w(5, 6), "C": w(5), "k": w(5)}, (6,)


def normalise_input(opset):
    """(x - mean) / std per channel, as torchvision-style preprocessing exports."""
    inits = {
        "mean": np.array([0.4, -0.2, 0.1], np.float32).reshape(1, 3, 1, 1),
        "std": np.array([0.3, 0.25, 0.5], np.float32).reshape(3, 1, 1),
        "W": w(2, 3, 3, 3),
    }
    nodes = [
        node("Sub", ["x", "mean"], ["c"]),
        node("Div", ["c", "std"], ["n"]),
        node("Conv", ["n", "W"], ["y"]),
    ]
    return nodes, inits, (3, 5, 5)


def div_conv_scalar(opset):
    nodes = [node("Conv", ["x", "W"], ["c"]), node("Div", ["c", "k"], ["y"])]
    return nodes, {"W": w(2, 3, 3, 3), "k": np.array([3.0], np.float32)}, (3, 5, 5)


def sub_from_constant(opset):
    nodes = [node("Relu", ["x"], ["r"]), node("Sub", ["k", "r"], ["y"])]
    return nodes, {"k": w(3, 1, 1)}, (3, 4, 4)


def sub_activations(opset):
    inits = {"W": w(3, 3, 1, 1)}
    nodes = [
        node("Conv", ["x", "W"], ["c"]),
        node("Relu", ["x"], ["r"]),
        node("Sub", ["c", "r"], ["y"]),
    ]
    return nodes, inits, (3, 4, 4)


def concat(axis):
    def case(opset):
        inits = {"W": w(2, 3, 1, 1)}
        nodes = [
            node("Conv", ["x", "W"], ["c"]),
            node("Relu", ["x"], ["r"]),
            node("Concat", ["r", "c"], ["y"], axis=axis),
        ]
        return nodes, inits, (3, 4, 4)

    case.__name__ = f"concat_axis{axis}"
    return case


def flatten_gemm(opset):
    nodes = [node("Flatten", ["x"], ["f"], axis=1), node("Gemm", ["f", "B", "C"], ["y"], transB=1)]
    return nodes, {"B": w(5, 24), "C": w(5)}, (2, 3, 4)


def reshape_const(opset):
    inits = {"s1": np.array([0, 4, -1], dtype=np.int64), "s2": np.array([-1, 24], dtype=np.int64)}
    nodes = [
        node("Reshape", ["x", "s1"], ["a"]),
        node("Relu", ["a"], ["r"]),
        node("Reshape", ["r", "s2"], ["y"]),
    ]
    return nodes, inits, (2, 3, 4)


def shape_chain_reshape(opset):
    """x.view(x.size(0), -1) as old torch exports it: Shape -> Gather -> Unsqueeze -> Concat."""
    inits = {
        "zero": np.array(0, dtype=np.int64),
        "minus1": np.array([-1], dtype=np.int64),
        "B": w(4, 24),
        "C": w(4),
    }
    nodes = [
        node("Relu", ["x"], ["r"]),
        node("Shape", ["r"], ["s"]),
        node("Gather", ["s", "zero"], ["n"], axis=0),
        unsqueeze(opset, "n", "n1", [0], inits),
        node("Concat", ["n1", "minus1"], ["target"], axis=0),
        node("Reshape", ["r", "target"], ["f"]),
        node("Gemm", ["f", "B", "C"], ["y"], transB=1),
    ]
    return nodes, inits, (2, 3, 4)


def dropout(opset):
    if opset < 12:
        n = node("Dropout", ["x"], ["y"], ratio=0.3)
        return [n], {}, (3, 4, 4)
    inits = {"ratio": np.array(0.3, dtype=np.float32), "train": np.array(False)}
    return [node("Dropout", ["x", "ratio", "train"], ["y"])], inits, (3, 4, 4)


def identity(opset):
    return [node("Identity", ["x"], ["i"]), node("Relu", ["i"], ["y"])], {}, (3, 4)


def softmax_features(opset):
    nodes = [node("Gemm", ["x", "B", "C"], ["h"], transB=1), node("Softmax", ["h"], ["y"])]
    return nodes, {"B": w(5, 6), "C": w(5)}, (6,)


def softmax_4d_axis1(opset):
    if opset >= 13:
        return None
    return [node("Softmax", ["x"], ["y"], axis=1)], {}, (2, 3, 3)


def constant_nodes(opset):
    weight = helper.make_tensor("Wc", 1, [3, 2, 1, 1], w(3, 2, 1, 1).ravel())
    bias = helper.make_tensor("kc", 1, [3, 1, 1], w(3).ravel())
    nodes = [
        node("Constant", [], ["W"], value=weight),
        node("Constant", [], ["k"], value=bias),
        node("Conv", ["x", "W"], ["c"]),
        node("Add", ["c", "k"], ["y"]),
    ]
    return nodes, {}, (2, 4, 4)


CASES = [
    conv_groups_dilation_asym_pads,
    conv_auto_pad("SAME_UPPER"),
    conv_auto_pad("SAME_LOWER"),
    conv_auto_pad("VALID"),
    gemm(1, (4,)),
    gemm(0, (1, 4)),
    gemm(1, ()),
    gemm(0, None, alpha=1.0),
    matmul_add,
    relu,
    clip_case(0.0, 6.0),
    clip_case(-0.5, 0.7),
    clip_case(0.0, None),
    bn_after_conv,
    bn_alone,
    bn_after_gemm,
    avgpool_pads,
    avgpool_no_pads,
    avgpool_ceil_even,
    global_avgpool,
    maxpool_pads,
    maxpool_ceil,
    maxpool_same_upper,
    add_residual,
    sum_three,
    add_constant_after_relu,
    mul_scalar,
    mul_constant_first_per_channel,
    mul_after_gemm_per_feature,
    normalise_input,
    div_conv_scalar,
    sub_from_constant,
    sub_activations,
    concat(1),
    concat(-3),
    flatten_gemm,
    reshape_const,
    shape_chain_reshape,
    dropout,
    identity,
    softmax_features,
    softmax_4d_axis1,
    constant_nodes,
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_operator_matches_onnx_reference(case, opset):
    built = case(opset)
    if built is None:
        pytest.skip(f"{case.__name__} does not exist at opset {opset}")
    nodes, inits, x_shape = built
    deviates = any(opset < REFERENCE_DEVIATES_BELOW.get(n.op_type, 0) for n in nodes)
    model = build_model(nodes, x_shape, inits, opset)
    graph = matches_onnx(model, x_shape, oracle="onnxruntime" if deviates else "reference")
    assert all(n.type_name in NODE_TYPES for n in graph.nodes)
    assert graph.metadata["source"]["opset"] == opset


def types(graph):
    return [n.type_name for n in graph.nodes]


def test_folding_leaves_one_layer_per_linear_map():
    """BatchNorm folds into its Conv; MatMul + Add becomes one Dense with a bias; Identity and
    Dropout vanish; GlobalAveragePool becomes an AvgPool2d over the whole plane."""
    nodes, inits, shape = bn_after_conv(17)
    model = build_model(nodes, shape, inits)
    assert types(matches_onnx(model, (3, 6, 6))) == ["Input", "Conv2d", "Output"]
    nodes, inits, shape = matmul_add(17)
    graph = matches_onnx(build_model(nodes, shape, inits), shape)
    (dense,) = [n for n in graph.nodes if isinstance(n, Dense)]
    np.testing.assert_array_equal(dense.bias, inits["b"])
    nodes, inits, shape = identity(17)
    assert types(matches_onnx(build_model(nodes, shape, inits), shape)) == [
        "Input",
        "ReLU",
        "Output",
    ]
    nodes, inits, shape = global_avgpool(17)
    graph = matches_onnx(build_model(nodes, shape, inits), shape)
    (pool,) = [n for n in graph.nodes if isinstance(n, AvgPool2d)]
    assert pool.kernel == (5, 6) and pool.stride == (5, 6)


def test_shape_chain_and_reshape_become_flatten():
    nodes, inits, shape = shape_chain_reshape(11)
    graph = matches_onnx(build_model(nodes, shape, inits, opset=11), shape)
    assert types(graph) == ["Input", "ReLU", "Flatten", "Dense", "Output"]
    nodes, inits, shape = reshape_const(13)
    graph = matches_onnx(build_model(nodes, shape, inits, opset=13), shape)
    assert [type(n) for n in graph.nodes][2:4] == [ReLU, Flatten]


def test_standalone_batchnorm_becomes_depthwise_conv():
    nodes, inits, shape = bn_alone(17)
    graph = matches_onnx(build_model(nodes, shape, inits), shape)
    (conv,) = [n for n in graph.nodes if isinstance(n, Conv2d)]
    assert conv.groups == 3 and conv.weight.shape == (3, 1, 1, 1)


def loaded(case, opset=17):
    """Case ``case`` at ``opset`` loaded (and checked against onnx), with its initializers."""
    nodes, inits, shape = case(opset)
    return matches_onnx(build_model(nodes, shape, inits, opset=opset), shape), inits


def only(graph, cls):
    (node,) = [n for n in graph.nodes if isinstance(n, cls)]
    return node


def test_products_with_constants_become_scales_or_fold_into_their_layer():
    """Mul / Div by a constant after a Gemm or Conv folds into its weights and bias; after
    anything else it is a Scale, scalar or per channel; Sub of an activation negates it."""
    graph, _ = loaded(mul_after_gemm_per_feature)
    assert types(graph) == ["Input", "Dense", "Output"]
    graph, inits = loaded(div_conv_scalar)
    assert types(graph) == ["Input", "Conv2d", "Output"]
    np.testing.assert_allclose(only(graph, Conv2d).weight, inits["W"] / 3, rtol=1e-6)
    graph, _ = loaded(mul_scalar)
    scale = only(graph, Scale).scale
    assert scale.shape == () and scale == np.float32(0.37)
    graph, inits = loaded(mul_constant_first_per_channel)
    np.testing.assert_array_equal(only(graph, Scale).scale, inits["k"].ravel())
    graph, _ = loaded(sub_activations)
    negate = only(graph, Scale)
    assert negate.scale == -1 and graph.sources(negate.name) == ("relu_r",)


def test_maxpool_ceil_mode_is_extra_end_padding():
    nodes, inits, shape = maxpool_ceil(11)
    graph = matches_onnx(build_model(nodes, shape, inits, opset=11), shape)
    (pool,) = [n for n in graph.nodes if isinstance(n, MaxPool2d)]
    assert graph.shape(pool.name) == (2, 4, 4)


def test_node_names_are_sanitised_and_unique():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="/features/0/Relu"),
        helper.make_node("Relu", ["a"], ["b"], name="/features/0/Relu"),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    graph = matches_onnx(build_model(nodes, (3,)), (3,))
    names = [n.name for n in graph.nodes]
    assert names == ["x", "features_0_Relu", "features_0_Relu_2", "relu_2", "y"]
    assert dict(graph.metadata)["source"] == {
        "format": "onnx",
        "file": None,
        "opset": 17,
        "producer": "neurohal-tests",
    }
