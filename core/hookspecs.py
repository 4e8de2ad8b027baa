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


@hookspec
def neurohal_register_exporters(register: Callable[[str, Callable, str], None]) -> None:
    """Call ``register(format_name, export, description)`` for each file format the plugin
    writes, where ``export(graph, path) -> pathlib.Path`` writes ``graph`` to ``path`` and raises
    a NeurohalError naming any node the format cannot express. ``neurohal export --format
    format_name`` then offers it.
    """


@hookspec
def neurohal_register_commands(register: Callable[[object], None]) -> None:
    """Call ``register(command)`` with a ``click.Command`` to add it to the ``neurohal`` CLI
    (e.g. a device-specific ``neurohal optimize``). A name already taken is reported as a
    broken plugin and the command is skipped.
    """
