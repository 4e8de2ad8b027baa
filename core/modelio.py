"""Load a model from whatever a user names: an .onnx, .nhir or .nir file, or a zoo name."""

from __future__ import annotations

from pathlib import Path

from neurohal.errors import NeurohalError
from neurohal.ir import Graph


def load_model(spec: str | Path) -> Graph:
    """The graph in ``spec``: a path ending in .onnx, .nhir or .nir, or a model-zoo name."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".nhir":
        from neurohal.ir import load

        return load(path)
    if suffix == ".onnx":
        from neurohal.frontends.onnx import load_onnx

        return load_onnx(path)
    if suffix == ".nir":
        from neurohal.nir_interop import load_nir

        return load_nir(path)
    from neurohal import zoo

    if str(spec) in zoo.names():
        from neurohal.frontends.onnx import load_onnx

        return load_onnx(zoo.path(str(spec)))
    raise NeurohalError(
        f"cannot load {str(spec)!r}: give a .onnx, .nhir or .nir file or a zoo model "
        f"({', '.join(zoo.names())})"
    )
