"""The simulator: the reference's semantics, evaluated layer by layer over many timesteps.

The IR has no recurrent edges, so in topological order each node's input for every step of a
chunk of timesteps is known before the node runs. Each node is therefore evaluated once per
chunk on a ``(steps * batch, *shape)`` tensor: synapses as one large matmul or convolution,
stateless activations as one elementwise call. Only stateful nodes loop over the steps: neurons
(IF, LIF, CubaLIF: the membrane recurrence; on CPU one fused numba loop per chunk, `fused`,
also fused with a tiling pool that alone reads the spikes), Readout (the running mean) and the
Poisson Encoder (one draw per step, in the reference's order).

Values that are the same at every step (*static*: Inputs, an analog Encoder and whatever
stateless nodes compute from them alone) are kept as ``(batch, *shape)`` and computed once per
batch; they are expanded only where they meet per-step values. Memory stays bounded: inputs
are streamed in batches and time in chunks, with neuron state carried across chunks, and a
node's value is freed once its last consumer has run. On CPU a batch is split into one slice
of samples per torch thread, the slices simulated side by side in threads of their own, and a
convolution between two fused neuron layers runs with them a few steps at a time
(`_bridged_run`), so that what passes between them stays in cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np
import torch

from neurohal import ir
from neurohal.ir import Graph, Node
from neurohal_cpu_sim import fused, kernels, threads
from neurohal_cpu_sim.settings import Settings

STEP_ELEMENT_BUDGET = 1 << 22
"""Largest tensor (elements) a time chunk may store when ``time_chunk`` is None
(`Program.stored_per_step`)."""

SPLIT_MACS = 10**8
"""Least multiply-accumulates of per-step synapses per slice for `run_batch` to split a batch
over threads. Measured (2 threads, best of 6 runs, benchmarks/cpu_sim_speed.py's networks):
LeNet-5 at B x T = 64 x 32 (3e8 per slice) 15.4 ms split vs 18.5 ms whole, since its fused
neuron loops are serial and run whole on one core; the MLP at 64 x 32 (2.4e8) 1.81 ms either
way. Short runs do not amortise starting the slices: below 1e8 they run whole, their matrix
products on both threads."""

BRIDGE_SAMPLES = 32
"""Samples per group of `_bridged_run`: a group runs every step of the chunk, sub-chunk by
sub-chunk, before the next group starts, so that its neuron state stays in cache between its
sub-chunks. Measured (LeNet-5, T = 128, 2 threads, 8 runs alternated in one process), B = 256
(slices of 128): 131-133 ms with groups of 16 or 32, 135 with 64, 157-170 with none."""
BRIDGE_BYTES: int | None = None
"""Largest convolution output (bytes) of a sub-chunk of `_bridged_run`; None: the size of
the CPU's level-2 cache (`l2_cache_bytes`), so that it and the pooled values it comes from
stay in the caches between the three loops. Measured (LeNet-5, B = 64, T = 128, 2 threads,
alternated in one process, minimum / median): on a VM with 2 MiB of L2, sub-chunks of
2 MiB (10 steps) 37.9 / 40.0 ms against 39.6 / 42.1 with 1 MiB (60 runs each; B = 256
143.2 / 145.0 against 150.0 / 154.4), 0.5 MiB 45.4 / 51.5, 4 MiB 38.5 / 40.7; on the VM of
the previous round, 1 MiB 34.2-35.1 ms, 2 MiB 36.7, 0.25-0.4 MiB 36.4-37.7 (minima)."""
L2_FALLBACK_BYTES = 1 << 20
"""`l2_cache_bytes` where sysfs does not say."""

STATEFUL = (ir.IF, ir.LIF, ir.CubaLIF, ir.Readout)
BINARY_KEEPING = (ir.Output, ir.Flatten, ir.Reshape, ir.Concat, ir.MaxPool2d, ir.ReLU)
"""Nodes whose output holds only 0 and 1 when every input does."""
RESHAPING = (ir.Output, ir.Flatten, ir.Reshape)
"""Nodes whose output is their input's elements, rearranged: the same nonzero counts."""
FRESH = (ir.Dense, ir.Conv2d, ir.AvgPool2d)
"""Nodes whose kernel returns a new tensor that shares memory with nothing else."""


@attrs.frozen
class Value:
    """A node's value over a chunk: ``steps`` None means the same ``(B, *shape)`` every step,
    else ``tensor`` is ``(steps * B, *shape)``, step-major."""

    tensor: torch.Tensor
    steps: int | None
    binary: bool = False
    """Holds only 0 and 1 (spikes), so counting needs no comparison."""
    memo: dict = attrs.field(factory=dict, eq=False, repr=False)
    """Per-element nonzero counts (``active``) once computed: a neuron layer's spike count
    and its consumers' synops come from one pass; ``counters``: the node's own counters for
    the chunk, when the fused loop that made the value counted them."""

    def active(self) -> torch.Tensor:
        if "active" not in self.memo:
            self.memo["active"] = kernels.active_counts(self.tensor, self.binary)
        return self.memo["active"]


@attrs.frozen
class Clock:
    """Where a chunk lies: steps ``t0 .. t0 + steps`` (None for analog graphs) of samples
    ``offset .. offset + batch`` out of ``total``."""

    t0: int
    steps: int | None
    batch: int
    offset: int
    total: int


HEAP_MMAP_THRESHOLD = 1 << 26
HEAP_TRIM_THRESHOLD = 1 << 28


@functools.cache
def steady_heap() -> bool:
    """Keep freed tensor memory in the C heap for reuse (glibc ``mallopt``; False elsewhere).

    By default glibc maps every allocation above a moving threshold afresh and returns freed
    memory above another, so a chunk's multi-megabyte tensors (and oneDNN's scratchpads) can
    page-fault on every op: 1 thread, LeNet-5's conv2 on 832 rows took 10-12 ms with about
    2,570 page faults per call, 4.9 ms with none once allocations up to 64 MiB stay in the
    heap. The cost is up to 256 MiB of freed memory kept by the process (trim threshold)."""
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
    return bool(
        libc.mallopt(m_mmap_threshold, HEAP_MMAP_THRESHOLD)
        and libc.mallopt(m_trim_threshold, HEAP_TRIM_THRESHOLD)
    )


class Program:
    """What a run derives from the graph once: order, sources, torch weights, fan-outs."""

    def __init__(self, graph: Graph, settings: Settings) -> None:
        self.graph = graph
        self.settings = settings
        self.device = settings.torch_device()
        if self.device.type == "cpu":
            steady_heap()
        self.dtype = settings.torch_dtype()
        self.order = graph.topological_order()
        shapes = graph.shapes()
        self.sources = {
            (n.name, p): graph.sources(n.name, p) for n in self.order for p in n.ports()
        }
        self.uses = Counter(e.src for e in graph.edges)
        self.params = {n.name: kernels.params(n, self.dtype, self.device) for n in self.order}
        self.fan = {
            (n.name, p): _to(kernels.fanout(n, shapes[self.sources[(n.name, p)][0]]), self.device)
            for n in self.order
            if n.domain == "synapse"
            for p in n.ports()
        }
        self.shapes = shapes
        self.synapses = {
            key: kernels.synapses_per_row(fan, shapes[self.sources[key][0]])
            for key, fan in self.fan.items()
        }
        """Per synapse port, `kernels.synapses_per_row`."""
        plan = schedule(graph)
        self.per_step = [n for n in self.order if plan[n.name] != "once per batch"]
        """Nodes whose value is new every step: a chunk stores ``steps`` of them."""
        # multiply-accumulates per sample and step of the synapses evaluated every step
        self.step_macs = sum(
            kernels.synapses_per_row(fan, shapes[self.sources[key][0]])
            for key, fan in self.fan.items()
            if plan[key[0]] == "time-batched"
        )
        self.pooled = _pooled_neurons(graph, self.device)
        self.dense_fed = _dense_fed_neurons(graph, self.device)
        self.pool_fed = {
            pool.name: reader
            for pool in self.pooled.values()
            if (reader := _dense_reader(graph, pool.name)) is not None
        }
        """Fused pools whose values go only into a Dense layer (through a Flatten or not): the
        loop feeds them to it (`fused.PooledSteps` with a weight)."""
        self.dense_rows = {
            dense.name: fused.DenseRows.of(self.params[dense.name]["weight"].numpy())
            for _, dense in [*self.dense_fed.values(), *self.pool_fed.values()]
        }
        self.bridges = {
            name: (pool, conv, after)
            for name, pool in self.pooled.items()
            if pool.name not in self.pool_fed
            and isinstance(conv := _only_reader(graph, pool.name), ir.Conv2d)
            and (after := _only_reader(graph, conv.name)) is not None
            and (after.name in self.pooled or after.name in self.dense_fed)
        }
        """Fused pool layers whose pooled values go only into a convolution whose output goes
        only into another fused neuron layer: the three run in sub-chunks (`_bridged_run`)."""
        self.plans: dict[frozenset[str], tuple[Step, ...]] = {}
        """`plan` per set of kept values (a run's work before its first chunk)."""

    def stored_per_step(self, keep: set[str]) -> int:
        """Elements per sample and step of the largest value a chunk stores, in a run that
        keeps (returns or records) ``keep``: values that are new every step (a static one is
        stored once per batch, whatever the chunk), other than the placeholders of fused
        nodes (a fused neuron layer's spikes, and the pool or Flatten between it and the node
        its loop writes: `_fused_with`), nor those of a bridged pool and convolution (stored
        a sub-chunk at a time: `_bridged_run`). LeNet-5: 120 (``fc1``), not 4,704 (``conv1``,
        static, or ``if1``'s spikes, never stored) nor 1,600 (``conv2``), so a 32-sample slice
        runs T = 128 in one chunk. Fewer chunks, fewer passes through the engine's Python:
        before the bridge, sizing by every node's value (5 chunks of 26 steps, not 2 of 64)
        ran B = 64, T = 128 on 2 threads in 44.4 against 42.3 ms (medians of 60 runs,
        alternated in one process)."""
        placeholders = set()
        for name in [*self.pooled, *self.dense_fed]:
            fuse = _fused_with(self, name, keep)
            if fuse:
                placeholders.add(name)
                placeholders.update(n.name for n in fuse[:-1])
            bridge = _bridge(self, name, keep)
            if bridge is not None:  # the pool's and the convolution's values: per sub-chunk
                placeholders.update((bridge[0].name, bridge[1].name))
        sizes = [
            math.prod(self.shapes[n.name]) for n in self.per_step if n.name not in placeholders
        ]
        return max(sizes, default=1)

    def chunks(self, steps: int, batch: int, keep: set[str]) -> list[tuple[int, int]]:
        """Balanced (t0, length) chunks covering ``steps``: each as long as ``time_chunk``, or
        (None) as the `STEP_ELEMENT_BUDGET` allows for the largest value a chunk stores."""
        most = self.settings.time_chunk or max(
            1, STEP_ELEMENT_BUDGET // (batch * self.stored_per_step(keep))
        )
        count = math.ceil(steps / min(most, steps))
        bounds = [round(i * steps / count) for i in range(count + 1)]
        return [(a, b - a) for a, b in itertools.pairwise(bounds)]


def _pooled_neurons(graph: Graph, device: torch.device) -> dict[str, Node]:
    """Neuron layers whose spikes go only into a pool with tiling windows (CPU): the two run as
    one fused loop (`fused.PooledSteps`) that never stores the spikes."""
    if device.type != "cpu":
        return {}
    out = {}
    for edge in graph.edges:
        node, dst = graph.node(edge.src), graph.node(edge.dst)
        if (
            isinstance(node, (ir.IF, ir.LIF, ir.CubaLIF))
            and isinstance(dst, (ir.AvgPool2d, ir.SumPool2d))
            and kernels.tiles(dst)
            and len(graph.sources(dst.name, "input")) == 1
            and sum(e.src == node.name for e in graph.edges) == 1
        ):
            out[node.name] = dst
    return out


def _dense_reader(graph: Graph, name: str) -> tuple[Node | None, Node] | None:
    """The Dense layer that alone reads ``name``, directly or through a Flatten that nothing
    else reads: (the Flatten or None, the Dense); else None."""
    flat, dst = None, _only_reader(graph, name)
    if isinstance(dst, ir.Flatten):
        flat, dst = dst, _only_reader(graph, dst.name)
    return (flat, dst) if isinstance(dst, ir.Dense) else None


def _dense_fed_neurons(graph: Graph, device: torch.device) -> dict[str, tuple[Node | None, Node]]:
    """Neuron layers whose spikes go only into one Dense layer, directly or through a Flatten
    that nothing else reads (CPU): the layer runs fused with the Dense (`fused.DenseSteps`),
    its spikes never stored. Maps the layer to (the Flatten or None, the Dense)."""
    if device.type != "cpu":
        return {}
    return {
        node.name: reader
        for node in graph.topological_order()
        if isinstance(node, (ir.IF, ir.LIF, ir.CubaLIF))
        and (reader := _dense_reader(graph, node.name)) is not None
    }


def _only_reader(graph: Graph, name: str) -> Node | None:
    """The node that alone reads ``name``, over one edge and with no other input; else None."""
    edges = [e for e in graph.edges if e.src == name]
    if len(edges) != 1:
        return None
    dst = graph.node(edges[0].dst)
    return dst if len(graph.sources(dst.name, "input")) == 1 else None


def _to(fan: torch.Tensor | int, device: torch.device) -> torch.Tensor | int:
    return fan if isinstance(fan, int) else fan.to(device)


@attrs.frozen
class BatchResult:
    """One streamed batch: outputs (B, *shape), counters, and records (T, B, *shape)."""

    outputs: dict[str, np.ndarray]
    counters: dict[str, dict[str, int]]
    records: dict[str, np.ndarray]


def run_batch(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    offset: int,
    total: int,
    steps: int | None,
    record: tuple[str, ...] = (),
) -> BatchResult:
    """Simulate samples ``offset .. offset + B`` of a ``total``-sample input (float64 arrays).

    On CPU with torch using N > 1 threads, a batch with enough work per slice (`SPLIT_MACS`)
    is split into N slices of samples run side by side, the first in the calling thread, each
    with single-threaded torch ops and fused loops. Samples are independent, so the slices
    never wait for each other: torch's OpenMP workers, which spin for milliseconds after every
    parallel op, no longer compete with the (serial) fused loops for the cores, and no op pays
    a fork/join. Smaller batches run whole, torch ops on all threads."""
    batch = len(next(iter(inputs.values())))
    count = torch.get_num_threads()
    parts = min(count, batch) if program.device.type == "cpu" else 1
    if program.step_macs * (steps or 0) * batch < SPLIT_MACS * parts:
        parts = 1
    if parts == 1:
        return _run_slice(program, inputs, offset, total, steps, record)

    def work(lo: int, hi: int) -> BatchResult:
        torch.set_num_threads(1)  # this thread's torch ops (OpenMP, MKL) run serially
        sliced = {k: v[lo:hi] for k, v in inputs.items()}
        return _run_slice(program, sliced, offset + lo, total, steps, record)

    try:
        results = threads.spread(work, batch, parts)
    finally:
        torch.set_num_threads(count)  # the setting is also process-wide: restore it
    counters: dict[str, dict[str, int]] = {}
    for res in results:
        add_counters(counters, res.counters)
    return BatchResult(
        {k: np.concatenate([r.outputs[k] for r in results]) for k in results[0].outputs},
        counters,
        {k: np.concatenate([r.records[k] for r in results], axis=1) for k in record},
    )


def _run_slice(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    offset: int,
    total: int,
    steps: int | None,
    record: tuple[str, ...],
) -> BatchResult:
    batch = len(next(iter(inputs.values())))
    xin = {
        k: torch.from_numpy(np.ascontiguousarray(v)).to(program.device) for k, v in inputs.items()
    }
    state: dict[str, dict] = {}
    tallies = {n.name: [] for n in program.order if not isinstance(n, ir.Input)}
    records: dict[str, list[np.ndarray]] = {name: [] for name in record}
    keep = set(record) | {n.name for n in program.graph.outputs}
    values: dict[str, Value] = {}
    chunks = program.chunks(steps, batch, keep) if steps else [(0, None)]
    run_plan = plan(program, keep)
    with torch.inference_mode():
        for t0, length in chunks:
            clock = Clock(t0, length, batch, offset, total)
            values = _run_chunk(program, run_plan, xin, state, tallies, clock)
            for name in record:
                records[name].append(_per_step(values[name], clock).cpu().numpy())
        outputs = {
            n.name: _last_step(values[n.name], batch).cpu().numpy() for n in program.graph.outputs
        }
    counters = {name: {} for name in tallies}
    for name, counts in tallies.items():
        for chunk, times in counts:
            _accumulate(counters[name], chunk, times)
    return BatchResult(outputs, counters, {k: np.concatenate(v) for k, v in records.items()})


def add_counters(into: dict[str, dict[str, int]], more: Mapping[str, Mapping[str, int]]) -> None:
    """Add per-layer counters (another batch's) into ``into``."""
    for layer, counts in more.items():
        _accumulate(into.setdefault(layer, {}), counts, 1)


@attrs.frozen
class Step:
    """What `_run_chunk` does with a node, decided once per run: its inputs, what it runs
    fused with (`_fused_with`), whether it may overwrite its input (`_owned`) and the values
    no later node reads, freed once it has run."""

    node: Node
    ports: tuple[tuple[str, tuple[str, ...]], ...]
    """Each input port and its sources, in edge order."""
    fuse: tuple[Node, ...]
    owned: bool
    frees: tuple[str, ...]
    bridge: tuple[Node, Node, Node, tuple[Node, ...]] | None = None
    """The pool, convolution and neuron layer (and what that runs fused with) that this
    fused layer runs with, sub-chunk by sub-chunk (`_bridged_run`)."""


def _bridge(program: Program, name: str, keep: set[str]) -> tuple | None:
    """`Step.bridge` for neuron layer ``name`` in a run that keeps ``keep``: none where a
    value between the two layers is kept, or where either does not run fused."""
    if name not in program.bridges:
        return None
    pool, conv, after = program.bridges[name]
    after_fuse = _fused_with(program, after.name, keep)
    kept = pool.name in keep or conv.name in keep
    if kept or _fused_with(program, name, keep) != (pool,) or not after_fuse:
        return None
    return pool, conv, after, after_fuse


def plan(program: Program, keep: set[str]) -> tuple[Step, ...]:
    """The run's steps, in topological order, for a run that keeps (returns or records)
    ``keep``; made once per set kept (`Program.plans`)."""
    key = frozenset(keep)
    if key not in program.plans:
        program.plans[key] = _plan(program, keep)
    return program.plans[key]


def _plan(program: Program, keep: set[str]) -> tuple[Step, ...]:
    remaining = Counter(program.uses)
    per_step = {n.name for n in program.per_step}
    steps = []
    for node in program.order:
        ports = tuple((p, tuple(program.sources[(node.name, p)])) for p in node.ports())
        names = [s for _, group in ports for s in group]
        owned = _owned(program, node, names, per_step, remaining, keep)
        frees = []
        for s in names:
            remaining[s] -= 1
            if remaining[s] == 0 and s not in keep:
                frees.append(s)
        fuse = _fused_with(program, node.name, keep)
        bridge = _bridge(program, node.name, keep)
        steps.append(Step(node, ports, fuse, owned, tuple(frees), bridge))
    return tuple(steps)


def _run_chunk(
    program: Program,
    steps: tuple[Step, ...],
    xin: Mapping[str, torch.Tensor],
    state: dict[str, dict],
    tallies: dict[str, list[tuple[Mapping[str, int], int]]],
    clock: Clock,
) -> dict[str, Value]:
    """One chunk of steps through the nodes; each node's counters for it, and the times they
    count, go into ``tallies`` (summed once the run is over)."""
    values: dict[str, Value] = {}
    ready: dict[str, Value] = {}  # pools already computed with their neuron layer
    for step in steps:
        node = step.node
        name = node.name
        if isinstance(node, ir.Input):
            values[name] = Value(xin[name], None)
            continue
        st = state.setdefault(name, {})
        if "static" in st:  # a static stateless node: same value and per-step counts
            values[name], per_step = st["static"]
            tallies[name].append((per_step, clock.steps or 1))
        else:
            ports = _ports(step, values, clock)
            if name in ready:
                value = ready.pop(name)
            elif step.bridge is not None and fused.usable(ports["input"].tensor):
                value = _bridged_run(step, program, ports["input"], state, clock, ready)
            else:
                value = _evaluate(node, program, ports, st, clock, step.owned, step.fuse, ready)
            values[name] = value
            counts = _count(node, program, ports, value, clock)
            tallies[name].append((counts, 1))
            if value.steps is None and not isinstance(node, STATEFUL):
                times = clock.steps or 1
                st["static"] = (value, {k: v // times for k, v in counts.items()})
        for s in step.frees:
            del values[s]
    return values


def _ports(step: Step, values: Mapping[str, Value], clock: Clock) -> dict[str, Value]:
    """The node's input per port (the sum of its sources, expanded to per-step values where
    ports mix static and per-step ones)."""
    if len(step.ports) == 1 and len(step.ports[0][1]) == 1:
        port, (src,) = step.ports[0]
        return {port: values[src]}
    return _align({p: _fan_in([values[s] for s in names], clock) for p, names in step.ports}, clock)


def _fused_with(program: Program, name: str, keep: set[str]) -> tuple[Node, ...]:
    """The nodes neuron layer ``name`` runs fused with in this run, in order: a Dense layer
    (and the Flatten before it), or a pool (and the Flatten and Dense layer after it). The
    fusion stops at a node whose value is kept or recorded: that value must be stored."""
    if name in keep:
        return ()
    pool = program.pooled.get(name)
    if pool is None:
        flat, dense = program.dense_fed.get(name, (None, None))
        if dense is None or (flat is not None and flat.name in keep):
            return ()
        return (dense,) if flat is None else (flat, dense)
    flat, dense = program.pool_fed.get(pool.name, (None, None))
    if dense is None or pool.name in keep or (flat is not None and flat.name in keep):
        return (pool,)
    return (pool, dense) if flat is None else (pool, flat, dense)


def _owned(
    program: Program,
    node: Node,
    names: list[str],
    per_step: set[str],
    remaining: Mapping[str, int],
    keep: set[str],
) -> bool:
    """Whether neuron layer ``node`` may overwrite its input tensor: a per-step value freshly
    made by its only source, which nothing else reads. The torch step loop (CUDA) then writes
    its spikes over its synaptic current instead of allocating a second large tensor; the
    fused CPU loop writes into a fresh one, faster (a loop whose input is its output does not
    vectorize; MLP B=64 T=128, 2 threads: 6.5-7.8 ms against 7.0-8.6 ms written over)."""
    if not isinstance(node, (ir.IF, ir.LIF, ir.CubaLIF)) or len(names) != 1:
        return False
    src = names[0]
    return (
        isinstance(program.graph.node(src), FRESH)
        and src in per_step
        and remaining[src] == 1
        and src not in keep
    )


def _accumulate(into: dict[str, int], counts: Mapping[str, int], times: int) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value * times


def _expand(value: Value, clock: Clock) -> Value:
    if value.steps is not None or clock.steps is None:
        return value
    t = value.tensor
    return Value(
        t.unsqueeze(0).expand(clock.steps, *t.shape).reshape(-1, *t.shape[1:]),
        clock.steps,
        value.binary,
    )


def _fan_in(values: list[Value], clock: Clock) -> Value:
    """The sum of every edge into a port, in edge order, as the reference adds them."""
    if len(values) == 1:
        return values[0]
    if any(v.steps is not None for v in values):
        values = [_expand(v, clock) for v in values]
    total = values[0].tensor
    for v in values[1:]:
        total = total + v.tensor
    return Value(total, values[0].steps)  # a sum of spikes can be 2


def _align(ports: dict[str, Value], clock: Clock) -> dict[str, Value]:
    if len(ports) > 1 and any(v.steps is not None for v in ports.values()):
        return {p: _expand(v, clock) for p, v in ports.items()}
    return ports


def _per_step(value: Value, clock: Clock) -> torch.Tensor:
    """(steps, B, *shape), or (1, B, *shape) for analog graphs."""
    value = _expand(value, clock)
    return value.tensor.reshape(clock.steps or 1, clock.batch, *value.tensor.shape[1:])


def _last_step(value: Value, batch: int) -> torch.Tensor:
    return value.tensor if value.steps is None else value.tensor[-batch:]


# ---------------------------------------------------------------- node evaluation


def _evaluate(
    node: Node,
    program: Program,
    ports: dict[str, Value],
    st: dict,
    clock: Clock,
    owned: bool,
    fuse: tuple[Node, ...],
    ready: dict[str, Value],
) -> Value:
    """The node's value over the chunk. A neuron layer with nodes to ``fuse`` with
    (`_fused_with`) runs as one loop with them: their values go into ``ready``, and the
    layer's own value and those of the nodes between it and the last are placeholders of
    their shape carrying their counts (nothing else reads them)."""
    if isinstance(node, ir.Encoder) and node.kind == "poisson":
        return _poisson(node, ports["input"], clock, program)
    x = {p: _as(v.tensor, program.dtype) for p, v in ports.items()}
    steps = next(iter(ports.values())).steps
    if isinstance(node, (ir.IF, ir.LIF, ir.CubaLIF)):
        if not fuse or not fused.usable(x["input"]):
            return _neurons(node, x["input"], steps is None, st, clock, owned)
        if isinstance(fuse[0], (ir.AvgPool2d, ir.SumPool2d)):
            return _pooled_neurons_run(
                node, fuse, program, x["input"], steps is None, st, clock, ready
            )
        return _dense_neurons_run(node, program, x["input"], steps is None, st, clock, ready)
    if isinstance(node, ir.Readout):
        return _readout(x["input"], steps is None, st, clock)
    spikes = all(v.binary for v in ports.values())
    y = kernels.apply(node, program.params[node.name], x, spikes)
    memo = {}
    if isinstance(node, RESHAPING) and "active" in ports["input"].memo:
        memo["active"] = ports["input"].memo["active"].reshape(y.shape[1:])
    return Value(y, steps, spikes and isinstance(node, BINARY_KEEPING), memo)


def _as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def _stepwise(x: torch.Tensor, static: bool, clock: Clock) -> torch.Tensor:
    return x if static else x.reshape(clock.steps, clock.batch, *x.shape[1:])


def _state(
    node: ir.IF | ir.LIF | ir.CubaLIF, x: torch.Tensor, st: dict, clock: Clock
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's membrane and current (carried in ``st``)."""
    shape = (clock.batch, *x.shape[1:])
    v = st.get("v")
    if v is None:
        v = torch.full(shape, node.v_init, dtype=x.dtype, device=x.device)
    cur = st.get("i")
    if isinstance(node, ir.CubaLIF) and cur is None:
        cur = torch.zeros(shape, dtype=x.dtype, device=x.device)
    st["v"], st["i"] = v, cur
    return v, cur


def _loop_constants(node: ir.IF | ir.LIF | ir.CubaLIF) -> fused.Neurons:
    """The fused loops' constants of neuron layer ``node``."""
    return fused.Neurons(
        cuba=isinstance(node, ir.CubaLIF),
        keep_v=1.0 - getattr(node, "decay_v", 0.0),
        keep_i=1.0 - getattr(node, "decay_i", 0.0),
        threshold=node.v_threshold,
        reset_zero=node.reset == "zero",
    )


def _pooled_neurons_run(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    fuse: tuple[Node, ...],
    program: Program,
    x: torch.Tensor,
    static: bool,
    st: dict,
    clock: Clock,
    ready: dict[str, Value],
) -> Value:
    """A neuron layer and the tiling pool it alone feeds, and the Dense layer that alone reads
    the pool (through a Flatten or not) if ``fuse`` has it, fused (`fused.PooledSteps`)."""
    run = _pooled_steps(node, fuse, program, tuple(x.shape[1:]), static, st, clock.batch)
    out = run(
        _pooled_drive(run, x, static, st, clock), st["v_windows"], st.get("i_windows"), clock.steps
    )
    return _pooled_publish(node, fuse, program, st, clock, x, *out, ready)


def _pooled_steps(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    fuse: tuple[Node, ...],
    program: Program,
    shape: tuple[int, ...],
    static: bool,
    st: dict,
    batch: int,
) -> fused.PooledSteps:
    """The layer's `fused.PooledSteps`, made on its first chunk, and its state. The state is
    kept under keys of its own (a layer runs fused in every chunk of a run or in none), in
    window order (`fused.Pooled`), or in natural order for a per-step drive whose windows
    cover every neuron."""
    if "pooled" not in st:
        pool, dense = fuse[0], fuse[-1] if isinstance(fuse[-1], ir.Dense) else None
        windows = fused.Pooled(shape, pool.kernel)
        dtype = np.dtype(torch.empty((), dtype=program.dtype).numpy().dtype)
        st["pooled"] = fused.PooledSteps(
            windows,
            static,
            _loop_constants(node),
            isinstance(pool, ir.AvgPool2d),
            None if dense is None else program.dense_rows[dense.name],
            dtype.type,
        )
        st["v_windows"] = windows.state(batch, node.v_init, dtype)
        if isinstance(node, ir.CubaLIF):
            st["i_windows"] = windows.state(batch, 0.0, dtype)
    return st["pooled"]


def _pooled_drive(
    run: fused.PooledSteps, x: torch.Tensor, static: bool, st: dict, clock: Clock
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The drive as `fused.PooledSteps` takes it: a static one permuted into window order
    once and reused in later chunks (the same tensor)."""
    if not static:
        return x.contiguous().numpy()
    if st.get("drive", (None,))[0] is not x:
        st["drive"] = (x, run.pool.permute(x.contiguous().numpy().reshape(clock.batch, -1)))
    return st["drive"][1]


def _pooled_publish(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    fuse: tuple[Node, ...],
    program: Program,
    st: dict,
    clock: Clock,
    x: torch.Tensor,
    values: np.ndarray | None,
    covered: int,
    uncovered: int,
    active: np.ndarray,
    ready: dict[str, Value],
) -> Value:
    """The values and counters of a fused pool layer's chunk: the fused nodes' into
    ``ready``, the layer's own returned. ``values`` None: the pooled values went straight
    into a convolution (`_bridged_run`), so the pool's value is a placeholder too."""
    run = st["pooled"]
    pool, dense = fuse[0], fuse[-1] if isinstance(fuse[-1], ir.Dense) else None
    rows = clock.steps * clock.batch
    active = torch.from_numpy(active)
    # a tiling window holds each covered neuron once, so the pool's synops are the covered
    # neurons' spikes and its MACs the covered neurons (uncovered ones reach no synapse)
    pool_counters = {"synops": covered, "macs": rows * run.pool.area * run.windows}
    if dense is None and values is not None:
        pooled = torch.from_numpy(values).reshape(rows, *run.pooled_shape)
    else:
        pooled = _placeholder(st, (rows, *run.pooled_shape), x.dtype)
    if dense is not None:
        bias = program.params[dense.name].get("bias")
        if bias is not None:
            values += bias.numpy()
        ready[dense.name] = Value(torch.from_numpy(values).reshape(rows, -1), clock.steps)
        if len(fuse) == 3:  # the Flatten: the pooled values' placeholder, flat
            ready[fuse[1].name] = Value(
                pooled.reshape(rows, -1), clock.steps, memo={"active": active.reshape(-1)}
            )
    ready[pool.name] = Value(
        pooled, clock.steps, memo={"active": active, "counters": pool_counters}
    )
    return _fused_layer(x, st, clock, covered + uncovered)


def _bridged_run(
    step: Step,
    program: Program,
    port: Value,
    state: dict[str, dict],
    clock: Clock,
    ready: dict[str, Value],
) -> Value:
    """A fused pool layer, the convolution that alone reads its pool, and the fused neuron
    layer that alone reads the convolution (`Step.bridge`), run together group of samples by
    group (`BRIDGE_SAMPLES`), each group sub-chunk by sub-chunk of `bridge_steps`: each
    sub-chunk's pooled values go into the convolution and its output into the next layer
    while they are in cache, not through memory. Samples are independent and each sample's
    steps run in order, so the values and counters are the three layers' own over the chunk,
    as if each ran on its own. LeNet-5 at T = 128, 2 threads (minima, alternated in one
    process against the code before the bridge): B = 64 37.5 against 41.9 ms; 38.0-38.9
    against 38.9-40.5 ms on a VM with 480 MiB of L3, where the values between the loops
    come back from L3 rather than memory."""
    node, (_, conv, after, after_fuse) = step.node, step.bridge
    x = _as(port.tensor, program.dtype)
    static = port.steps is None
    st, st_after = state[node.name], state.setdefault(after.name, {})
    run = _pooled_steps(node, step.fuse, program, tuple(x.shape[1:]), static, st, clock.batch)
    drive = _pooled_drive(run, x, static, st, clock)
    if not static:
        drive = drive.reshape(clock.steps, clock.batch, *drive.shape[1:])
    shape = program.shapes[conv.name]
    rows = clock.steps * clock.batch
    current = _placeholder(st_after, (rows, *shape), x.dtype)  # the convolution's value
    pooled_after = after.name in program.pooled
    if pooled_after:
        run_after = _pooled_steps(after, after_fuse, program, shape, False, st_after, clock.batch)
        state_after = (st_after["v_windows"], st_after.get("i_windows"))
    else:
        run_after, *state_after = _dense_steps(after, program, current, False, st_after, clock)
    group = min(clock.batch, BRIDGE_SAMPLES)
    sub = bridge_steps(group, shape, x.element_size())
    covered = uncovered = 0
    active = np.zeros(run.pooled_shape, np.int64)
    values, counts = None, []
    for lo in range(0, clock.batch, group):
        hi = min(lo + group, clock.batch)
        v_a = tuple(a[lo:hi] for a in st["v_windows"])
        i_a = None if "i_windows" not in st else tuple(a[lo:hi] for a in st["i_windows"])
        if pooled_after:
            s_b = (
                tuple(a[lo:hi] for a in state_after[0]),
                None if state_after[1] is None else tuple(a[lo:hi] for a in state_after[1]),
            )
        else:
            s_b = (state_after[0][lo:hi], None if state_after[1] is None else state_after[1][lo:hi])
        d_a = tuple(a[lo:hi] for a in drive) if static else drive[:, lo:hi]
        for t in range(0, clock.steps, sub):
            n = min(sub, clock.steps - t)
            pooled, c, u, a = run(d_a if static else d_a[t : t + n], v_a, i_a, n)
            covered, uncovered, active = covered + c, uncovered + u, active + a
            xin = torch.from_numpy(pooled).reshape(n * (hi - lo), *run.pooled_shape)
            y = kernels.apply(conv, program.params[conv.name], {"input": xin}).numpy()
            out = run_after(y, *s_b, n)
            if values is None:
                values = np.empty((clock.steps, clock.batch, *out[0].shape[2:]), out[0].dtype)
            values[t : t + n, lo:hi] = out[0]
            counts.append(out[1:])
    value = _pooled_publish(node, step.fuse, program, st, clock, x, None, covered, uncovered,
                            active, ready)  # fmt: skip
    synops, macs = kernels.synapse_uses(
        torch.from_numpy(active),
        rows,
        program.fan[(conv.name, "input")],
        program.synapses[(conv.name, "input")],
    )
    ready[conv.name] = Value(
        current, clock.steps, memo={"counters": {"synops": synops, "macs": macs}}
    )
    if pooled_after:
        totals = [sum(c[i] for c in counts) for i in range(3)]
        ready[after.name] = _pooled_publish(
            after, after_fuse, program, st_after, clock, current, values, *totals, ready
        )
    else:
        spikes = sum(c[0] for c in counts)
        ready[after.name] = _dense_publish(
            after, program, st_after, clock, current, values, spikes, ready
        )
    return value


def bridge_steps(group: int, shape: tuple[int, ...], itemsize: int) -> int:
    """Steps per sub-chunk of `_bridged_run` for a group of ``group`` samples: as many as
    keep the convolution's output (elements of ``itemsize`` bytes) within `BRIDGE_BYTES`."""
    budget = BRIDGE_BYTES if BRIDGE_BYTES is not None else l2_cache_bytes()
    return max(1, budget // (group * math.prod(shape) * itemsize))


def l2_cache_bytes() -> int:
    """The size of CPU 0's level-2 cache (`cpu_caches`); `L2_FALLBACK_BYTES` where sysfs
    does not say."""
    return cpu_caches().get("L2", L2_FALLBACK_BYTES)


@functools.cache
def cpu_caches() -> dict[str, int]:
    """CPU 0's data and unified caches by level in bytes, e.g. ``{"L1": 49152, "L2": ...}``,
    read from Linux sysfs; empty where that is not readable."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            caches[f"L{level}"] = cache_size_bytes(size)
    return caches


def cache_size_bytes(text: str) -> int:
    """A sysfs cache size (``"2048K"``, ``"1M"``, ``"512"``) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def _placeholder(st: dict, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``shape`` that stores nothing (zero, expanded), kept in the node's state
    ``st`` for the chunks that follow: the value of a fused node, which nothing reads."""
    cache = st.setdefault("placeholders", {})
    if shape not in cache:
        cache[shape] = torch.zeros((), dtype=dtype).expand(shape)
    return cache[shape]


def _dense_neurons_run(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    program: Program,
    x: torch.Tensor,
    static: bool,
    st: dict,
    clock: Clock,
    ready: dict[str, Value],
) -> Value:
    """A neuron layer and the Dense layer it alone feeds (through a Flatten or not), fused
    (`fused.DenseSteps`); the state is the unfused layer's."""
    run, v, cur = _dense_steps(node, program, x, static, st, clock)
    y, spikes = run(x.numpy(), v, cur, clock.steps)
    return _dense_publish(node, program, st, clock, x, y, spikes, ready)


def _dense_steps(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    program: Program,
    x: torch.Tensor,
    static: bool,
    st: dict,
    clock: Clock,
) -> tuple[fused.DenseSteps, np.ndarray, np.ndarray | None]:
    """The layer's `fused.DenseSteps`, made on its first chunk, and its state ``(B, N)``."""
    v, cur = _state(node, x, st, clock)
    if "dense" not in st:
        dense = program.dense_fed[node.name][1]
        bias = program.params[dense.name].get("bias")
        st["dense"] = fused.DenseSteps(
            static,
            _loop_constants(node),
            program.dense_rows[dense.name],
            None if bias is None else bias.numpy(),
        )
    flat = (clock.batch, -1)
    return st["dense"], v.numpy().reshape(flat), None if cur is None else cur.numpy().reshape(flat)


def _dense_publish(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    program: Program,
    st: dict,
    clock: Clock,
    x: torch.Tensor,
    y: np.ndarray,
    spikes: int,
    ready: dict[str, Value],
) -> Value:
    """The values and counters of a fused Dense layer's chunk, as `_pooled_publish`."""
    flat, dense = program.dense_fed[node.name]
    weights = program.dense_rows[dense.name]
    rows = clock.steps * clock.batch
    n, m = weights.rows.shape[0], weights.width
    # every spike reaches all M outputs; the Dense multiplies every input by all of them
    dense_counters = {"synops": spikes * m, "macs": rows * n * m}
    ready[dense.name] = Value(
        torch.from_numpy(y).reshape(rows, m), clock.steps, memo={"counters": dense_counters}
    )
    if flat is not None:
        placeholder = _placeholder(st, (rows, n), x.dtype)
        ready[flat.name] = Value(placeholder, clock.steps, binary=True, memo={"counters": {}})
    return _fused_layer(x, st, clock, spikes)


def _fused_layer(x: torch.Tensor, st: dict, clock: Clock, spikes: int) -> Value:
    """A fused neuron layer's own value: a placeholder of its shape (nothing reads it) with
    its counters for the chunk."""
    shape_only = _placeholder(st, (clock.steps * clock.batch, *x.shape[1:]), x.dtype)
    counters = {"spikes": spikes, "neuron_updates": shape_only.numel()}
    return Value(shape_only, clock.steps, binary=True, memo={"counters": counters})


def _neurons(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    x: torch.Tensor,
    static: bool,
    st: dict,
    clock: Clock,
    owned: bool,
) -> Value:
    """The membrane recurrence, step by step, exactly as the reference orders each update.
    With ``owned`` (see `_owned`), in the torch loop, step t's spikes overwrite step t's input
    once it is added."""
    shape = (clock.batch, *x.shape[1:])
    xs = _stepwise(x, static, clock)
    v, cur = _state(node, x, st, clock)
    if owned and not static and not fused.usable(xs):
        out = xs
    else:
        out = torch.empty((clock.steps, *shape), dtype=x.dtype, device=x.device)
    memo = {}
    if fused.usable(xs) and fused.usable(out):
        memo["active"] = fused.neuron_steps(xs, static, out, v, cur, _loop_constants(node))
    else:
        _torch_steps(node, xs, static, out, v, cur)
    return Value(out.reshape(-1, *shape[1:]), clock.steps, binary=True, memo=memo)


def _torch_steps(
    node: ir.IF | ir.LIF | ir.CubaLIF,
    xs: torch.Tensor,
    static: bool,
    out: torch.Tensor,
    v: torch.Tensor,
    cur: torch.Tensor | None,
) -> None:
    """`fused.neuron_steps` as torch calls, for CUDA (and any tensor numba cannot take)."""
    c = _loop_constants(node)
    keep_v, keep_i, thr = c.keep_v, c.keep_i, c.threshold
    for t in range(out.shape[0]):
        xt = xs if static else xs[t]
        if isinstance(node, ir.CubaLIF):
            cur.mul_(keep_i).add_(xt)
            v.mul_(keep_v).add_(cur)
        elif isinstance(node, ir.LIF):
            v.mul_(keep_v).add_(xt)
        else:
            v.add_(xt)
        spikes = out[t]
        torch.ge(v, thr, out=spikes)
        if node.reset == "subtract":
            v.sub_(spikes, alpha=thr)
        else:
            v.masked_fill_(spikes.bool(), 0.0)


def _readout(x: torch.Tensor, static: bool, st: dict, clock: Clock) -> Value:
    """The running mean of the input: sum so far / steps so far, one fused loop on CPU
    (`fused.running_mean`). In torch the running sums are one cumulative sum along time (each
    the previous plus this step, the reference's additions), seeded with the sum carried from
    earlier chunks."""
    shape = (clock.batch, *x.shape[1:])
    xs = _stepwise(x, static, clock)
    if fused.usable(xs):
        out, sums = fused.running_mean(xs, static, st.get("sum"), clock.t0, clock.steps)
        st["sum"] = sums.reshape(shape)
        return Value(out.reshape(-1, *shape[1:]), clock.steps)
    first = xs if static else xs[0]
    if "sum" in st:
        first = st["sum"] + first
    rest = xs.expand(clock.steps - 1, *shape) if static else xs[1:]
    sums = torch.cumsum(torch.cat([first.unsqueeze(0), rest]), dim=0)
    st["sum"] = sums[-1].clone()
    counts = torch.arange(clock.t0 + 1, clock.t0 + clock.steps + 1, dtype=x.dtype, device=x.device)
    out = sums.div_(counts.reshape(-1, *(1,) * len(shape)))
    return Value(out.reshape(-1, *shape[1:]), clock.steps)


def _poisson(node: ir.Encoder, x: Value, clock: Clock, program: Program) -> Value:
    """Bernoulli spikes with the reference's uniforms: numpy's PCG64 from ``seed``, drawn
    (total, *shape) per step; a batch jumps to its slice with ``advance`` (one draw per value).
    """
    shape = tuple(x.tensor.shape[1:])
    size = math.prod(shape)
    p = x.tensor.to(torch.float64).clamp(0.0, 1.0).cpu().numpy()
    if x.steps is not None:
        p = p.reshape(clock.steps, clock.batch, *shape)
    rng = np.random.default_rng(node.seed)
    rng.bit_generator.advance((clock.t0 * clock.total + clock.offset) * size)
    u = np.empty((clock.steps, clock.batch, *shape))
    if clock.batch == clock.total:
        rng.random(out=u)
    else:
        for t in range(clock.steps):
            rng.random(out=u[t])
            rng.bit_generator.advance((clock.total - clock.batch) * size)
    spikes = torch.from_numpy(u < p).to(program.device, program.dtype)
    return Value(spikes.reshape(-1, *shape), clock.steps, binary=True)


def _count(
    node: Node, program: Program, ports: dict[str, Value], out: Value, clock: Clock
) -> dict[str, int]:
    """This chunk's counters, defined as the reference's `_count` summed over its steps (or
    counted by the fused loop that made ``out``)."""
    if "counters" in out.memo:
        return out.memo["counters"]
    if node.domain == "spiking":
        return {
            "spikes": int(out.active().sum()),
            "neuron_updates": out.tensor.numel(),
        }
    if node.domain != "synapse":
        return {}
    synops = macs = 0
    for port, value in ports.items():
        times = (clock.steps or 1) if value.steps is None else 1
        fan = program.fan[(node.name, port)]
        synapses = program.synapses[(node.name, port)]
        syn, mac = kernels.synapse_uses(value.active(), value.tensor.shape[0], fan, synapses)
        synops += syn * times
        macs += mac * times
    return {"synops": synops, "macs": macs}


def schedule(graph: Graph) -> dict[str, str]:
    """How each node is evaluated: ``once per batch`` (static: the same value every step),
    ``time-batched`` (one call per chunk of steps) or ``step loop`` (stateful recurrence)."""
    plan: dict[str, str] = {}
    for node in graph.topological_order():
        srcs = [s for p in node.ports() for s in graph.sources(node.name, p)]
        if isinstance(node, STATEFUL) or (isinstance(node, ir.Encoder) and node.kind == "poisson"):
            plan[node.name] = "step loop"
        elif all(plan[s] == "once per batch" for s in srcs) or not graph.is_spiking:
            plan[node.name] = "once per batch"
        else:
            plan[node.name] = "time-batched"
    return plan
