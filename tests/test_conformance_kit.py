"""The conformance kit passes an honest device and catches devices that break the contract."""

import sys
from pathlib import Path

import numpy as np
import pytest

from neurohal.device import Quantity, RunResult
from neurohal.testing import ConformanceFailure, check_case, check_device, conformance_cases

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "minimal_plugin"))
from neurohal_example.device import NumpyDevice


def test_honest_example_device_passes_every_case():
    results = check_device(NumpyDevice())
    assert set(results) == {c.name for c in conformance_cases()}
    assert set(results.values()) == {"passed"}


class OffByALittle(NumpyDevice):
    def run(self, artifact, inputs, timesteps=None):
        r = super().run(artifact, inputs, timesteps)
        outputs = {k: v + 1e-3 for k, v in r.outputs.items()}
        return RunResult(outputs, r.counters, r.samples, r.timesteps)


class SwallowsNaN(NumpyDevice):
    def run(self, artifact, inputs, timesteps=None):
        return super().run(artifact, np.nan_to_num(np.asarray(inputs, dtype=float)), timesteps)


class EnergyInCalories(NumpyDevice):
    def measure(self, artifact, inputs, timesteps=None):
        m = super().measure(artifact, inputs, timesteps)
        bad = Quantity(1.0, "cal", "estimated", "made up")
        return type(m)(m.device, m.latency, m.power_static, m.power_dynamic, bad, m.run)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (OffByALittle(), "differs from the reference"),
        (SwallowsNaN(), "NaN input: run\\(\\) accepted it"),
        (EnergyInCalories(), "energy unit 'cal'"),
    ],
)
def test_contract_breakers_fail(device, message):
    case = conformance_cases("analog")[0]
    with pytest.raises(ConformanceFailure, match=message):
        check_case(device, case)
