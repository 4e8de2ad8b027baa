"""Entry point of the loihi plugin: registers its device and the netx export format."""

from neurohal.hookspecs import hookimpl


@hookimpl
def neurohal_register_devices(register):
    from neurohal_loihi.device import LoihiDevice

    register(LoihiDevice())


@hookimpl
def neurohal_register_exporters(register):
    from neurohal_loihi.netx import export_netx

    register("netx", export_netx, "lava-dl NetX HDF5 network (compiled for Loihi 1)")


@hookimpl
def neurohal_register_commands(register):
    from neurohal_loihi.techniques.cli import command

    register(command)
