"""Published per-chip and per-core limits of Loihi 1 and Loihi 2 (the numbers mapping uses).

Sources:
- Loihi 1: M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning",
  IEEE Micro 38(1), 2018: 128 neuromorphic cores per chip, 1,024 compartments per core,
  128 KB of synaptic memory per core, 4,096 input (fan-in) and 4,096 output (fan-out) axons
  per core, cores grouped 4 per tile in a 2-D mesh of 32 tiles.
- Loihi 2: Intel Labs, "Taking Neuromorphic Computing to the Next Level with Loihi 2",
  technology brief, 2021 (and G. Orchard et al., "Efficient Neuromorphic Signal Processing with
  Loihi 2", IEEE SiPS 2021): 128 neuromorphic cores per chip, up to 8,192 neurons per core,
  192 KB of memory per core, 1M neurons and 120M synapses per chip. The brief gives no per-core
  axon limit; the Loihi 1 figures are used for axons (stated in every report).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class ChipSpec:
    """One chip generation: per-core limits, cores per chip and mesh layout."""

    name: str
    cores_per_chip: int
    neurons_per_core: int
    synaptic_memory_bytes: int
    input_axons_per_core: int
    output_axons_per_core: int
    cores_per_tile: int
    mesh_tiles: tuple[int, int]
    reset_subtract: bool
    source: str


LOIHI1 = ChipSpec(
    name="loihi1",
    cores_per_chip=128,
    neurons_per_core=1024,
    synaptic_memory_bytes=128 * 1024,
    input_axons_per_core=4096,
    output_axons_per_core=4096,
    cores_per_tile=4,
    mesh_tiles=(4, 8),
    reset_subtract=False,
    source="Davies et al., IEEE Micro 38(1), 2018",
)

LOIHI2 = ChipSpec(
    name="loihi2",
    cores_per_chip=128,
    neurons_per_core=8192,
    synaptic_memory_bytes=192 * 1024,
    input_axons_per_core=4096,
    output_axons_per_core=4096,
    cores_per_tile=4,
    mesh_tiles=(4, 8),
    reset_subtract=True,
    source="Intel Labs Loihi 2 technology brief, 2021; Orchard et al., IEEE SiPS 2021",
)

CHIPS = {c.name: c for c in (LOIHI1, LOIHI2)}
