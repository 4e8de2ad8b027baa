"""The conformance kit: checks that a device plugin honours the device contract.

A plugin author runs it against their device in their own test suite::

    import pytest
    from neurohal.testing import check_case, conformance_cases
    from my_plugin import MyDevice

    @pytest.mark.parametrize("case", conformance_cases(), ids=lambda c: c.name)
    def test_conformance(case):
        check_case(MyDevice(), case)

or all at once with ``check_device(MyDevice())``. Each case is a small graph (dense, conv,
pooling, residual add, concat; analog and spiking) with inputs. For every case the device
`supports` it fully, the kit compiles, runs and measures it and checks: outputs equal the
reference interpreter's within ``device.tolerance``; counters are per-layer integer mappings;
every Quantity has a unit and a provenance (and a measured value only with samples or a
method); the artifact survives save/load; bad inputs (wrong shape, NaN, dtype, timesteps <= 0)
raise a `NeurohalError` subclass. A case the device does not support is skipped, not failed,
but a device must support at least one case.
"""

from neurohal.testing.cases import Case, conformance_cases
from neurohal.testing.checks import ConformanceFailure, check_case, check_device

__all__ = ["Case", "ConformanceFailure", "check_case", "check_device", "conformance_cases"]
