"""The emulator against Lava itself (the oracle): identical spike trains and readouts.

Runs through the Lava worker interpreter (.venv-lava or NEUROHAL_LAVA_PYTHON) when lava-nc
does not import here; skipped, with the reason, only when no Lava interpreter exists.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurohal import ir
from neurohal.testing.cases import Case, conformance_cases
from neurohal_loihi.device import LoihiDevice

from .conftest import lava_missing_reason

pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(bool(lava_missing_reason()), reason=lava_missing_reason()),
]

CASES = {c.name: c for c in conformance_cases("spiking")}


def _scaled_residual() -> Case:
    """The conformance residual graph with a per-channel Scale on its skip connection."""
    base = CASES["spiking_residual_add"]
    scale = ir.Scale(name="skip_scale", scale=np.array([0.5, 1.5, -0.75, 1.0]))
    edges = [e for e in base.graph.edges if (e.src, e.dst) != ("act1", "add")]
    edges += [ir.Edge("act1", "skip_scale"), ir.Edge("skip_scale", "add")]
    graph = ir.Graph((*base.graph.nodes, scale), edges)
    return Case("scaled_residual", graph.validate(), base.inputs, base.timesteps)


def _max_pooled() -> Case:
    """The conformance conv graph with max pooling of its spikes (lowered to OR neurons)."""
    base = CASES["spiking_conv_avgpool"]
    nodes = [
        ir.MaxPool2d(name="pool", kernel=2, stride=2) if n.name == "pool" else n
        for n in base.graph.nodes
    ]
    graph = ir.Graph(nodes, base.graph.edges)
    return Case("max_pooled", graph.validate(), base.inputs, base.timesteps)


CASES["scaled_residual"] = _scaled_residual()
CASES["max_pooled"] = _max_pooled()


@pytest.mark.parametrize(
    ("case_name", "chip", "soft_reset"),
    [
        ("spiking_dense", "loihi2", True),
        ("spiking_conv_avgpool", "loihi1", True),
        ("spiking_residual_add", "loihi1", True),
        ("spiking_residual_add", "loihi1", False),
        ("spiking_residual_add", "loihi2", True),
        ("spiking_lif", "loihi1", True),
        ("spiking_lif", "loihi2", True),
        ("scaled_residual", "loihi2", True),
        ("max_pooled", "loihi1", True),
    ],
)
def test_emulator_equals_lava(case_name: str, chip: str, soft_reset: bool) -> None:
    """``loihi1`` with ``soft_reset``: two-compartment neurons, in Lava a non-resetting LIF
    and a ``Sparse`` self-synapse; without: Lava's own reset to zero."""
    case = CASES[case_name]
    device = LoihiDevice(chip)
    artifact = device.compile(case.graph, loihi1_soft_reset=soft_reset)
    emu, emu_spikes = device.run_detailed(artifact, case.inputs, case.timesteps)
    lava, lava_spikes = device.run_detailed(artifact, case.inputs, case.timesteps, backend="lava")
    assert set(emu_spikes) == set(lava_spikes)
    total = 0
    for layer, spikes in lava_spikes.items():
        np.testing.assert_array_equal(emu_spikes[layer], spikes, err_msg=layer)
        total += int(spikes.sum())
    assert total > 0, "a test network that never spikes proves nothing"
    for name, value in lava.outputs.items():
        np.testing.assert_array_equal(emu.outputs[name], value)
    assert dict(emu.counters) == dict(lava.counters)
