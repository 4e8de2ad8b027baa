"""The emulator against the float SNN (the reference interpreter) and the conformance kit."""

from __future__ import annotations

import numpy as np
import pytest

from neurohal import ir, reference
from neurohal.errors import DeviceUnavailableError, InputError
from neurohal.testing import check_device
from neurohal.testing.cases import conformance_cases
from neurohal_loihi import emulator
from neurohal_loihi.device import LoihiDevice
from neurohal_loihi.lowering import Layer

SUPPORTED = ("spiking_dense", "spiking_conv_avgpool", "spiking_residual_add", "spiking_lif")


@pytest.mark.parametrize("chip", ["loihi1", "loihi2"])
@pytest.mark.parametrize("name", SUPPORTED)
def test_close_to_float_snn(name: str, chip: str) -> None:
    """Both chips keep reset by subtraction (Loihi 1 through two-compartment neurons)."""
    device = LoihiDevice(chip)
    case = next(c for c in conformance_cases("spiking") if c.name == name)
    got = device.run(device.compile(case.graph), case.inputs, case.timesteps).output()
    want = reference.run(case.graph, case.inputs, case.timesteps).outputs["out"]
    assert device.tolerance.close(got, want), np.abs(got - want).max()
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_loihi1_two_compartment_equals_loihi2_subtraction(loihi1, loihi2) -> None:
    """NxTF's soft reset (the self-synapse subtracts the threshold exactly, one step later,
    before the next threshold test) fires exactly as Loihi 2's subtracting neuron, so the
    outputs agree to the last bit; the run says how it reset, and counts the second
    compartment's updates and the self-synapse's operations."""
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    r1, s1 = loihi1.run_detailed(loihi1.compile(case.graph), case.inputs, case.timesteps)
    r2, s2 = loihi2.run_detailed(loihi2.compile(case.graph), case.inputs, case.timesteps)
    np.testing.assert_array_equal(r1.output(), r2.output())
    for name in s2:
        np.testing.assert_array_equal(s1[name], s2[name])
    assert any("two-compartment" in n for n in r1.notes)
    layer = next(iter(loihi1.compile(case.graph).report["two_compartment_reset"]))
    assert r1.counters[layer]["neuron_updates"] == 2 * s1[layer].size
    assert r1.counters[layer]["synops"] == r1.counters[layer]["spikes"] > 0
    assert "synops" not in r2.counters[layer]


def test_loihi1_reset_to_zero_cost_is_visible(loihi1, loihi2) -> None:
    """Loihi 1 without the second compartment cannot subtract: the same graph drifts further
    from the float SNN than on Loihi 2, and the result says why."""
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    want = reference.run(case.graph, case.inputs, case.timesteps).outputs["out"]
    art1 = loihi1.compile(case.graph, loihi1_soft_reset=False)
    r1 = loihi1.run(art1, case.inputs, case.timesteps)
    r2 = loihi2.run(loihi2.compile(case.graph), case.inputs, case.timesteps)
    err1, err2 = np.abs(r1.output() - want).max(), np.abs(r2.output() - want).max()
    assert err1 > 5 * err2
    assert any("reset to zero" in n for n in r1.notes)
    with pytest.raises(InputError, match="loihi1_soft_reset must be True or False"):
        loihi1.compile(case.graph, loihi1_soft_reset="yes")


def test_spikes_close_to_float_snn_on_reset_zero_graph() -> None:
    """A reset-to-zero conv graph (the same on both chips): over the T effective steps the
    first layer fires as in the float SNN up to quantization; counters cover all run steps."""
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_conv_avgpool")
    device = LoihiDevice("loihi1")
    res, spikes = device.run_detailed(device.compile(case.graph), case.inputs, case.timesteps)
    ref = reference.run(case.graph, case.inputs, case.timesteps, record=["if1"])
    ours = spikes["if1"][: case.timesteps].reshape(ref.records["if1"].shape)
    assert np.mean(ours != ref.records["if1"]) < 0.01
    assert res.counters["if1"]["spikes"] == int(spikes["if1"].sum())
    assert res.counters["if1"]["neuron_updates"] == spikes["if1"].size
    assert res.counters["fc"]["synops"] > 0


@pytest.mark.parametrize("chip", ["loihi1", "loihi2"])
def test_conformance_kit(chip: str) -> None:
    results = check_device(LoihiDevice(chip))
    assert {k for k, v in results.items() if v == "passed"} == set(SUPPORTED)
    assert results["spiking_concat"].startswith("skipped: cat:")


def test_measure_is_estimated_and_names_its_source(loihi1) -> None:
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_conv_avgpool")
    m = loihi1.measure(loihi1.compile(case.graph), case.inputs, case.timesteps)
    for q in (m.latency, m.energy, m.power_dynamic):
        assert q.provenance == "estimated" and "Davies et al., IEEE Micro" in q.method
        assert q.value > 0
    assert m.power_static.value == 0.029 and "Blouw et al." in m.power_static.method
    assert m.extra["energy_static"].value == pytest.approx(0.029 * m.latency.value)
    parts = sum(m.extra[k].value for k in m.extra)
    assert parts == pytest.approx(m.energy.value)


def test_bad_backend_and_hardware(loihi1) -> None:
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_dense")
    art = loihi1.compile(case.graph)
    with pytest.raises(InputError, match="backend must be one of"):
        loihi1.run(art, case.inputs, 4, backend="gpu")
    with pytest.raises(DeviceUnavailableError, match="lava-loihi"):
        loihi1.run(art, case.inputs, 4, backend="hardware")


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups"),
    [((1, 1), (0, 0, 0, 0), (1, 1), 1), ((2, 1), (1, 2, 0, 1), (1, 2), 2)],
)
def test_conv_band_product_equals_reference_conv(stride, padding, dilation, groups) -> None:
    """The band form of a convolution (one GEMM per output row) sums exactly what the
    reference interpreter's cross-correlation does, for strides, padding, dilation, groups."""
    rng = np.random.default_rng(3)
    weight = rng.integers(-128, 128, size=(4, 4 // groups, 3, 2)).astype(np.float32) * 2
    node = ir.Conv2d(
        name="c", weight=weight, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = rng.integers(0, 5, size=(3, 4, 9, 8)).astype(np.float32)
    want = reference.apply(node, {"input": x.astype(np.float64)})
    band = emulator.conv_band(weight, node, x.shape[1:], want.shape[1:])
    got = emulator.band_product(x, band, np.float32)
    np.testing.assert_array_equal(got, want)


class _OneLayer:
    """Just what `emulator.step_layer` reads of a Network, for one layer."""

    def __init__(self, vth: int, start: np.ndarray, reset: str) -> None:
        self.vth, self.start, self.kind = vth, start, reset

    def value(self, layer: str, field: str) -> np.ndarray:
        return np.asarray({"dv": 0, "v_start": self.start}[field])

    def vth_eff(self, layer) -> int:
        return self.vth << 6

    def reset(self, layer) -> str:
        return self.kind

    def self_synapse(self, layer) -> tuple[int, int]:
        return 128, 4  # 128 << 4 = 2048, the threshold mantissa


def _lava_lif_scalar(a_in, bias, start, vth_eff, reset):
    """Lava's PyLifModelBitAcc for one neuron, written out step by step (no leak). For
    ``two_compartment`` its reset does nothing and a synapse of weight -2048 carries each
    spike back into the neuron's own input one step later."""
    v, spikes, fired = int(start), [], False
    for a in a_in:
        u = (int(a) - 2048 * fired * (reset == "two_compartment")) << 6
        if u > 2**23:  # Lava's 24-bit wrap of u, as written there
            u -= 2**24
        elif u <= -(2**23):
            u += 2**24
        v += int(bias) + u
        v = max(-(2**23 - 1), min(2**23 - 1, v))
        fired = v > vth_eff
        spikes.append(int(fired))
        if fired and reset != "two_compartment":
            v = v - vth_eff if reset == "subtract" else 0
    return spikes, v


@pytest.mark.parametrize("reset", ["zero", "subtract", "two_compartment"])
def test_step_layer_saturates_as_lava(reset) -> None:
    """Drives that push v past +-(2**23 - 1) (the clip), that fire every step and, in the last
    sample, that wrap u, against Lava's neuron update written out per neuron."""
    rng = np.random.default_rng(5)
    steps, batch, size = 12, 4, 4
    a_in = rng.integers(-(2**16), 2**16, size=(steps, batch, size)).astype(np.int32)
    a_in[:, 0] = 2**16 - 1  # keeps climbing
    a_in[:, 1] = -(2**16)  # falls to the floor
    a_in[:, 3] = rng.choice([2**17 - 1, -(2**17) + 1000], size=(steps, size))  # u wraps
    bias = rng.integers(-4095, 4096, size=(batch, size)) << 7
    start = rng.integers(-(2**20), 2**20, size=size)
    net = _OneLayer(2048, start, reset)
    layer = Layer(name="n", kind="neuron", shape=(size,), projections=(), host=False, delay=0)
    spikes, v = emulator.step_layer(net, layer, a_in.copy(), bias, steps)
    for b in range(batch):
        for n in range(size):
            want_s, want_v = _lava_lif_scalar(a_in[:, b, n], bias[b, n], start[n], 2048 << 6, reset)
            assert spikes[:, b, n].tolist() == want_s
            assert v[b, n] == want_v


def test_two_compartment_costs_reach_the_energy_model(loihi1) -> None:
    """The soma's updates and the self-synapse's operations are charged at Davies et al.'s
    per-operation energies (23.6 pJ per synaptic op, 52 pJ per compartment update)."""
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    art = loihi1.compile(case.graph)
    assert art.report["two_compartment_reset"]
    m = loihi1.measure(art, case.inputs, case.timesteps)
    counters = m.run.counters
    synops = sum(c.get("synops", 0) for c in counters.values())
    updates = sum(c.get("neuron_updates", 0) for c in counters.values())
    samples = m.run.samples
    assert m.extra["energy_synops"].value == pytest.approx(synops * 23.6e-12 / samples)
    assert m.extra["energy_neuron_updates"].value == pytest.approx(updates * 52e-12 / samples)
    soft = art.report["two_compartment_reset"][0]
    assert counters[soft]["synops"] == counters[soft]["spikes"] > 0
