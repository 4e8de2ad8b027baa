"""Fixtures of the cpu_sim plugin tests."""

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def cpu_sim():
    from neurohal_cpu_sim.device import CpuSimDevice

    return CpuSimDevice()
