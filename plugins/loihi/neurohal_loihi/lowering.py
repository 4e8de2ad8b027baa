"""Lower a spiking IR graph to Loihi's structure: neuron layers joined by weighted projections.

A *layer* is a group of Loihi compartments: every IF/LIF node, and every membrane Readout
(a non-spiking integrator: a LIF whose threshold is never reached). Between two layers the IR
holds only linear nodes; each route from a source layer to a destination layer is a
*projection* (one Lava Dense process, one set of synapses on the chip). Average and sum pooling
before the weighted node are lowered into the projection's fixed weights (Loihi has no pooling
unit). Max pooling of spikes, which Loihi has no unit for either, becomes a layer of OR neurons
first (`lower_max_pools`). Whatever is fed from an analog Encoder is computed on the host once
per sample and injected as the destination layer's bias current ("input encoding layer on the
host"), which is also how the graph's biases reach the chip.
"""

from __future__ import annotations

import attrs

from neurohal.errors import UnsupportedGraphError
from neurohal.ir import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    Dense,
    Edge,
    Encoder,
    Flatten,
    Graph,
    Input,
    MaxPool2d,
    Node,
    Output,
    Readout,
    Reshape,
    Scale,
    SumPool2d,
)

NEURONS = (IF, LIF)
POOLS = (AvgPool2d, SumPool2d)
WEIGHTED = (Dense, Conv2d)
LINEAR = (*WEIGHTED, *POOLS, Flatten, Reshape, Add, Scale)


@attrs.frozen
class Projection:
    """Synapses from layer ``src`` into layer ``dst`` through the linear ``nodes`` (in order)."""

    src: str
    dst: str
    nodes: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.src}->{self.dst}:" + ",".join(self.nodes)


@attrs.frozen
class Layer:
    """A neuron layer (IF/LIF) or a membrane readout, with its projections in and its delay.

    ``host``: some input comes from an analog Encoder, so the bias is recomputed per sample.
    ``delay``: steps before the first synaptic input can arrive (each projection adds one, as
    Lava's Dense delivers its output one timestep later).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    projections: tuple[Projection, ...]
    host: bool
    delay: int

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@attrs.frozen
class Plan:
    """The lowered network: layers in dependency order and which readout each Output shows."""

    layers: tuple[Layer, ...]
    outputs: dict[str, str]

    def layer(self, name: str) -> Layer:
        return next(la for la in self.layers if la.name == name)

    @property
    def projections(self) -> tuple[Projection, ...]:
        return tuple(p for la in self.layers for p in la.projections)


def lower_max_pools(graph: Graph) -> Graph:
    """Each MaxPool2d fed directly by spiking neurons as a SumPool2d (same name and window)
    into a layer of OR neurons ``<name>.or``: IF with threshold 0.5, reset to zero, v_init 0.

    On 0/1 spikes the window max is the OR of the window, and such a neuron computes exactly
    that each step: its v is 0 before every step (reset, or never charged), rises to the window
    sum, and crosses 0.5 when one input spiked. On the chip the OR layer adds one step of
    delay, which the plan's delays account for like any other layer. Other MaxPool2d nodes are
    left for `node_problems` to refuse.
    """
    pools = [
        n
        for n in graph.nodes
        if isinstance(n, MaxPool2d)
        and all(isinstance(graph.node(s), NEURONS) for s in graph.sources(n.name))
    ]
    if not pools:
        return graph
    nodes = list(graph.nodes)
    edges = list(graph.edges)
    for pool in pools:
        summed = SumPool2d(
            name=pool.name, kernel=pool.kernel, stride=pool.stride, padding=pool.padding
        )
        gate = IF(name=f"{pool.name}.or", v_threshold=0.5, reset="zero", v_init=0.0)
        nodes = [summed if n.name == pool.name else n for n in nodes] + [gate]
        edges = [attrs.evolve(e, src=gate.name) if e.src == pool.name else e for e in edges]
        edges.append(Edge(pool.name, gate.name, "input"))
    return Graph(nodes, edges, metadata=graph.metadata)


def node_problems(graph: Graph) -> dict[str, str]:
    """Per node, why Loihi cannot run it (nodes not listed are supported)."""
    problems: dict[str, str] = {}
    if not graph.is_spiking:
        for n in graph.nodes:
            if not isinstance(n, (Input, Output)):
                problems[n.name] = (
                    "loihi runs spiking graphs only; convert the ANN first (neurohal.convert)"
                )
        return problems or {graph.outputs[0].name: "graph has no spiking part"}
    for n in graph.nodes:
        reason = _node_reason(graph, n)
        if reason:
            problems[n.name] = reason
    for layer_node in graph.nodes:
        if isinstance(layer_node, (*NEURONS, Readout)) and layer_node.name not in problems:
            try:
                for src, nodes in routes(graph, layer_node.name):
                    if not isinstance(graph.node(src), Encoder):
                        problems.update(_route_problems(graph, nodes))
            except UnsupportedGraphError:
                continue  # the offending node already carries its reason
    return problems


def _node_reason(graph: Graph, n: Node) -> str:
    if isinstance(n, (Input, Flatten, Reshape, Add, Dense, Conv2d, Scale, *NEURONS)):
        return ""
    if isinstance(n, POOLS):
        return ""
    if isinstance(n, MaxPool2d):
        return (
            "MaxPool2d is lowered only on spikes (fed directly by IF/LIF neurons), as a layer "
            "of OR neurons; max pooling of currents has no Loihi equivalent"
        )
    if isinstance(n, Encoder):
        return (
            ""
            if n.kind == "analog"
            else ("poisson encoding is not lowered; use Encoder(kind='analog') (input current)")
        )
    if isinstance(n, Readout):
        return (
            ""
            if n.kind == "membrane"
            else ("spike_count readout is not lowered; use Readout(kind='membrane')")
        )
    if isinstance(n, Output):
        srcs = graph.sources(n.name)
        if len(srcs) == 1 and isinstance(graph.node(srcs[0]), Readout):
            return ""
        return "an Output must be fed by one membrane Readout on loihi"
    return (
        f"{n.type_name} has no Loihi lowering (supported: IF, LIF, Dense, Conv2d, AvgPool2d, "
        "SumPool2d, Flatten, Reshape, Add, Scale, Encoder(analog), Readout(membrane))"
    )


def _route_problems(graph: Graph, nodes: tuple[str, ...]) -> dict[str, str]:
    """Rules for routes between two layers: one weighted node, pooling only before it."""
    problems: dict[str, str] = {}
    weighted = [n for n in nodes if isinstance(graph.node(n), WEIGHTED)]
    if len(weighted) > 1:
        problems[weighted[1]] = (
            f"follows weighted node {weighted[0]!r} with no neuron between them; Loihi "
            "needs a neuron layer between two weighted layers"
        )
    seen_weight = False
    scaled = False
    for name in nodes:
        node = graph.node(name)
        if isinstance(node, Scale) and node.scale.ndim and not seen_weight:
            scaled = True
        if isinstance(node, WEIGHTED):
            if scaled and isinstance(node, Conv2d) and node.groups != 1:
                problems[name] = (
                    "a per-channel Scale before a grouped convolution is not folded; "
                    "fold it into the weights"
                )
            seen_weight = True
        elif isinstance(node, POOLS):
            if seen_weight:
                problems[name] = (
                    "pooling after a weighted layer (before the next neuron) is not lowered; "
                    "pool the spikes instead"
                )
            elif node.stride != node.kernel:
                problems[name] = (
                    f"overlapping pooling (kernel {node.kernel}, stride {node.stride}) cannot be "
                    "folded into 8-bit synapses; use stride == kernel"
                )
    return problems


def routes(graph: Graph, dst: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every (source layer or encoder, linear nodes in order) route into ``dst``."""
    found: list[tuple[str, tuple[str, ...]]] = []

    def walk(name: str, after: tuple[str, ...]) -> None:
        node = graph.node(name)
        if isinstance(node, (*NEURONS, Encoder)):
            found.append((name, after))
        elif isinstance(node, LINEAR):
            for port in node.ports():
                for src in graph.sources(name, port):
                    walk(src, (name, *after))
        else:
            raise UnsupportedGraphError(f"node {name!r} ({node.type_name}) cannot feed a layer")

    for src in graph.sources(dst):
        walk(src, ())
    return found


def lower(graph: Graph) -> Plan:
    """The layer plan of a supported graph; raises UnsupportedGraphError listing every problem."""
    graph.validate()
    problems = node_problems(graph)
    if problems:
        lines = "; ".join(f"{k}: {v}" for k, v in problems.items())
        raise UnsupportedGraphError(f"device 'loihi' cannot run node(s): {lines}")
    layers: dict[str, Layer] = {}
    for node in graph.topological_order():
        if not isinstance(node, (*NEURONS, Readout)):
            continue
        projections, host, delays = [], False, []
        for src, nodes in routes(graph, node.name):
            if isinstance(graph.node(src), Encoder):
                host = True
                delays.append(0)
            else:
                projections.append(Projection(src, node.name, nodes))
                delays.append(layers[src].delay + 1)
        kind = "readout" if isinstance(node, Readout) else "neuron"
        layers[node.name] = Layer(
            node.name, kind, graph.shape(node.name), tuple(projections), host, min(delays)
        )
    outputs = {o.name: graph.sources(o.name)[0] for o in graph.outputs}
    return Plan(tuple(layers.values()), outputs)
