"""The IR graph: nodes, edges into named ports, metadata, topological order, shapes, checks."""

from __future__ import annotations

import functools
import itertools
import json
import types
from collections.abc import Iterable, Mapping

import attrs

from neurohal.errors import IRValidationError
from neurohal.ir.nodes import NEURON_TYPES, Encoder, Input, Node, Output, Readout, Shape


@attrs.frozen
class Edge:
    """Data flows from node ``src``'s output into port ``port`` of node ``dst``."""

    src: str
    dst: str
    port: str = "input"


def _freeze_metadata(value: Mapping | None) -> Mapping:
    """Metadata must be JSON-serialisable; it is stored as a read-only deep copy."""
    data = dict(value or {})
    try:
        text = json.dumps(data, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IRValidationError(f"graph metadata must be JSON-serialisable: {exc}") from exc
    return types.MappingProxyType(json.loads(text))


@attrs.frozen(eq=False)
class Graph:
    """An immutable IR graph. Build it with nodes and edges; ``validate()`` checks it."""

    nodes: tuple[Node, ...] = attrs.field(converter=tuple)
    edges: tuple[Edge, ...] = attrs.field(converter=tuple)
    metadata: Mapping = attrs.field(factory=dict, converter=_freeze_metadata)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.nodes == other.nodes
            and set(self.edges) == set(other.edges)
            and dict(self.metadata) == dict(other.metadata)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- lookup ---------------------------------------------------------------------------

    @functools.cached_property
    def _by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise IRValidationError(f"graph has no node named {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def inputs(self) -> tuple[Input, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Input))

    @property
    def outputs(self) -> tuple[Output, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Output))

    def sources(self, name: str, port: str = "input") -> tuple[str, ...]:
        """Names of the nodes feeding ``port`` of node ``name`` (their values are summed)."""
        return tuple(e.src for e in self.edges if e.dst == name and e.port == port)

    def consumers(self, name: str) -> tuple[str, ...]:
        return tuple(e.dst for e in self.edges if e.src == name)

    # -- structure ------------------------------------------------------------------------

    @functools.cached_property
    def _order(self) -> tuple[Node, ...]:
        indegree = {n.name: 0 for n in self.nodes}
        for e in self.edges:
            if e.dst in indegree:
                indegree[e.dst] += 1
        ready = [n.name for n in self.nodes if indegree[n.name] == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for e in self.edges:
                if e.src == name and e.dst in indegree:
                    indegree[e.dst] -= 1
                    if indegree[e.dst] == 0:
                        ready.append(e.dst)
        if len(order) != len(self.nodes):
            stuck = sorted(set(indegree) - set(order))
            raise IRValidationError(f"graph has a cycle through node(s) {stuck}")
        return tuple(self._by_name[n] for n in order)

    def topological_order(self) -> tuple[Node, ...]:
        """Nodes so that every node comes after all nodes feeding it; raises on a cycle."""
        return self._order

    @functools.cached_property
    def _shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for node in self.topological_order():
            arriving: dict[str, Shape] = {}
            for port in node.ports():
                srcs = self.sources(node.name, port)
                if not srcs:
                    raise node.fail(f"port {port!r} has no incoming edge")
                port_shapes = {shapes[s] for s in srcs}
                if len(port_shapes) > 1:
                    raise node.fail(
                        f"edges summed into port {port!r} have different shapes "
                        f"{dict((s, shapes[s]) for s in srcs)}"
                    )
                arriving[port] = port_shapes.pop()
            shapes[node.name] = tuple(node.infer_shape(arriving))
        return shapes

    def shapes(self) -> dict[str, Shape]:
        """Per-sample output shape of every node (shape inference); raises on a mismatch."""
        return dict(self._shapes)

    def shape(self, name: str) -> Shape:
        return self._shapes[name]

    @property
    def kind(self) -> str:
        """``ann`` (no spiking nodes), ``snn`` (spiking, no analog activation) or ``mixed``."""
        domains = {n.domain for n in self.nodes}
        spiking = bool(domains & {"spiking", "boundary"})
        analog = "analog" in domains
        if not spiking:
            return "ann"
        return "mixed" if analog else "snn"

    @property
    def is_spiking(self) -> bool:
        return self.kind != "ann"

    def parameter_count(self) -> int:
        return sum(n.parameter_count() for n in self.nodes)

    # -- checks ---------------------------------------------------------------------------

    def validate(self) -> Graph:
        """Raise IRValidationError naming the node and reason for any broken rule."""
        seen: set[str] = set()
        for n in self.nodes:
            if not isinstance(n, Node):
                raise IRValidationError(f"graph holds a non-node object {n!r}")
            if n.name in seen:
                raise IRValidationError(f"two nodes are named {n.name!r}; names must be unique")
            seen.add(n.name)
        for e in self.edges:
            for end in (e.src, e.dst):
                if end not in seen:
                    raise IRValidationError(f"edge {e.src!r} -> {e.dst!r}: no node named {end!r}")
            dst = self._by_name[e.dst]
            if e.port not in dst.ports():
                raise dst.fail(f"has no port {e.port!r} (ports: {list(dst.ports())})")
        if not self.inputs:
            raise IRValidationError("graph has no Input node")
        if not self.outputs:
            raise IRValidationError("graph has no Output node")
        for n in self.nodes:
            if not isinstance(n, Output) and not self.consumers(n.name):
                raise n.fail("its output goes nowhere (dangling node); connect or remove it")
        self.shapes()
        if self.is_spiking:
            self._validate_spiking()
        return self

    def _validate_spiking(self) -> None:
        for n in self.nodes:
            if isinstance(n, Input) and any(
                not isinstance(self._by_name[c], Encoder) for c in self.consumers(n.name)
            ):
                raise n.fail("in a spiking graph every Input must feed an Encoder")
            if isinstance(n, Readout) and n.kind == "spike_count":
                for src in self.sources(n.name):
                    if not isinstance(self._by_name[src], NEURON_TYPES):
                        raise n.fail(f"spike_count readout fed by non-spiking node {src!r}")

    # -- building -------------------------------------------------------------------------

    def replace_nodes(self, replacements: Iterable[Node]) -> Graph:
        """A new graph with nodes of the same names swapped for the given ones."""
        new = {n.name: n for n in replacements}
        return Graph(tuple(new.get(n.name, n) for n in self.nodes), self.edges, dict(self.metadata))

    def with_metadata(self, **updates: object) -> Graph:
        return Graph(self.nodes, self.edges, {**self.metadata, **updates})


def chain(*nodes: Node, metadata: Mapping | None = None) -> Graph:
    """A sequential graph: each node feeds the next one's ``input`` port."""
    edges = [Edge(a.name, b.name) for a, b in itertools.pairwise(nodes)]
    return Graph(nodes, edges, metadata or {})
