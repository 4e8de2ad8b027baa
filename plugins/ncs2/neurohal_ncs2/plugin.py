"""Entry point of the ncs2 plugin: registers its device with neurohal."""

from neurohal.hookspecs import hookimpl


@hookimpl
def neurohal_register_devices(register):
    from neurohal_ncs2.device import Ncs2Device

    register(Ncs2Device())
