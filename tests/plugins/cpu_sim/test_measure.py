"""measure(): host-clock latency with raw samples; energy and power from RAPL when readable
(a fake powercap tree stands in for the hardware), else estimated from op counts at
Horowitz's ISSCC 2014 figures (checked by hand) with static power unavailable."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from neurohal import ir
from neurohal_cpu_sim import energy

W = np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32)
X = np.random.default_rng(4).random((5, 6)).astype(np.float32)


def _analog() -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(6,)), ir.Dense(name="fc", weight=W), ir.Output(name="out")
    )


def _snn() -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=W),
        ir.LIF(name="lif", v_threshold=0.4, decay_v=0.1),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


def _fake_rapl(root: Path, packages: dict[str, int], max_range: int = 1000) -> None:
    for index, (name, value) in enumerate(packages.items()):
        zone = root / f"intel-rapl:{index}"
        zone.mkdir(parents=True)
        (zone / "name").write_text(name + "\n")
        (zone / "energy_uj").write_text(f"{value}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    sub = root / "intel-rapl:0:0"  # a subzone (core) is part of its package: not added again
    sub.mkdir()
    (sub / "name").write_text("core\n")


def test_latency_is_measured_with_raw_samples(cpu_sim):
    artifact = cpu_sim.compile(_snn(), batch_size=2, repeats=2, warmup=0)
    m = cpu_sim.measure(artifact, X, 8)
    assert m.latency.provenance == "measured" and m.latency.unit == "s"
    assert len(m.latency.samples) == 2 * 3  # repeats x streamed batches (2 + 2 + 1 samples)
    assert m.latency.value == pytest.approx(float(np.median(m.latency.samples)))
    per_batch = m.extra["latency_per_batch"]
    assert per_batch.provenance == "measured" and len(per_batch.samples) == 6
    assert "perf_counter" in m.latency.method
    assert m.run.samples == 5 and m.run.timesteps == 8


def test_without_rapl_energy_is_estimated_from_op_counts(cpu_sim, monkeypatch, tmp_path):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "absent")
    m = cpu_sim.measure(cpu_sim.compile(_analog()), X)
    # by hand: 5 samples x 6 x 4 weight uses, each an fp32 multiply (3.7 pJ) + add (0.9 pJ)
    assert m.energy.provenance == "estimated"
    assert m.energy.value == pytest.approx(6 * 4 * (3.7 + 0.9) * 1e-12)
    assert "Horowitz" in m.energy.method and "ISSCC 2014" in m.energy.method
    assert m.power_static.provenance == "unavailable" and "RAPL" in m.power_static.method
    assert m.power_dynamic.provenance == "estimated"
    assert m.power_dynamic.value == pytest.approx(m.energy.value / m.latency.value)


def test_spiking_estimate_counts_neuron_updates(cpu_sim, monkeypatch, tmp_path):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "absent")
    m = cpu_sim.measure(cpu_sim.compile(_snn()), X, 10)
    # per sample: 10 steps x 24 MACs at 4.6 pJ, 10 x 4 LIF updates at 3.7 + 3 x 0.9 pJ
    assert m.energy.value == pytest.approx((10 * 24 * 4.6 + 10 * 4 * (3.7 + 2.7)) * 1e-12)


def test_with_rapl_energy_and_power_are_measured(cpu_sim, monkeypatch, tmp_path):
    _fake_rapl(tmp_path, {"package-0": 100, "package-1": 500})
    readings = itertools.count(start=0, step=1000)  # +1 mJ per package per reading

    def fake_read(zones):
        value = next(readings)
        return tuple(value + i for i, _ in enumerate(zones))

    monkeypatch.setattr(energy, "POWERCAP", tmp_path)
    monkeypatch.setattr(energy, "read_uj", fake_read)
    artifact = cpu_sim.compile(_snn(), repeats=3, warmup=1)
    m = cpu_sim.measure(artifact, X, 4)
    assert m.energy.provenance == "measured"
    assert m.power_static.provenance == "measured"
    assert m.power_dynamic.provenance == "measured"
    # each pass: one reading apart, i.e. 1000 uJ in each of the 2 packages, over 5 samples
    assert m.energy.samples == pytest.approx((2000e-6 / 5,) * 3)
    assert "package-0, package-1" in m.energy.method


def test_rapl_zones_skip_subzones_and_report_why_not(monkeypatch, tmp_path):
    _fake_rapl(tmp_path, {"package-0": 1, "psys": 2})
    zones, why = energy.rapl_zones(tmp_path)
    assert [z.name for z in zones] == ["package-0"] and why == ""
    assert zones[0].max_range_uj == 1000

    zones, why = energy.rapl_zones(tmp_path / "missing")
    assert zones == () and "does not exist" in why

    original = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    zones, why = energy.rapl_zones(tmp_path)
    assert zones == () and "root" in why and "CVE-2020-8694" in why


def test_joules_between_handles_wrap_around(tmp_path):
    _fake_rapl(tmp_path, {"package-0": 0, "package-1": 0}, max_range=1_000_000)
    zones, _ = energy.rapl_zones(tmp_path)
    # package-0 wrapped: 999_000 -> 4_000 is 5_000 uJ; package-1 plain: 10 -> 2_010
    assert energy.joules_between(zones, (999_000, 10), (4_000, 2_010)) == pytest.approx(7e-3)


def test_unreadable_rapl_mid_run_falls_back_to_the_estimate(cpu_sim, monkeypatch, tmp_path):
    _fake_rapl(tmp_path, {"package-0": 5})
    calls = itertools.count()

    def flaky(zones):
        if next(calls) >= 2:
            raise OSError("device went away")
        return (5,)

    monkeypatch.setattr(energy, "POWERCAP", tmp_path)
    monkeypatch.setattr(energy, "read_uj", flaky)
    m = cpu_sim.measure(cpu_sim.compile(_analog()), X)
    assert m.energy.provenance == "estimated" and "device went away" in m.energy.method
    assert m.power_static.provenance == "unavailable"
