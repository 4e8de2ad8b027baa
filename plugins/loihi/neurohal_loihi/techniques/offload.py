"""What the chip cannot do well, on the host: the input layer and the classifier, with the
transfers between host and chip counted.

The loihi plugin already computes the input encoding layer on the host: everything between an
analog Encoder and the first neurons is affine, so the host evaluates it once per inference
and sends the first layer's input currents to the chip as bias values. Its model leaves that
transfer out. `placement_outcome` re-costs a run with both transfers counted, for either
placement of the classifier (the membrane readout layer and the projection into it):

- ``chip``: the readout stays on the chip; after the run the host reads one 32-bit readout
  value per class.
- ``host``: the readout layer is removed from the chip (its synaptic operations, neuron
  updates, the spike messages into it and its cores); the chip buffers the last hidden layer's
  spikes (a bitmap per step, on its embedded x86 cores) and the host reads them after the run
  and applies the classifier to their counts (fp32 multiply-accumulates, Horowitz, ISSCC 2014:
  3.7 pJ + 0.9 pJ each; 1 ns each on one host core, an assumption).

Link model: USB 2.0 high speed, 480 Mbit/s line rate and one 125 us microframe of latency per
transfer (USB 2.0 specification, 2000, sections 5.9 and 8.4.3.1). Energy per bit: 0.2 nJ, an
assumption of the order of a USB 2.0 PHY's ~0.1 W active power over its line rate; no
published figure for Loihi's host link was found. Input currents travel as 16-bit values.
"""

from __future__ import annotations

import math

import attrs

from neurohal.errors import InputError
from neurohal_loihi.techniques.model import layer_synops, plugin
from neurohal_loihi.techniques.runs import LoihiRun

PLACEMENTS = ("chip", "host")
LINK_BIT_S = 1 / 480e6
LINK_TRANSFER_S = 125e-6
LINK_BIT_J = 0.2e-9
HOST_MAC_J = (3.7 + 0.9) * 1e-12
HOST_MAC_S = 1e-9
LINK_METHOD = (
    "USB 2.0 high-speed link: 480 Mbit/s + one 125 us microframe per transfer (USB 2.0 spec "
    "5.9, 8.4.3.1); 0.2 nJ/bit (assumed order of magnitude, no published Loihi host-link figure)"
)


@attrs.frozen
class Transfer:
    """Host-chip traffic and host work per inference for one placement."""

    placement: str
    bytes_in: int
    bytes_out: int
    transfers: int
    host_macs: int

    @property
    def seconds(self) -> float:
        bits = 8 * (self.bytes_in + self.bytes_out)
        return bits * LINK_BIT_S + self.transfers * LINK_TRANSFER_S + self.host_macs * HOST_MAC_S

    @property
    def joules(self) -> float:
        return 8 * (self.bytes_in + self.bytes_out) * LINK_BIT_J + self.host_macs * HOST_MAC_J


def transfer(run: LoihiRun, placement: str) -> Transfer:
    """The traffic of ``run``'s network with the classifier on ``placement``."""
    if placement not in PLACEMENTS:
        raise InputError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    plan = plugin().lower(run.artifact.graph)
    bytes_in = 2 * sum(layer.size for layer in plan.layers if layer.host)
    readouts = [layer for layer in plan.layers if layer.kind == "readout"]
    if placement == "chip":
        return Transfer(placement, bytes_in, 4 * sum(r.size for r in readouts), 2, 0)
    steps = run.measurement.run.timesteps
    sources = {proj.src for r in readouts for proj in r.projections}
    if any(r.host for r in readouts):
        raise InputError(
            "the readout is fed from the input directly; there is no chip layer whose spikes "
            "the host could classify"
        )
    source_size = sum(plan.layer(s).size for s in sources)
    return Transfer(
        placement,
        bytes_in,
        math.ceil(source_size / 8) * steps,
        2,
        source_size * sum(r.size for r in readouts),
    )


def readout_costs(run: LoihiRun) -> tuple[float, dict[str, int]]:
    """Dynamic energy per inference the readout layers cost on the chip (their synaptic
    operations, neuron updates and the spike messages into them) and their cores by layer."""
    p = plugin()
    art, res = run.artifact, run.measurement.run
    chip = p.chips[str(art.options["chip"])]
    synops = layer_synops(art.graph, res.counters)
    per_message = p.costs.spike_tile_j + p.mean_hops(chip) * p.costs.hop_j
    joules, cores = 0.0, {}
    for layer in p.lower(art.graph).layers:
        if layer.kind != "readout":
            continue
        lm = art.report["layers"][layer.name]
        joules += synops[layer.name] * p.costs.synop_j
        joules += res.counters[layer.name]["neuron_updates"] * p.costs.neuron_j
        for proj in layer.projections:
            joules += res.counters[proj.src]["spikes"] * lm["cores"] * per_message
        cores[layer.name] = lm["cores"]
    return joules / res.samples, cores
