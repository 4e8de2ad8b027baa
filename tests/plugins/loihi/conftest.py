"""Shared fixtures of the loihi plugin tests: the device and the Lava interpreter check."""

from __future__ import annotations

import pytest

from neurohal_loihi.device import LoihiDevice, lava_in_process
from neurohal_loihi.worker import lava_python


@pytest.fixture
def loihi1() -> LoihiDevice:
    return LoihiDevice("loihi1")


@pytest.fixture
def loihi2() -> LoihiDevice:
    return LoihiDevice("loihi2")


def lava_missing_reason() -> str:
    """Empty when a Lava interpreter exists (in-process or worker), else why not."""
    if lava_in_process():
        return ""
    python, how = lava_python()
    return "" if python is not None else how
