"""Which analog graphs the converter accepts, checked up front and reported all at once."""

from __future__ import annotations

import attrs
import numpy as np

from neurohal.errors import ConversionError
from neurohal.ir import Add, Clip, Edge, Graph, Node, Output, ReLU, Softmax

SUPPORTED_OPS = (
    "Input", "Output", "Dense", "Conv2d", "AvgPool2d", "SumPool2d", "MaxPool2d", "Add",
    "Concat", "Flatten", "Reshape", "Scale", "ReLU", "Clip", "Softmax",
)  # fmt: skip
ACTIVATIONS = (ReLU, Clip)


def unsupported_nodes(graph: Graph) -> list[tuple[str, str, str]]:
    """Every node the converter cannot handle, as (name, op, reason)."""
    problems = []
    for node in graph.nodes:
        reason = _problem(graph, node)
        if reason:
            problems.append((node.name, node.type_name, reason))
    return problems


def _problem(graph: Graph, node: Node) -> str:
    if node.type_name not in SUPPORTED_OPS:
        return f"operator not supported (supported: {', '.join(SUPPORTED_OPS)})"
    if isinstance(node, Clip) and node.min != 0.0:
        return f"Clip(min={node.min}) has no spiking equivalent; only Clip(0, max) converts"
    if isinstance(node, Softmax) and not all(
        isinstance(graph.node(c), Output) for c in graph.consumers(node.name)
    ):
        return "Softmax converts only as the last node before an Output (where it is dropped)"
    for field, value in _arrays(node):
        if not np.all(np.isfinite(value)):
            return f"{field} holds NaN or infinite values; fix the model's parameters"
    return ""


def _arrays(node: Node) -> list[tuple[str, np.ndarray]]:
    values = ((f.name, getattr(node, f.name)) for f in attrs.fields(type(node)))
    return [(name, value) for name, value in values if isinstance(value, np.ndarray)]


def with_explicit_adds(graph: Graph) -> Graph:
    """The same function with an Add node wherever several edges meet at a port (other than
    an Add's), so that every rescaling of summed branches happens at an Add."""
    nodes, edges = list(graph.nodes), []
    for node in graph.nodes:
        for port in node.ports():
            sources = graph.sources(node.name, port)
            if len(sources) > 1 and not isinstance(node, Add):
                join = Add(name=f"{node.name}.{port}.sum")
                nodes.append(join)
                edges += [Edge(s, join.name) for s in sources]
                edges.append(Edge(join.name, node.name, port))
            else:
                edges += [Edge(s, node.name, port) for s in sources]
    return Graph(nodes, edges, dict(graph.metadata))


def check_convertible(graph: Graph) -> None:
    """Raise ConversionError listing every unsupported node, or if ``graph`` is not an ANN
    with one Input; does nothing for a convertible graph."""
    graph.validate()
    if graph.kind != "ann":
        raise ConversionError(
            f"the graph is already {graph.kind} (it has spiking or boundary nodes); "
            "convert takes an analog network such as neurohal.load_onnx returns"
        )
    if len(graph.inputs) != 1:
        names = [n.name for n in graph.inputs]
        raise ConversionError(f"convert takes graphs with one Input; this one has {names}")
    problems = unsupported_nodes(graph)
    if problems:
        lines = "; ".join(f"node {name!r} ({op}): {reason}" for name, op, reason in problems)
        raise ConversionError(f"{len(problems)} node(s) cannot be converted: {lines}")


def readout_sources(graph: Graph) -> dict[str, str]:
    """For each Output, the node whose value the SNN reads out (a final Softmax is skipped)."""
    result = {}
    for out in graph.outputs:
        (src,) = set(graph.sources(out.name))
        node = graph.node(src)
        result[out.name] = graph.sources(src)[0] if isinstance(node, Softmax) else src
    return result


def tracked_nodes(graph: Graph) -> list[str]:
    """Nodes whose outputs calibration records: every activation and every read-out value."""
    names = [n.name for n in graph.topological_order() if isinstance(n, ACTIVATIONS)]
    return names + [s for s in readout_sources(graph).values() if s not in names]
