"""The emulator backend: a batched, vectorised, bit-exact emulation of Lava's fixed-point models.

It runs layer by layer over the whole run: a projection maps all of its source layer's spikes
(every step, every sample) at once with integer arithmetic (pooled sums, then the int8 weights
by BLAS in floating point, exact because every partial sum stays below 2**24 or uses float64),
then each layer's neurons step through time with Lava's integer update (see `fixedpoint`).
Projections deliver one step later, as Lava's Dense does.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from neurohal.ir import Conv2d, Dense, Flatten, Graph, Reshape
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.lowering import POOLS, Layer, Projection
from neurohal_loihi.network import Network

EXACT_FLOAT32 = 2**24


@attrs.frozen
class EmulatorResult:
    """Readout values per Output, spike trains per layer (steps, batch, neurons) and counts."""

    outputs: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray]
    final_v: dict[str, np.ndarray]
    run_steps: int
    saturated: dict[str, int]


def sum_pool(
    x: np.ndarray, kernel: tuple[int, int], padding: tuple[int, int, int, int]
) -> np.ndarray:
    """Non-overlapping window sums (stride == kernel) of (M, C, H, W) integers."""
    top, left, bottom, right = padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = kernel
    oh, ow = x.shape[2] // kh, x.shape[3] // kw
    x = x[:, :, : oh * kh, : ow * kw]
    return x.reshape(x.shape[0], x.shape[1], oh, kh, ow, kw).sum(axis=(3, 5))


def conv2d_int(x: np.ndarray, weight: np.ndarray, node: Conv2d) -> np.ndarray:
    """Cross-correlation of (M, C, H, W) by integer weights (O, C/g, kh, kw), as a matmul."""
    top, left, bottom, right = node.padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_ch, in_per_group, kh, kw = weight.shape
    dh, dw = node.dilation
    win = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, :: node.stride[0], :: node.stride[1], ::dh, ::dw]
    m, _, oh, ow = win.shape[:4]
    g = node.groups
    win = win.reshape(m, g, in_per_group, oh, ow, kh, kw)
    w = weight.reshape(g, out_ch // g, in_per_group, kh, kw)
    out = np.empty((m, g, out_ch // g, oh, ow), dtype=x.dtype)
    for gi in range(g):
        cols = win[:, gi].transpose(0, 2, 3, 1, 4, 5).reshape(m * oh * ow, -1)
        prod = cols @ w[gi].reshape(out_ch // g, -1).T
        out[:, gi] = prod.reshape(m, oh, ow, -1).transpose(0, 3, 1, 2)
    return out.reshape(m, out_ch, oh, ow)


def project(
    graph: Graph, proj: Projection, mant: np.ndarray, exp: int, spikes: np.ndarray
) -> np.ndarray:
    """Dense output of a projection for each row of ``spikes`` (M, *src_shape): int64 (M, N).

    The sum is of Lava's weights ``2 * m``; the weight exponent is applied to the whole sum.
    """
    bound = 2 * float(np.abs(mant.astype(np.float64)).sum()) * _max_pooled(graph, proj)
    dtype = np.float32 if bound < EXACT_FLOAT32 else np.float64
    x = spikes.astype(dtype)
    weighted = False
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, POOLS):
            x = sum_pool(x, node.kernel, node.padding)
        elif isinstance(node, (Flatten, Reshape)):
            x = x.reshape(x.shape[0], *graph.shape(name))
        elif isinstance(node, Dense):
            x = x @ (2 * mant.astype(dtype)).T
            weighted = True
        elif isinstance(node, Conv2d):
            x = conv2d_int(x, 2 * mant.astype(dtype), node)
            weighted = True
    if not weighted:
        x = x * dtype(2 * int(mant))
    acc = np.rint(x.reshape(x.shape[0], -1)).astype(np.int64)
    return fx.shift(acc, exp)


def _max_pooled(graph: Graph, proj: Projection) -> int:
    area = 1
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, POOLS):
            area *= node.kernel[0] * node.kernel[1]
    return area


def step_layer(
    net: Network,
    layer: Layer,
    a_in: np.ndarray,
    bias_eff: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one layer's neurons through all steps: spikes (steps, B, N) int8 and final v."""
    steps, batch, _ = a_in.shape
    dv = int(net.value(layer.name, "dv"))
    vth_eff = net.vth_eff(layer)
    subtract = net.reset(layer) == "subtract"
    v = np.broadcast_to(net.value(layer.name, "v_start"), (batch, layer.size)).astype(np.int64)
    u = np.zeros((batch, layer.size), dtype=np.int64)
    spikes = np.zeros(a_in.shape, dtype=np.int8)
    for t in range(steps):
        # current: du = 4095 (+1 offset) clears u, so u is this step's input alone
        u = fx.wrap_current(np.left_shift(a_in[t], fx.ACT_SHIFT))
        v = (fx.decay(v, dv) if dv else v) + u + bias_eff
        np.clip(v, -fx.V_LIMIT, fx.V_LIMIT, out=v)
        fired = v > vth_eff
        spikes[t] = fired
        if subtract:
            v = v - vth_eff * fired
        else:
            v = np.where(fired, 0, v)
    return spikes, v


def run(
    net: Network, encoded: Mapping[str, np.ndarray], timesteps: int, batch: int
) -> EmulatorResult:
    """Emulate ``timesteps`` effective steps (plus the readout delay) on a batch."""
    steps = net.run_steps(timesteps)
    spikes: dict[str, np.ndarray] = {}
    final_v: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    saturated: dict[str, int] = {}
    readouts: dict[str, np.ndarray] = {}
    for layer in net.plan.layers:
        a_in = np.zeros((steps, batch, layer.size), dtype=np.int64)
        for proj in layer.projections:
            mant, exp = net.weights(proj)
            src = spikes[proj.src][: steps - 1]
            shape = net.graph.shape(proj.src)
            flat = src.reshape((steps - 1) * batch, *shape)
            a_in[1:] += project(net.graph, proj, mant, exp, flat).reshape(steps - 1, batch, -1)
        mant_b, exp_b = net.bias_parts(layer, encoded, batch)
        bias_eff = fx.bias_value(mant_b, exp_b)
        spikes[layer.name], final_v[layer.name] = step_layer(net, layer, a_in, bias_eff)
        if layer.kind == "readout":
            saturated[layer.name] = int(spikes[layer.name].sum())
            readouts[layer.name] = net.readout(layer, final_v[layer.name], bias_eff, steps)
    for out, readout in net.plan.outputs.items():
        outputs[out] = readouts[readout].reshape(batch, *net.graph.shape(readout))
    return EmulatorResult(outputs, spikes, final_v, steps, saturated)
