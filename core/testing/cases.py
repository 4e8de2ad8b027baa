"""Small graphs with inputs on which every device is judged against the reference."""

from __future__ import annotations

import attrs
import numpy as np

from neurohal import ir

BATCH = 4


@attrs.frozen
class Case:
    """A named graph with batch-first inputs and, for spiking graphs, the number of steps."""

    name: str
    graph: ir.Graph
    inputs: np.ndarray
    timesteps: int | None = None


def _w(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(size=shape) * scale / np.sqrt(fan_in)).astype(np.float32)


def _analog_cases(rng: np.random.Generator) -> list[Case]:
    x_img = rng.random((BATCH, 2, 8, 8)).astype(np.float32)
    x_vec = rng.random((BATCH, 12)).astype(np.float32)
    dense = ir.chain(
        ir.Input(name="x", shape=(12,)),
        ir.Dense(name="fc1", weight=_w(rng, 16, 12), bias=rng.normal(size=16) * 0.1),
        ir.ReLU(name="relu1"),
        ir.Dense(name="fc2", weight=_w(rng, 5, 16), bias=np.zeros(5)),
        ir.Output(name="out"),
    )
    conv = ir.chain(
        ir.Input(name="x", shape=(2, 8, 8)),
        ir.Conv2d(
            name="conv", weight=_w(rng, 4, 2, 3, 3), bias=rng.normal(size=4) * 0.1, padding=1
        ),
        ir.ReLU(name="relu"),
        ir.AvgPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 3, 64)),
        ir.Output(name="out"),
    )
    maxpool = ir.chain(
        ir.Input(name="x", shape=(2, 8, 8)),
        ir.Conv2d(name="conv", weight=_w(rng, 3, 2, 3, 3), stride=1, padding=0),
        ir.Clip(name="clip", min=0.0, max=1.0),
        ir.MaxPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 4, 27)),
        ir.Output(name="out"),
    )
    return [
        Case("analog_dense", dense, x_vec),
        Case("analog_conv_avgpool", conv, x_img),
        Case("analog_conv_maxpool", maxpool, x_img),
        Case("analog_residual_add", _residual(rng, spiking=False), x_img),
        Case("analog_concat", _concat(rng, spiking=False), x_img),
    ]


def _neuron(name: str, spiking: bool) -> ir.Node:
    if spiking:
        return ir.IF(name=name, v_threshold=1.0, reset="subtract", v_init=0.5)
    return ir.ReLU(name=name)


def _head(spiking: bool) -> list[ir.Node]:
    return (
        [ir.Readout(name="readout"), ir.Output(name="out")] if spiking else [ir.Output(name="out")]
    )


def _residual(rng: np.random.Generator, spiking: bool) -> ir.Graph:
    nodes = [
        ir.Input(name="x", shape=(2, 8, 8)),
        *([ir.Encoder(name="enc")] if spiking else []),
        ir.Conv2d(
            name="conv1", weight=_w(rng, 4, 2, 3, 3, scale=2), bias=np.full(4, 0.05), padding=1
        ),
        _neuron("act1", spiking),
        ir.Conv2d(name="conv2", weight=_w(rng, 4, 4, 3, 3, scale=2), padding=1),
        ir.Add(name="add"),
        _neuron("act2", spiking),
        ir.SumPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 3, 64)),
        *_head(spiking),
    ]
    graph = ir.chain(*nodes)
    # the skip connection: act1 also feeds the Add, summed with conv2's output
    return ir.Graph(graph.nodes, (*graph.edges, ir.Edge("act1", "add")))


def _concat(rng: np.random.Generator, spiking: bool) -> ir.Graph:
    first = "enc" if spiking else "x"
    nodes = [
        ir.Input(name="x", shape=(2, 8, 8)),
        *([ir.Encoder(name="enc")] if spiking else []),
        ir.Conv2d(name="left", weight=_w(rng, 3, 2, 1, 1, scale=2)),
        ir.Conv2d(name="right", weight=_w(rng, 2, 2, 3, 3, scale=2), padding=1),
        _neuron("act_l", spiking),
        _neuron("act_r", spiking),
        ir.Concat(name="cat", num_inputs=2, axis=0),
        ir.AvgPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 4, 80)),
        *_head(spiking),
    ]
    edges = [
        *([ir.Edge("x", "enc")] if spiking else []),
        ir.Edge(first, "left"),
        ir.Edge(first, "right"),
        ir.Edge("left", "act_l"),
        ir.Edge("right", "act_r"),
        ir.Edge("act_l", "cat", "input0"),
        ir.Edge("act_r", "cat", "input1"),
        ir.Edge("cat", "pool"),
        ir.Edge("pool", "flat"),
        ir.Edge("flat", "fc"),
        *(
            [ir.Edge("fc", "readout"), ir.Edge("readout", "out")]
            if spiking
            else [ir.Edge("fc", "out")]
        ),
    ]
    return ir.Graph(nodes, edges)


def _spiking_cases(rng: np.random.Generator) -> list[Case]:
    x_img = rng.random((BATCH, 2, 8, 8)).astype(np.float32)
    x_vec = rng.random((BATCH, 12)).astype(np.float32)
    dense = ir.chain(
        ir.Input(name="x", shape=(12,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=_w(rng, 16, 12, scale=3), bias=np.full(16, 0.05)),
        ir.IF(name="if1", v_threshold=1.0, reset="subtract", v_init=0.5),
        ir.Dense(name="fc2", weight=_w(rng, 5, 16, scale=2)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    conv = ir.chain(
        ir.Input(name="x", shape=(2, 8, 8)),
        ir.Encoder(name="enc"),
        ir.Conv2d(name="conv", weight=_w(rng, 4, 2, 3, 3, scale=3), padding=1),
        ir.IF(name="if1", v_threshold=1.0, reset="zero"),
        ir.AvgPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 3, 64, scale=2)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    lif = ir.chain(
        ir.Input(name="x", shape=(12,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=_w(rng, 8, 12, scale=3)),
        ir.LIF(name="lif", v_threshold=1.0, decay_v=0.25),
        ir.Dense(name="fc2", weight=_w(rng, 3, 8, scale=2)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    return [
        Case("spiking_dense", dense, x_vec, 16),
        Case("spiking_conv_avgpool", conv, x_img, 16),
        Case("spiking_residual_add", _residual(rng, spiking=True), x_img, 16),
        Case("spiking_concat", _concat(rng, spiking=True), x_img, 16),
        Case("spiking_lif", lif, x_vec, 16),
    ]


def conformance_cases(kind: str | None = None) -> tuple[Case, ...]:
    """All conformance cases, or only the ``analog`` or ``spiking`` ones. Deterministic."""
    rng = np.random.default_rng(2026)
    cases = _analog_cases(rng) + _spiking_cases(rng)
    for case in cases:
        case.graph.validate()
    if kind is None:
        return tuple(cases)
    return tuple(c for c in cases if c.name.startswith(kind))
