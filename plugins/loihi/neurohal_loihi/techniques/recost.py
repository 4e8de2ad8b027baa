"""One measured Loihi run re-costed under a packing mode and a classifier placement.

``packing=None`` keeps the loihi plugin's own accounting (the compiled mapping, the whole
chip's idle power); ``"layer"`` or ``"shared"`` powers only the cores in use, placed as
`neurohal.techniques.packing` describes. ``classifier=None`` keeps the plugin's accounting
without host transfers; ``"chip"`` or ``"host"`` counts the host link and places the
classifier as `neurohal.techniques.offload` describes. The dynamic energy of the operations
that stay on the chip is always the plugin's estimate of the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from neurohal.device import Quantity
from neurohal.errors import InputError
from neurohal.techniques.outcome import Outcome
from neurohal_loihi.techniques import offload, packing
from neurohal_loihi.techniques.model import plugin
from neurohal_loihi.techniques.runs import LoihiRun


def recost(run: LoihiRun, pack: str | None = None, classifier: str | None = None) -> Outcome:
    """``run``'s outcome under packing mode ``pack`` and classifier placement ``classifier``."""
    base = run.outcome
    if pack is None and classifier is None:
        return base
    p = plugin()
    chip = p.chips[str(run.artifact.options["chip"])]
    dynamic_j = base.energy.value - base.power_static.value * base.latency.value
    latency, static = base.latency, base.power_static
    cores, methods = base.cores, [f"the loihi plugin's dynamic energy ({p.source})"]
    removed: dict[str, int] = {}
    if classifier == "host":
        removed_j, removed = offload.readout_costs(run)
        dynamic_j -= removed_j
        cores -= sum(removed.values())
        methods.append("less the readout layer's operations (classifier on the host)")
    if pack is not None:
        placed = packing.pack(run, pack, frozenset(removed))
        cores = len(placed.cores)
        steps = run.measurement.run.timesteps + int(run.artifact.report["delay_steps"])
        latency = Quantity(
            placed.step_s * steps,
            "s",
            "estimated",
            f"core packing '{pack}', {cores} cores: busiest core per step + barrier over "
            f"{math.ceil(cores / chip.cores_per_tile)} tiles ({p.source})",
        )
        static = Quantity(
            p.static_w * cores / chip.cores_per_chip,
            "W",
            "estimated",
            f"{p.static_source} x {cores}/{chip.cores_per_chip} cores powered (assumes unused "
            "cores power-gated)",
        )
        methods.append(latency.method)
    seconds = latency.value
    if classifier is not None:
        traffic = offload.transfer(run, classifier)
        seconds += traffic.seconds
        dynamic_j += traffic.joules
        methods.append(
            f"classifier on {classifier}: {traffic.bytes_in} B in / {traffic.bytes_out} B out, "
            f"{traffic.host_macs} host MACs ({offload.LINK_METHOD}; Horowitz, ISSCC 2014)"
        )
        latency = Quantity(seconds, "s", "estimated", f"{latency.method}; + host link")
    method = "; ".join(methods)
    energy = dynamic_j + static.value * seconds
    return attrs.evolve(
        base,
        latency=latency,
        power_static=static,
        power_dynamic=Quantity(dynamic_j / seconds, "W", "estimated", method),
        energy=Quantity(energy, "J", "estimated", f"{method}; + static power x latency"),
        cores=cores,
        chips=math.ceil(cores / chip.cores_per_chip),
        notes=(*base.notes, f"packing {pack}, classifier {classifier}"),
    )


def combine(parts: Sequence[tuple[Outcome, int]], note: str) -> Outcome:
    """Outcomes of disjoint groups of samples (each with its sample count) as one: accuracy,
    steps, latency, energy, spikes and synops as sample-weighted means, powers as energy over
    latency, cores and chips the most any group used."""
    total = sum(n for _, n in parts)
    if not parts or total == 0:
        raise InputError("combine needs at least one group with samples")

    def mean(get: object) -> float:
        return sum(get(o) * n for o, n in parts) / total

    latency = mean(lambda o: o.latency.value)
    energy = mean(lambda o: o.energy.value)
    static_j = mean(lambda o: o.power_static.value * o.latency.value)
    first = parts[0][0]
    method = f"{note}; sample-weighted mean over {len(parts)} runs of: {first.energy.method}"
    return Outcome(
        accuracy=mean(lambda o: o.accuracy),
        samples=total,
        timesteps=mean(lambda o: o.timesteps),
        latency=Quantity(latency, "s", "estimated", method),
        power_static=Quantity(static_j / latency, "W", "estimated", method),
        power_dynamic=Quantity((energy - static_j) / latency, "W", "estimated", method),
        energy=Quantity(energy, "J", "estimated", method),
        spikes=mean(lambda o: o.spikes),
        synops=mean(lambda o: o.synops),
        cores=max(o.cores for o, _ in parts),
        chips=max(o.chips for o, _ in parts),
        notes=(note,),
    )
