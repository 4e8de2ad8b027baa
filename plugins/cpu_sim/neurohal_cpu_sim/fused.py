"""Fused CPU loops (numba) for the per-step work the torch kernels do in many passes.

A neuron layer in torch is three elementwise calls per step, each a pass over the layer's
state, plus a pass over the spikes to count them. `neuron_steps` makes one pass: each block of
neurons keeps its membrane (and current) in cache through every step of the chunk, writes its
spikes and counts them per element on the way. `PooledSteps` does the same for a layer whose
spikes only feed a pool with tiling windows, and pools each sample's spikes while they are in
cache (and can feed the pooled values to a Dense layer): the full-size spike tensor is never
written. `DenseSteps` feeds a layer's spikes straight to the Dense layer it alone feeds.
Each does the reference's float operations in the reference's order, in the array's dtype
(numba does not contract to FMA without fastmath), so float64 spike trains stay identical to
`neurohal.reference`; only the additions inside a Dense product come in another order, as
they do in any BLAS.

Loops compile on first use and are cached on disk (``cache=True``): the first run on a machine
pays a few seconds of compilation for each kind of layer (the fused loops are compiled per
kind, `_pooled_loop`). They are serial and release the GIL (``nogil``): the engine
runs slices of a batch in threads of its own, side by side (`engine.run_batch`).
"""

from __future__ import annotations

import functools
import math

import attrs
import numba
import numpy as np
import torch
from numba.cpython.unsafe.numbers import trailing_zeros

from neurohal_cpu_sim import threads

BLOCK = 2048
"""Neurons per block: its membrane and counts stay in L1/L2 through a chunk."""

WINDOW_BLOCK = 256
"""Windows per block of `PooledSteps` with a static drive: a 2 x 2 pool's block keeps 9 KiB
of drive, membrane and window sums in L1 through every step of a chunk. Measured (LeNet-5's
if1, 32 samples x 27 steps, 1 thread): 0.56 ms per chunk at 256, 0.57 at 512 and 1,176 (the
whole sample, whose state spills to L2), 0.60 at 128."""

SPREAD_UPDATES = 1 << 18
"""Least neuron updates (steps x samples x neurons) in one `DenseSteps` call for it to split
the samples over torch's threads. Measured (2 threads, B = 64): the MLP's layers (2.6e5 and
more per call) run 1.4-1.9x faster split; LeNet-5's (1e5 and fewer, between convolutions) about
4% slower: letting torch's OpenMP workers go and restart costs more than such a call."""


@numba.njit(cache=True, nogil=True)
def _neuron_steps(x, x_step, out, v, cur, counts, keep_v, keep_i, thr, zero, one, cuba, reset_zero):
    """Steps ``out.shape[0]`` of neurons ``v`` (flat) driven by ``x[t * x_step]``: CubaLIF
    (``cuba``: current ``cur`` first) or LIF (IF: ``keep_v`` = 1, and ``v * 1`` is exact).
    Branches sit outside the inner loops so that those vectorize. Each update reads its
    drive before it writes its spike, so ``out`` may be ``x`` (correct, but then LLVM's alias
    check sends the loop down its scalar path)."""
    steps, m = out.shape
    for b in range((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        vb = v[lo:hi]
        cb = counts[lo:hi]
        ib = cur[lo:hi] if cuba else vb
        for t in range(steps):
            drive = x[t * x_step, lo:hi]
            spikes = out[t, lo:hi]
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


def neuron_steps(
    x: torch.Tensor,
    static: bool,
    out: torch.Tensor,
    v: torch.Tensor,
    cur: torch.Tensor | None,
    neurons: Neurons,
) -> torch.Tensor:
    """Run ``out.shape[0]`` steps of an IF (``keep_v`` = 1), LIF or CubaLIF (``cur`` given)
    layer, ``neurons``, in place on CPU tensors of one dtype.

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
    spikes = out.numpy().reshape(steps, -1)
    _neuron_steps(
        xs,
        0 if static else 1,
        spikes,
        v.numpy().reshape(-1),
        state_i,
        counts,
        *neurons.constants(dtype),
        cur is not None,
        neurons.reset_zero,
    )
    return torch.from_numpy(counts.reshape(batch, -1).sum(0, dtype=np.int64)).reshape(out.shape[2:])


BYTES_TO_BITS = np.uint64(0x0102040810204080)
"""A uint64 holding eight 0/1 bytes, times this, holds them as bits in its top byte (byte i in
bit 56 + i): the partial products all land on distinct bits, so nothing carries into them."""


@numba.njit(cache=True)
def padded(n: int, multiple: int = 64) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (compiled: the loops call it too)."""
    return (n + multiple - 1) // multiple * multiple


def aligned_full(shape: tuple[int, ...], value: float, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` filled with ``value`` that starts on a 64-byte
    boundary (numpy's start on 16): a loop's vector loads from it then split no cache lines
    where its rows are whole vectors."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    memory = np.empty(size + 64, np.uint8)
    start = -memory.ctypes.data % 64
    out = memory[start : start + size].view(dtype).reshape(shape)
    out.fill(value)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _aligned_empty(n, like):
    """An uninitialised array of ``n`` elements of ``like``'s dtype that starts on a 64-byte
    boundary (numba's own start 32 bytes off one), for accumulators read and written a whole
    vector at a time."""
    spare = 64 // like.itemsize
    memory = np.empty(n + spare, like.dtype)
    skip = ((64 - np.int64(memory.ctypes.data) % 64) % 64) // like.itemsize
    return memory[skip : skip + n]


@numba.njit(cache=True, nogil=True, inline="always")
def _fired_list(flags, z, where, fired, values, divisor):
    """The positions q whose ``flags[q]`` is 1, in order, as ``fired[k] = where[q]`` and
    ``values[k] = z[q] / divisor`` (``z[q]`` when ``divisor`` is 0); returns their count.
    ``flags`` (uint8, its length a multiple of 64) is read eight bytes a word, packed into 64
    bits at a time, and the loop visits only the set bits: one hard-to-predict branch per 64
    positions rather than one per 8 (LeNet-5's if2 loop up to its Dense product, 32 samples x
    26 steps: 0.50 against 0.58 ms a chunk visiting the set bytes of each word instead)."""
    words = flags.view(np.uint64)
    k = 0
    for g in range(words.shape[0] // 8):
        bits = np.uint64(0)
        for i in range(8):
            packed = (words[g * 8 + i] * BYTES_TO_BITS) >> np.uint64(56)
            bits |= packed << np.uint64(8 * i)
        while bits:
            q = g * 64 + np.int64(trailing_zeros(bits))
            fired[k] = where[q]
            values[k] = z[q] / divisor if divisor > 0 else z[q]
            k += 1
            bits &= bits - np.uint64(1)
    return k


@numba.njit(cache=True, nogil=True, inline="always")
def _pooled_values(sums, out, divisor):
    """``out[j] = sums[j] / divisor``, or the sums themselves when ``divisor`` is 0 (a sum
    pool)."""
    if divisor > 0:
        for j in range(out.shape[0]):
            out[j] = sums[j] / divisor
    else:
        for j in range(out.shape[0]):
            out[j] = sums[j]


@numba.njit(cache=True, nogil=True, inline="always")
def _emit(a, lo, out, y, wt, active, spiked, flags, where, fired, values, dense, zero, divisor):
    """One step's window sums ``a`` of windows ``lo ..``: their pooled values (divided by
    ``divisor`` unless it is 0) into ``out[lo ..]``, or with ``dense`` each nonzero one times
    its row of ``wt`` added into ``y``; ``active`` counts the nonzero ones per window and
    ``spiked`` adds up the sums (int32 per window: the counts vectorize, and a call's totals
    fit)."""
    n = a.shape[0]
    act = active[lo : lo + n]
    spk = spiked[lo : lo + n]
    for j in range(n):
        h = a[j]
        act[j] += np.int32(h != zero)
        spk[j] += np.int32(h)
    if dense:
        marks = flags[: padded(n)]
        for j in range(n):
            marks[j] = np.uint8(a[j] != zero)
        marks[n:] = 0
        k = _fired_list(marks, a, where[lo:], fired, values, divisor)
        _add_scaled_rows(y, wt, fired, values, k)
    else:
        _pooled_values(a, out[lo : lo + n], divisor)


@functools.cache
def _pooled_loop(cuba: bool, reset_zero: bool, gather: bool, uncovered: bool, dense: bool):
    """The `PooledSteps` loop for one kind of layer: CubaLIF or not, reset to zero or by
    subtraction, drive gathered per step or static, neurons left uncovered or not, pooled
    values stored or fed to a Dense layer. The kinds are constants of each compiled loop, so it
    holds only its own paths: one loop taking them as arguments ran LeNet-5's if1 1.2x slower
    (0.81 against 0.67 ms a chunk)."""

    @numba.njit(cache=True, nogil=True)
    def loop(xs, xs_rest, xg, order, order_rest, out, v, v_rest, cur, cur_rest, pcounts,
             wt, y, keep_v, keep_i, thr, zero, one, divisor):  # fmt: skip
        """Steps ``out.shape[0]`` of samples whose covered neurons ``v[p]`` are ``(area, Q)``
        in window order (`window_order`: row k holds window element k of every window) and
        whose uncovered ones are ``v_rest[p]``. Strips ``v[p, k]`` add their spikes into
        Q-long window sums, so pooling is contiguous adds. ``out[t, p]`` gets the sums
        (divided by ``divisor`` unless it is 0), ``pcounts`` the nonzero ones per window; with
        ``dense``, the pooled values are not stored: each nonzero one, times its row of ``wt``
        (a Dense weight transposed, ``(Q, M)``), is added into ``y[t, p]`` instead. The
        drive is ``xs[p]`` / ``xs_rest[p]`` (in window order, the same every step), or
        (``gather``) taken from ``xg[t, p]`` (natural order) through ``order`` /
        ``order_rest``. Each update is `_neuron_steps`'s, in its order.

        A static drive runs block by block of `WINDOW_BLOCK` windows, each through every step
        with its drive and state in L1 (a whole sample's state would spill to L2); a gathered
        one step by step, each step's drive row read once. The uncovered neurons are one more
        strip, their spikes summed into ``spare``. Spikes are counted as window sums, not per
        neuron: returns the covered and the uncovered neurons' spike totals."""
        steps, batch, windows = y.shape[0], y.shape[1], v.shape[2]
        area = v.shape[1]
        rest = v_rest.shape[1]
        block = windows if gather else min(WINDOW_BLOCK, windows)
        acc = np.empty(block, out.dtype)
        spare = np.zeros(rest, out.dtype)
        drive = np.empty(max(block, rest), out.dtype)
        scratch = np.empty(max(block, rest), out.dtype)
        fired = np.empty(block, np.int64)
        values = np.empty(block, out.dtype)
        flags = np.zeros(padded(block), np.uint8)
        where = np.arange(windows)
        active = np.zeros(windows, np.int32)
        sums = np.zeros(windows, np.int32)
        spiked = 0
        for p in range(batch):
            strips = (windows + block - 1) // block + (1 if uncovered else 0)
            for b in range(strips):
                tail = uncovered and b == strips - 1  # the uncovered neurons, one strip
                lo = windows if tail else b * block
                hi = windows + rest if tail else min(lo + block, windows)
                n = hi - lo
                a = spare if tail else acc[:n]
                for t in range(steps):
                    if not tail:
                        a[:] = zero
                    for k in range(1 if tail else area):
                        if tail:
                            vb = v_rest[p]
                            cb = cur_rest[p] if cuba else vb
                            if gather:
                                row = xg[t, p]
                                for j in range(n):
                                    drive[j] = row[order_rest[j]]
                                d = drive[:n]
                            else:
                                d = xs_rest[p]
                        else:
                            vb = v[p, k, lo:hi]
                            cb = cur[p, k, lo:hi] if cuba else vb
                            if gather:
                                row = xg[t, p]
                                idx = order[k]
                                for j in range(n):
                                    drive[j] = row[idx[lo + j]]
                                d = drive[:n]
                            else:
                                d = xs[p, k, lo:hi]
                        if cuba:
                            for j in range(n):
                                c = cb[j] * keep_i + d[j]
                                cb[j] = c
                                scratch[j] = c
                            d = scratch[:n]
                        if reset_zero:
                            for j in range(n):
                                vj = vb[j] * keep_v + d[j]
                                s = vj >= thr
                                a[j] += one if s else zero
                                vb[j] = zero if s else vj
                        else:
                            for j in range(n):
                                vj = vb[j] * keep_v + d[j]
                                s = vj >= thr
                                unit = one if s else zero
                                a[j] += unit
                                vb[j] = vj - thr * unit
                    if tail:
                        continue
                    _emit(a, lo, out[t, p], y[t, p], wt, active, sums, flags, where, fired,
                          values, dense, zero, divisor)  # fmt: skip
            for j in range(rest):
                spiked += np.int64(spare[j])
                spare[j] = zero
        covered = 0
        for j in range(windows):
            pcounts[j] += active[j]
            covered += sums[j]
        return covered, spiked

    return loop


@functools.cache
def _natural_loop(cuba: bool, reset_zero: bool, dense: bool, kh: int, kw: int, ow: int):
    """`_pooled_loop` for a per-step drive whose kh x kw windows tile every neuron: the state
    stays in natural (C, H, W) order and each step updates it kw neurons at a time, summing
    their spikes as it goes (kw-sums along rows, ``sums``); then ``z[q]``, the sum of kw-sums
    q, q + OW, ..., (kh - 1) OW, is a window's sum wherever q starts a window (``(q // OW) %
    kh == 0``; elsewhere it is junk that is never read). Both passes are contiguous and
    vectorize. The geometry (kh, kw, OW) is a constant of the compiled loop, like the layer
    kinds: with OW an argument, the same loop ran 1.19-1.23 against 0.89-0.92 ms a chunk.
    LeNet-5's if2 + pool2 + fc1 (32 samples x 26 steps, 1 thread, alternated in one
    process): 1.06-1.08 against 1.37-1.44 ms a chunk for the loop that summed rows in slices
    of OW (1.48-1.51 against 1.77-1.80 ms with the caches flushed before each call). The
    membrane update is written out here, as in the other loops, rather than shared through a
    helper: numba's inlined helper ran them up to 1.5x slower (LeNet-5's if1: 0.81-1.04
    against 0.67 ms)."""

    @numba.njit(cache=True, nogil=True)
    def loop(x, out, v, cur, pcounts, wt, y, keep_v, keep_i, thr, zero, one, divisor):
        """Steps ``y.shape[0]`` of samples ``v[p]`` (natural order, flat) driven by
        ``x[t, p]``, their windows (``ow`` per row) summed and emitted as by `_pooled_loop`
        (with ``dense``, into ``y[t, p]`` through rows of ``wt`` padded to whole vectors).
        Returns the spikes."""
        steps, batch, n = y.shape[0], y.shape[1], v.shape[1]
        windows = n // (kh * kw)
        pairs = n // kw
        span = pairs - (kh - 1) * ow
        room = padded(span)
        valid = np.zeros(room, np.uint8)
        where = np.zeros(room, np.int64)  # q's window, in natural (C, OH, OW) order
        for q in range(span):
            if (q // ow) % kh == 0:
                valid[q] = 1
                where[q] = (q // (kh * ow)) * ow + q % ow
        sums = np.empty(pairs, out.dtype)
        z = np.zeros(room, out.dtype)
        flags = np.zeros(room, np.uint8)
        active = np.zeros(room, np.int32)
        spiked = np.zeros(room, np.int32)
        scratch = np.empty(n, out.dtype)
        fired = np.empty(windows, np.int64)
        values = np.empty(windows, out.dtype)
        acc = _aligned_empty(wt.shape[1], out)
        m = y.shape[2]
        for p in range(batch):
            vp = v[p]
            cp = cur[p] if cuba else vp
            for t in range(steps):
                d = x[t, p]
                if cuba:
                    for j in range(n):
                        c = cp[j] * keep_i + d[j]
                        cp[j] = c
                        scratch[j] = c
                    d = scratch
                if reset_zero:
                    for i in range(pairs):
                        h = zero
                        for e in range(kw):
                            j = i * kw + e
                            vj = vp[j] * keep_v + d[j]
                            s = vj >= thr
                            h += one if s else zero
                            vp[j] = zero if s else vj
                        sums[i] = h
                else:
                    for i in range(pairs):
                        h = zero
                        for e in range(kw):
                            j = i * kw + e
                            vj = vp[j] * keep_v + d[j]
                            s = vj >= thr
                            unit = one if s else zero
                            h += unit
                            vp[j] = vj - thr * unit
                        sums[i] = h
                for q in range(span):
                    h = sums[q]
                    for e in range(1, kh):
                        h += sums[q + e * ow]
                    z[q] = h
                    active[q] += np.int32(h != zero)
                    spiked[q] += np.int32(h)
                    flags[q] = np.uint8(h != zero) & valid[q]
                if dense:
                    k = _fired_list(flags, z, where, fired, values, divisor)
                    acc[:] = zero
                    _add_scaled_rows(acc, wt, fired, values, k)
                    yt = y[t, p]
                    for o in range(m):
                        yt[o] = acc[o]
                else:
                    ot = out[t, p]
                    for r in range(windows // ow):
                        zr = z[r * kh * ow : r * kh * ow + ow]
                        _pooled_values(zr, ot[r * ow : (r + 1) * ow], divisor)
        covered = 0
        for q in range(span):
            if valid[q]:
                pcounts[where[q]] += active[q]
                covered += spiked[q]
        return covered

    return loop


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
    return np.concatenate([inside.reshape(-1), grid[~covered]]).astype(np.uint32)


@attrs.frozen
class Pooled:
    """A tiling pool of ``kernel`` windows over ``(C, H, W)`` neurons, in window order: the
    covered neurons as ``(area, Q)`` (`window_order`), then ``rest`` uncovered ones."""

    shape: tuple[int, int, int]
    kernel: tuple[int, int]

    @property
    def windows(self) -> int:
        c, h, w = self.shape
        return c * (h // self.kernel[0]) * (w // self.kernel[1])

    @property
    def area(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def rest(self) -> int:
        return math.prod(self.shape) - self.area * self.windows

    def order(self) -> np.ndarray:
        return window_order(*self.shape, *self.kernel)

    def state(self, batch: int, value: float, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Covered ``(B, area, Q)`` and uncovered ``(B, rest)`` arrays filled with ``value``."""
        return (
            aligned_full((batch, self.area, self.windows), value, dtype),
            aligned_full((batch, self.rest), value, dtype),
        )

    def permute(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A static drive ``(B, C * H * W)`` in window order: covered and uncovered parts."""
        order = self.order()
        cut = self.area * self.windows
        covered = np.take(x, order[:cut], axis=1).reshape(len(x), self.area, self.windows)
        return covered, np.take(x, order[cut:], axis=1)


@attrs.frozen
class DenseRows:
    """A Dense layer's weight ``(M, N)`` as the fused loops read it: ``rows`` is ``W.T``,
    ``(N, M')``, each row zero-padded to whole 64-byte vectors (``M'`` a multiple of 16
    float32 or 8 float64) and starting on a 64-byte boundary, and ``width`` is M. The loops
    add whole padded rows into a padded accumulator and keep its first M values: rows that
    start on a vector and end on one, no tail loop. LeNet-5's fc1 (120 outputs) in its pool
    loop: 0.37 against 0.52 ms a chunk unpadded; the whole loop 0.95 ms a chunk with the rows
    on 64-byte boundaries, 1.03-1.11 ms 32 or 16 bytes off (numpy aligns to 16)."""

    rows: np.ndarray
    width: int

    @classmethod
    def of(cls, weight: np.ndarray) -> DenseRows:
        m, n = weight.shape
        rows = aligned_full((n, padded(m, 64 // weight.itemsize)), 0.0, weight.dtype)
        rows[:, :m] = weight.T
        return cls(rows, m)


@attrs.frozen
class Neurons:
    """A neuron layer's constants as the fused loops take them: CubaLIF or not, the share of
    the membrane (``keep_v``) and of the current (``keep_i``) kept each step, the threshold,
    and whether a spike resets the membrane to zero (else by subtraction)."""

    cuba: bool
    keep_v: float
    keep_i: float
    threshold: float
    reset_zero: bool

    def constants(self, dtype: type) -> tuple:
        """``(keep_v, keep_i, threshold, 0, 1)`` in ``dtype``, the loops' last arguments."""
        return dtype(self.keep_v), dtype(self.keep_i), dtype(self.threshold), dtype(0), dtype(1)


class PooledSteps:
    """`neuron_steps` followed by sum (or, ``average``, mean) pooling over the tiling windows
    of ``pool`` (stride = kernel, no padding), without storing the spikes; with
    ``dense_rows`` (a Dense layer's, `DenseRows`), followed by that layer's product on the
    pooled values (without its bias), without storing them either.

    One per layer and run: what every chunk shares (the compiled loop, the gather order, the
    constants) is prepared here once, so that a chunk pays only for its outputs and the loop.
    With time chunks of a few steps (`engine.Program.chunks`) the Python around each call
    counts: two slices' threads take turns at the interpreter between their loops.

    The drive ``x`` of a call is per step, ``(steps, B, C, H, W)`` (contiguous), or (``static``)
    the same every step, already permuted by `Pooled.permute`. The state ``v`` and ``cur``
    (CubaLIF's current, else None) comes from `Pooled.state` and is updated: in window
    order, except with a per-step drive and windows that cover every neuron; then in natural
    order (the loop's ``natural`` drive). Windows add their 0/1 spikes exactly in any order;
    the mean is one division of that sum, as the reference's window sum then divide. Each
    product is the reference's (pooled value times weight); they are summed in a fixed order,
    the reference's matrix product in another, as any BLAS.
    """

    def __init__(
        self,
        pool: Pooled,
        static: bool,
        neurons: Neurons,
        average: bool,
        dense_rows: DenseRows | None,
        dtype: type,
    ) -> None:
        self.pool = pool
        self.static = static
        self.cuba = neurons.cuba
        self.dense_rows = dense_rows
        self.dtype = dtype
        kh, kw = pool.kernel
        c, h, w = pool.shape
        self.pooled_shape = (c, h // kh, w // kw)
        self.windows = pool.windows
        self.natural = not static and not pool.rest
        none = np.zeros((1, 1, 1), dtype), np.zeros((1, 1), dtype)
        self.no_current = none
        order = pool.order()
        cut = pool.area * pool.windows
        self.gather = (order[:cut].reshape(pool.area, pool.windows), order[cut:])
        self.no_gather = (order[:0].reshape(0, 0), order[:0])
        self.no_static = none
        self.no_dense = np.empty((1, 1), dtype)
        self.constants = (*neurons.constants(dtype), dtype(pool.area if average else 0))
        dense = dense_rows is not None
        kind = neurons.cuba, neurons.reset_zero
        if self.natural:
            self.loop = _natural_loop(*kind, dense, kh, kw, w // kw)
        else:
            self.loop = _pooled_loop(*kind, not static, pool.rest > 0, dense)

    def __call__(
        self,
        x: np.ndarray | tuple[np.ndarray, np.ndarray],
        v: tuple[np.ndarray, np.ndarray],
        cur: tuple[np.ndarray, np.ndarray] | None,
        steps: int,
    ) -> tuple[np.ndarray, int, int, np.ndarray]:
        """Run ``steps`` steps. Returns the pooled values ``(steps, B, C, OH, OW)`` (or the
        products ``(steps, B, M)``), the spikes of the neurons the windows cover and of those
        they do not, and the nonzero pooled values per element of ``(C, OH, OW)``, over all
        steps and samples (int64)."""
        batch = v[0].shape[0]
        dtype = self.dtype
        if self.dense_rows is not None:  # nothing stored, but out[t, p] stays a valid row
            out = np.empty((steps, batch, 0), dtype)
            y = np.zeros((steps, batch, self.dense_rows.width), dtype)
            weight_t = self.dense_rows.rows
        else:
            out = np.empty((steps, batch, self.windows), dtype)
            y, weight_t = np.empty((steps, batch, 0), dtype), self.no_dense
        pcounts = np.zeros(self.windows, np.int64)
        cur = cur or self.no_current
        if self.natural:
            flat = (batch, -1)
            state_i = cur[0].reshape(flat) if self.cuba else cur[0].reshape(1, -1)
            covered = self.loop(
                x.reshape(steps, batch, -1), out, v[0].reshape(flat), state_i, pcounts,
                weight_t, y, *self.constants,
            )  # fmt: skip
            uncovered = 0
        else:
            if self.static:
                (xs, xs_rest), xg, gather = x, self.no_static[0], self.no_gather
            else:
                (xs, xs_rest), xg, gather = self.no_static, x.reshape(steps, batch, -1), self.gather
            covered, uncovered = self.loop(
                xs, xs_rest, xg, *gather, out, v[0], v[1], cur[0], cur[1], pcounts,
                weight_t, y, *self.constants,
            )  # fmt: skip
        values = y if self.dense_rows is not None else out.reshape(steps, batch, *self.pooled_shape)
        return values, int(covered), int(uncovered), pcounts.reshape(self.pooled_shape)


@numba.njit(cache=True, nogil=True, inline="always")
def _add_scaled_rows(acc, wt, rows, scales, k):
    """``acc += scales[0] * wt[rows[0]] + ... + scales[k - 1] * wt[rows[k - 1]]``, four rows
    at a time summed as ``(a + b) + (c + d)`` before they meet ``acc`` (a quarter of the loads
    and stores of ``acc``, which bound this loop)."""
    q = 0
    while q + 4 <= k:
        r0, r1, r2, r3 = wt[rows[q]], wt[rows[q + 1]], wt[rows[q + 2]], wt[rows[q + 3]]
        s0, s1, s2, s3 = scales[q], scales[q + 1], scales[q + 2], scales[q + 3]
        for o in range(acc.shape[0]):
            acc[o] += (s0 * r0[o] + s1 * r1[o]) + (s2 * r2[o] + s3 * r3[o])
        q += 4
    while q < k:
        row = wt[rows[q]]
        s0 = scales[q]
        for o in range(acc.shape[0]):
            acc[o] += s0 * row[o]
        q += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _add_rows(acc, wt, fired, k):
    """``acc += wt[fired[0]] + ... + wt[fired[k - 1]]``, four rows at a time summed as
    ``(a + b) + (c + d)`` before they meet ``acc``: a quarter of the loads and stores of
    ``acc``, which bound this loop (any order is as exact as a BLAS product's)."""
    q = 0
    while q + 4 <= k:
        r0, r1, r2, r3 = wt[fired[q]], wt[fired[q + 1]], wt[fired[q + 2]], wt[fired[q + 3]]
        for o in range(acc.shape[0]):
            acc[o] += (r0[o] + r1[o]) + (r2[o] + r3[o])
        q += 4
    while q < k:
        row = wt[fired[q]]
        for o in range(acc.shape[0]):
            acc[o] += row[o]
        q += 1


@functools.cache
def _dense_loop(cuba: bool, reset_zero: bool):
    """The `DenseSteps` loop for one kind of layer (CubaLIF or not, reset to zero or by
    subtraction), the kind constants of the compiled loop, as for `_pooled_loop`."""

    @numba.njit(cache=True, nogil=True)
    def loop(x, x_step, v, cur, wt, bias, has_bias, out, lo, hi, keep_v, keep_i, thr,
             zero, one):  # fmt: skip
        """Steps ``out.shape[0]`` of samples ``lo .. hi`` of neurons ``v[p]`` driven by
        ``x[t * x_step, p]`` (as `_neuron_steps` orders each update), each step's spikes
        going straight into a Dense layer: ``out[t, p] = (sum of wt[j] over the neurons j that
        fired) + bias``. Each step runs every sample, so ``x`` and ``out`` go by in order
        (the samples' state, B x N, stays in L2); sample by sample, all steps each, wrote
        ``out`` a row per step 4-64 KiB apart: the MLP at B = 256, T = 128 ran 10.5 against
        13.3 ms that way (2 threads, medians, alternated). A step's spikes become a short list
        of fired indices, so the spike tensor is never written and silent neurons cost no
        adds. Returns the spikes (the fired indices' count, summed)."""
        steps, m = out.shape[0], out.shape[2]
        n = v.shape[1]
        flags = np.empty(n, np.uint8)
        fired = np.empty(n, np.int32)
        acc = _aligned_empty(wt.shape[1], out)  # rows padded to whole vectors
        scratch = np.empty(n, out.dtype)
        spikes = 0
        for t in range(steps):
            for p in range(lo, hi):
                vp = v[p]
                cp = cur[p] if cuba else scratch
                drive = x[t * x_step, p]
                if cuba:
                    for j in range(n):
                        c = cp[j] * keep_i + drive[j]
                        cp[j] = c
                        scratch[j] = c
                    drive = scratch
                if reset_zero:
                    for j in range(n):
                        vj = vp[j] * keep_v + drive[j]
                        s = vj >= thr
                        flags[j] = np.uint8(s)
                        vp[j] = zero if s else vj
                else:
                    for j in range(n):
                        vj = vp[j] * keep_v + drive[j]
                        s = vj >= thr
                        flags[j] = np.uint8(s)
                        vp[j] = vj - thr * (one if s else zero)
                k = 0
                for j in range(n):  # branch-free: spikes are too irregular to predict
                    fired[k] = j
                    k += flags[j]
                spikes += k
                acc[:] = zero
                _add_rows(acc, wt, fired, k)
                ot = out[t, p]
                if has_bias:
                    for o in range(m):
                        ot[o] = acc[o] + bias[o]
                else:
                    for o in range(m):
                        ot[o] = acc[o]
        return spikes

    return loop


class DenseSteps:
    """`neuron_steps` followed by a Dense layer (``x @ W.T + b``, its weight as `DenseRows`)
    on its spikes, without storing them. One per layer and run, prepared once, as
    `PooledSteps`.

    The drive of a call is ``(B, N)`` when ``static``, else ``(steps, B, N)`` (contiguous);
    the state ``v`` and ``cur`` (CubaLIF's current, else None) is ``(B, N)``, updated. With
    torch on several threads the samples are split over as many of cpu_sim's
    (`threads.spread`). A spike is 1, so each product is the weight itself, exactly; the
    products are summed in a fixed order (the reference's matrix product in another, as any
    BLAS), then the bias is added, as the reference does."""

    def __init__(
        self,
        static: bool,
        neurons: Neurons,
        dense_rows: DenseRows,
        bias: np.ndarray | None,
    ) -> None:
        self.static = static
        self.rows = dense_rows.rows
        self.width = dense_rows.width
        dtype = self.rows.dtype.type
        self.bias = (self.rows[0], False) if bias is None else (bias, True)
        self.constants = neurons.constants(dtype)
        self.loop = _dense_loop(neurons.cuba, neurons.reset_zero)

    def __call__(
        self, x: np.ndarray, v: np.ndarray, cur: np.ndarray | None, steps: int
    ) -> tuple[np.ndarray, int]:
        """Run ``steps`` steps. Returns the Dense output ``(steps, B, M)`` and the spikes
        over all steps and samples."""
        batch, n = v.shape
        xs = x.reshape(1 if self.static else steps, batch, n)
        state_i = v[:0] if cur is None else cur
        out = np.empty((steps, batch, self.width), self.rows.dtype)

        def work(lo: int, hi: int) -> int:
            return self.loop(
                xs, 0 if self.static else 1, v, state_i, self.rows, *self.bias, out, lo, hi,
                *self.constants,
            )  # fmt: skip

        parts = torch.get_num_threads() if steps * batch * n >= SPREAD_UPDATES else 1
        if parts == 1:
            return out, int(work(0, batch))
        return out, sum(int(k) for k in threads.spread(work, batch, parts))


@numba.njit(cache=True, nogil=True)
def _running_mean(x, x_step, sums, fresh, counts, out):
    """``out[t] = (sums + x[0] + ... + x[t]) / counts[t]``, each sum the previous plus this
    step; ``fresh``: no earlier sum, the first is ``x[0]`` itself. ``sums`` ends as the last."""
    for t in range(out.shape[0]):
        xt = x[t * x_step]
        ot = out[t]
        if fresh and t == 0:
            for j in range(out.shape[1]):
                sums[j] = xt[j]
        else:
            for j in range(out.shape[1]):
                sums[j] = sums[j] + xt[j]
        for j in range(out.shape[1]):
            ot[j] = sums[j] / counts[t]


def running_mean(
    x: torch.Tensor, static: bool, sums: torch.Tensor | None, t0: int, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Readout over steps ``t0 .. t0 + steps``: the running mean of ``x`` (``(B, *shape)``
    when ``static``, else ``(steps, B, *shape)``, a contiguous CPU tensor) carrying the
    running ``sums`` (None at step 0). Returns the means ``(steps, B, *shape)`` and the sums
    to carry; the reference's additions and divisions, in its order."""
    values = x.numpy().reshape(1 if static else steps, -1)
    carried = np.empty(values.shape[1], values.dtype) if sums is None else sums.numpy().ravel()
    counts = np.arange(t0 + 1, t0 + steps + 1).astype(values.dtype)
    out = np.empty((steps, values.shape[1]), values.dtype)
    _running_mean(values, 0 if static else 1, carried, sums is None, counts, out)
    shape = (steps, *x.shape[int(not static) :])
    return torch.from_numpy(out).reshape(shape), torch.from_numpy(carried)


def usable(x: torch.Tensor) -> bool:
    """Whether the fused loops can take ``x``: a contiguous float32/float64 CPU tensor."""
    return (
        x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()
    )
