"""Loihi techniques: core packing placement and combining grouped runs (hand-computed)."""

from __future__ import annotations

import pytest

from neurohal.device import Quantity
from neurohal.errors import InputError
from neurohal.techniques.outcome import Outcome
from neurohal_loihi.techniques.packing import Block, place
from neurohal_loihi.techniques.recost import combine


def _q(value: float, unit: str) -> Quantity:
    return Quantity(value, unit, "estimated", "hand-made")


def _outcome(acc: float, energy: float, latency: float = 1e-3, static: float = 0.01) -> Outcome:
    return Outcome(
        accuracy=acc,
        samples=10,
        timesteps=8.0,
        latency=_q(latency, "s"),
        power_static=_q(static, "W"),
        power_dynamic=_q((energy - static * latency) / latency, "W"),
        energy=_q(energy, "J"),
        spikes=100.0,
        synops=1000.0,
        cores=3,
        chips=1,
    )


def test_shared_packing_first_fit_decreasing_hand_computed() -> None:
    limits = {
        "neurons_per_core": 100,
        "synaptic_memory_bytes": 1000,
        "input_axons_per_core": 50,
        "output_axons_per_core": 50,
    }
    blocks = [
        Block("a", 100, 900, 10, 10, 0.5),
        Block("a", 100, 900, 10, 10, 0.5),
        Block("b", 30, 100, 10, 10, 1.0),
        Block("c", 60, 500, 10, 10, 1.0),
        Block("d", 10, 50, 10, 10, 1.0),
    ]
    assert len(place(blocks, limits, "layer")) == 5
    shared = place(blocks, limits, "shared")
    contents = sorted(sorted(b.layer for b in core) for core in shared)
    # a and a are full; c (500 B) opens a core that b (100 B) and d (50 B) then join
    assert contents == [["a"], ["a"], ["b", "c", "d"]]
    with pytest.raises(InputError):
        place(blocks, limits, "tight")


# ---------------------------------------------------------------- combining and search


def test_combine_weights_groups_by_samples() -> None:
    merged = combine([(_outcome(1.0, 2.0, 1.0), 1), (_outcome(0.5, 5.0, 4.0), 3)], "groups")
    assert merged.accuracy == pytest.approx((1.0 + 1.5) / 4)
    assert merged.energy.value == pytest.approx((2.0 + 15.0) / 4)
    assert merged.latency.value == pytest.approx((1.0 + 12.0) / 4)
    static_j = (0.01 * 1.0 + 3 * 0.01 * 4.0) / 4
    assert merged.power_static.value == pytest.approx(static_j / merged.latency.value)
