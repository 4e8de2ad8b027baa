"""Quantize a lowered graph to Loihi's fixed-point formats, choosing the scales per layer.

Every destination layer has one scale S (v units per IR unit of membrane potential):

- neuron layers: the IR threshold maps to ``NEURON_VTH << 6 = 2**17`` exactly, so S = 2**17 / θ
  (the threshold carries no rounding error; weights and biases carry it);
- readouts (never fire): S is the largest scale for which ``max_timesteps`` steps of the worst
  possible input cannot saturate the 24-bit membrane.

Each projection then gets the smallest weight exponent for which its largest weight (in v
units) is an int8 mantissa, so every projection uses the full 8-bit range. Biases become
13-bit mantissas with the smallest fitting exponent; v_init is rounded to v units. The chosen
values and any clipping are returned in a per-layer report.
"""

from __future__ import annotations

import numpy as np

from neurohal.ir import LIF, AvgPool2d, Conv2d, Dense, Graph, Readout, Scale
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.hostside import layer_current
from neurohal_loihi.lowering import POOLS, Layer, Plan, Projection


def projection_weight(graph: Graph, proj: Projection) -> tuple[np.ndarray, float]:
    """The projection's real weight and the most spikes one pooled input can carry.

    The weight is the weighted node's (or, for an identity route, a scalar or per-channel
    factor) with every Scale on the route folded in (before the weighted node: per input
    channel; after it: per output channel) and the average pools' divisors applied. The
    second value is the product of the pool areas.
    """
    factor, area = 1.0, 1
    pre, post = np.ones(()), np.ones(())
    weight = None
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, POOLS):
            area *= node.kernel[0] * node.kernel[1]
            if isinstance(node, AvgPool2d):
                factor /= node.kernel[0] * node.kernel[1]
        elif isinstance(node, Scale):
            s = node.scale.astype(np.float64)
            if weight is None:
                pre = pre * s
            else:
                post = post * s
        elif isinstance(node, Dense):
            weight = node.weight.astype(np.float64)
            if pre.ndim:
                weight = weight * np.repeat(pre, weight.shape[1] // pre.size)[None, :]
        elif isinstance(node, Conv2d):
            weight = node.weight.astype(np.float64)
            if pre.ndim:
                weight = weight * pre[None, :, None, None]
    if weight is None:
        return pre * factor, area
    if post.ndim:
        weight = weight * post.reshape((-1,) + (1,) * (weight.ndim - 1))
    else:
        weight = weight * post
    return weight * factor, area


def _worst_input(graph: Graph, layer: Layer) -> float:
    """An upper bound of |input| per step into one neuron of ``layer`` (IR units)."""
    total = float(np.max(np.abs(layer_current(graph, layer.name, None, 1))))
    for proj in layer.projections:
        weight, area = projection_weight(graph, proj)
        rows = (
            np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1)
            if weight.ndim > 1
            else np.abs(weight)
        )
        total += float(np.max(rows)) * area
    return max(total, 1e-12)


def layer_scale(graph: Graph, layer: Layer, max_timesteps: int) -> tuple[int, float]:
    """(threshold mantissa, scale S) of a layer."""
    node = graph.node(layer.name)
    if isinstance(node, Readout):
        steps = max_timesteps + layer.delay
        return fx.READOUT_VTH, fx.V_LIMIT / (steps * _worst_input(graph, layer))
    return fx.NEURON_VTH, (fx.NEURON_VTH << fx.VTH_SHIFT) / node.v_threshold


def quantize(graph: Graph, plan: Plan, max_timesteps: int) -> tuple[dict[str, np.ndarray], dict]:
    """Integer parameters of every layer and projection, as artifact arrays, and a report."""
    arrays: dict[str, np.ndarray] = {}
    report: dict[str, dict] = {}
    for layer in plan.layers:
        node = graph.node(layer.name)
        vth, scale = layer_scale(graph, layer, max_timesteps)
        vth_eff = vth << fx.VTH_SHIFT
        bias = layer_current(graph, layer.name, None, 1)[0] * scale
        mant, exp = fx.bias_parts(bias)
        bias_eff = fx.bias_value(mant, exp)
        dv = (
            int(np.clip(round(node.decay_v * fx.DECAY_UNITY), 0, fx.DECAY_UNITY - 1))
            if isinstance(node, LIF)
            else 0
        )
        v0 = 0 if isinstance(node, Readout) else round(node.v_init * scale)
        v0 = int(np.clip(v0, -fx.V_LIMIT, fx.V_LIMIT))
        v_start = _start_potential(v0, bias_eff, layer, dv, vth_eff)
        arrays.update(
            {
                f"{layer.name}:scale": np.float64(scale),
                f"{layer.name}:vth": np.int64(vth),
                f"{layer.name}:dv": np.int64(dv),
                f"{layer.name}:v_start": v_start,
                f"{layer.name}:bias_mant": mant,
                f"{layer.name}:bias_exp": exp,
            }
        )
        info = {
            "scale": scale,
            "vth_mantissa": vth,
            "dv": dv,
            "delay": layer.delay,
            "bias_clipped": int(np.sum(np.abs(bias) > fx.BIAS_MANT_MAX << fx.BIAS_EXP_MAX)),
            "projections": {},
        }
        for proj in layer.projections:
            weight, _ = projection_weight(graph, proj)
            weight_v = weight * scale
            max_abs = float(np.max(np.abs(weight_v))) if weight_v.size else 0.0
            wexp = fx.weight_exponent(max_abs)
            mant_w = fx.weight_mantissa(weight_v, wexp)
            arrays[f"{proj.key}:w"] = mant_w
            arrays[f"{proj.key}:exp"] = np.int64(wexp)
            info["projections"][proj.key] = {
                "weight_exp": wexp,
                "clipped": int(np.sum(np.abs(weight_v) > 127.5 * 2.0 ** (wexp + 7))),
                "zeroed": int(np.sum((mant_w == 0) & (weight_v != 0))),
            }
        report[layer.name] = info
    return arrays, report


def _start_potential(
    v0: int, bias_eff: np.ndarray, layer: Layer, dv: int, vth_eff: int
) -> np.ndarray:
    """Initial v that absorbs the bias integrated while waiting ``delay`` steps for input.

    A layer at delay D integrates its bias D times before its first synaptic input arrives
    (Lava's Dense delay). Starting at ``v0 - D * bias`` makes it reach v0 exactly when the input
    arrives, as in the IR; where that start or v0 would cross the threshold or the 24-bit limit
    (or v leaks, dv > 0) the neuron starts at v0 and the difference is the chip's.
    """
    start = np.full(bias_eff.shape, v0, dtype=np.int64)
    if layer.delay == 0 or layer.host or dv:
        return start
    shifted = v0 - layer.delay * bias_eff
    safe = (np.maximum(shifted, v0) <= vth_eff) & (np.abs(shifted) <= fx.V_LIMIT)
    return np.where(safe, shifted, start)
