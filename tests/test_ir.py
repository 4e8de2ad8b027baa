"""IR nodes and graphs: immutability, registry, shape inference, validation errors."""

import attrs
import numpy as np
import pytest

from neurohal import ir
from neurohal.errors import IRValidationError


def test_nodes_are_frozen_and_arrays_read_only():
    node = ir.Dense(name="d", weight=np.ones((2, 3)))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        node.name = "other"
    with pytest.raises(ValueError):
        node.weight[0, 0] = 5
    source = np.ones((2, 3))
    copy = ir.Dense(name="d", weight=source)
    source[0, 0] = 7  # the node keeps its own copy
    assert copy.weight[0, 0] == 1
    assert attrs.evolve(node, bias=[1, 2]) == ir.Dense(
        name="d", weight=np.ones((2, 3)), bias=[1.0, 2.0]
    )


def test_registry_holds_every_public_node_type():
    assert {
        "Input",
        "Output",
        "Dense",
        "Conv2d",
        "AvgPool2d",
        "SumPool2d",
        "Flatten",
        "Reshape",
        "Add",
        "Concat",
        "Scale",
        "ReLU",
        "Clip",
        "MaxPool2d",
        "Softmax",
        "IF",
        "LIF",
        "CubaLIF",
        "Encoder",
        "Readout",
    } == set(ir.NODE_TYPES)


def test_shapes_and_kind():
    g = ir.chain(
        ir.Input(name="x", shape=(1, 28, 28)),
        ir.Conv2d(name="c", weight=np.zeros((6, 1, 5, 5)), padding=2),
        ir.ReLU(name="r"),
        ir.AvgPool2d(name="p", kernel=2, stride=2),
        ir.Flatten(name="f"),
        ir.Dense(name="d", weight=np.zeros((10, 6 * 14 * 14))),
        ir.Output(name="out"),
    )
    assert g.validate().shapes()["p"] == (6, 14, 14)
    assert g.kind == "ann"
    assert g.parameter_count() == 6 * 25 + 10 * 6 * 14 * 14


def test_cycle_is_reported_with_its_nodes():
    nodes = [
        ir.Input(name="x", shape=(2,)),
        ir.Add(name="a"),
        ir.Add(name="b"),
        ir.Output(name="out"),
    ]
    edges = [ir.Edge("x", "a"), ir.Edge("a", "b"), ir.Edge("b", "a"), ir.Edge("b", "out")]
    with pytest.raises(IRValidationError, match=r"cycle.*'a', 'b'"):
        ir.Graph(nodes, edges).validate()


def test_shape_mismatch_names_the_node():
    g = ir.chain(
        ir.Input(name="x", shape=(4,)),
        ir.Dense(name="fc", weight=np.ones((2, 3))),
        ir.Output(name="out"),
    )
    with pytest.raises(IRValidationError, match=r"node 'fc' \(Dense\).*input shape"):
        g.validate()


def test_dangling_node_and_missing_port_and_bad_edge():
    nodes = [
        ir.Input(name="x", shape=(2,)),
        ir.ReLU(name="r"),
        ir.ReLU(name="lost"),
        ir.Output(name="out"),
    ]
    with pytest.raises(IRValidationError, match="'lost'.*dangling"):
        ir.Graph(nodes, [ir.Edge("x", "r"), ir.Edge("r", "out"), ir.Edge("x", "lost")]).validate()
    with pytest.raises(IRValidationError, match="'r'.*no incoming edge"):
        ir.Graph(nodes[:2] + nodes[3:], [ir.Edge("r", "out"), ir.Edge("x", "out")]).validate()
    with pytest.raises(IRValidationError, match="no port 'weights'"):
        ir.Graph(
            nodes[:2] + nodes[3:], [ir.Edge("x", "r", "weights"), ir.Edge("r", "out")]
        ).validate()
    with pytest.raises(IRValidationError, match="no node named 'ghost'"):
        ir.Graph(
            nodes[:2] + nodes[3:], [ir.Edge("ghost", "r"), ir.Edge("x", "r"), ir.Edge("r", "out")]
        ).validate()


def test_duplicate_names_and_fan_in_shape_mismatch():
    with pytest.raises(IRValidationError, match="two nodes are named 'x'"):
        ir.chain(ir.Input(name="x", shape=(2,)), ir.Output(name="x")).validate()
    nodes = [
        ir.Input(name="x", shape=(2,)),
        ir.Dense(name="d", weight=np.ones((3, 2))),
        ir.Add(name="add"),
        ir.Output(name="out"),
    ]
    edges = [ir.Edge("x", "d"), ir.Edge("d", "add"), ir.Edge("x", "add"), ir.Edge("add", "out")]
    with pytest.raises(IRValidationError, match="'add'.*different shapes"):
        ir.Graph(nodes, edges).validate()


def test_spiking_graph_rules():
    g = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.IF(name="n", v_threshold=1.0),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    with pytest.raises(IRValidationError, match="'x'.*Encoder"):
        g.validate()
    bad_readout = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.Encoder(name="e"),
        ir.Readout(name="r", kind="spike_count"),
        ir.Output(name="out"),
    )
    with pytest.raises(IRValidationError, match="spike_count"):
        bad_readout.validate()


def test_bad_field_values_are_refused():
    with pytest.raises(ValueError, match="reset"):
        ir.IF(name="n", v_threshold=1.0, reset="sideways")
    with pytest.raises(ValueError, match="v_threshold"):
        ir.IF(name="n", v_threshold=0.0)
    with pytest.raises(ValueError, match="decay_v"):
        ir.LIF(name="n", v_threshold=1.0, decay_v=1.5)
    with pytest.raises(ValueError, match="padding"):
        ir.Conv2d(name="c", weight=np.ones((1, 1, 1, 1)), padding=(1, 2, 3))


def test_metadata_is_json_and_read_only():
    g = ir.chain(ir.Input(name="x", shape=(1,)), ir.Output(name="out"), metadata={"a": [1, 2]})
    with pytest.raises(TypeError):
        g.metadata["b"] = 1
    with pytest.raises(IRValidationError, match="JSON"):
        ir.chain(ir.Input(name="x", shape=(1,)), ir.Output(name="out"), metadata={"a": object()})
