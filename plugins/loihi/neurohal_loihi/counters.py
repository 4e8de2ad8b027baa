"""Per-layer counts of a run from its spike trains: spikes, neuron updates, synaptic operations.

A synaptic operation is one spike reaching one synapse (a nonzero stored weight). A neuron
update is one compartment's update: a two-compartment soft-reset neuron (Loihi 1) makes two
per step, and its spikes also reach its inhibitory self-synapse (the layer's own ``synops``).
Each source
neuron's fan-out is found once per projection by running the projection's structure backwards
(transposed pooling, convolution and dense maps over the nonzero-weight pattern).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neurohal.ir import Conv2d, Dense, Flatten, Graph, Reshape
from neurohal_loihi.lowering import POOLS, Plan, Projection


def _conv_fanout(
    f_out: np.ndarray, mask: np.ndarray, node: Conv2d, in_shape: tuple[int, ...]
) -> np.ndarray:
    c, h, w = in_shape
    out_ch, in_per_group, kh, kw = mask.shape
    top, left, bottom, right = node.padding
    sh, sw = node.stride
    dh, dw = node.dilation
    oh, ow = f_out.shape[1:]
    per_group = out_ch // node.groups
    padded = np.zeros((c, h + top + bottom, w + left + right))
    for g in range(node.groups):
        outs = f_out[g * per_group : (g + 1) * per_group]
        weights = mask[g * per_group : (g + 1) * per_group]
        for a in range(kh):
            for b in range(kw):
                contrib = np.einsum("ohw,oc->chw", outs, weights[:, :, a, b])
                ys = slice(a * dh, a * dh + (oh - 1) * sh + 1, sh)
                xs = slice(b * dw, b * dw + (ow - 1) * sw + 1, sw)
                padded[g * in_per_group : (g + 1) * in_per_group, ys, xs] += contrib
    return padded[:, top : top + h, left : left + w]


def fanout(graph: Graph, proj: Projection, mant: np.ndarray) -> np.ndarray:
    """Synapses each source neuron of ``proj`` reaches (nonzero weights only), flat."""
    shapes = [graph.shape(proj.src)] + [graph.shape(n) for n in proj.nodes]
    f = np.ones(shapes[-1])
    weighted = False
    for index in range(len(proj.nodes) - 1, -1, -1):
        node = graph.node(proj.nodes[index])
        in_shape = shapes[index]
        if isinstance(node, Dense):
            f = (mant != 0).T.astype(np.float64) @ f.reshape(-1)
            weighted = True
        elif isinstance(node, Conv2d):
            f = _conv_fanout(
                f.reshape(shapes[index + 1]), (mant != 0).astype(np.float64), node, in_shape
            )
            weighted = True
        elif isinstance(node, POOLS):
            kh, kw = node.kernel
            top, left, _, _ = node.padding
            up = np.repeat(np.repeat(f.reshape(shapes[index + 1]), kh, axis=1), kw, axis=2)
            full = np.zeros((in_shape[0], in_shape[1] + kh + top, in_shape[2] + kw + left))
            full[:, : up.shape[1], : up.shape[2]] = up
            f = full[:, top : top + in_shape[1], left : left + in_shape[2]]
        elif isinstance(node, (Flatten, Reshape)):
            f = f.reshape(in_shape)
    if not weighted:
        # identity route: a synapse per source neuron whose channel weight is nonzero
        f = (
            np.asarray(f).reshape(mant.size, -1) * (mant.reshape(-1, 1) != 0)
            if mant.size > 1
            else np.asarray(f) * (mant.reshape(-1)[0] != 0)
        )
    return np.rint(np.asarray(f)).astype(np.int64).reshape(-1)


def projection_name(graph: Graph, proj: Projection) -> str:
    """The counter key of a projection: its weighted node, or ``src->dst`` for identity."""
    for name in proj.nodes:
        if isinstance(graph.node(name), (Dense, Conv2d)):
            return name
    return f"{proj.src}->{proj.dst}"


SUM_ROWS = 16384
"""Rows of spikes summed at a time in int16 (exact: each sum is at most SUM_ROWS < 2**15)."""


def spike_counts(spikes: np.ndarray) -> np.ndarray:
    """Spikes per neuron (int64) of a (steps, batch, neurons) 0/1 train: int16 sums of blocks
    of rows added in int64, twice as fast as one int64 reduction."""
    rows = spikes.reshape(-1, spikes.shape[-1])
    total = np.zeros(rows.shape[1], dtype=np.int64)
    for start in range(0, rows.shape[0], SUM_ROWS):
        total += rows[start : start + SUM_ROWS].sum(axis=0, dtype=np.int16)
    return total


def count(
    graph: Graph,
    plan: Plan,
    spikes: Mapping[str, np.ndarray],
    per_neuron: Mapping[str, np.ndarray],
    fanouts: Mapping[str, np.ndarray],
    two_compartment: frozenset[str] = frozenset(),
) -> dict[str, dict[str, int]]:
    """Counters by layer / projection from spike trains (steps, batch, neurons) and their
    `spike_counts`; ``two_compartment``: the soft-reset layers."""
    counters: dict[str, dict[str, int]] = {}
    for layer in plan.layers:
        fired = int(per_neuron[layer.name].sum())
        soft = layer.name in two_compartment
        counters[layer.name] = {
            "spikes": fired,
            "neuron_updates": int(spikes[layer.name].size) * (2 if soft else 1),
        }
        if soft:
            counters[layer.name]["synops"] = fired
        for proj in layer.projections:
            key = projection_name(graph, proj)
            entry = counters.setdefault(key, {"synops": 0})
            entry["synops"] += int(per_neuron[proj.src] @ fanouts[proj.key])
    return counters
