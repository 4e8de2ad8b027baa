"""Fewer cores: pack several layers' blocks onto shared Loihi cores, and what it costs.

The loihi plugin maps every layer onto cores of its own, each holding the largest block of
that layer's neurons the per-core limits allow. Small layers (the classifier, narrow dense
layers) then leave most of a core empty. `pack` re-places those blocks: ``layer`` keeps one
layer per core (the compiled mapping); ``shared`` puts blocks of different layers on one core
when the sums of their compartments, synaptic memory, input axons and output axons fit the
core's limits (first-fit decreasing by synaptic memory). Axon counts are added, an upper bound
(blocks that share sources could share input axons).

Cost model (stated in every result):
- Static power scales with the cores powered: the chip's idle power (Blouw et al. 2019, the
  plugin's figure) times the fraction of the chip's cores in use, assuming unused cores are
  power-gated. This is an assumption of this technique, not a published per-core figure.
- Latency: a core runs its blocks one after another within a step, so a step lasts as long as
  the busiest core's work (synaptic operations, neuron updates and spike messages at the
  plugin's per-operation times, Davies et al. 2018, Table 2, spread evenly over a layer's
  cores) plus the barrier over the tiles in use. Packing saves cores and barrier time but can
  lengthen the busiest core: that latency cost is reported.
- Dynamic energy is the plugin's estimate of the run, unchanged (the same operations happen;
  spike messages are kept at the compiled mapping's destination counts, an upper bound).
"""

from __future__ import annotations

import math

import attrs

from neurohal.errors import InputError
from neurohal_loihi.techniques.model import barrier_s, layer_synops, plugin
from neurohal_loihi.techniques.runs import LoihiRun

MODES = ("layer", "shared")


@attrs.frozen
class Block:
    """One core's worth of a layer: its resources and its share of the layer's work."""

    layer: str
    compartments: int
    synaptic_bytes: int
    input_axons: int
    output_axons: int
    share: float


@attrs.frozen
class Packing:
    """Blocks per core, with each core's step time and the step time of the whole."""

    mode: str
    cores: tuple[tuple[Block, ...], ...]
    core_step_s: tuple[float, ...]
    barrier_s: float

    @property
    def step_s(self) -> float:
        return max(self.core_step_s) + self.barrier_s


def blocks(report: dict) -> list[Block]:
    """The blocks of a compiled artifact's resource report, one per core it uses."""
    found = []
    for name, lm in report["layers"].items():
        comps = lm["compartments_per_neuron"]
        groups = lm["cores"] // comps
        for g in range(groups):
            neurons = min(lm["neurons_per_core"], lm["neurons"] - g * lm["neurons_per_core"])
            fill = neurons / lm["neurons_per_core"]
            for _ in range(comps):
                found.append(
                    Block(
                        layer=name,
                        compartments=neurons
                        * lm["compartments_per_core"]
                        // lm["neurons_per_core"],
                        synaptic_bytes=math.ceil(lm["synaptic_bytes_per_core"] * fill),
                        input_axons=lm["input_axons_per_core"],
                        output_axons=lm["output_axons_per_core"],
                        share=neurons / (lm["neurons"] * comps),
                    )
                )
    return found


def _fits(core: list[Block], block: Block, limits: dict) -> bool:
    return (
        sum(b.compartments for b in core) + block.compartments <= limits["neurons_per_core"]
        and sum(b.synaptic_bytes for b in core) + block.synaptic_bytes
        <= limits["synaptic_memory_bytes"]
        and sum(b.input_axons for b in core) + block.input_axons <= limits["input_axons_per_core"]
        and sum(b.output_axons for b in core) + block.output_axons
        <= limits["output_axons_per_core"]
    )


def place(all_blocks: list[Block], limits: dict, mode: str) -> list[list[Block]]:
    """Blocks onto cores: one block per core (``layer``) or first-fit decreasing (``shared``)."""
    if mode not in MODES:
        raise InputError(f"packing mode must be one of {MODES}, got {mode!r}")
    if mode == "layer":
        return [[b] for b in all_blocks]
    cores: list[list[Block]] = []
    for block in sorted(all_blocks, key=lambda b: (-b.synaptic_bytes, -b.compartments)):
        for core in cores:
            if _fits(core, block, limits):
                core.append(block)
                break
        else:
            cores.append([block])
    return cores


def layer_step_work(run: LoihiRun) -> dict[str, float]:
    """Seconds of core work per inference-step for each whole layer, from the run's counts."""
    p = plugin()
    art, res = run.artifact, run.measurement.run
    chip = p.chips[str(art.options["chip"])]
    synops = layer_synops(art.graph, res.counters)
    steps = res.timesteps + int(art.report["delay_steps"])
    per_spike_s = p.costs.spike_tile_s + p.mean_hops(chip) * p.costs.hop_s
    work = {}
    for name, lm in art.report["layers"].items():
        c = res.counters[name]
        seconds = (
            synops[name] * p.costs.synop_s
            + c["neuron_updates"] * p.costs.neuron_s
            + c["spikes"] * lm["destination_cores"] * per_spike_s
        )
        work[name] = seconds / (res.samples * steps)
    return work


def pack(run: LoihiRun, mode: str, exclude: frozenset[str] = frozenset()) -> Packing:
    """Place ``run``'s compiled blocks (but those of the layers in ``exclude``) by ``mode``
    and time every core's step."""
    p = plugin()
    report = run.artifact.report
    chip = p.chips[str(run.artifact.options["chip"])]
    work = layer_step_work(run)
    kept = [b for b in blocks(report) if b.layer not in exclude]
    cores = place(kept, report["limits"], mode)
    tiles = math.ceil(len(cores) / chip.cores_per_tile)
    return Packing(
        mode,
        tuple(tuple(c) for c in cores),
        tuple(sum(work[b.layer] * b.share for b in core) for core in cores),
        barrier_s(tiles),
    )
