"""The plugin's chip limits, per-operation figures and lowering, as the techniques that
re-cost a Loihi run (packing, offload) use them."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

from neurohal.ir import Graph
from neurohal_loihi import chips, energy, lowering
from neurohal_loihi.counters import projection_name


def plugin() -> SimpleNamespace:
    """The plugin's chips, energy and lowering modules and its counter naming."""
    return SimpleNamespace(
        chips=chips.CHIPS,
        costs=energy.COSTS,
        static_w=energy.STATIC_W,
        static_source=energy.STATIC_SOURCE,
        source=energy.SOURCE,
        mean_hops=energy.mean_hops,
        lower=lowering.lower,
        projection_name=projection_name,
    )


def layer_synops(graph: Graph, counters: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Synaptic operations into each Loihi layer (over the run), from a RunResult's counters
    keyed by projection (the loihi plugin's naming)."""
    p = plugin()
    plan = p.lower(graph)
    return {
        layer.name: sum(
            int(counters.get(p.projection_name(graph, proj), {}).get("synops", 0))
            for proj in layer.projections
        )
        + int(counters.get(layer.name, {}).get("synops", 0))  # a soft-reset self-synapse
        for layer in plan.layers
    }


def barrier_s(tiles: int) -> float:
    """Barrier time of one step over ``tiles`` tiles: the published 1-tile and 32-tile values
    (Davies et al. 2018, Table 2) joined linearly in log2(tiles), as the plugin's model does."""
    import math

    costs = plugin().costs
    frac = min(math.log2(max(tiles, 1)) / 5.0, 1.0)
    return costs.barrier_min_s + frac * (costs.barrier_max_s - costs.barrier_min_s)
