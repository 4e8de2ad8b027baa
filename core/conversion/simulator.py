"""A fast numpy evaluator with the reference interpreter's semantics, for calibration and
for benchmarks over thousands of images.

`simulate` follows `neurohal.reference.run` step for step (same update order, float64, same
Encoder/IF/Readout rules, same Poisson draws) but skips the counters, computes a node whose
inputs never change (an analog Encoder and what depends only on it) once instead of every
step, and evaluates ungrouped convolutions and non-overlapping pools with BLAS matrix
products instead of einsum. Summation order differs, so values agree with the reference to
float64 rounding; tests check that spike trains are identical on small graphs. Every other
node is evaluated by `neurohal.reference.apply` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from neurohal import reference
from neurohal.errors import InputError
from neurohal.ir import (
    IF,
    AvgPool2d,
    Conv2d,
    Dense,
    Encoder,
    Graph,
    Input,
    Node,
    Readout,
    SumPool2d,
)

StepHook = Callable[[int, Mapping[str, np.ndarray]], None]


def _conv2d(x: np.ndarray, node: Conv2d) -> np.ndarray:
    """Ungrouped cross-correlation as one matrix product over im2col patches."""
    top, left, bottom, right = node.padding
    out_ch, in_ch, kh, kw = node.weight.shape
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    dh, dw = node.dilation
    win = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, :: node.stride[0], :: node.stride[1], ::dh, ::dw]
    b, _, oh, ow = win.shape[:4]
    patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, in_ch * kh * kw)
    y = node.weight.astype(np.float64).reshape(out_ch, -1) @ patches.T  # (O, B*OH*OW)
    if node.bias is not None:
        y += node.bias[:, None]
    return y.reshape(out_ch, b, oh, ow).transpose(1, 0, 2, 3)


def _tiled_pool(x: np.ndarray, node: AvgPool2d | SumPool2d) -> np.ndarray:
    """Window sums of a pool whose windows tile the input exactly."""
    kh, kw = node.kernel
    total = sum(x[:, :, i::kh, j::kw] for i in range(kh) for j in range(kw))
    return total / (kh * kw) if isinstance(node, AvgPool2d) else total


def _tiles(node: AvgPool2d | SumPool2d, shape: tuple[int, ...]) -> bool:
    return (
        node.kernel == node.stride
        and not any(node.padding)
        and shape[-2] % node.kernel[0] == 0
        and shape[-1] % node.kernel[1] == 0
    )


def apply(node: Node, ports: Mapping[str, np.ndarray]) -> np.ndarray:
    """The stateless function of ``node``, as `neurohal.reference.apply`, faster where it can."""
    x = ports.get("input")
    if isinstance(node, Conv2d) and node.groups == 1:
        return _conv2d(x, node)
    if isinstance(node, (AvgPool2d, SumPool2d)) and _tiles(node, x.shape):
        return _tiled_pool(x, node)
    if isinstance(node, Dense):
        y = x @ node.weight.astype(np.float64).T
        return y if node.bias is None else y + node.bias
    return reference.apply(node, ports)


def _ports(graph: Graph, node: Node, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {p: sum(values[s] for s in graph.sources(node.name, p)) for p in node.ports()}


def evaluate(graph: Graph, x: np.ndarray, keep: Collection[str]) -> dict[str, np.ndarray]:
    """Run an analog graph once on batch ``x``; return the values of the nodes in ``keep``.

    Values are released as soon as their last consumer has run, so memory stays at a few
    layers' worth of one batch.
    """
    inputs = reference.normalize_inputs(graph, x)
    remaining = {n.name: len(set(graph.consumers(n.name))) for n in graph.nodes}
    values: dict[str, np.ndarray] = {}
    kept: dict[str, np.ndarray] = {}
    for node in graph.topological_order():
        if isinstance(node, Input):
            values[node.name] = inputs[node.name]
        else:
            values[node.name] = apply(node, _ports(graph, node, values))
            for src in {e.src for e in graph.edges if e.dst == node.name}:
                remaining[src] -= 1
                if remaining[src] == 0 and src not in keep:
                    del values[src]
        if node.name in keep:
            kept[node.name] = values[node.name]
    return kept


def _static_nodes(graph: Graph) -> set[str]:
    """Nodes whose value is the same at every step: Inputs, analog Encoders and stateless
    nodes fed only by static nodes."""
    static: set[str] = set()
    for node in graph.topological_order():
        sources = {e.src for e in graph.edges if e.dst == node.name}
        if (
            isinstance(node, Input)
            or (isinstance(node, Encoder) and node.kind == "analog")
            or (node.domain in ("synapse", "structure", "analog") and sources <= static and sources)
        ):
            static.add(node.name)
    return static


def simulate(
    graph: Graph, x: np.ndarray, timesteps: int, on_step: StepHook | None = None
) -> dict[str, np.ndarray]:
    """Run a spiking (or mixed) graph for ``timesteps`` steps with the reference semantics.

    Returns the Output nodes' values after the last step. ``on_step(t, values)`` is called
    after each step with every node's value at that step (do not keep or modify them).
    """
    graph.validate()
    steps = reference.check_timesteps(graph, timesteps)
    if steps is None:
        raise InputError("simulate runs spiking graphs; use evaluate for analog graphs")
    inputs = reference.normalize_inputs(graph, x)
    order = graph.topological_order()
    static = _static_nodes(graph)
    ports = {n.name: {p: graph.sources(n.name, p) for p in n.ports()} for n in order}
    rngs = {
        n.name: np.random.default_rng(n.seed)
        for n in order
        if isinstance(n, Encoder) and n.kind == "poisson"
    }
    state: dict[str, dict] = {n.name: {} for n in order}
    cached: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for t in range(steps):
        values = {}
        for node in order:
            if node.name in cached:
                values[node.name] = cached[node.name]
                continue
            if isinstance(node, Input):
                value = inputs[node.name]
            else:
                arriving = {p: sum(values[s] for s in srcs) for p, srcs in ports[node.name].items()}
                value = _step(node, arriving, state[node.name], rngs)
            values[node.name] = value
            if node.name in static:
                cached[node.name] = value
        if on_step is not None:
            on_step(t, values)
    return {n.name: values[n.name] for n in graph.outputs}


def _step(
    node: Node, ports: dict[str, np.ndarray], state: dict, rngs: dict[str, np.random.Generator]
) -> np.ndarray:
    x = ports.get("input")
    if isinstance(node, Encoder):
        if node.kind == "analog":
            return x
        u = rngs[node.name].random(x.shape)
        return (u < np.clip(x, 0.0, 1.0)).astype(np.float64)
    if isinstance(node, Readout):
        state["sum"] = state.get("sum", 0.0) + x
        state["n"] = state.get("n", 0) + 1
        return state["sum"] / state["n"]
    if isinstance(node, IF):
        if "v" not in state:
            state["v"] = np.full(x.shape, node.v_init)
        v = state["v"]
        v += x
        spikes = v >= node.v_threshold
        if node.reset == "subtract":  # v - theta where spiking, as the reference's v - theta*s
            np.subtract(v, node.v_threshold, out=v, where=spikes)
        else:
            np.copyto(v, 0.0, where=spikes)
        return spikes.astype(np.float64)
    if node.domain == "spiking":
        raise InputError(
            f"node {node.name!r}: simulate runs IF neurons only, not "
            f"{node.type_name}; use neurohal.reference.run"
        )
    return apply(node, ports)
