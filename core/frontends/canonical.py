"""Canonical passes: turn a frontend graph into a canonical analog (ANN) IR graph.

A frontend translates a model node by node. Some source operators have no IR node of their own;
the frontend emits them as *frontend nodes* (``Constant``, ``BatchNorm``, ``Dropout``,
``Identity``, ``GlobalAvgPool``), which the passes below remove. Frontend nodes are kept out of
the IR vocabulary (``neurohal.ir.NODE_TYPES``): they can never reach a ``.nhir`` file or a
device.

Each pass is a pure function ``Graph -> Graph`` that keeps node names (a folded node's name is
dropped, the node it folds into keeps its own) and never changes what the graph computes:

- ``remove_identities``: Dropout (inference) and Identity are bypassed.
- ``fold_batchnorm``: BatchNorm after a Conv2d / Dense that feeds only it is folded into the
  weights and bias.
- ``fold_scales``: a Scale (ONNX Mul / Div by a constant) after a Conv2d / Dense that feeds
  only it is folded into the weights and bias.
- ``fold_constants``: a Constant summed into an Add whose one other input is a Conv2d / Dense
  feeding only that Add becomes its bias (MatMul + Add -> Dense with bias).
- ``lower_affine``: what is left of BatchNorm and constant Adds becomes an exact per-channel
  affine map: a depthwise 1x1 Conv2d (for (C, H, W) values) or a diagonal Dense (for (F,)).
  The IR's Scale has no bias, so a weight-carrying node is needed.
- ``lower_global_pool``: GlobalAvgPool -> AvgPool2d with the whole plane as kernel.
- ``canonical_reshapes``: a Reshape to one dimension is a Flatten; chains of Reshape/Flatten
  merge into the last one; reshapes that change nothing disappear.

``canonicalize`` runs them all and validates the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import attrs
import numpy as np

from neurohal.errors import ConversionError, IRValidationError
from neurohal.ir import (
    Add,
    AvgPool2d,
    Conv2d,
    Dense,
    Edge,
    Flatten,
    Graph,
    Node,
    Reshape,
    Scale,
)
from neurohal.ir.nodes import Shape, array_field

# ---------------------------------------------------------------- frontend-only nodes


@attrs.frozen(kw_only=True)
class _FrontendNode(Node):
    """Base of the nodes only frontends and passes see."""

    domain: ClassVar[str] = "frontend"

    def __init_subclass__(cls, **kwargs: object) -> None:
        # Skip Node's registration: frontend nodes are not part of the IR vocabulary.
        super(Node, cls).__init_subclass__(**kwargs)


@attrs.frozen(kw_only=True)
class Constant(_FrontendNode):
    """A per-sample constant value (no batch dimension), summed into an Add."""

    value: np.ndarray = array_field()
    input_ports: ClassVar[tuple[str, ...]] = ()

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        return self.value.shape


@attrs.frozen(kw_only=True)
class BatchNorm(_FrontendNode):
    """Inference batch normalization over axis 0 (channels or features):
    y = gamma * (x - mean) / sqrt(var + epsilon) + beta."""

    gamma: np.ndarray = array_field()
    beta: np.ndarray = array_field()
    mean: np.ndarray = array_field()
    var: np.ndarray = array_field()
    epsilon: float = attrs.field(converter=float)

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shape = inputs["input"]
        for field in ("gamma", "beta", "mean", "var"):
            if getattr(self, field).shape != (shape[0],):
                raise self.fail(f"{field} shape {getattr(self, field).shape} != ({shape[0]},)")
        return shape

    def factor_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-channel affine map y = factor * x + shift, in float64."""
        factor = self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.epsilon)
        return factor, self.beta.astype(np.float64) - self.mean.astype(np.float64) * factor


@attrs.frozen(kw_only=True)
class Dropout(_FrontendNode):
    """Dropout at inference: the identity."""


@attrs.frozen(kw_only=True)
class Identity(_FrontendNode):
    """The identity."""


@attrs.frozen(kw_only=True)
class GlobalAvgPool(_FrontendNode):
    """Mean over each channel's whole plane: (C, H, W) -> (C, 1, 1)."""

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shape = inputs["input"]
        if len(shape) != 3:
            raise self.fail(f"input must be (C, H, W), got {shape}")
        return (shape[0], 1, 1)


FRONTEND_NODE_TYPES = (Constant, BatchNorm, Dropout, Identity, GlobalAvgPool)

# ---------------------------------------------------------------- graph editing helpers


def _rebuild(graph: Graph, nodes: list[Node], edges: list[Edge]) -> Graph:
    return Graph(nodes, edges, dict(graph.metadata))


def _bypass(graph: Graph, name: str) -> Graph:
    """Remove node ``name``; each of its sources feeds each of its consumers directly (the
    fan-in sum makes this exact for nodes computing the identity of their summed input)."""
    srcs = graph.sources(name)
    edges = [e for e in graph.edges if e.dst != name and e.src != name]
    for out in (e for e in graph.edges if e.src == name):
        edges.extend(Edge(s, out.dst, out.port) for s in srcs)
    return _rebuild(graph, [n for n in graph.nodes if n.name != name], edges)


def _only_consumer(graph: Graph, producer: str, consumer: str) -> bool:
    """``producer`` feeds ``consumer`` through one edge and nothing else."""
    return graph.consumers(producer) == (consumer,)


def _foldable_producer(graph: Graph, node: Node) -> Node | None:
    """The Conv2d / Dense feeding ``node`` alone, when nothing else reads it."""
    srcs = graph.sources(node.name)
    if len(srcs) != 1:
        return None
    producer = graph.node(srcs[0])
    if isinstance(producer, (Conv2d, Dense)) and _only_consumer(graph, producer.name, node.name):
        return producer
    return None


def _with_affine(layer: Conv2d | Dense, factor: np.ndarray, shift: np.ndarray) -> Node:
    """``layer`` followed by y = factor * y + shift (per output channel), as one layer."""
    weight = layer.weight.astype(np.float64)
    weight = weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
    bias = np.zeros(weight.shape[0]) if layer.bias is None else layer.bias.astype(np.float64)
    return attrs.evolve(
        layer,
        weight=weight.astype(layer.weight.dtype),
        bias=(bias * factor + shift).astype(layer.weight.dtype),
    )


def _per_channel(node: Node, value: np.ndarray) -> np.ndarray:
    """A (C, ...) constant that is the same along every axis but the first, as a (C,) vector."""
    flat = value.reshape(value.shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise ConversionError(
            f"node {node.name!r}: adds a constant that varies within a channel "
            f"(shape {value.shape}); only per-channel constants (biases) are supported"
        )
    return flat[:, 0].astype(np.float64)


def _constant_sum(graph: Graph, add: Node) -> tuple[np.ndarray | None, list[str]]:
    """The summed Constant inputs of ``add`` (or None) and the names of its other inputs."""
    consts = [graph.node(s) for s in graph.sources(add.name)]
    values = [n.value for n in consts if isinstance(n, Constant)]
    others = [n.name for n in consts if not isinstance(n, Constant)]
    if not values:
        return None, others
    total = sum(v.astype(np.float64) for v in values)
    return total.astype(np.result_type(*values)), others


def _drop_constants_of(graph: Graph, add: Node) -> Graph:
    """Remove the Constant inputs of ``add`` (and those Constants, if they feed nothing else)."""
    consts = {s for s in graph.sources(add.name) if isinstance(graph.node(s), Constant)}
    edges = [e for e in graph.edges if not (e.dst == add.name and e.src in consts)]
    used = {e.src for e in edges}
    nodes = [n for n in graph.nodes if n.name not in consts or n.name in used]
    return _rebuild(graph, nodes, edges)


def _fixpoint(step: Callable[[Graph], Graph | None], graph: Graph) -> Graph:
    """Apply ``step`` (one local rewrite, or None when nothing applies) until nothing applies."""
    while (changed := step(graph)) is not None:
        graph = changed
    return graph


# ---------------------------------------------------------------- passes


def remove_identities(graph: Graph) -> Graph:
    """Bypass every Dropout and Identity node."""

    def step(g: Graph) -> Graph | None:
        for n in g.nodes:
            if isinstance(n, (Dropout, Identity)):
                return _bypass(g, n.name)
        return None

    return _fixpoint(step, graph)


def fold_batchnorm(graph: Graph) -> Graph:
    """Fold each BatchNorm into the Conv2d / Dense that feeds only it."""

    def step(g: Graph) -> Graph | None:
        for n in g.nodes:
            if isinstance(n, BatchNorm) and (layer := _foldable_producer(g, n)) is not None:
                folded = _with_affine(layer, *n.factor_and_shift())
                return _bypass(g.replace_nodes([folded]), n.name)
        return None

    return _fixpoint(step, graph)


def fold_scales(graph: Graph) -> Graph:
    """Fold each Scale into the Conv2d / Dense that feeds only it."""

    def step(g: Graph) -> Graph | None:
        for n in g.nodes:
            if isinstance(n, Scale) and (layer := _foldable_producer(g, n)) is not None:
                factor = n.scale.astype(np.float64)
                folded = _with_affine(layer, factor, np.zeros_like(factor))
                return _bypass(g.replace_nodes([folded]), n.name)
        return None

    return _fixpoint(step, graph)


def fold_constants(graph: Graph) -> Graph:
    """Fold a Constant summed into an Add into the bias of the Conv2d / Dense that is the
    Add's only other input (and feeds nothing else); the Add then disappears."""

    def step(g: Graph) -> Graph | None:
        for n in g.nodes:
            if not isinstance(n, Add):
                continue
            const, others = _constant_sum(g, n)
            if const is None or len(others) != 1:
                continue
            layer = g.node(others[0])
            if not isinstance(layer, (Conv2d, Dense)) or not _only_consumer(g, layer.name, n.name):
                continue
            shift = _per_channel(n, const)
            folded = _with_affine(layer, np.ones_like(shift), shift)
            return _bypass(_drop_constants_of(g.replace_nodes([folded]), n), n.name)
        return None

    return _fixpoint(step, graph)


def _affine_node(
    name: str, shape: Shape, factor: np.ndarray, shift: np.ndarray, dtype: np.dtype
) -> Node:
    """An exact per-channel y = factor * x + shift for values of ``shape``, stored as ``dtype``
    (the precision of the parameters it replaces)."""
    if len(shape) == 3:
        return Conv2d(
            name=name,
            weight=factor.reshape(-1, 1, 1, 1).astype(dtype),
            bias=shift.astype(dtype),
            groups=shape[0],
        )
    if len(shape) == 1:
        return Dense(name=name, weight=np.diag(factor).astype(dtype), bias=shift.astype(dtype))
    raise ConversionError(
        f"node {name!r}: a per-channel affine map on values of shape {shape} has no IR form; "
        "only (C, H, W) and (F,) values are supported"
    )


def _unique(graph: Graph, base: str) -> str:
    name, i = base, 1
    while name in graph:
        i += 1
        name = f"{base}_{i}"
    return name


def lower_affine(graph: Graph) -> Graph:
    """Turn each remaining BatchNorm, and each Add with Constant inputs, into an exact
    per-channel affine layer (depthwise 1x1 Conv2d or diagonal Dense)."""

    def step(g: Graph) -> Graph | None:
        shapes = g.shapes()
        for n in g.nodes:
            if isinstance(n, BatchNorm):
                return g.replace_nodes(
                    [_affine_node(n.name, shapes[n.name], *n.factor_and_shift(), n.gamma.dtype)]
                )
            if not isinstance(n, Add):
                continue
            const, others = _constant_sum(g, n)
            if const is None:
                continue
            shift = _per_channel(n, const)
            bias = _affine_node(
                _unique(g, f"{n.name}_bias"),
                shapes[n.name],
                np.ones_like(shift),
                shift,
                const.dtype,
            )
            g = _drop_constants_of(g, n)
            edges = [Edge(bias.name, e.dst, e.port) if e.src == n.name else e for e in g.edges]
            edges.append(Edge(n.name, bias.name))
            g = _rebuild(g, [*g.nodes, bias], edges)
            return _bypass(g, n.name) if len(others) == 1 else g
        return None

    return _fixpoint(step, graph)


def lower_global_pool(graph: Graph) -> Graph:
    """GlobalAvgPool -> AvgPool2d whose kernel and stride are the input plane."""
    shapes = graph.shapes()
    pools = []
    for n in graph.nodes:
        if isinstance(n, GlobalAvgPool):
            _, h, w = shapes[graph.sources(n.name)[0]]
            pools.append(AvgPool2d(name=n.name, kernel=(h, w), stride=(h, w)))
    return graph.replace_nodes(pools)


def canonical_reshapes(graph: Graph) -> Graph:
    """Reshape to 1-D -> Flatten; a Reshape/Flatten fed only by another one, which feeds only
    it, absorbs it; a Reshape/Flatten that keeps its input's shape is removed."""

    def step(g: Graph) -> Graph | None:
        shapes = g.shapes()
        for n in g.nodes:
            if not isinstance(n, (Reshape, Flatten)):
                continue
            srcs = g.sources(n.name)
            if shapes[n.name] == shapes[srcs[0]]:
                return _bypass(g, n.name)
            if isinstance(n, Reshape) and len(n.shape) == 1:
                return g.replace_nodes([Flatten(name=n.name)])
            prev = g.node(srcs[0])
            if (
                len(srcs) == 1
                and isinstance(prev, (Reshape, Flatten))
                and _only_consumer(g, prev.name, n.name)
            ):
                return _bypass(g, prev.name)
        return None

    return _fixpoint(step, graph)


PASSES: tuple[Callable[[Graph], Graph], ...] = (
    remove_identities,
    fold_batchnorm,
    fold_scales,
    fold_constants,
    fold_batchnorm,
    fold_scales,
    lower_affine,
    lower_global_pool,
    canonical_reshapes,
)
"""The canonical passes in order. BatchNorm and Scale folding run again after constant
folding, so a BatchNorm or Scale after a Dense + constant Add (MatMul + Add +
BatchNormalization, or + Mul) still folds."""


def canonicalize(graph: Graph) -> Graph:
    """Run every canonical pass and validate: the result holds IR nodes only."""
    for p in PASSES:
        graph = p(graph)
    left = [n for n in graph.nodes if isinstance(n, FRONTEND_NODE_TYPES)]
    if left:
        raise ConversionError(
            f"node {left[0].name!r} ({left[0].type_name}) has no IR form after the canonical passes"
        )
    try:
        return graph.validate()
    except IRValidationError as exc:
        raise ConversionError(f"the converted graph is invalid: {exc}") from exc
