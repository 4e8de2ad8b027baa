"""Every shipped zoo model (core/zoo/*.onnx), as loaded ANN and as converted SNN, runs on
cpu_sim exactly as on the reference interpreter: float64 spike trains and counters identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neurohal as nh
from neurohal import reference
from neurohal.errors import DatasetError

ZOO = sorted((Path(nh.__file__).parent / "zoo").glob("*.onnx"))
SAMPLES = 4
TIMESTEPS = 12


@pytest.fixture(scope="module")
def images():
    try:
        x, _ = nh.datasets.mnist("test", limit=SAMPLES)
    except DatasetError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    return x


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_ann_and_snn_match_the_reference(cpu_sim, images, path):
    ann = nh.load_onnx(path)
    want = reference.run(ann, images)
    got = cpu_sim.run(cpu_sim.compile(ann, dtype="float64"), images)
    for name, value in want.outputs.items():
        np.testing.assert_allclose(got.outputs[name], value, rtol=1e-9, atol=1e-9)
    assert got.counters == want.counters

    snn = nh.convert(ann, calibration=images)
    neurons = [n.name for n in snn.nodes if n.domain == "spiking"]
    want = reference.run(snn, images, TIMESTEPS, record=neurons)
    got = cpu_sim.trace(cpu_sim.compile(snn, dtype="float64"), images, TIMESTEPS, neurons)
    for name in neurons:
        np.testing.assert_array_equal(got.records[name], want.records[name], err_msg=name)
    assert got.result.counters == want.counters
    assert sum(want.counters[n]["spikes"] for n in neurons) > 0
