"""Time and energy model of a Loihi run, driven by the run's own counts.

Per-operation figures: M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
Learning", IEEE Micro 38(1):82-99, 2018, Table 2 (Loihi 1, 14 nm, nominal 0.75 V):

- energy per synaptic spike operation 23.6 pJ, time per synaptic spike operation 3.5 ns;
- energy per (active) neuron update 52 pJ, time per neuron update 8.4 ns;
- spike message within a tile 1.7 pJ / 2.1 ns, plus 3.5 pJ / 5.3 ns per tile hop across the
  mesh;
- barrier synchronisation of a timestep across the mesh 113 ns (1 tile) to 465 ns (32 tiles).

These values were transcribed from the paper's table as widely quoted; the session that wrote
this module could not re-read the primary PDF, so treat them as the model's parameters, named
here so they can be checked. Intel has published no per-operation table for Loihi 2; its
estimates use the Loihi 1 figures (an upper bound: Loihi 2 is a newer process) and say so.

Static power: 0.029 W, the idle power of Loihi measured by P. Blouw et al., "Benchmarking
Keyword Spotting Efficiency on Neuromorphic Hardware", NICE 2019 (arXiv:1812.01739), Table 1
(Loihi idle 0.029 W, running 0.110 W, dynamic 0.081 W, 296 inferences/s, 0.27 mJ dynamic
energy per inference). Static energy per inference is that power times the modelled latency.

Model: each core works through its own synaptic operations, neuron updates and outgoing
spike messages each timestep; cores run in parallel, so a timestep lasts as long as the
busiest core plus the barrier. Per-core counts come from the run: spikes per core from the
per-neuron spike counts of each core's block of neurons; synaptic operations and neuron
updates from the layer totals spread over the layer's cores (Loihi processes a layer's
synapses where its destination neurons live). Spike messages travel the average tile distance
of the chip's mesh. The host's input layer (analog input as bias current) is outside the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.device import Quantity
from neurohal_loihi.chips import ChipSpec

SOURCE = "Davies et al., IEEE Micro 38(1), 2018, Table 2"
STATIC_W = 0.029
STATIC_SOURCE = "Blouw et al., NICE 2019 (arXiv:1812.01739), Table 1: Loihi idle power"


@attrs.frozen
class OpCosts:
    synop_j: float = 23.6e-12
    synop_s: float = 3.5e-9
    neuron_j: float = 52e-12
    neuron_s: float = 8.4e-9
    spike_tile_j: float = 1.7e-12
    spike_tile_s: float = 2.1e-9
    hop_j: float = 3.5e-12
    hop_s: float = 5.3e-9
    barrier_min_s: float = 113e-9
    barrier_max_s: float = 465e-9


COSTS = OpCosts()


@attrs.frozen
class Estimate:
    latency_s: float
    energy_j: float
    step_s: float
    breakdown_j: Mapping[str, float]


def _barrier(tiles: int) -> float:
    """Barrier time, interpolated on log2(tiles) between the published 1- and 32-tile values."""
    frac = min(math.log2(max(tiles, 1)) / 5.0, 1.0)
    return COSTS.barrier_min_s + frac * (COSTS.barrier_max_s - COSTS.barrier_min_s)


def mean_hops(chip: ChipSpec) -> float:
    """Mean Manhattan distance between two uniformly random tiles of the chip's mesh."""
    w, h = chip.mesh_tiles
    return (w * w - 1) / (3 * w) + (h * h - 1) / (3 * h)


def estimate(
    counters: Mapping[str, Mapping[str, int]],
    synops: Mapping[str, int],
    per_neuron_spikes: Mapping[str, np.ndarray],
    report: Mapping,
    messages_per_spike: Mapping[str, int],
    chip: ChipSpec,
    run_steps: int,
    samples: int,
) -> Estimate:
    """Latency and dynamic energy per inference; ``synops`` are per destination layer."""
    layers = report["layers"]
    hops = mean_hops(chip)
    busiest = 0.0
    energy = {"synops": 0.0, "neuron_updates": 0.0, "spike_messages": 0.0}
    for name, lm in layers.items():
        cores = lm["cores"]
        updates = counters[name]["neuron_updates"]
        per_core_work = (synops[name] * COSTS.synop_s + updates * COSTS.neuron_s) / cores
        spikes = per_neuron_spikes[name]
        blocks = np.add.reduceat(spikes, np.arange(0, len(spikes), lm["neurons_per_core"]))
        per_spike_s = messages_per_spike[name] * (COSTS.spike_tile_s + hops * COSTS.hop_s)
        busiest = max(busiest, per_core_work + float(blocks.max()) * per_spike_s)
        energy["synops"] += synops[name] * COSTS.synop_j
        energy["neuron_updates"] += updates * COSTS.neuron_j
        energy["spike_messages"] += (
            float(spikes.sum())
            * messages_per_spike[name]
            * (COSTS.spike_tile_j + hops * COSTS.hop_j)
        )
    tiles = math.ceil(report["cores"] / chip.cores_per_tile)
    step_s = busiest / (samples * run_steps) + _barrier(tiles)
    per_sample = {k: v / samples for k, v in energy.items()}
    return Estimate(step_s * run_steps, sum(per_sample.values()), step_s, per_sample)


def quantities(est: Estimate, chip: ChipSpec, run_steps: int) -> dict[str, Quantity]:
    """Latency, power and energy per inference as estimated Quantities naming the model."""
    note = "" if chip.name == "loihi1" else " (Loihi 1 per-op figures; none published for Loihi 2)"
    model = (
        f"Loihi time/energy model on this run's per-core counts, {run_steps} steps, {SOURCE}{note}"
    )
    static_j = STATIC_W * est.latency_s
    return {
        "latency": Quantity(
            est.latency_s, "s", "estimated", f"{model}: busiest core per step + barrier sync"
        ),
        "power_static": Quantity(STATIC_W, "W", "estimated", STATIC_SOURCE),
        "power_dynamic": Quantity(
            est.energy_j / est.latency_s, "W", "estimated", f"{model}: dynamic energy / latency"
        ),
        "energy": Quantity(
            est.energy_j + static_j,
            "J",
            "estimated",
            f"{model}: dynamic (synaptic ops, neuron updates, spike messages) "
            f"+ static ({STATIC_SOURCE}) x latency",
        ),
        "energy_static": Quantity(static_j, "J", "estimated", f"{STATIC_SOURCE} x latency"),
    }
