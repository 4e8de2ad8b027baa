"""The reference interpreter against hand-computed cases, one or more per node type."""

import numpy as np
import pytest

from neurohal import ir, reference
from neurohal.errors import InputError


def run1(node, x, shape, timesteps=None, spiking=False):
    """Run a single node between an Input and an Output (with Encoder/Readout if spiking)."""
    nodes = [ir.Input(name="x", shape=shape)]
    if spiking:
        nodes.append(ir.Encoder(name="enc"))
    nodes += [node, ir.Output(name="out")]
    result = reference.run(ir.chain(*nodes), np.asarray(x, dtype=float), timesteps, [node.name])
    return result


def out(node, x, shape):
    return run1(node, x, shape).outputs["out"]


def test_dense():
    node = ir.Dense(name="d", weight=[[1, 2], [3, -1]], bias=[0.5, 0])
    np.testing.assert_allclose(out(node, [[1, 1], [2, 0]], (2,)), [[3.5, 2], [2.5, 6]])


def test_conv2d_padding_stride_dilation_groups():
    x = np.arange(16, dtype=float).reshape(1, 1, 4, 4)
    node = ir.Conv2d(name="c", weight=np.ones((1, 1, 2, 2)), bias=[1.0], stride=2)
    # windows [[0,1],[4,5]] = 10, [[2,3],[6,7]] = 18, [[8,9],[12,13]] = 42, [[10,11],[14,15]] = 50
    np.testing.assert_allclose(out(node, x, (1, 4, 4)), [[[[11, 19], [43, 51]]]])
    padded = ir.Conv2d(name="c", weight=np.ones((1, 1, 3, 3)), padding=(1, 1, 0, 0))
    # top/left padding only: output (3, 3); the corner sees x[0:2, 0:2] = 0+1+4+5
    assert out(padded, x, (1, 4, 4))[0, 0, 0, 0] == 10
    dil = ir.Conv2d(name="c", weight=np.ones((1, 1, 2, 2)), dilation=2)
    # taps at (0,0),(0,2),(2,0),(2,2) = 0+2+8+10
    assert out(dil, x, (1, 4, 4))[0, 0, 0, 0] == 20
    two = np.stack([x[0, 0], -x[0, 0]])[None]
    grouped = ir.Conv2d(name="c", weight=np.ones((2, 1, 1, 1)) * [[[[2]]], [[[3]]]], groups=2)
    np.testing.assert_allclose(out(grouped, two, (2, 4, 4))[0], [2 * x[0, 0], -3 * x[0, 0]])


def test_pools():
    x = np.array([[[[1, 2], [3, 8]]]], dtype=float)
    kw = dict(kernel=2, stride=2)
    assert out(ir.AvgPool2d(name="p", **kw), x, (1, 2, 2)).item() == 3.5
    assert out(ir.SumPool2d(name="p", **kw), x, (1, 2, 2)).item() == 14
    assert out(ir.MaxPool2d(name="p", **kw), -x, (1, 2, 2)).item() == -1
    # padded zeros count in the average, never win the max
    padded = dict(kernel=2, stride=2, padding=(1, 1, 1, 1))
    assert out(ir.AvgPool2d(name="p", **padded), x, (1, 2, 2))[0, 0, 0, 0] == 0.25
    assert out(ir.MaxPool2d(name="p", **padded), -x, (1, 2, 2))[0, 0, 0, 0] == -1


def test_activations_and_structure():
    x = np.array([[-2.0, 0.5, 3.0]])
    np.testing.assert_allclose(out(ir.ReLU(name="r"), x, (3,)), [[0, 0.5, 3]])
    np.testing.assert_allclose(out(ir.Clip(name="c", min=0, max=1), x, (3,)), [[0, 0.5, 1]])
    sm = out(ir.Softmax(name="s"), [[0.0, np.log(3.0)]], (2,))
    np.testing.assert_allclose(sm, [[0.25, 0.75]])
    np.testing.assert_allclose(out(ir.Scale(name="s", scale=2.0), x, (3,)), 2 * x)
    img = np.ones((1, 2, 1, 1))
    np.testing.assert_allclose(
        out(ir.Scale(name="s", scale=[2.0, 3.0]), img, (2, 1, 1)).ravel(), [2, 3]
    )
    assert out(ir.Flatten(name="f"), np.ones((2, 2, 3, 1)), (2, 3, 1)).shape == (2, 6)
    assert out(ir.Reshape(name="r", shape=(3, 2)), np.ones((1, 6)), (6,)).shape == (1, 3, 2)


def test_fan_in_sum_and_concat():
    nodes = [
        ir.Input(name="x", shape=(2,)),
        ir.Dense(name="a", weight=np.eye(2)),
        ir.Dense(name="b", weight=2 * np.eye(2)),
        ir.Add(name="add"),
        ir.Concat(name="cat", num_inputs=2),
        ir.Output(name="out"),
    ]
    edges = [
        ir.Edge("x", "a"),
        ir.Edge("x", "b"),
        ir.Edge("a", "add"),
        ir.Edge("b", "add"),
        ir.Edge("add", "cat", "input0"),
        ir.Edge("x", "cat", "input1"),
        ir.Edge("cat", "out"),
    ]
    result = reference.run(ir.Graph(nodes, edges), np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(result.outputs["out"], [[3, 6, 1, 2]])


def test_if_reset_by_subtraction_and_to_zero():
    # input 0.7, threshold 1, v_init 0.5: v = 1.2 -> spike -> 0.2, 0.9, 1.6 -> 0.6, 1.3 -> spike
    sub = run1(ir.IF(name="n", v_threshold=1.0, v_init=0.5), [[0.7]], (1,), 4, spiking=True)
    np.testing.assert_array_equal(sub.records["n"][:, 0, 0], [1, 0, 1, 1])
    # reset to zero: 1.2 -> spike -> 0, 0.7, 1.4 -> spike -> 0, 0.7
    zero = run1(
        ir.IF(name="n", v_threshold=1.0, v_init=0.5, reset="zero"), [[0.7]], (1,), 4, spiking=True
    )
    np.testing.assert_array_equal(zero.records["n"][:, 0, 0], [1, 0, 1, 0])
    assert sub.counters["n"] == {"spikes": 3, "neuron_updates": 4}


def test_lif_and_cuba_lif():
    # LIF, decay 0.5, input 0.6: v = 0.6, 0.9, 1.05 -> spike -> 0.05, 0.625
    lif = run1(ir.LIF(name="n", v_threshold=1.0, decay_v=0.5), [[0.6]], (1,), 4, spiking=True)
    np.testing.assert_array_equal(lif.records["n"][:, 0, 0], [0, 0, 1, 0])
    # CUBA: i = 0.5, 0.75, 0.875; v = 0.5, 1.25 -> spike -> 0.25, 0.25 + 0.875 = 1.125 -> spike
    cuba = ir.CubaLIF(name="n", v_threshold=1.0, decay_i=0.5, decay_v=0.0)
    cuba_run = run1(cuba, [[0.5]], (1,), 3, spiking=True)
    np.testing.assert_array_equal(cuba_run.records["n"][:, 0, 0], [0, 1, 1])


def test_encoders_and_readout():
    analog = run1(ir.Readout(name="r"), [[0.3]], (1,), 5, spiking=True)
    np.testing.assert_allclose(analog.outputs["out"], [[0.3]])  # mean of a constant current
    np.testing.assert_allclose(analog.records["r"][:, 0, 0], [0.3] * 5)
    x = np.full((1, 1000), 0.25)
    g = ir.chain(
        ir.Input(name="x", shape=(1000,)),
        ir.Encoder(name="enc", kind="poisson", seed=7),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    first = reference.run(g, x, 4, ["enc"])
    u = np.random.default_rng(7)
    expected = np.stack([(u.random((1, 1000)) < 0.25) for _ in range(4)]).astype(float)
    np.testing.assert_array_equal(first.records["enc"], expected)
    np.testing.assert_allclose(first.outputs["out"], expected.mean(axis=0))


def test_synops_count_events_times_fan_out():
    node = ir.Dense(name="d", weight=np.ones((3, 4)))
    g = ir.chain(
        ir.Input(name="x", shape=(4,)),
        ir.Encoder(name="enc"),
        node,
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    result = reference.run(g, np.array([[1.0, 0, 0, 2.0]]), timesteps=2)
    assert result.counters["d"] == {"synops": 2 * 2 * 3, "macs": 2 * 4 * 3}


def test_bad_inputs_raise_input_error():
    g = ir.chain(ir.Input(name="x", shape=(2,)), ir.ReLU(name="r"), ir.Output(name="out"))
    with pytest.raises(InputError, match="shape"):
        reference.run(g, np.ones((1, 3)))
    with pytest.raises(InputError, match="NaN"):
        reference.run(g, np.array([[np.nan, 1.0]]))
    snn = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.Encoder(name="e"),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    with pytest.raises(InputError, match="timesteps"):
        reference.run(snn, np.ones((1, 2)))
    with pytest.raises(InputError, match=">= 1"):
        reference.run(snn, np.ones((1, 2)), timesteps=0)
