"""Small IR graphs covering every node and option cpu_sim runs, with inputs and timesteps."""

from __future__ import annotations

import attrs
import numpy as np

from neurohal import ir

B = 5


@attrs.frozen
class Example:
    name: str
    graph: ir.Graph
    inputs: np.ndarray | dict[str, np.ndarray]
    timesteps: int | None = None


def _w(rng: np.random.Generator, *shape: int, gain: float = 1.0) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(size=shape) * gain / np.sqrt(fan_in)).astype(np.float32)


def _img(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.random((B, *shape)).astype(np.float32)


def _with_edges(graph: ir.Graph, *edges: ir.Edge) -> ir.Graph:
    return ir.Graph(graph.nodes, (*graph.edges, *edges))


def analog_examples(rng: np.random.Generator) -> list[Example]:
    conv = ir.chain(
        ir.Input(name="x", shape=(4, 9, 9)),
        ir.Conv2d(
            name="conv",
            weight=_w(rng, 6, 2, 3, 3),
            bias=rng.normal(size=6).astype(np.float32),
            stride=(2, 1),
            padding=(1, 0, 2, 1),
            dilation=(1, 2),
            groups=2,
        ),
        ir.ReLU(name="relu"),
        ir.MaxPool2d(name="max", kernel=2, stride=2, padding=(1, 1, 0, 0)),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 7, 6 * 3 * 3)),
        ir.Softmax(name="soft"),
        ir.Output(name="out"),
    )
    pools = ir.chain(
        ir.Input(name="x", shape=(3, 8, 8)),
        ir.AvgPool2d(name="avg", kernel=3, stride=2, padding=1),
        ir.SumPool2d(name="sum", kernel=(2, 1), stride=(1, 2), padding=(0, 1, 1, 0)),
        ir.Scale(name="scale", scale=np.array([0.5, -1.0, 2.0], np.float32)),
        ir.Clip(name="clip", min=-0.5, max=1.5),
        ir.Reshape(name="reshape", shape=(4, 9)),
        ir.Scale(name="scalar", scale=np.float32(1.5)),
        ir.Flatten(name="flat"),
        ir.Output(name="out"),
    )
    two_inputs = ir.Graph(
        [
            ir.Input(name="a", shape=(6,)),
            ir.Input(name="b", shape=(6,)),
            ir.Dense(name="fa", weight=_w(rng, 4, 6)),
            ir.Concat(name="cat", num_inputs=2, axis=0),
            ir.Add(name="add"),
            ir.Output(name="sum"),
            ir.Output(name="joined"),
        ],
        [
            ir.Edge("a", "fa"),
            ir.Edge("fa", "cat", "input0"),
            ir.Edge("b", "cat", "input1"),
            ir.Edge("cat", "joined"),
            ir.Edge("a", "add"),
            ir.Edge("b", "add"),
            ir.Edge("b", "add"),
            ir.Edge("add", "sum"),
        ],
    )
    return [
        Example("analog_conv_groups_dilation_maxpool_softmax", conv, _img(rng, 4, 9, 9)),
        Example("analog_pools_scale_clip_reshape", pools, _img(rng, 3, 8, 8) * 2 - 0.5),
        Example(
            "analog_two_inputs_concat_fan_in",
            two_inputs,
            {"a": rng.normal(size=(B, 6)), "b": rng.normal(size=(B, 6))},
        ),
    ]


def spiking_examples(rng: np.random.Generator) -> list[Example]:
    conv = ir.chain(
        ir.Input(name="x", shape=(2, 10, 10)),
        ir.Encoder(name="enc", kind="poisson", seed=7),
        ir.Conv2d(
            name="conv",
            weight=_w(rng, 4, 1, 3, 3, gain=3),
            bias=np.full(4, 0.05, np.float32),
            stride=2,
            padding=(0, 1, 1, 2),
            dilation=(2, 1),
            groups=2,
        ),
        ir.IF(name="if1", v_threshold=0.8, reset="zero", v_init=0.3),
        ir.SumPool2d(name="sum", kernel=2, stride=1, padding=(1, 0, 0, 1)),
        ir.Conv2d(name="conv2", weight=_w(rng, 3, 4, 2, 2, gain=3)),
        ir.LIF(name="lif", v_threshold=1.0, decay_v=0.2),
        ir.AvgPool2d(name="avg", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 5, 3 * 1 * 2, gain=2)),
        ir.CubaLIF(name="cuba", v_threshold=0.5, decay_i=0.3, decay_v=0.1, reset="subtract"),
        ir.Readout(name="readout", kind="spike_count"),
        ir.Output(name="out"),
    )
    residual = _with_edges(
        ir.chain(
            ir.Input(name="x", shape=(12,)),
            ir.Encoder(name="enc"),
            ir.Dense(name="fc1", weight=_w(rng, 12, 12, gain=2), bias=np.full(12, 0.1)),
            ir.IF(name="if1", v_threshold=1.0, v_init=0.5),
            ir.Dense(name="fc2", weight=_w(rng, 12, 12, gain=2)),
            ir.Add(name="add"),
            ir.IF(name="if2", v_threshold=1.0),
            ir.Scale(name="scale", scale=np.float32(0.7)),
            ir.Dense(name="fc3", weight=_w(rng, 3, 12, gain=2)),
            ir.Readout(name="readout"),
            ir.Output(name="out"),
        ),
        # three edges into the Add: the skip from if1, and the analog encoder's current
        ir.Edge("if1", "add"),
        ir.Edge("enc", "add"),
    )
    mixed = ir.Graph(
        [
            ir.Input(name="x", shape=(2, 6, 6)),
            ir.Encoder(name="enc", kind="poisson", seed=3),
            ir.Encoder(name="current"),
            ir.Conv2d(name="left", weight=_w(rng, 2, 2, 3, 3, gain=3), padding=1),
            ir.LIF(name="lif", v_threshold=1.0, decay_v=0.5, reset="zero"),
            ir.MaxPool2d(name="max", kernel=2, stride=2),
            ir.ReLU(name="relu"),
            ir.AvgPool2d(name="avg", kernel=2, stride=2),
            ir.Concat(name="cat", num_inputs=2, axis=0),
            ir.Reshape(name="reshape", shape=(4 * 3 * 3,)),
            ir.Dense(name="fc", weight=_w(rng, 4, 36, gain=2)),
            ir.Readout(name="readout"),
            ir.Output(name="out"),
            ir.Output(name="spikes"),
        ],
        [
            ir.Edge("x", "enc"),
            ir.Edge("x", "current"),
            ir.Edge("enc", "left"),
            ir.Edge("left", "lif"),
            ir.Edge("lif", "max"),
            ir.Edge("current", "relu"),
            ir.Edge("max", "cat", "input0"),
            ir.Edge("relu", "avg"),
            ir.Edge("avg", "cat", "input1"),
            ir.Edge("cat", "reshape"),
            ir.Edge("reshape", "fc"),
            ir.Edge("fc", "readout"),
            ir.Edge("readout", "out"),
            ir.Edge("lif", "spikes"),
        ],
    )
    mixed_input = np.concatenate([_img(rng, 1, 6, 6), _img(rng, 1, 6, 6) * 0.2], axis=1)
    return [
        Example("spiking_poisson_conv_if_lif_cubalif", conv, _img(rng, 2, 10, 10), 13),
        Example("spiking_residual_add_fan_in_scale", residual, _img(rng, 12), 11),
        Example("mixed_maxpool_relu_concat_reshape", mixed, mixed_input, 9),
    ]


def all_examples() -> list[Example]:
    rng = np.random.default_rng(11)
    return analog_examples(rng) + spiking_examples(rng)
