"""Entry point of the cpu_sim plugin: registers its device with neurohal."""

from neurohal.hookspecs import hookimpl


@hookimpl
def neurohal_register_devices(register):
    from neurohal_cpu_sim.device import CpuSimDevice

    register(CpuSimDevice())
