"""The whole plugin: one hook that registers one device."""

from neurohal.hookspecs import hookimpl


@hookimpl
def neurohal_register_devices(register):
    from neurohal_example.device import NumpyDevice

    register(NumpyDevice())
