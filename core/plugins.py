"""Discovers device plugins through entry points (group ``neurohal``) and registers devices.

A plugin that fails to import, fails inside its hook, or registers a device name that is
already taken is reported (plugin name, error) and skipped; it never stops the others.
``NEUROHAL_PLUGINS`` (comma-separated entry-point names) keeps only the named plugins;
``NEUROHAL_DISABLE_PLUGINS`` drops the named ones.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from importlib import metadata

import attrs
import pluggy

from neurohal import hookspecs
from neurohal.device import Device
from neurohal.errors import PluginError

ENTRY_POINT_GROUP = "neurohal"


@attrs.frozen
class PluginInfo:
    """Where a device came from: entry-point name, distribution and its version."""

    name: str
    distribution: str
    version: str


@attrs.frozen
class BrokenPlugin:
    """A plugin that could not be used, with the error that stopped it."""

    name: str
    error: str
    detail: str = ""


@attrs.frozen
class Exporter:
    """A file format a plugin can write: ``export(graph, path) -> Path``."""

    format: str
    export: Callable
    description: str
    plugin: str


@attrs.frozen
class Registry:
    devices: dict[str, Device]
    origins: dict[str, PluginInfo]
    broken: tuple[BrokenPlugin, ...]
    exporters: dict[str, Exporter] = attrs.field(factory=dict)
    commands: dict[str, object] = attrs.field(factory=dict)


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var, "").strip()
    return {n.strip() for n in raw.split(",") if n.strip()} if raw else None


def _selected(entry_points: list[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    allow = _names_from_env("NEUROHAL_PLUGINS")
    deny = _names_from_env("NEUROHAL_DISABLE_PLUGINS") or set()
    return [
        ep for ep in entry_points if (allow is None or ep.name in allow) and ep.name not in deny
    ]


def _info(ep: metadata.EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")


def discover() -> Registry:
    """Load every selected plugin and collect the devices they register."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    devices: dict[str, Device] = {}
    origins: dict[str, PluginInfo] = {}
    broken: list[BrokenPlugin] = []
    exporters: dict[str, Exporter] = {}
    commands: dict[str, object] = {}
    eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    for ep in _selected(eps):
        info = _info(ep)
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must never stop the others
            broken.append(_broken(ep.name, f"failed to load: {exc!r}"))
            continue
        offered: list[object] = []
        formats: list[tuple] = []
        offered_commands: list[object] = []
        try:
            _call_own(pm, "neurohal_register_devices", ep.name, offered.append)
            _call_own(
                pm, "neurohal_register_exporters", ep.name, lambda *args, f=formats: f.append(args)
            )
            _call_own(pm, "neurohal_register_commands", ep.name, offered_commands.append)
        except Exception as exc:
            broken.append(_broken(ep.name, f"registering raised: {exc!r}"))
            continue
        for fmt, export, description in formats:
            if fmt in exporters:
                broken.append(BrokenPlugin(ep.name, f"duplicate export format {fmt!r}"))
            else:
                exporters[fmt] = Exporter(fmt, export, description, ep.name)
        for command in offered_commands:
            name = getattr(command, "name", None)
            if not name or name in commands:
                broken.append(BrokenPlugin(ep.name, f"command {name!r} missing a name or taken"))
            else:
                commands[name] = command
        for device in offered:
            problem = _check_device(device, devices, origins)
            if problem:
                broken.append(BrokenPlugin(ep.name, problem))
                continue
            devices[device.name] = device
            origins[device.name] = info
    return Registry(devices, origins, tuple(broken), exporters, commands)


def _call_own(pm: pluggy.PluginManager, hook: str, plugin: str, register: Callable) -> None:
    """Call ``hook`` of one plugin only, so one plugin's failure never touches another's."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name == plugin:
            impl.function(register=register)


def _broken(name: str, error: str) -> BrokenPlugin:
    return BrokenPlugin(name, error, traceback.format_exc(limit=5))


def _check_device(
    device: object, devices: dict[str, Device], origins: dict[str, PluginInfo]
) -> str:
    if not isinstance(device, Device):
        return f"registered {device!r}, which is not a neurohal.device.Device instance"
    name = getattr(device, "name", None)
    if not isinstance(name, str) or not name:
        return f"registered a device without a name: {device!r}"
    if name in devices:
        return (
            f"duplicate device name {name!r}: already registered by plugin "
            f"{origins[name].name!r} ({origins[name].distribution})"
        )
    return ""


@functools.cache
def registry() -> Registry:
    """The process-wide registry, discovered on first use (``refresh()`` rediscovers)."""
    return discover()


def refresh() -> Registry:
    registry.cache_clear()
    return registry()


def devices() -> dict[str, Device]:
    """All registered devices by name (available or not: ask each one's ``probe()``)."""
    return dict(registry().devices)


def device(name: str) -> Device:
    """The device called ``name``; an unknown name raises with the known names listed."""
    reg = registry()
    if name not in reg.devices:
        known = ", ".join(sorted(reg.devices)) or "none"
        hint = ""
        if reg.broken:
            hint = " Broken plugins: " + "; ".join(f"{b.name}: {b.error}" for b in reg.broken)
        raise PluginError(f"no device named {name!r}; known devices: {known}.{hint}")
    return reg.devices[name]


def broken_plugins() -> tuple[BrokenPlugin, ...]:
    return registry().broken
