"""The hooks a neurohal plugin implements (pluggy, project name ``neurohal``)."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("neurohal")
hookimpl = pluggy.HookimplMarker("neurohal")
"""Decorate a plugin's hook functions with this."""


@hookspec
def neurohal_register_devices(register: Callable[[object], None]) -> None:
    """Call ``register(device)`` once per `neurohal.device.Device` instance the plugin offers.

    A plugin is a module (or object) named by an entry point in group ``neurohal``, e.g. in
    pyproject.toml: ``[project.entry-points.neurohal] mydevice = "mypkg.plugin"``.
    """
