"""Entry point of the loihi plugin: registers its device with neurohal."""

from neurohal.hookspecs import hookimpl


@hookimpl
def neurohal_register_devices(register):
    from neurohal_loihi.device import LoihiDevice

    register(LoihiDevice())
