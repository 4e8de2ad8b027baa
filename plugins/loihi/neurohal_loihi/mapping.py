"""Partition every layer onto neuromorphic cores within the chip's per-core limits.

Model (stated in each report): one compartment per neuron (more when a neuron's fan-in exceeds
the core's input axons: its dendrite is split over ``ceil(fan_in / axons)`` compartments, as
Loihi's multi-compartment neurons allow); a two-compartment soft-reset neuron (Loihi 1, NxTF)
adds a soma compartment on its core and an inhibitory self-synapse (one more synapse, input
axon and output axon per neuron); one byte of synaptic memory per synapse (8-bit
weights, no weight sharing); a core's input axons are the distinct source neurons its
compartments listen to; its output axons are one per (neuron, destination core) pair. Layers
are split into equal blocks of neurons, the largest that meets every limit; a convolutional
layer's block holds all channels of consecutive output positions (they share inputs).
Convolution weights are not shared between positions (Loihi 1 has no weight sharing; Loihi 2's
shared convolutional synapses would need far less memory than reported here).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from neurohal.errors import UnsupportedGraphError
from neurohal.ir import Conv2d, Dense, Graph
from neurohal_loihi.chips import ChipSpec
from neurohal_loihi.lowering import POOLS, Layer, Plan, Projection


@attrs.frozen
class LayerMap:
    """How one layer sits on cores."""

    layer: str
    neurons: int
    compartments_per_neuron: int
    two_compartment_reset: bool
    fan_in: int
    cores: int
    neurons_per_core: int
    compartments_per_core: int
    synaptic_bytes_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    destination_cores: int


def synapses_per_neuron(graph: Graph, proj: Projection) -> int:
    """Source neurons each destination neuron listens to through ``proj`` (its fan-in)."""
    area = 1
    per_row = 1
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, POOLS):
            area *= node.kernel[0] * node.kernel[1]
        elif isinstance(node, Dense):
            per_row = node.weight.shape[1]
        elif isinstance(node, Conv2d):
            per_row = int(np.prod(node.weight.shape[1:]))
    return per_row * area


def distinct_inputs(graph: Graph, proj: Projection, n: int) -> int:
    """Distinct source neurons that a block of ``n`` destination neurons listens to through
    ``proj``: all sources for a dense route; for a convolution, the union of the receptive
    fields of the block's output positions (a block holds every channel of consecutive
    positions, so neurons sharing a position share their inputs)."""
    sources = int(np.prod(graph.shape(proj.src)))
    area, conv, conv_in = 1, None, graph.shape(proj.src)
    shape = graph.shape(proj.src)
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, POOLS):
            area *= node.kernel[0] * node.kernel[1]
        elif isinstance(node, Dense):
            return sources
        elif isinstance(node, Conv2d):
            conv, conv_in = node, shape
        shape = graph.shape(name)
    if conv is None:
        return min(sources, n * area)
    channels, height, width = conv_in
    out_ch, _, kh, kw = conv.weight.shape
    _, oh, ow = graph.shape(conv.name)
    positions = min(oh * ow, math.ceil(n / out_ch))
    rows = math.ceil(positions / ow)
    span_r = min(height, (rows - 1) * conv.stride[0] + (kh - 1) * conv.dilation[0] + 1)
    span_c = (
        width
        if rows > 1
        else min(width, (positions - 1) * conv.stride[1] + (kw - 1) * conv.dilation[1] + 1)
    )
    return min(sources, channels * span_r * span_c * area)


def _dense_like(graph: Graph, proj: Projection) -> bool:
    return any(isinstance(graph.node(n), Dense) for n in proj.nodes)


def _layer_map(
    graph: Graph, layer: Layer, chip: ChipSpec, sizes: dict[str, int], soft: bool
) -> LayerMap:
    """``soft``: two-compartment soft-reset neurons (a soma compartment and a self-synapse,
    with its own input axon, per neuron)."""
    fan_in = sum(synapses_per_neuron(graph, p) for p in layer.projections)
    sources = sum(sizes[p.src] for p in layer.projections)
    own = int(soft)  # the self-synapse's synapse and axon per neuron
    comps = max(1, math.ceil(fan_in / chip.input_axons_per_core))
    per_core = chip.neurons_per_core // (1 + own)
    if fan_in:
        per_core = min(per_core, chip.synaptic_memory_bytes // (math.ceil(fan_in / comps) + own))
    per_core = max(1, min(per_core, layer.size))
    if sources + own * per_core > chip.input_axons_per_core:
        # each of a neuron's compartments takes 1/comps of its inputs
        per_core = _largest_block(graph, layer, per_core, chip.input_axons_per_core * comps, own)
    cores = math.ceil(layer.size / per_core) * comps
    inputs = min(sources, sum(distinct_inputs(graph, p, per_core) for p in layer.projections))
    return LayerMap(
        layer=layer.name,
        neurons=layer.size,
        compartments_per_neuron=comps,
        two_compartment_reset=soft,
        fan_in=fan_in,
        cores=cores,
        neurons_per_core=per_core,
        compartments_per_core=per_core * (1 + own),
        synaptic_bytes_per_core=per_core * (math.ceil(fan_in / comps) + own),
        input_axons_per_core=math.ceil(inputs / comps) + own * per_core,
        output_axons_per_core=0,
        destination_cores=0,
    )


def _largest_block(graph: Graph, layer: Layer, upper: int, axons: int, own: int) -> int:
    """The most consecutive neurons (<= upper) whose distinct inputs, plus ``own`` axons per
    neuron, fit in ``axons``."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(distinct_inputs(graph, p, mid) for p in layer.projections) + own * mid <= axons:
            lo = mid
        else:
            hi = mid - 1
    return lo


def destination_cores(graph: Graph, proj: Projection, dst: LayerMap) -> int:
    """Cores of the destination layer one source neuron's spikes must reach."""
    if _dense_like(graph, proj):
        # a multi-compartment destination splits its inputs: a source reaches one share
        return max(1, dst.cores // dst.compartments_per_neuron)
    fan_out = max(
        1, synapses_per_neuron(graph, proj) * dst.neurons // max(1, _src_size(graph, proj))
    )
    return min(dst.cores, math.ceil(fan_out / dst.neurons_per_core) + 1)


def _src_size(graph: Graph, proj: Projection) -> int:
    return int(np.prod(graph.shape(proj.src)))


def map_plan(
    graph: Graph, plan: Plan, chip: ChipSpec, two_compartment: frozenset[str] = frozenset()
) -> dict[str, LayerMap]:
    """Core placement of every layer (``two_compartment``: its soft-reset layers); output axons
    shrink blocks where they overflow."""
    sizes = {la.name: la.size for la in plan.layers}
    maps = {
        la.name: _layer_map(graph, la, chip, sizes, la.name in two_compartment)
        for la in plan.layers
    }
    for layer in plan.layers:
        current = maps[layer.name]
        reached = sum(
            destination_cores(graph, p, maps[p.dst])
            for p in plan.projections
            if p.src == layer.name
        ) + int(current.two_compartment_reset)  # the self-synapse's own core
        per_core = current.neurons_per_core
        if reached and per_core * reached > chip.output_axons_per_core:
            per_core = max(1, chip.output_axons_per_core // reached)
        cores = math.ceil(current.neurons / per_core) * current.compartments_per_neuron
        own = int(current.two_compartment_reset)
        maps[layer.name] = attrs.evolve(
            current,
            neurons_per_core=per_core,
            compartments_per_core=per_core * (1 + own),
            cores=cores,
            synaptic_bytes_per_core=per_core
            * (math.ceil(current.fan_in / current.compartments_per_neuron) + own),
            output_axons_per_core=per_core * reached,
            destination_cores=reached,
        )
    return maps


def resource_report(
    graph: Graph,
    plan: Plan,
    chip: ChipSpec,
    max_chips: int | None,
    two_compartment: frozenset[str] = frozenset(),
) -> dict:
    """Cores, chips and per-layer utilisation; raises when more chips are needed than allowed."""
    maps = map_plan(graph, plan, chip, two_compartment)
    cores = sum(m.cores for m in maps.values())
    chips = math.ceil(cores / chip.cores_per_chip)
    if max_chips is not None and chips > max_chips:
        available = max_chips * chip.cores_per_chip
        worst = max(maps.values(), key=lambda m: m.cores)
        raise UnsupportedGraphError(
            f"graph needs {cores} {chip.name} cores ({chips} chips) but max_chips={max_chips} "
            f"gives {available} cores; largest layer {worst.layer!r} needs {worst.cores} "
            "cores. Raise max_chips or shrink the network."
        )
    layers = {}
    for m in maps.values():
        layers[m.layer] = {
            **attrs.asdict(m),
            "utilisation": {
                "neurons": m.compartments_per_core / chip.neurons_per_core,
                "synaptic_memory": m.synaptic_bytes_per_core / chip.synaptic_memory_bytes,
                "input_axons": m.input_axons_per_core / chip.input_axons_per_core,
                "output_axons": m.output_axons_per_core / chip.output_axons_per_core,
            },
        }
    return {
        "chip": chip.name,
        "cores": cores,
        "chips": chips,
        "neurons": sum(m.neurons for m in maps.values()),
        "synapses": sum(m.neurons * (m.fan_in + m.two_compartment_reset) for m in maps.values()),
        "synaptic_memory_bytes": sum(m.cores * m.synaptic_bytes_per_core for m in maps.values()),
        "layers": layers,
        "limits": {**attrs.asdict(chip)},
        "model": __doc__.split("\n\n")[1].replace("\n", " "),
    }
