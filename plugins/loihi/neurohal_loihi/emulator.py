"""The emulator backend: a batched, vectorised, bit-exact emulation of Lava's fixed-point models.

It runs layer by layer over the whole run: a projection maps all of its source layer's spikes
(every step, every sample) at once with integer arithmetic (pooled sums, then the int8 weights
by BLAS in floating point, exact because every partial sum stays below 2**24 or uses float64;
a convolution in its band form, see `Band`), then each layer's neurons step through time with
Lava's integer update (see `fixedpoint`), a cache-sized block of neurons at a time.
Projections deliver one step later, as Lava's Dense does.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from neurohal.ir import Conv2d, Dense, Flatten, Graph, Reshape, Scale
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
    x: np.ndarray, kernel: tuple[int, int], padding: tuple[int, int, int, int], peak: int = 255
) -> np.ndarray:
    """Non-overlapping window sums (stride == kernel) of (M, C, H, W) values, as kh * kw adds
    of strided views (much faster than a reduction over small axes). Integer sums are int8
    when ``peak`` (the largest value of x) times the window area fits, else int16."""
    top, left, bottom, right = padding
    if any(padding):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = kernel
    oh, ow = x.shape[2] // kh, x.shape[3] // kw
    dtype = x.dtype if x.dtype.kind == "f" else np.int16 if peak * kh * kw > 127 else np.int8
    total = np.zeros((x.shape[0], x.shape[1], oh, ow), dtype=dtype)
    for a in range(kh):
        for b in range(kw):
            total += x[:, :, a : a + oh * kh : kh, b : b + ow * kw : kw]
    return total


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


DENSE_CONV_LIMIT = 16 * 2**20
"""A convolution whose band matrix (or, failing that, whose dense matrix) has at most this many
entries runs as matrix products; larger ones use im2col."""


@attrs.frozen
class Band:
    """A convolution as one matrix product per output row: the padded input in row-major
    (H, C, W) layout, each output row reads ``rows`` consecutive input rows (stride ``step``)
    as one contiguous window and multiplies it by ``matrix`` ((rows * C * Wp), (O * OW)).

    Only the inputs a row of outputs can see enter its product: far fewer operations than the
    convolution's dense matrix, with no im2col copy."""

    matrix: np.ndarray
    padding: tuple[int, int, int, int]
    rows: int
    step: int
    out_shape: tuple[int, int, int]


@attrs.frozen
class ProjectionOp:
    """A projection prepared for the emulator: the nodes to apply, and for the weighted node
    Lava's integer weights ``2 * m`` as a matrix (dense, a convolution's band, or a large
    convolution's kernel)."""

    proj: Projection
    exp: int
    dtype: type
    matrix: np.ndarray | None
    kernel: np.ndarray | None
    identity: np.ndarray | None
    band: Band | None = None


def prepare(net: Network, proj: Projection) -> ProjectionOp:
    """Choose exact arithmetic (float32 if no partial sum can reach 2**24) and the layout."""
    graph = net.graph
    mant, exp = net.weights(proj)
    area = 1
    for name in proj.nodes:
        if isinstance(graph.node(name), POOLS):
            area *= graph.node(name).kernel[0] * graph.node(name).kernel[1]
    bound = 2 * float(np.abs(mant.astype(np.float64)).sum()) * area
    dtype = np.float32 if bound < EXACT_FLOAT32 else np.float64
    lava_w = 2 * mant.astype(dtype)
    matrix = kernel = identity = band = None
    for index, name in enumerate(proj.nodes):
        node = graph.node(name)
        if isinstance(node, Dense):
            matrix = np.ascontiguousarray(lava_w.T)
        elif isinstance(node, Conv2d):
            in_shape = graph.shape(proj.nodes[index - 1]) if index else graph.shape(proj.src)
            size_in = int(np.prod(in_shape))
            band = conv_band(lava_w, node, in_shape, graph.shape(name))
            if band is None and size_in * int(np.prod(graph.shape(name))) <= DENSE_CONV_LIMIT:
                basis = np.eye(size_in, dtype=dtype).reshape(size_in, *in_shape)
                matrix = conv2d_int(basis, lava_w, node).reshape(size_in, -1)
            elif band is None:
                kernel = lava_w
    if matrix is None and kernel is None and band is None:
        identity = lava_w.reshape(-1)
    return ProjectionOp(proj, exp, dtype, matrix, kernel, identity, band)


def conv_band(
    weight: np.ndarray, node: Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> Band | None:
    """The band form of a convolution (see `Band`), or None when its matrix is too large."""
    channels, width = in_shape[0], in_shape[2]
    padded_w = node.padding[1] + width + node.padding[3]
    rows = (weight.shape[2] - 1) * node.dilation[0] + 1
    size_in = rows * channels * padded_w
    size_out = out_shape[0] * out_shape[2]
    if size_in * size_out > DENSE_CONV_LIMIT:
        return None
    basis = np.eye(size_in, dtype=weight.dtype).reshape(size_in, rows, channels, padded_w)
    unpadded = attrs.evolve(node, padding=(0, 0, 0, 0), stride=(1, node.stride[1]))
    out = conv2d_int(basis.transpose(0, 2, 1, 3), weight, unpadded)  # (size_in, O, 1, OW)
    return Band(
        np.ascontiguousarray(out.reshape(size_in, size_out)),
        node.padding,
        rows,
        node.stride[0],
        (int(out_shape[0]), int(out_shape[1]), int(out_shape[2])),
    )


def band_product(x: np.ndarray, band: Band, dtype: type) -> np.ndarray:
    """(M, C, H, W) values through a `Band`: (M, O, OH, OW) exact sums in ``dtype``."""
    m, channels, height, width = x.shape
    top, left, bottom, right = band.padding
    padded = np.zeros((m, top + height + bottom, channels, left + width + right), dtype=dtype)
    padded[:, top : top + height, :, left : left + width] = x.transpose(0, 2, 1, 3)
    out_ch, out_h, out_w = band.out_shape
    row = channels * padded.shape[3]
    item = padded.itemsize
    windows = as_strided(
        padded,
        (m, out_h, band.rows * row),
        (padded.shape[1] * row * item, band.step * row * item, item),
        writeable=False,
    )
    prod = np.matmul(windows, band.matrix)  # (M, OH, O * OW)
    return prod.reshape(m, out_h, out_ch, out_w).transpose(0, 2, 1, 3)


def project(
    graph: Graph, op: ProjectionOp, spikes: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Dense output of a projection for each row of ``spikes`` (M, *src_shape): int32 (M, N),
    written into ``out`` (contiguous (M, N) int32) when given.

    The sum is of Lava's weights ``2 * m``; the weight exponent is applied to the whole sum.
    """
    x = spikes
    peak = 1  # spikes are 0 or 1
    # an identity route's (per-channel) weight applies where its first Scale stood
    first_scale = next((n for n in op.proj.nodes if isinstance(graph.node(n), Scale)), None)
    for name in op.proj.nodes:
        node = graph.node(name)
        if op.identity is not None and name == first_scale:
            x = _times_channels(x.astype(op.dtype), op.identity)
        if isinstance(node, POOLS):
            x = sum_pool(x, node.kernel, node.padding, peak)
            peak *= node.kernel[0] * node.kernel[1]
        elif isinstance(node, (Flatten, Reshape)):
            x = x.reshape(x.shape[0], *graph.shape(name))
        elif isinstance(node, (Dense, Conv2d)):
            if op.band is not None:
                x = band_product(x, op.band, op.dtype)
            elif op.matrix is not None:
                x = x.reshape(x.shape[0], -1).astype(op.dtype) @ op.matrix
            else:
                x = conv2d_int(x.astype(op.dtype), op.kernel, node)
    if op.identity is not None and first_scale is None:
        x = x.astype(op.dtype) * op.identity[0]
    # x holds exact integers (below 2**24 in float32, 2**53 in float64): the conversion is
    # exact, and Lava's shift of the sum by the weight exponent is an integer shift (``>>``
    # is the arithmetic right shift, i.e. floor)
    total = out if out is not None else np.empty((x.shape[0], x[0].size), dtype=np.int32)
    wide = total if op.dtype is np.float32 else np.empty(total.shape, dtype=np.int64)
    np.copyto(wide.reshape(x.shape), x, casting="unsafe")
    if op.exp >= 0:
        wide <<= op.exp
    else:
        wide >>= -op.exp
    if wide is not total:
        np.copyto(total, wide, casting="unsafe")
    return total


def _times_channels(x: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """x (M, C, ...) times one factor per channel (or one for all)."""
    if factors.size == 1:
        return x * factors[0]
    return x * factors.reshape((1, -1) + (1,) * (x.ndim - 2))


STEP_BLOCK = 16384
"""Neurons stepped together through all timesteps (their v, 64 KiB as int32, stays in cache)."""


def step_layer(
    net: Network,
    layer: Layer,
    a_in: np.ndarray | None,
    bias_eff: np.ndarray,
    steps: int,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one layer's neurons through all steps: spikes (steps, B, N) int8 and final v.

    ``a_in`` (steps, B, N) int32 is the synaptic input (overwritten here), None for a layer
    with none. The spikes are written into ``out`` when given (a (steps, B, N) int8 array or a
    batch slice of one, each step's (B, N) block contiguous).

    The 24-bit wrap of u and the saturation of v are applied only when they can occur. The
    current (u, wrapped) and the bias are summed for all steps at once before the loop: v
    receives both before it is saturated, so adding them first is the same sum. A
    two-compartment layer (see `network.reset_modes`) emulates the dendrite's v, which never
    resets: the self-synapse adds ``-R`` to u one step after each spike, R being its weight in
    v units; when that sum could wrap u, u is wrapped step by step instead.
    """
    batch = bias_eff.shape[0]
    dv = int(net.value(layer.name, "dv"))
    vth_eff = net.vth_eff(layer)
    mode = net.reset(layer)
    recurrent = 0
    if mode == "two_compartment":
        mant, exp = net.self_synapse(layer)
        recurrent = (mant << exp) << fx.ACT_SHIFT
    start = net.value(layer.name, "v_start")
    v = np.empty((batch, layer.size), dtype=np.int64 if dv else np.int32)
    v[...] = start
    bias = np.ascontiguousarray(bias_eff, dtype=v.dtype)
    spikes = np.empty((steps, batch, layer.size), dtype=np.int8) if out is None else out
    wrap_each_step = False
    if a_in is None:
        drive = np.broadcast_to(bias, (steps, *bias.shape))
        high, low = int(bias.max(initial=0)), int(bias.min(initial=0))
    else:
        # current: du = 4095 (+1 offset) clears u, so u is this step's input alone
        high_in, low_in = int(a_in.max(initial=0)), int(a_in.min(initial=0))
        if max(high_in, -low_in) << fx.ACT_SHIFT > fx.WRAP - recurrent:
            drive = np.left_shift(a_in.astype(np.int64), fx.ACT_SHIFT)
            wrap_each_step = recurrent > 0
            if not wrap_each_step:
                drive = fx.wrap_current(drive).astype(v.dtype) + bias
            high_in, low_in = fx.WRAP >> fx.ACT_SHIFT, -fx.WRAP >> fx.ACT_SHIFT
        else:
            drive = np.left_shift(a_in, fx.ACT_SHIFT, out=a_in).astype(v.dtype, copy=False)
            drive += bias
        high = (high_in << fx.ACT_SHIFT) + int(bias.max(initial=0))
        low = (low_in << fx.ACT_SHIFT) + int(bias.min(initial=0))
    reset_by = {"subtract": vth_eff, "two_compartment": recurrent}.get(mode)
    clip_high, clip_low = _saturation_risk(start, vth_eff, reset_by, high, low, steps)
    flat_v = v.reshape(-1)  # a view: v is contiguous
    flat_drive = drive.reshape(steps, -1)
    flat_bias = bias.reshape(-1)
    fired_all = spikes.reshape(steps, -1).view(bool)
    kept = np.empty(min(STEP_BLOCK, flat_v.size), dtype=bool)
    # neurons are independent: all steps of one block of them at a time keep its v in cache
    for lo in range(0, flat_v.size, STEP_BLOCK):
        hi = min(lo + STEP_BLOCK, flat_v.size)
        block = flat_v[lo:hi]
        keep = kept[: block.size]
        previous = None  # a two-compartment layer's spikes of the step before
        for t in range(steps):
            if dv:
                block[...] = fx.decay(block, dv)
            if wrap_each_step:
                u = flat_drive[t, lo:hi] - recurrent * previous if t else flat_drive[t, lo:hi]
                block += (fx.wrap_current(u) + flat_bias[lo:hi]).astype(block.dtype)
            else:
                block += flat_drive[t, lo:hi]
                if previous is not None:
                    block -= np.multiply(previous, recurrent, dtype=block.dtype)
            if clip_high:
                np.minimum(block, fx.V_LIMIT, out=block)
            if clip_low:
                np.maximum(block, -fx.V_LIMIT, out=block)
            fired = np.greater(block, vth_eff, out=fired_all[t, lo:hi])
            if mode == "subtract":
                block -= fired * block.dtype.type(vth_eff)
            elif mode == "two_compartment":
                previous = fired
            else:
                block *= np.logical_not(fired, out=keep)
    return spikes, v.astype(np.int64)


def _saturation_risk(
    start: np.ndarray, vth_eff: int, reset_by: int | None, high: int, low: int, steps: int
) -> tuple[bool, bool]:
    """Whether v may pass +V_LIMIT, and -V_LIMIT (else saturating there is a no-op), for any
    input whose per-step drive (current + bias) lies in [low, high], low <= 0 <= high.
    ``reset_by`` is what a spike subtracts (None: reset to zero).

    From above: a step adds at most ``high`` and a reset only lowers v, so v climbs at most
    ``high`` a step; also, a neuron above threshold fires and is reset to 0 or loses
    ``reset_by`` (now or, two-compartment, at the next step; so v climbs by at most
    ``high - reset_by`` a step), one below it is at most ``vth``. A leak only moves v towards
    0. From below: a step takes at most ``-low``, and a subtraction at most ``reset_by - vth``
    below zero (none when it equals the threshold).
    """
    top = max(int(start.max(initial=0)), vth_eff) + high
    bottom = min(int(start.min(initial=0)), 0) + steps * low
    if reset_by is not None:
        top += steps * max(0, high - reset_by)
        bottom -= steps * max(0, reset_by - vth_eff)
    top = min(top, max(int(start.max(initial=0)), 0) + steps * high)
    return top > fx.V_LIMIT, bottom < -fx.V_LIMIT


def run(
    net: Network,
    encoded: Mapping[str, np.ndarray],
    timesteps: int,
    batch: int,
    ops: Mapping[str, ProjectionOp] | None = None,
    spikes_out: Mapping[str, np.ndarray] | None = None,
) -> EmulatorResult:
    """Emulate ``timesteps`` effective steps (plus the readout delay) on a batch.

    ``ops`` are the prepared projections (by projection key), made here when not given.
    ``spikes_out`` gives, per layer, the (steps, batch, N) int8 array (or batch slice of a
    larger one) to write its spikes into, so a caller running chunks of a batch copies nothing.
    """
    if ops is None:
        ops = {p.key: prepare(net, p) for p in net.plan.projections}
    steps = net.run_steps(timesteps)
    spikes: dict[str, np.ndarray] = {}
    final_v: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    saturated: dict[str, int] = {}
    readouts: dict[str, np.ndarray] = {}
    for layer in net.plan.layers:
        a_in = None
        if layer.projections:
            a_in = np.empty((steps, batch, layer.size), dtype=np.int32)
            a_in[0] = 0
            into = a_in[1:].reshape((steps - 1) * batch, layer.size)
        for index, proj in enumerate(layer.projections):
            src = spikes[proj.src][: steps - 1]
            flat = src.reshape((steps - 1) * batch, *net.graph.shape(proj.src))
            if index == 0:
                project(net.graph, ops[proj.key], flat, out=into)
            else:
                into += project(net.graph, ops[proj.key], flat)
        mant_b, exp_b = net.bias_parts(layer, encoded, batch)
        bias_eff = fx.bias_value(mant_b, exp_b)
        out = None if spikes_out is None else spikes_out[layer.name]
        spikes[layer.name], final_v[layer.name] = step_layer(net, layer, a_in, bias_eff, steps, out)
        if layer.kind == "readout":
            saturated[layer.name] = int(spikes[layer.name].sum())
            readouts[layer.name] = net.readout(layer, final_v[layer.name], bias_eff, steps)
    for out, readout in net.plan.outputs.items():
        outputs[out] = readouts[readout].reshape(batch, *net.graph.shape(readout))
    return EmulatorResult(outputs, spikes, final_v, steps, saturated)
