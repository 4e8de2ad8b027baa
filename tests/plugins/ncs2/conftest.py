"""Fixtures of the ncs2 plugin tests."""

import pytest


@pytest.fixture(scope="session")
def ncs2():
    pytest.importorskip("openvino")
    from neurohal_ncs2.device import Ncs2Device

    return Ncs2Device()
