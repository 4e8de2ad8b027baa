"""Comparison: rows per device and T, agreement with each device's own measure, outputs."""

import json
import os

import numpy as np
import pytest

from neurohal import ir
from neurohal.comparison import compare
from neurohal.comparison.output import write_all
from neurohal.errors import NeurohalError, PluginError

# A deterministic device: energy estimated from the run's synaptic operations, so the table can
# be checked against the device's own measure exactly.
COUNTING = """
from neurohal.device import Measurement, Quantity
from neurohal.hookspecs import hookimpl
from neurohal_example.device import NumpyDevice

PJ_PER_SYNOP = 2.0


class Counting(NumpyDevice):
    name = "counting"

    def measure(self, artifact, inputs, timesteps=None):
        run = self.run(artifact, inputs, timesteps)
        synops = run.per_inference("synops") or run.per_inference("macs")
        energy = synops * PJ_PER_SYNOP * 1e-12
        method = "test model: 2 pJ per synaptic op (not a published figure)"
        return Measurement(
            self.name,
            Quantity(1e-3, "s", "estimated", method),
            Quantity(0.5, "W", "estimated", method),
            Quantity(energy / 1e-3, "W", "estimated", method),
            Quantity(energy, "J", "estimated", method),
            run,
        )


class Dead(NumpyDevice):
    name = "dead"

    def probe(self):
        from neurohal.device import Availability
        return Availability(False, "no board attached (test)")


@hookimpl
def neurohal_register_devices(register):
    register(Counting())
    register(Dead())
"""


def tiny_models():
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(size=(16, 6)), rng.normal(size=(3, 16))
    ann = ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Dense(name="fc1", weight=w1),
        ir.ReLU(name="relu"),
        ir.Dense(name="fc2", weight=w2),
        ir.Output(name="out"),
    )
    snn = ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=w1 / 3),
        ir.IF(name="if1", v_threshold=1.0, v_init=0.5),
        ir.Dense(name="fc2", weight=w2),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    x = rng.random((60, 6))
    y = np.argmax(np.maximum(x @ w1.T, 0) @ w2.T, axis=1)
    return ann, snn, x, y


@pytest.fixture
def devices(plugin_site):
    plugin_site.add("counting-device", "counting", "counting_ep", COUNTING)
    plugin_site.add(
        "example-device",
        "example",
        "example_ep",
        "from neurohal_example.plugin import neurohal_register_devices\n",
    )


def test_rows_per_device_graph_and_t_with_unavailable_listed(devices):
    ann, snn, x, y = tiny_models()
    table = compare(
        ann,
        snn,
        data=(x, y),
        devices=["counting", "dead", "example_numpy"],
        timesteps=[4, 16],
        baseline="example_numpy",
        batch_size=25,
        progress=False,
    )
    keys = [(r.device, r.graph, r.timesteps) for r in table.rows]
    assert keys == [
        ("counting", "ann", None),
        ("counting", "snn", 4),
        ("counting", "snn", 16),
        ("dead", "-", None),
        ("example_numpy", "ann", None),
        ("example_numpy", "snn", 4),
        ("example_numpy", "snn", 16),
    ]
    dead = table.rows[3]
    assert not dead.available and "no board attached" in dead.reason
    assert table.rows[0].accuracy == 1.0  # labels are the ANN's own argmax
    assert table.rows[2].accuracy >= table.rows[1].accuracy - 0.1


def test_table_and_csv_agree_with_the_devices_own_measure(devices):
    import neurohal

    ann, snn, x, y = tiny_models()
    table = compare(
        ann,
        snn,
        data=(x, y),
        devices=["counting"],
        timesteps=[8],
        measure_samples=20,
        progress=False,
        baseline=None,
    )
    device = neurohal.device("counting")
    own = device.measure(device.compile(snn), x[:20], 8)
    row = next(r for r in table.rows if r.graph == "snn")
    assert row.quantities["energy"] == own.energy
    csv_row = next(line for line in table.to_csv().splitlines() if ",snn,8," in line)
    assert repr(own.energy.value) in csv_row or f"{own.energy.value}" in csv_row
    # the counters in the table are the device's counts over the whole set, per inference
    full = device.run(device.compile(snn), x, 8)
    assert row.per_inference["synops"] == pytest.approx(full.per_inference("synops"))
    assert row.layer_spikes["if1"] == pytest.approx(full.counters["if1"]["spikes"] / len(x))


def test_same_seed_same_results_and_ratios(devices):
    ann, snn, x, y = tiny_models()
    kwargs = dict(
        data=(x, y),
        devices=["counting", "example_numpy"],
        timesteps=[8],
        baseline="counting",
        progress=False,
    )
    a, b = compare(ann, snn, **kwargs), compare(ann, snn, **kwargs)
    assert [(r.accuracy, dict(r.per_inference)) for r in a.rows] == [
        (r.accuracy, dict(r.per_inference)) for r in b.rows
    ]
    base = a.rows[0]
    assert base.ratios["energy"] == 1.0 and base.ratios["power"] == 1.0
    # example_numpy has no power figures: no ratio rather than a partial one
    partial = next(r for r in a.rows if r.device == "example_numpy")
    assert partial.ratios == {"power": None, "energy": None}


def test_bad_inputs(devices, tmp_path):
    ann, snn, x, y = tiny_models()
    with pytest.raises(PluginError, match="no device named 'loihii'.*counting"):
        compare(ann, snn, data=(x, y), devices=["loihii"], progress=False)
    with pytest.raises(NeurohalError, match=r"shape \(5,\).*expects \(6,\)"):
        compare(ann, snn, data=(x[:, :5], y), devices=["counting"], progress=False)


def test_outputs_written_together_and_unwritable_folder_refused(devices, tmp_path):
    ann, snn, x, y = tiny_models()
    table = compare(
        ann,
        snn,
        data=(x, y),
        devices=["counting", "dead"],
        timesteps=[4, 8],
        progress=False,
        baseline="counting",
    )
    paths = write_all(table, tmp_path / "out")
    data = json.loads(paths["results.json"].read_text())
    assert len(data["rows"]) == 4 and data["rows"][0]["energy_provenance"] == "estimated"
    page = paths["report.html"].read_text()
    assert "data:image/png;base64," in page and "no board attached" in page
    assert "estimated" in page and "2 pJ per synaptic op" in page
    assert {p.suffix for p in (tmp_path / "out" / "figures").iterdir()} == {".png", ".svg"}
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    if os.access(locked, os.W_OK):  # running as root: permissions do not stop us
        target = tmp_path / "a-file"
        target.write_text("x")
        with pytest.raises(NeurohalError, match="cannot write the output folder"):
            write_all(table, target)
    else:
        with pytest.raises(NeurohalError, match="cannot write the output folder"):
            write_all(table, locked / "out")
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())
