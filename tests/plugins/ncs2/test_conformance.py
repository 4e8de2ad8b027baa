"""The ncs2 device against the conformance kit: every analog case passes, spiking ones are
refused with reasons (the NCS2 runs the ANN)."""

import pytest

pytest.importorskip("openvino")

from neurohal.testing import check_device
from neurohal_ncs2.device import Ncs2Device


def test_conformance_kit():
    results = check_device(Ncs2Device())
    assert all(r == "passed" for name, r in results.items() if name.startswith("analog"))
    spiking = [r for name, r in results.items() if name.startswith("spiking")]
    assert spiking and all(r.startswith("skipped") and "runs the ANN" in r for r in spiking)
