"""cpu_sim against the core conformance kit: every case, analog and spiking, passes."""

from neurohal.testing import check_device, conformance_cases


def test_conformance_kit(cpu_sim):
    results = check_device(cpu_sim)
    assert results == {case.name: "passed" for case in conformance_cases()}
