"""neurohal: convert pre-trained DNNs into spiking networks and deploy them on devices.

The public API. Heavy parts (frontends, converter, comparison, NIR) load on first use, so
``import neurohal`` stays fast and works without torch.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from neurohal.device import (
    Artifact,
    Availability,
    Device,
    Measurement,
    Quantity,
    RunResult,
    SupportReport,
)
from neurohal.errors import NeurohalError
from neurohal.ir import Graph, load, save
from neurohal.plugins import broken_plugins, device, devices

try:
    __version__ = metadata.version("neurohal")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

_LAZY_FUNCTIONS = {
    "load_onnx": "neurohal.frontends.onnx",
    "load_torch": "neurohal.frontends.torch",
    "convert": "neurohal.conversion",
    "ConversionConfig": "neurohal.conversion",
    "calibrate": "neurohal.conversion",
    "compare": "neurohal.comparison",
    "to_nir": "neurohal.nir_interop",
    "from_nir": "neurohal.nir_interop",
}
_LAZY_MODULES = ("datasets", "zoo", "reference", "testing")


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"neurohal.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'neurohal' has no attribute {name!r}")


__all__ = [
    "Artifact",
    "Availability",
    "Device",
    "Graph",
    "Measurement",
    "NeurohalError",
    "Quantity",
    "RunResult",
    "SupportReport",
    "broken_plugins",
    "device",
    "devices",
    "load",
    "save",
    *_LAZY_FUNCTIONS,
    *_LAZY_MODULES,
]
