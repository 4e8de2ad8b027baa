"""Writing graphs to other tools' formats: built-in ones plus any a plugin registers."""

from __future__ import annotations

from pathlib import Path

from neurohal import plugins
from neurohal.errors import NeurohalError
from neurohal.ir import Graph


def _export_onnx(graph: Graph, path: Path) -> Path:
    import onnx

    from neurohal.onnx_export import to_onnx

    onnx.save(to_onnx(graph), str(path))
    return path


def _export_nir(graph: Graph, path: Path) -> Path:
    from neurohal.nir_interop import save_nir

    save_nir(graph, path)
    return path


BUILT_IN = {
    "onnx": (_export_onnx, "ONNX model of an analog (ANN) graph"),
    "nir": (_export_nir, "Neuromorphic Intermediate Representation (HDF5) of a spiking graph"),
}


def formats() -> dict[str, str]:
    """Every format ``export`` can write, with a description and who provides it."""
    found = {name: f"{desc} (neurohal)" for name, (_, desc) in BUILT_IN.items()}
    for name, exporter in plugins.registry().exporters.items():
        found[name] = f"{exporter.description} (plugin {exporter.plugin})"
    return found


def export(graph: Graph, format: str, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` in ``format``; unknown formats list the known ones."""
    path = Path(path)
    if format in BUILT_IN:
        return BUILT_IN[format][0](graph, path)
    exporter = plugins.registry().exporters.get(format)
    if exporter is None:
        known = ", ".join(sorted(formats()))
        raise NeurohalError(f"no exporter for format {format!r}; known formats: {known}")
    return Path(exporter.export(graph, path))
