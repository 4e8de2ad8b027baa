"""The reference interpreter: the executable specification of the IR, in numpy (float64).

Every device's outputs are judged against this module. It favours clarity over speed.

Execution model
---------------
Inputs are batch first: ``(B, *shape)`` for each ``Input`` node.

*Analog graphs* (``graph.kind == "ann"``) run once: every node in topological order computes its
value from the values arriving on its ports; edges into the same port are summed.

*Spiking and mixed graphs* run ``timesteps`` discrete steps ``t = 0 .. T-1``. At each step every
node is evaluated once, in topological order, from the values its sources produced *in the same
step* (no synaptic delay in the IR; devices with delays account for them). Stateless nodes
apply their analog function to the per-step value. Stateful nodes:

- ``Encoder(analog)``: emits its static input every step (a constant current).
  ``Encoder(poisson)``: emits 1 where ``u < clip(x, 0, 1)`` with ``u`` uniform from
  ``numpy.random.default_rng(seed)`` drawn once per step with shape ``(B, *shape)``, else 0.
- ``IF``: ``v[t] = v[t-1] + x[t]`` with ``v[-1] = v_init``; ``s[t] = v[t] >= v_threshold``;
  reset ``subtract``: ``v[t] -= v_threshold * s[t]``; ``zero``: ``v[t] = 0`` where ``s[t]``.
- ``LIF``: as IF with ``v[t] = v[t-1] * (1 - decay_v) + x[t]``.
- ``CubaLIF``: ``i[t] = i[t-1] * (1 - decay_i) + x[t]`` (``i[-1] = 0``), then
  ``v[t] = v[t-1] * (1 - decay_v) + i[t]``, spike and reset as IF.
- ``Readout``: ``r[t] = (x[0] + ... + x[t]) / (t + 1)``, the running mean of its input.

An ``Output`` node's result is its input's value at the last step.

Node functions (per step, or once for analog graphs)
----------------------------------------------------
- ``Dense``: ``x @ W.T + b``. ``Conv2d``: cross-correlation with zero padding
  (top, left, bottom, right), stride, dilation and groups, plus bias per output channel.
- ``AvgPool2d``: window sum / (kh * kw), padded zeros included. ``SumPool2d``: window sum.
- ``MaxPool2d``: window max, padding never selected.
- ``Add``: the sum of its incoming edges (the fan-in sum). ``Concat``: joins its ports along
  ``axis`` (+1 for the batch). ``Scale``: ``x * scale`` (per channel along axis 0 if a vector).
- ``ReLU``, ``Clip``, ``Softmax`` (over the feature axis), ``Flatten``, ``Reshape``: as named.

Counters
--------
For every synapse node, per run: ``synops`` counts (nonzero input element, synapse) pairs,
i.e. accumulate operations when its inputs are spikes or other sparse events, and ``macs``
counts every weight use (dense multiply-accumulates). Both are reported: devices that are
event-driven use ``synops``, dense accelerators ``macs``. For every spiking neuron node:
``spikes`` and ``neuron_updates`` (neurons x steps x batch). All counts are totals over the
batch and all steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from neurohal.errors import InputError
from neurohal.ir import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    CubaLIF,
    Dense,
    Encoder,
    Flatten,
    Graph,
    Input,
    MaxPool2d,
    Node,
    Output,
    Readout,
    ReLU,
    Reshape,
    Scale,
    Softmax,
    SumPool2d,
)

# ---------------------------------------------------------------- array operations


def _windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int] = (1, 1),
    fill: float = 0.0,
) -> np.ndarray:
    """(B, C, H, W) -> (B, C, OH, OW, kh, kw) views of each (dilated) window."""
    top, left, bottom, right = padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    kh, kw = kernel
    span = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    win = sliding_window_view(x, span, axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Grouped 2-D cross-correlation, (B, C, H, W) -> (B, O, OH, OW)."""
    out_ch, in_per_group, kh, kw = weight.shape
    win = _windows(x, (kh, kw), stride, padding, dilation)
    b, _, oh, ow = win.shape[:4]
    win = win.reshape(b, groups, in_per_group, oh, ow, kh, kw)
    w = weight.reshape(groups, out_ch // groups, in_per_group, kh, kw)
    y = np.einsum("bgchwij,gocij->bgohw", win, w, optimize=True)
    y = y.reshape(b, out_ch, oh, ow)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


def pool2d(
    x: np.ndarray,
    kind: str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> np.ndarray:
    """Window ``sum``, ``mean`` (padded zeros counted) or ``max`` (padding never chosen)."""
    if kind == "max":
        return _windows(x, kernel, stride, padding, fill=-np.inf).max(axis=(4, 5))
    total = _windows(x, kernel, stride, padding).sum(axis=(4, 5))
    return total / (kernel[0] * kernel[1]) if kind == "mean" else total


def _synapse_uses(node: Node, x: np.ndarray) -> np.ndarray | int:
    """How many synapses each input element reaches, summed over the (nonzero) input."""
    active = (x != 0).astype(np.float64)
    if isinstance(node, Dense):
        return int(active.sum()) * node.weight.shape[0]
    if isinstance(node, Conv2d):
        ones = np.ones_like(node.weight, dtype=np.float64)
        return round(
            conv2d(active, ones, None, node.stride, node.padding, node.dilation, node.groups).sum()
        )
    if isinstance(node, (AvgPool2d, SumPool2d)):
        return round(pool2d(active, "sum", node.kernel, node.stride, node.padding).sum())
    return int(active.sum())  # Add, Concat, Scale: one accumulate per nonzero element


def _dense_uses(node: Node, x: np.ndarray) -> int:
    return _synapse_uses(node, np.ones_like(x))


def apply(node: Node, ports: Mapping[str, np.ndarray]) -> np.ndarray:
    """The stateless function of ``node`` on the (summed) values arriving at its ports."""
    x = ports.get("input")
    if isinstance(node, (Output, Add, Encoder, Readout)):
        return x
    if isinstance(node, Dense):
        y = x @ node.weight.astype(np.float64).T
        return y if node.bias is None else y + node.bias
    if isinstance(node, Conv2d):
        return conv2d(
            x,
            node.weight.astype(np.float64),
            node.bias,
            node.stride,
            node.padding,
            node.dilation,
            node.groups,
        )
    if isinstance(node, AvgPool2d):
        return pool2d(x, "mean", node.kernel, node.stride, node.padding)
    if isinstance(node, SumPool2d):
        return pool2d(x, "sum", node.kernel, node.stride, node.padding)
    if isinstance(node, MaxPool2d):
        return pool2d(x, "max", node.kernel, node.stride, node.padding)
    if isinstance(node, Concat):
        return np.concatenate([ports[p] for p in node.ports()], axis=node.axis + 1)
    if isinstance(node, Scale):
        s = node.scale.astype(np.float64)
        return x * (s.reshape((1, -1) + (1,) * (x.ndim - 2)) if s.ndim == 1 else s)
    if isinstance(node, ReLU):
        return np.maximum(x, 0.0)
    if isinstance(node, Clip):
        return np.clip(x, node.min, node.max)
    if isinstance(node, Softmax):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if isinstance(node, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(node, Reshape):
        return x.reshape((x.shape[0],) + node.shape)
    raise InputError(f"node {node.name!r}: the reference has no rule for {node.type_name}")


# ---------------------------------------------------------------- results


@attrs.frozen
class ReferenceResult:
    """Outputs by Output-node name, per-node counters, and recorded per-step values.

    ``records[name]`` has shape (T, B, *shape) for spiking graphs and (1, B, *shape) for
    analog graphs, for each node named in ``record``.
    """

    outputs: dict[str, np.ndarray]
    counters: dict[str, dict[str, int]]
    records: dict[str, np.ndarray]
    timesteps: int | None


def normalize_inputs(
    graph: Graph, inputs: np.ndarray | Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Map inputs to Input nodes as float64 and check shape, dtype and finiteness."""
    if not isinstance(inputs, Mapping):
        if len(graph.inputs) != 1:
            names = [n.name for n in graph.inputs]
            raise InputError(f"graph has inputs {names}: pass a dict of arrays by name")
        inputs = {graph.inputs[0].name: inputs}
    result = {}
    expected = {n.name: n.shape for n in graph.inputs}
    if set(inputs) != set(expected):
        raise InputError(f"inputs given for {sorted(inputs)}, graph expects {sorted(expected)}")
    batch = None
    for name, value in inputs.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise InputError(f"input {name!r}: dtype {arr.dtype} is not numeric")
        if arr.shape[1:] != expected[name] or arr.ndim != len(expected[name]) + 1:
            raise InputError(
                f"input {name!r}: shape {arr.shape} does not match (batch, *{expected[name]})"
            )
        if not np.all(np.isfinite(arr)):
            raise InputError(f"input {name!r} holds NaN or infinite values")
        if batch is not None and arr.shape[0] != batch:
            raise InputError(f"inputs have different batch sizes ({batch} vs {arr.shape[0]})")
        batch = arr.shape[0]
        result[name] = arr.astype(np.float64)
    return result


def check_timesteps(graph: Graph, timesteps: int | None) -> int | None:
    """Spiking graphs need an integer T >= 1; analog graphs take none (or ignore it)."""
    if not graph.is_spiking:
        return None
    if timesteps is None:
        raise InputError("this is a spiking graph: pass timesteps (an integer >= 1)")
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)):
        raise InputError(f"timesteps must be an integer, got {timesteps!r}")
    if timesteps < 1:
        raise InputError(f"timesteps must be >= 1, got {timesteps}")
    return int(timesteps)


# ---------------------------------------------------------------- the interpreter


def run(
    graph: Graph,
    inputs: np.ndarray | Mapping[str, np.ndarray],
    timesteps: int | None = None,
    record: Iterable[str] = (),
) -> ReferenceResult:
    """Run ``graph`` on batch-first ``inputs`` for ``timesteps`` steps (spiking graphs)."""
    graph.validate()
    steps = check_timesteps(graph, timesteps)
    values_in = normalize_inputs(graph, inputs)
    record = tuple(record)
    for name in record:
        graph.node(name)
    order = graph.topological_order()
    state: dict[str, dict[str, np.ndarray]] = {}
    counters: dict[str, dict[str, int]] = {}
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in record}
    rngs = {
        n.name: np.random.default_rng(n.seed)
        for n in order
        if isinstance(n, Encoder) and n.kind == "poisson"
    }
    values: dict[str, np.ndarray] = {}
    for _ in range(steps or 1):
        values = {}
        for node in order:
            if isinstance(node, Input):
                values[node.name] = values_in[node.name]
                continue
            ports = {p: sum(values[s] for s in graph.sources(node.name, p)) for p in node.ports()}
            values[node.name] = _step(node, ports, state.setdefault(node.name, {}), rngs)
            _count(node, ports, values[node.name], counters.setdefault(node.name, {}))
        for name in record:
            recorded[name].append(values[name])
    outputs = {n.name: values[n.name] for n in graph.outputs}
    records = {name: np.stack(vals) for name, vals in recorded.items()}
    return ReferenceResult(outputs, counters, records, steps)


def _step(
    node: Node,
    ports: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    rngs: dict[str, np.random.Generator],
) -> np.ndarray:
    x = ports.get("input")
    if isinstance(node, Encoder) and node.kind == "poisson":
        u = rngs[node.name].random(x.shape)
        return (u < np.clip(x, 0.0, 1.0)).astype(np.float64)
    if isinstance(node, Readout):
        state["sum"] = state.get("sum", 0.0) + x
        state["n"] = state.get("n", 0) + 1
        return state["sum"] / state["n"]
    if isinstance(node, (IF, LIF, CubaLIF)):
        v = state.get("v", np.full(x.shape, node.v_init))
        if isinstance(node, CubaLIF):
            i = state.get("i", np.zeros(x.shape)) * (1.0 - node.decay_i) + x
            state["i"] = i
            v = v * (1.0 - node.decay_v) + i
        elif isinstance(node, LIF):
            v = v * (1.0 - node.decay_v) + x
        else:
            v = v + x
        spikes = v >= node.v_threshold
        if node.reset == "subtract":
            v = v - node.v_threshold * spikes
        else:
            v = np.where(spikes, 0.0, v)
        state["v"] = v
        return spikes.astype(np.float64)
    return apply(node, ports)


def _count(
    node: Node, ports: dict[str, np.ndarray], out: np.ndarray, counts: dict[str, int]
) -> None:
    if node.domain == "spiking":
        counts["spikes"] = counts.get("spikes", 0) + int(out.sum())
        counts["neuron_updates"] = counts.get("neuron_updates", 0) + int(out.size)
    elif node.domain == "synapse":
        synops = sum(_synapse_uses(node, x) for x in ports.values())
        macs = sum(_dense_uses(node, x) for x in ports.values())
        counts["synops"] = counts.get("synops", 0) + synops
        counts["macs"] = counts.get("macs", 0) + macs
