"""The reference interpreter's analog semantics against ONNX's own reference evaluator.

Each hand-made graph is exported with `neurohal.onnx_export.to_onnx` and run by
`onnx.reference.ReferenceEvaluator` (onnx's independent implementation of every operator); its
outputs must equal `neurohal.reference.run`'s. Together the graphs use every analog node type,
the fan-in sum on several kinds of port, asymmetric padding, dilation, groups and more than one
input and output.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from neurohal import ir, reference  # noqa: E402
from neurohal.errors import ConversionError, UnsupportedGraphError  # noqa: E402
from neurohal.onnx_export import to_onnx  # noqa: E402

RNG = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _x(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _onnx_outputs(graph: ir.Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model = to_onnx(graph)
    names = [o.name for o in model.graph.output]
    results = ReferenceEvaluator(model).run(None, inputs)
    return dict(zip(names, results, strict=True))


def _assert_same(graph: ir.Graph, inputs: dict[str, np.ndarray]) -> None:
    want = reference.run(graph, inputs).outputs
    got = _onnx_outputs(graph, inputs)
    assert set(got) == set(want)
    for name, expected in want.items():
        assert got[name].shape == expected.shape, name
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)


def _single(graph: ir.Graph, *shape: int) -> None:
    _assert_same(graph, {graph.inputs[0].name: _x(*shape)})


def test_dense_relu_softmax_with_and_without_bias():
    graph = ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Dense(name="fc1", weight=_w(5, 6), bias=_w(5)),
        ir.ReLU(name="relu"),
        ir.Dense(name="fc2", weight=_w(4, 5)),
        ir.Softmax(name="soft"),
        ir.Output(name="y"),
    )
    _single(graph, 3, 6)


@pytest.mark.parametrize(
    "conv",
    [
        ir.Conv2d(name="c", weight=_w(4, 3, 3, 3), bias=_w(4), padding=1),
        ir.Conv2d(name="c", weight=_w(4, 3, 2, 3), stride=(2, 1), padding=(0, 1, 1, 2)),
        ir.Conv2d(name="c", weight=_w(2, 3, 3, 3), bias=_w(2), dilation=(2, 1), padding=2),
        ir.Conv2d(name="c", weight=_w(6, 1, 3, 3), groups=3, stride=2, padding=(1, 0, 0, 1)),
    ],
    ids=["pad1_bias", "stride_asym_pad", "dilation", "depthwise_groups"],
)
def test_conv2d(conv):
    graph = ir.chain(ir.Input(name="x", shape=(3, 9, 8)), conv, ir.Output(name="y"))
    _single(graph, 2, 3, 9, 8)


@pytest.mark.parametrize("pool_type", [ir.AvgPool2d, ir.SumPool2d, ir.MaxPool2d])
@pytest.mark.parametrize(
    "kernel, stride, padding",
    [(2, 2, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0, 0, 1))],
    ids=["k2s2", "k3s2p1", "asymmetric"],
)
def test_pools_with_padding(pool_type, kernel, stride, padding):
    # normal inputs are half negative: max pooling must never pick the padding,
    # average pooling must count padded zeros in its divisor
    graph = ir.chain(
        ir.Input(name="x", shape=(3, 7, 6)),
        pool_type(name="pool", kernel=kernel, stride=stride, padding=padding),
        ir.Output(name="y"),
    )
    _single(graph, 2, 3, 7, 6)


def test_scale_scalar_and_per_channel_clip_flatten_reshape():
    graph = ir.chain(
        ir.Input(name="x", shape=(3, 4, 4)),
        ir.Scale(name="per_channel", scale=_w(3)),
        ir.Clip(name="clip", min=-0.5, max=0.75),
        ir.Scale(name="scalar", scale=np.float32(1.5)),
        ir.Flatten(name="flat"),
        ir.Scale(name="per_feature", scale=_w(48)),
        ir.Reshape(name="reshape", shape=(6, 8)),
        ir.Output(name="y"),
    )
    _single(graph, 4, 3, 4, 4)


def test_fan_in_sum_of_three_edges_into_add_and_two_into_a_dense():
    nodes = [
        ir.Input(name="x", shape=(5,)),
        ir.Dense(name="a", weight=_w(4, 5)),
        ir.Dense(name="b", weight=_w(4, 5), bias=_w(4)),
        ir.Scale(name="c", scale=np.float32(-2.0)),
        ir.Add(name="add"),
        ir.Dense(name="fc", weight=_w(3, 4)),
        ir.Output(name="y"),
    ]
    edges = [
        ir.Edge("x", "a"),
        ir.Edge("x", "b"),
        ir.Edge("a", "c"),
        ir.Edge("a", "add"),
        ir.Edge("b", "add"),
        ir.Edge("c", "add"),
        # two edges summed straight into a Dense's port, with no Add node
        ir.Edge("add", "fc"),
        ir.Edge("b", "fc"),
        ir.Edge("fc", "y"),
    ]
    _single(ir.Graph(nodes, edges), 3, 5)


def test_residual_conv_block_with_concat_and_two_outputs():
    nodes = [
        ir.Input(name="img", shape=(2, 6, 6)),
        ir.Conv2d(name="c1", weight=_w(4, 2, 3, 3), bias=_w(4), padding=1),
        ir.ReLU(name="r1"),
        ir.Conv2d(name="c2", weight=_w(4, 4, 3, 3), padding=1),
        ir.Add(name="res"),
        ir.ReLU(name="r2"),
        ir.Conv2d(name="side", weight=_w(3, 2, 1, 1)),
        ir.Concat(name="cat", num_inputs=2, axis=0),
        ir.MaxPool2d(name="mp", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(10, 63), bias=_w(10)),
        ir.Output(name="logits"),
        ir.Output(name="features"),
    ]
    edges = [
        ir.Edge("img", "c1"),
        ir.Edge("c1", "r1"),
        ir.Edge("r1", "c2"),
        ir.Edge("c2", "res"),
        ir.Edge("r1", "res"),
        ir.Edge("res", "r2"),
        ir.Edge("img", "side"),
        ir.Edge("r2", "cat", "input0"),
        ir.Edge("side", "cat", "input1"),
        ir.Edge("cat", "mp"),
        ir.Edge("mp", "flat"),
        ir.Edge("flat", "fc"),
        ir.Edge("fc", "logits"),
        ir.Edge("flat", "features"),
    ]
    _single(ir.Graph(nodes, edges), 2, 2, 6, 6)


def test_two_inputs_concat_on_feature_axis_of_a_2d_tensor():
    nodes = [
        ir.Input(name="u", shape=(2, 3)),
        ir.Input(name="v", shape=(2, 5)),
        ir.Concat(name="cat", num_inputs=2, axis=1),
        ir.Flatten(name="flat"),
        ir.Softmax(name="soft"),
        ir.Output(name="y"),
    ]
    edges = [
        ir.Edge("u", "cat", "input0"),
        ir.Edge("v", "cat", "input1"),
        ir.Edge("cat", "flat"),
        ir.Edge("flat", "soft"),
        ir.Edge("soft", "y"),
    ]
    _assert_same(ir.Graph(nodes, edges), {"u": _x(4, 2, 3), "v": _x(4, 2, 5)})


def test_batch_dimension_is_dynamic():
    graph = ir.chain(
        ir.Input(name="x", shape=(1, 5, 5)),
        ir.Conv2d(name="c", weight=_w(2, 1, 3, 3)),
        ir.Flatten(name="f"),
        ir.Output(name="y"),
    )
    model = to_onnx(graph)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 5, 5]
    for batch in (1, 7):
        _single(graph, batch, 1, 5, 5)


@pytest.mark.parametrize(
    "neuron",
    [
        ir.IF(name="spiky", v_threshold=1.0),
        ir.LIF(name="spiky", v_threshold=1.0, decay_v=0.1),
    ],
)
def test_spiking_graph_is_refused_naming_the_nodes(neuron):
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=_w(2, 3)),
        neuron,
        ir.Readout(name="readout"),
        ir.Output(name="y"),
    )
    with pytest.raises(UnsupportedGraphError) as info:
        to_onnx(graph)
    message = str(info.value)
    for name in ("spiky", "enc", "readout", "analog graphs only"):
        assert name in message


def test_old_opset_is_refused():
    graph = ir.chain(ir.Input(name="x", shape=(2,)), ir.ReLU(name="r"), ir.Output(name="y"))
    with pytest.raises(ConversionError, match="opset"):
        to_onnx(graph, opset=11)


def test_onnxruntime_agrees_on_the_exported_model():
    ort = pytest.importorskip("onnxruntime")
    graph = ir.chain(
        ir.Input(name="x", shape=(2, 6, 6)),
        ir.Conv2d(name="c", weight=_w(3, 2, 3, 3), bias=_w(3), padding=(1, 0, 0, 1)),
        ir.Clip(name="clip", min=0.0, max=2.0),
        ir.SumPool2d(name="sp", kernel=2, stride=2, padding=(1, 1, 0, 0)),
        ir.Flatten(name="f"),
        ir.Dense(name="fc", weight=_w(4, 27)),
        ir.Output(name="y"),
    )
    x = _x(3, 2, 6, 6)
    session = ort.InferenceSession(to_onnx(graph).SerializeToString())
    (got,) = session.run(None, {"x": x})
    want = reference.run(graph, x).outputs["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
