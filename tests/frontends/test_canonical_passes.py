"""Each canonical pass on small hand-made graphs, checked against numpy computations by hand."""

import numpy as np
import pytest

from neurohal.errors import ConversionError
from neurohal.frontends.canonical import (
    BatchNorm,
    Constant,
    Dropout,
    GlobalAvgPool,
    Identity,
    canonical_reshapes,
    canonicalize,
    fold_batchnorm,
    fold_constants,
    fold_scales,
    lower_affine,
    lower_global_pool,
    remove_identities,
)
from neurohal.ir import (
    NODE_TYPES,
    Add,
    AvgPool2d,
    Conv2d,
    Dense,
    Edge,
    Flatten,
    Graph,
    Input,
    Output,
    ReLU,
    Reshape,
    Scale,
    chain,
)
from neurohal.reference import run

R = np.random.default_rng(3)
X = R.standard_normal((4, 3, 5, 5))


def bn(name, c):
    return BatchNorm(
        name=name,
        gamma=R.random(c) + 0.5,
        beta=R.standard_normal(c),
        mean=R.standard_normal(c),
        var=R.random(c) + 0.5,
        epsilon=1e-3,
    )


def bn_by_hand(node, y):
    shape = (1, -1) + (1,) * (y.ndim - 2)
    g, b, m, v = (getattr(node, k).reshape(shape) for k in ("gamma", "beta", "mean", "var"))
    return g * (y - m) / np.sqrt(v + node.epsilon) + b


def conv(name="conv", bias=True):
    return Conv2d(
        name=name,
        weight=R.standard_normal((4, 3, 3, 3)),
        bias=R.standard_normal(4) if bias else None,
        padding=1,
    )


def conv_by_hand(node, x):
    """Direct loops over a zero-padded input (padding 1, stride 1)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], 4, x.shape[2], x.shape[3]))
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            out[:, :, i, j] = np.einsum(
                "bchw,ochw->bo", xp[:, :, i : i + 3, j : j + 3], node.weight
            )
    return out + (0 if node.bias is None else node.bias.reshape(1, -1, 1, 1))


def out(graph, x=X):
    (y,) = run(graph, x).outputs.values()
    return y


def test_frontend_nodes_are_not_ir_vocabulary():
    for cls in (Constant, BatchNorm, Dropout, Identity, GlobalAvgPool):
        assert cls.__name__ not in NODE_TYPES


def test_remove_identities_rewires_every_consumer():
    graph = Graph(
        [
            Input(name="x", shape=(3, 5, 5)),
            Dropout(name="d"),
            Identity(name="i"),
            ReLU(name="r"),
            Add(name="a"),
            Output(name="y"),
        ],
        [
            Edge("x", "d"),
            Edge("d", "i"),
            Edge("i", "r"),
            Edge("i", "a"),
            Edge("r", "a"),
            Edge("a", "y"),
        ],
    )
    result = remove_identities(graph)
    assert [n.name for n in result.nodes] == ["x", "r", "a", "y"]
    np.testing.assert_allclose(out(result), X + np.maximum(X, 0))


def test_fold_batchnorm_into_conv():
    c, b = conv(bias=False), bn("bn", 4)
    result = fold_batchnorm(chain(Input(name="x", shape=(3, 5, 5)), c, b, Output(name="y")))
    assert [n.type_name for n in result.nodes] == ["Input", "Conv2d", "Output"]
    np.testing.assert_allclose(out(result), bn_by_hand(b, conv_by_hand(c, X)), rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_into_dense():
    d = Dense(name="fc", weight=R.standard_normal((3, 6)), bias=R.standard_normal(3))
    b = bn("bn", 3)
    result = fold_batchnorm(chain(Input(name="x", shape=(6,)), d, b, Output(name="y")))
    x = R.standard_normal((5, 6))
    assert [n.name for n in result.nodes] == ["x", "fc", "y"]
    np.testing.assert_allclose(
        out(result, x), bn_by_hand(b, x @ d.weight.T + d.bias), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("factor", [np.array(-0.5), np.array([2.0, -1.0, 0.25, 3.0])])
def test_fold_scale_into_conv(factor):
    c = conv()
    scale = Scale(name="s", scale=factor)
    result = fold_scales(chain(Input(name="x", shape=(3, 5, 5)), c, scale, Output(name="y")))
    assert [n.type_name for n in result.nodes] == ["Input", "Conv2d", "Output"]
    by_hand = conv_by_hand(c, X) * (factor.reshape(1, -1, 1, 1) if factor.ndim else factor)
    np.testing.assert_allclose(out(result), by_hand, rtol=1e-5, atol=1e-5)


def test_a_scale_after_anything_but_a_layer_it_alone_reads_stays():
    graph = chain(
        Input(name="x", shape=(3, 5, 5)),
        ReLU(name="r"),
        Scale(name="s", scale=np.array(2.0)),
        Output(name="y"),
    )
    assert fold_scales(graph) == graph


def test_batchnorm_after_a_shared_conv_is_not_folded_but_lowered():
    c, b = conv(), bn("bn", 4)
    graph = Graph(
        [Input(name="x", shape=(3, 5, 5)), c, b, ReLU(name="r"), Add(name="a"), Output(name="y")],
        [
            Edge("x", "conv"),
            Edge("conv", "bn"),
            Edge("conv", "r"),
            Edge("bn", "a"),
            Edge("r", "a"),
            Edge("a", "y"),
        ],
    )
    assert fold_batchnorm(graph) == graph
    result = lower_affine(graph)
    lowered = result.node("bn")
    assert isinstance(lowered, Conv2d) and lowered.groups == 4
    y = conv_by_hand(c, X)
    np.testing.assert_allclose(
        out(result), bn_by_hand(b, y) + np.maximum(y, 0), rtol=1e-5, atol=1e-5
    )


def test_fold_constants_makes_a_bias():
    d = Dense(name="fc", weight=R.standard_normal((3, 6)))
    k = Constant(name="k", value=R.standard_normal(3))
    graph = Graph(
        [Input(name="x", shape=(6,)), d, k, Add(name="add"), Output(name="y")],
        [Edge("x", "fc"), Edge("fc", "add"), Edge("k", "add"), Edge("add", "y")],
    )
    result = fold_constants(graph)
    assert [n.name for n in result.nodes] == ["x", "fc", "y"]
    x = R.standard_normal((5, 6))
    np.testing.assert_allclose(out(result, x), x @ d.weight.T + k.value, rtol=1e-6)


def test_constant_added_after_relu_becomes_a_depthwise_bias():
    value = np.broadcast_to(R.standard_normal((3, 1, 1)), (3, 5, 5))
    graph = Graph(
        [
            Input(name="x", shape=(3, 5, 5)),
            ReLU(name="r"),
            Constant(name="k", value=value),
            Add(name="add"),
            Output(name="y"),
        ],
        [Edge("x", "r"), Edge("r", "add"), Edge("k", "add"), Edge("add", "y")],
    )
    assert fold_constants(graph) == graph
    result = lower_affine(graph)
    assert [n.type_name for n in result.nodes] == ["Input", "ReLU", "Output", "Conv2d"]
    np.testing.assert_allclose(out(result), np.maximum(X, 0) + value, rtol=1e-6)


def test_constant_varying_inside_a_channel_is_refused():
    graph = Graph(
        [
            Input(name="x", shape=(3, 5, 5)),
            ReLU(name="r"),
            Constant(name="k", value=R.standard_normal((3, 5, 5))),
            Add(name="add"),
            Output(name="y"),
        ],
        [Edge("x", "r"), Edge("r", "add"), Edge("k", "add"), Edge("add", "y")],
    )
    with pytest.raises(ConversionError, match="'add'.*varies within a channel"):
        canonicalize(graph)


def test_lower_global_pool():
    result = lower_global_pool(
        chain(Input(name="x", shape=(3, 5, 4)), GlobalAvgPool(name="g"), Output(name="y"))
    )
    pool = result.node("g")
    assert isinstance(pool, AvgPool2d) and pool.kernel == (5, 4)
    x = R.standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(out(result, x), x.mean(axis=(2, 3), keepdims=True))


def test_reshape_chains_collapse_to_one_flatten():
    graph = chain(
        Input(name="x", shape=(3, 5, 5)),
        Flatten(name="f1"),
        Reshape(name="r1", shape=(15, 5)),
        Reshape(name="r2", shape=(75,)),
        ReLU(name="relu"),
        Reshape(name="same", shape=(75,)),
        Output(name="y"),
    )
    result = canonical_reshapes(graph)
    assert [(n.name, n.type_name) for n in result.nodes] == [
        ("x", "Input"),
        ("r2", "Flatten"),
        ("relu", "ReLU"),
        ("y", "Output"),
    ]
    np.testing.assert_allclose(out(result), np.maximum(X.reshape(4, -1), 0))


def test_reshape_feeding_two_consumers_is_kept():
    graph = Graph(
        [
            Input(name="x", shape=(3, 5, 5)),
            Reshape(name="r", shape=(15, 5)),
            Flatten(name="f"),
            ReLU(name="relu"),
            Output(name="y1"),
            Output(name="y2"),
        ],
        [Edge("x", "r"), Edge("r", "f"), Edge("r", "relu"), Edge("f", "y1"), Edge("relu", "y2")],
    )
    assert canonical_reshapes(graph) == graph


def test_canonicalize_leaves_ir_nodes_only():
    c = conv(bias=False)
    graph = chain(
        Input(name="x", shape=(3, 5, 5)),
        Identity(name="i"),
        c,
        bn("bn", 4),
        Dropout(name="d"),
        GlobalAvgPool(name="g"),
        Reshape(name="r", shape=(4,)),
        Output(name="y"),
        metadata={"source": {"format": "test"}},
    )
    result = canonicalize(graph)
    assert [n.type_name for n in result.nodes] == [
        "Input",
        "Conv2d",
        "AvgPool2d",
        "Flatten",
        "Output",
    ]
    assert dict(result.metadata) == {"source": {"format": "test"}}
