"""The zoo LeNet-5, converted, on 100 MNIST test images: emulator == Lava, spike for spike."""

from __future__ import annotations

import numpy as np
import pytest

import neurohal as nh
from neurohal.errors import DatasetError, ZooError
from neurohal_loihi.device import LoihiDevice

from .conftest import lava_missing_reason

IMAGES = 100
TIMESTEPS = 32


@pytest.fixture(scope="module")
def lenet_snn() -> nh.Graph:
    try:
        ann = nh.load_onnx(nh.zoo.path("lenet5"))
        calibration, _ = nh.datasets.mnist("train", limit=200)
    except (ZooError, DatasetError) as exc:
        pytest.skip(f"zoo LeNet-5 or MNIST unavailable: {exc}")
    return nh.convert(ann, calibration=calibration)


@pytest.mark.lava
@pytest.mark.skipif(bool(lava_missing_reason()), reason=lava_missing_reason())
def test_lenet5_emulator_equals_lava(lenet_snn) -> None:
    x, _ = nh.datasets.mnist("test", limit=IMAGES)
    device = LoihiDevice("loihi2")
    artifact = device.compile(lenet_snn)
    emu, emu_spikes = device.run_detailed(artifact, x, TIMESTEPS)
    lava, lava_spikes = device.run_detailed(artifact, x, TIMESTEPS, backend="lava")
    for layer, spikes in lava_spikes.items():
        np.testing.assert_array_equal(emu_spikes[layer], spikes, err_msg=layer)
    np.testing.assert_array_equal(emu.output(), lava.output())
    assert sum(int(s.sum()) for s in lava_spikes.values()) > 0


def test_lenet5_emulator_agrees_with_float_snn(lenet_snn) -> None:
    from neurohal.conversion.simulator import simulate

    x, y = nh.datasets.mnist("test", limit=IMAGES)
    float_pred = next(iter(simulate(lenet_snn, x, TIMESTEPS).values())).argmax(axis=1)
    device = LoihiDevice("loihi2")
    pred = device.run(device.compile(lenet_snn), x, TIMESTEPS).output().argmax(axis=1)
    assert np.mean(pred == float_pred) >= 0.97
    assert np.mean(pred == y) >= 0.95
