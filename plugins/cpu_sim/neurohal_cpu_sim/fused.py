"""Fused CPU loops (numba) for the per-step work the torch kernels do in many passes.

A neuron layer in torch is three elementwise calls per step, each a pass over the layer's
state, plus a pass over the spikes to count them. `neuron_steps` makes one pass: each block of
neurons keeps its membrane (and current) in cache through every step of the chunk, writes its
spikes and counts them per element on the way. `pooled_steps` does the same for a layer whose
spikes only feed a pool with tiling windows, and pools each sample's spikes while they are in
cache: the full-size spike tensor is never written. Each does the reference's float
operations in the reference's order, in the array's dtype (numba does not contract to FMA
without fastmath), so float64 spike trains stay identical to `neurohal.reference`.

Loops compile on first use and are cached on disk (``cache=True``): the first run on a machine
pays a few seconds of compilation. They are serial and release the GIL (``nogil``): the engine
runs slices of a batch in threads of its own, side by side (`engine.run_batch`).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import torch

BLOCK = 2048
"""Neurons per block: its membrane and counts stay in L1/L2 through a chunk."""


@numba.njit(cache=True, nogil=True)
def _neuron_steps(x, x_step, out, v, cur, counts, keep_v, keep_i, thr, zero, one, cuba, reset_zero):
    """Steps ``out.shape[0]`` of neurons ``v`` (flat) driven by ``x[t * x_step]``: CubaLIF
    (``cuba``: current ``cur`` first) or LIF (IF: ``keep_v`` = 1, and ``v * 1`` is exact).
    Branches sit outside the inner loops so that those vectorize."""
    steps, m = out.shape
    for b in range((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        vb = v[lo:hi]
        cb = counts[lo:hi]
        ib = cur[lo:hi] if cuba else vb
        spikes = np.empty(hi - lo, out.dtype)  # not out itself: out may be x
        for t in range(steps):
            drive = x[t * x_step, lo:hi]
            ot = out[t, lo:hi]
            if cuba:
                for j in range(hi - lo):
                    ib[j] = ib[j] * keep_i + drive[j]
                drive = ib
            if reset_zero:
                for j in range(hi - lo):
                    vj = vb[j] * keep_v + drive[j]
                    s = vj >= thr
                    spikes[j] = one if s else zero
                    cb[j] += np.int32(s)
                    vb[j] = zero if s else vj
            else:
                for j in range(hi - lo):
                    vj = vb[j] * keep_v + drive[j]
                    s = vj >= thr
                    unit = one if s else zero
                    spikes[j] = unit
                    cb[j] += np.int32(s)
                    vb[j] = vj - thr * unit
            ot[:] = spikes


def neuron_steps(
    x: torch.Tensor,
    static: bool,
    out: torch.Tensor,
    v: torch.Tensor,
    cur: torch.Tensor | None,
    keep_v: float,
    keep_i: float,
    threshold: float,
    reset_zero: bool,
) -> torch.Tensor:
    """Run ``out.shape[0]`` steps of an IF (``keep_v`` = 1), LIF or CubaLIF (``cur`` given)
    layer in place on CPU tensors of one dtype.

    ``x``: ``(B, *shape)`` when ``static`` (the same drive every step), else
    ``(steps, B, *shape)``; ``out`` (may be ``x`` itself) receives the spikes; ``v`` and ``cur``
    (CubaLIF's synaptic current, else None) are ``(B, *shape)`` state, updated. Returns the
    spikes per element of ``shape`` over all steps and samples (int64).
    """
    dtype = x.numpy().dtype.type
    steps, batch = out.shape[0], out.shape[1]
    xs = x.numpy().reshape(1 if static else steps, -1)
    counts = np.zeros(v.numel(), np.int32)
    state_i = cur.numpy().reshape(-1) if cur is not None else np.zeros(1, dtype)
    _neuron_steps(
        xs,
        0 if static else 1,
        out.numpy().reshape(steps, -1),
        v.numpy().reshape(-1),
        state_i,
        counts,
        dtype(keep_v),
        dtype(keep_i),
        dtype(threshold),
        dtype(0),
        dtype(1),
        cur is not None,
        reset_zero,
    )
    return torch.from_numpy(counts.reshape(batch, -1).sum(0, dtype=np.int64)).reshape(out.shape[2:])


@numba.njit(cache=True, nogil=True)
def _pooled_steps(
    x, x_step, order, out, v, cur, counts, pcounts, keep_v, keep_i, thr, zero, one, cuba,
    reset_zero, area
):  # fmt: skip
    """`_neuron_steps` on samples ``v[p]`` whose neurons are in window order (`window_order`):
    each step's spikes stay in a sample buffer, and window element k of every window is the
    slice ``k * Q .. (k + 1) * Q``, so the window sums into ``out[t, p]`` (Q values, divided by
    ``area`` unless it is 0) are contiguous adds; ``pcounts[p]`` gains the nonzero sums.
    The drive ``x[t * x_step, p]`` is in window order already when ``order`` is empty, else
    in natural order and gathered through ``order``."""
    steps, samples, windows = out.shape
    n = v.shape[1]
    for p in range(samples):
        vb = v[p]
        cb = counts[p]
        ib = cur[p] if cuba else vb
        pc = pcounts[p]
        spikes = np.empty(n, out.dtype)
        gathered = np.empty(n if order.size else 0, out.dtype)
        for t in range(steps):
            drive = x[t * x_step, p]
            if order.size:
                for j in range(n):
                    gathered[j] = drive[order[j]]
                drive = gathered
            ot = out[t, p]
            if cuba:
                for j in range(n):
                    ib[j] = ib[j] * keep_i + drive[j]
                drive = ib
            if reset_zero:
                for j in range(n):
                    vj = vb[j] * keep_v + drive[j]
                    s = vj >= thr
                    spikes[j] = one if s else zero
                    cb[j] += np.int32(s)
                    vb[j] = zero if s else vj
            else:
                for j in range(n):
                    vj = vb[j] * keep_v + drive[j]
                    s = vj >= thr
                    unit = one if s else zero
                    spikes[j] = unit
                    cb[j] += np.int32(s)
                    vb[j] = vj - thr * unit
            for q in range(windows):
                ot[q] = spikes[q]
            for k in range(1, area.shape[0]):
                part = spikes[k * windows : (k + 1) * windows]
                for q in range(windows):
                    ot[q] += part[q]
            if area[0] > 0:
                for q in range(windows):
                    ot[q] = ot[q] / area[0]
            for q in range(windows):
                pc[q] += np.int32(ot[q] != zero)


@functools.lru_cache(maxsize=64)
def window_order(c: int, h: int, w: int, kh: int, kw: int) -> np.ndarray:
    """A sample's flat (C, H, W) positions in window order: for each window element (a, b),
    in row-major order, that element of every tiling window in (C, OH, OW) order; then the
    positions no window covers. Pooled values come out in natural (C, OH, OW) order."""
    oh, ow = h // kh, w // kw
    grid = np.arange(c * h * w).reshape(c, h, w)
    inside = grid[:, : oh * kh, : ow * kw].reshape(c, oh, kh, ow, kw).transpose(2, 4, 0, 1, 3)
    covered = np.zeros((c, h, w), bool)
    covered[:, : oh * kh, : ow * kw] = True
    return np.concatenate([inside.reshape(-1), grid[~covered]]).astype(np.int32)


def pooled_steps(
    x: torch.Tensor,
    static: bool,
    v: torch.Tensor,
    cur: torch.Tensor | None,
    keep_v: float,
    keep_i: float,
    threshold: float,
    reset_zero: bool,
    steps: int,
    kernel: tuple[int, int],
    average: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`neuron_steps` followed by sum (or, ``average``, mean) pooling over windows that tile
    each (H, W) plane (stride = kernel, no padding), without storing the spikes.

    ``x``: ``(B, C, H, W)`` when ``static``, else ``(steps, B, C, H, W)``, contiguous. ``v``
    and ``cur``: ``(B, C * H * W)`` state in `window_order`, updated. Returns the pooled values
    ``(steps, B, C, OH, OW)``, the spikes per neuron of ``(C, H, W)`` and the nonzero pooled
    values per element of ``(C, OH, OW)``, both over all steps and samples (int64). Windows add
    their 0/1 spikes exactly in any order; the mean is one division of that sum, as the
    reference's window sum then divide."""
    dtype = x.numpy().dtype.type
    c, h, w = x.shape[-3:]
    batch = v.shape[0]
    kh, kw = kernel
    oh, ow = h // kh, w // kw
    order = window_order(c, h, w, kh, kw)
    drive = x.numpy().reshape(1 if static else steps, batch, c * h * w)
    if static:  # permuted once here instead of gathered at every step
        drive, gather = np.take(drive, order, axis=2), order[:0]
    else:
        gather = order
    out = np.empty((steps, batch, c * oh * ow), dtype)
    counts = np.zeros((batch, c * h * w), np.int32)
    pcounts = np.zeros((batch, c * oh * ow), np.int32)
    state_i = cur.numpy() if cur is not None else np.zeros((1, 1), dtype)
    area = np.zeros(kh * kw, dtype)
    area[0] = kh * kw if average else 0
    _pooled_steps(
        drive,
        0 if static else 1,
        gather,
        out,
        v.numpy(),
        state_i,
        counts,
        pcounts,
        dtype(keep_v),
        dtype(keep_i),
        dtype(threshold),
        dtype(0),
        dtype(1),
        cur is not None,
        reset_zero,
        area,
    )
    spikes = np.empty(c * h * w, np.int64)
    spikes[order] = counts.sum(0, dtype=np.int64)
    return (
        torch.from_numpy(out).reshape(steps, batch, c, oh, ow),
        torch.from_numpy(spikes).reshape(c, h, w),
        torch.from_numpy(pcounts.sum(0, dtype=np.int64)).reshape(c, oh, ow),
    )


def usable(x: torch.Tensor) -> bool:
    """Whether the fused loops can take ``x``: a contiguous float32/float64 CPU tensor."""
    return (
        x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()
    )
