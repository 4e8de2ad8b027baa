"""NIR interop: export IR graphs to, and import them from, the Neuromorphic Intermediate
Representation (NIR, https://neuroir.org), the format snnTorch, Norse, Sinabs, Rockpool, Lava-DL,
SpiNNaker2, Xylo and Speck exchange spiking networks in.

NIR's neurons are continuous-time ODEs; the IR is discrete-time. Both directions use forward
Euler with a step ``dt`` (default 1e-4 s, the constant snnTorch's NIR export uses): for LIF,
``v += dt/tau * (v_leak - v + r*x)``, so ``decay_v = dt/tau`` and the per-step input gain is
``dt*r/tau``. IF and I have no time constant and take ``r`` as the per-step gain (``v += r*x``),
as snnTorch's NIR import reads them. What NIR lacks (reset by subtraction, an initial membrane,
the exact discrete values) travels in each node's ``metadata["neurohal"]``. docs/nir.md has the
whole mapping and the metadata convention.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
import h5py
import numpy as np

from neurohal.errors import (
    ConversionError,
    IRFormatError,
    IRValidationError,
    NeurohalError,
    UnsupportedGraphError,
)
from neurohal.ir import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    CubaLIF,
    Dense,
    Edge,
    Encoder,
    Flatten,
    Graph,
    Input,
    Node,
    Output,
    Readout,
    Reshape,
    Scale,
    SumPool2d,
)
from neurohal.ir.nodes import RESETS
from neurohal.ir.serialize import MAX_ARRAY_ELEMENTS

try:
    import nir
    from nir.serialization import hdf2dict
except ImportError as _exc:  # the optional extra is missing
    raise NeurohalError(
        "NIR interop needs the 'nir' package: pip install 'neurohal[nir]'"
    ) from _exc

DEFAULT_DT = 1e-4
"""Euler step in seconds when a NIR graph does not say: snnTorch's export constant
(snntorch/export_nir.py, ``dt = 1e-4``), so its graphs import with their own decays."""

KEY = "neurohal"
"""The metadata key, on the NIRGraph and on its nodes, that holds what NIR cannot say."""

CONVENTION = 1
"""Version of the metadata convention (docs/nir.md), stored in the graph metadata."""

GAIN_RTOL = 1e-9
"""A per-step gain within this relative distance of 1 is 1: ``r = tau/dt`` written by an
exporter gives ``dt*r/tau`` a few ulps from 1."""

MAX_FILE_BYTES = 2**32
"""A .nir file whose datasets would unpack to more than this is refused before reading."""

READ_TIMEOUT_S = 60.0
"""How long the checker process may take to read a .nir file. libhdf5 loops forever or
crashes on some corrupted files, so load_nir reads an untrusted file in a child first."""

MAX_DEPTH = 32
"""Deepest HDF5 group nesting read from a .nir file (nested subgraphs nest groups)."""

_SPIKING = (nir.IF, nir.LIF, nir.CubaLIF, nir.I)


# ====================================================================== export


def to_nir(graph: Graph, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The NIR graph of ``graph``, discretised with step ``dt``; raises UnsupportedGraphError
    listing every node NIR cannot express, and warns when another tool would see different
    neuron dynamics (reset by subtraction, initial membrane, time-averaged readout)."""
    graph.validate()
    dt = _check_dt(dt)
    refusals = [
        f"node {n.name!r} ({n.type_name}): {why}" for n in graph.nodes if (why := _refusal(n))
    ]
    if refusals:
        raise UnsupportedGraphError(
            "cannot express in NIR: "
            + "; ".join(refusals)
            + ". Export the spiking graph (neurohal.convert) or run these nodes on a device."
        )
    shapes = graph.shapes()
    dissolved = {n.name for n in graph.nodes if isinstance(n, (Add, Encoder))}
    nodes = {
        n.name: _export_node(n, graph, shapes, dt) for n in graph.nodes if n.name not in dissolved
    }
    edges = _export_edges(graph, dissolved)
    _warn_semantics(graph)
    metadata = {
        KEY: {
            "convention": CONVENTION,
            "dt": dt,
            "ir_metadata": json.dumps(dict(graph.metadata), sort_keys=True),
        }
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def save_nir(graph: Graph, path: str | os.PathLike, dt: float = DEFAULT_DT) -> Path:
    """Write ``graph`` as a .nir file (NIR's HDF5 layout) atomically; returns the path."""
    nir_graph = to_nir(graph, dt)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        nir.write(tmp, nir_graph)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_dt(dt: object) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)):
        raise ConversionError(f"dt must be a positive number of seconds, got {dt!r}")
    if not (math.isfinite(float(dt)) and dt > 0):
        raise ConversionError(f"dt must be a positive finite number of seconds, got {dt!r}")
    return float(dt)


def _refusal(node: Node) -> str | None:
    """Why NIR cannot express ``node``, or None."""
    name = node.type_name
    if name in ("ReLU", "Clip", "Softmax"):
        return f"NIR describes spiking networks and has no analog {name}"
    if name == "MaxPool2d":
        return "NIR has no max pooling (only SumPool2d and AvgPool2d)"
    if name == "Concat":
        return "NIR has no concatenation (edges into a node sum, they do not join)"
    if isinstance(node, Reshape) and len(node.shape) != 1:
        return f"NIR has only Flatten; a reshape to {node.shape} has no NIR node"
    if isinstance(node, Encoder) and node.kind != "analog":
        return (
            f"NIR has no {node.kind} encoder, so another tool could not reproduce its "
            "seeded spikes; use Encoder(kind='analog') or feed spikes as the input"
        )
    if isinstance(node, (Conv2d, AvgPool2d, SumPool2d)):
        top, left, bottom, right = node.padding
        if (top, left) != (bottom, right):
            return f"NIR padding is symmetric (h, w); {node.padding} (t, l, b, r) is not"
    if isinstance(node, CubaLIF) and 0.0 in (node.decay_i, node.decay_v):
        return (
            "a zero decay is an infinite time constant, which makes NIR's unit-gain "
            "parameters (r = tau_mem/dt, w_in = tau_syn/dt) infinite"
        )
    return None


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    return np.full(shape, value, dtype=np.float64)


def _below(threshold: float) -> float:
    """NIR fires on ``v > thr``, the IR on ``v >= thr``: the next float below is exact."""
    return float(np.nextafter(threshold, -np.inf))


def _neuron_metadata(node: Node) -> dict:
    meta = {
        "node": node.type_name,
        "reset": node.reset,
        "v_init": node.v_init,
        "v_threshold": node.v_threshold,
    }
    for field in ("decay_i", "decay_v"):
        if hasattr(node, field):
            meta[field] = getattr(node, field)
    return {KEY: meta}


def _export_node(node: Node, graph: Graph, shapes: Mapping, dt: float) -> nir.NIRNode:
    shape = shapes[node.name]
    if isinstance(node, Input):
        encoders = [c for c in graph.consumers(node.name) if isinstance(graph.node(c), Encoder)]
        meta = {KEY: {"encoder": encoders[0]}} if encoders else {}
        return nir.Input(input_type={"input": np.array(shape)}, metadata=meta)
    if isinstance(node, Output):
        return nir.Output(output_type={"output": np.array(shape)})
    source_shape = shapes[graph.sources(node.name)[0]]
    if isinstance(node, Dense):
        if node.bias is None:
            return nir.Linear(weight=np.array(node.weight))
        return nir.Affine(weight=np.array(node.weight), bias=np.array(node.bias))
    if isinstance(node, Conv2d):
        bias = node.bias if node.bias is not None else np.zeros(shape[0], node.weight.dtype)
        conv = nir.Conv2d(
            input_shape=tuple(source_shape[1:]),
            weight=np.array(node.weight),
            stride=node.stride,
            padding=node.padding[:2],
            dilation=node.dilation,
            groups=node.groups,
            bias=np.array(bias),
        )
        # nir 1.0 takes the input channels to be weight.shape[1], wrong when groups > 1
        conv.input_type = {"input": np.array(source_shape)}
        return conv
    if isinstance(node, (AvgPool2d, SumPool2d)):
        cls = nir.AvgPool2d if isinstance(node, AvgPool2d) else nir.SumPool2d
        return cls(
            kernel_size=np.array(node.kernel),
            stride=np.array(node.stride),
            padding=np.array(node.padding[:2]),
        )
    if isinstance(node, (Flatten, Reshape)):
        return nir.Flatten(input_type={"input": np.array(source_shape)}, start_dim=0, end_dim=-1)
    if isinstance(node, Scale):
        scale = (
            node.scale.reshape((-1,) + (1,) * (len(shape) - 1)) if node.scale.ndim else node.scale
        )
        return nir.Scale(scale=np.ascontiguousarray(np.broadcast_to(scale, shape)))
    if isinstance(node, Readout):
        return nir.I(r=_full(shape, 1.0), metadata={KEY: {"node": "Readout", "kind": node.kind}})
    return _export_neuron(node, shape, dt)


def _export_neuron(node: Node, shape: tuple[int, ...], dt: float) -> nir.NIRNode:
    zeros = _full(shape, 0.0)
    thr = _full(shape, _below(node.v_threshold))
    meta = _neuron_metadata(node)
    if isinstance(node, IF) or (isinstance(node, LIF) and node.decay_v == 0.0):
        return nir.IF(r=_full(shape, 1.0), v_threshold=thr, v_reset=zeros, metadata=meta)
    if isinstance(node, LIF):
        tau = _full(shape, dt / node.decay_v)
        return nir.LIF(
            tau=tau, r=tau / dt, v_leak=zeros, v_threshold=thr, v_reset=zeros, metadata=meta
        )
    tau_syn, tau_mem = _full(shape, dt / node.decay_i), _full(shape, dt / node.decay_v)
    return nir.CubaLIF(
        tau_syn=tau_syn,
        tau_mem=tau_mem,
        r=tau_mem / dt,
        v_leak=zeros,
        v_threshold=thr,
        v_reset=zeros,
        w_in=tau_syn / dt,
        metadata=meta,
    )


def _export_edges(graph: Graph, dissolved: set[str]) -> list[tuple[str, str]]:
    """Edges between kept nodes; an Add or Encoder is replaced by the edges into it."""

    def kept_sources(name: str) -> list[str]:
        if name not in dissolved:
            return [name]
        return [s for src in graph.sources(name) for s in kept_sources(src)]

    edges: list[tuple[str, str]] = []
    for edge in graph.edges:
        if edge.dst in dissolved:
            continue
        for src in kept_sources(edge.src):
            if (src, edge.dst) in edges:
                raise UnsupportedGraphError(
                    f"node {edge.dst!r}: node {src!r} reaches it along two paths through Add "
                    "nodes; NIR forbids duplicate edges. Insert a Scale(2) on one path instead."
                )
            edges.append((src, edge.dst))
    return edges


def _warn_semantics(graph: Graph) -> None:
    """Say what a tool that ignores metadata['neurohal'] will compute differently."""
    neurons = [n for n in graph.nodes if isinstance(n, (IF, LIF, CubaLIF))]
    subtract = [n.name for n in neurons if n.reset == "subtract"]
    initial = [n.name for n in neurons if n.v_init != 0.0]
    readouts = [n.name for n in graph.nodes if isinstance(n, Readout)]
    parts = []
    if subtract:
        parts.append(
            f"neurons {subtract} reset by subtraction, which NIR lacks: another tool "
            "resets them to v_reset = 0"
        )
    if initial:
        parts.append(f"neurons {initial} start from v_init != 0: another tool starts them at 0")
    if readouts:
        parts.append(
            f"readouts {readouts} export as integrators (nir.I): another tool reads "
            "their membrane after T steps, T times neurohal's time-averaged output"
        )
    if parts:
        warnings.warn(
            "NIR export: " + "; ".join(parts) + f". The exact values are kept in each node's "
            f"metadata[{KEY!r}] for neurohal.from_nir.",
            UserWarning,
            stacklevel=3,
        )


# ====================================================================== import


@attrs.frozen
class _Piece:
    """The IR nodes one NIR node becomes: edges into it reach ``head``; ``tail`` is its
    output (``head`` is None for an Input, which takes no edges)."""

    nodes: tuple[Node, ...]
    head: str | None
    tail: str


class _Context:
    """What every node importer needs: the source graph, dt and fresh-name allocation."""

    def __init__(self, source: nir.NIRGraph, dt: float) -> None:
        self.source = source
        self.dt = dt
        self.taken = set(source.nodes)
        self.spiking = any(type(n) in _SPIKING for n in source.nodes.values())

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    def consumers(self, name: str) -> list[nir.NIRNode]:
        return [self.source.nodes[b] for a, b in self.source.edges if a == name]


class _Refused(Exception):
    """One NIR node cannot be imported; collected so the error lists them all."""


def from_nir(source: nir.NIRGraph | str | os.PathLike, dt: float | None = None) -> Graph:
    """The IR graph of a NIR graph (or .nir file). ``dt`` is the Euler step used to
    discretise NIR's time constants; by default the one neurohal recorded on export, else
    DEFAULT_DT. Raises ConversionError naming every node that has no IR equivalent."""
    if isinstance(source, (str, os.PathLike)):
        return load_nir(source, dt)
    if not isinstance(source, nir.NIRGraph):
        raise ConversionError(
            f"from_nir takes a nir.NIRGraph or a .nir path, got {type(source).__name__}"
        )
    _check_structure(source)
    graph_meta = _graph_metadata(source)
    ctx = _Context(source, _check_dt(dt if dt is not None else graph_meta.get("dt", DEFAULT_DT)))
    pieces, refusals = {}, []
    for name, node in source.nodes.items():
        try:
            pieces[name] = _import_node(name, node, ctx)
        except _Refused as exc:
            refusals.append(f"node {name!r} ({type(node).__name__}): {exc}")
    if refusals:
        raise ConversionError("cannot import from NIR: " + "; ".join(refusals))
    nodes = [n for piece in pieces.values() for n in piece.nodes]
    edges = [e for piece in pieces.values() for e in _chain_edges(piece.nodes)]
    for src, dst in source.edges:
        if pieces[dst].head is None:
            raise ConversionError(f"NIR edge {src!r} -> {dst!r} enters an Input node")
        edges.append(Edge(pieces[src].tail, pieces[dst].head))
    graph = Graph(nodes, edges, _ir_metadata(graph_meta))
    try:
        return graph.validate()
    except IRValidationError as exc:
        raise ConversionError(
            f"the imported NIR graph is not a valid neurohal graph: {exc}"
        ) from exc


def load_nir(path: str | os.PathLike, dt: float | None = None) -> Graph:
    """Read a .nir file and import it (see from_nir). Files that are not readable NIR
    (truncated, corrupted, hostile, oversized, unknown node types) raise IRFormatError."""
    path = Path(path)
    if not path.is_file():
        raise IRFormatError(f"{path}: no such NIR file")
    _check_in_child(path)
    nir_graph = _read(path)
    if not isinstance(nir_graph, nir.NIRGraph):
        raise IRFormatError(f"{path}: holds a {type(nir_graph).__name__}, not a NIRGraph")
    return from_nir(nir_graph, dt)


_READ_ERRORS = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    AssertionError,
    AttributeError,
    IndexError,
    RecursionError,
)


def _read(path: Path) -> nir.NIRNode:
    """nir.read, with its errors turned into IRFormatError naming the node that broke."""
    try:
        return nir.read(path, type_check=False)
    except _READ_ERRORS as exc:
        where = _failing_node(path)
        raise IRFormatError(
            f"{path}: not a valid NIR graph{where}: {type(exc).__name__}: {exc}"
        ) from exc


def _failing_node(path: Path) -> str:
    """' (node NAME)' for the first node nir cannot build on its own, else ''."""
    try:
        with h5py.File(path, "r") as f:
            nodes = hdf2dict(f["node"]).get("nodes")
    except _READ_ERRORS:
        return ""
    for name, data in nodes.items() if isinstance(nodes, dict) else ():
        try:
            nir.dict2NIRNode(data)
        except _READ_ERRORS:
            return f" (node {name!r})"
    return ""


def _graph_metadata(source: nir.NIRGraph) -> dict:
    meta = source.metadata.get(KEY) if isinstance(source.metadata, dict) else None
    if not isinstance(meta, dict):
        return {}
    convention = meta.get("convention", CONVENTION)
    if not isinstance(convention, (int, np.integer)) or convention > CONVENTION:
        raise ConversionError(
            f"graph metadata[{KEY!r}] follows convention {convention!r}, newer than this "
            f"neurohal's ({CONVENTION}); upgrade neurohal to import it"
        )
    return meta


def _ir_metadata(graph_meta: Mapping) -> dict:
    text = graph_meta.get("ir_metadata")
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"graph metadata[{KEY!r}]['ir_metadata'] is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConversionError(f"graph metadata[{KEY!r}]['ir_metadata'] is not a JSON object")
    return value


def _check_structure(source: nir.NIRGraph) -> None:
    if not isinstance(source.nodes, Mapping) or not source.nodes:
        raise ConversionError("the NIR graph has no nodes")
    for name, node in source.nodes.items():
        if not isinstance(name, str) or not isinstance(node, nir.NIRNode):
            raise ConversionError(f"NIR node {name!r} is a {type(node).__name__}, not a NIRNode")
    if not isinstance(source.edges, (list, tuple)):
        raise ConversionError(f"NIR edges must be a list of pairs, got {type(source.edges)}")
    for edge in source.edges:
        if (
            not isinstance(edge, (list, tuple))
            or len(edge) != 2
            or any(not isinstance(end, str) or end not in source.nodes for end in edge)
        ):
            raise ConversionError(f"NIR edge {edge!r} does not join two nodes of the graph")


def _chain_edges(nodes: tuple[Node, ...]) -> list[Edge]:
    return [Edge(a.name, b.name) for a, b in itertools.pairwise(nodes)]


def _import_node(name: str, node: nir.NIRNode, ctx: _Context) -> _Piece:
    importer = _IMPORTERS.get(type(node))
    if importer is None:
        raise _Refused(
            _UNSUPPORTED.get(type(node).__name__, "not a NIR node neurohal knows")
            + f" (importable: {sorted(t.__name__ for t in _IMPORTERS)})"
        )
    return importer(name, node, ctx)


def _single(name: str, node: Node) -> _Piece:
    return _Piece((node,), name, name)


# -- parameters: every value read from a NIR node is checked before use


def _numeric(node: nir.NIRNode, field: str) -> np.ndarray:
    value = getattr(node, field, None)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"{field} is not an array: {exc}") from exc
    if arr.dtype.kind not in "fiu":
        raise _Refused(f"{field} has non-numeric type {arr.dtype} ({type(value).__name__})")
    if arr.size > MAX_ARRAY_ELEMENTS:
        raise _Refused(f"{field} has {arr.size} elements, more than {MAX_ARRAY_ELEMENTS}")
    if not np.all(np.isfinite(arr)):
        raise _Refused(f"{field} holds NaN or infinite values")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _uniform(node: nir.NIRNode, field: str, values: np.ndarray | None = None) -> float:
    arr = _numeric(node, field) if values is None else values
    if arr.size == 0:
        raise _Refused(f"{field} is empty")
    if not np.all(arr == arr.flat[0]):
        raise _Refused(f"{field} varies across neurons; an IR layer has one value")
    return float(arr.flat[0])


def _ints(node: nir.NIRNode, field: str, count: int, minimum: int) -> tuple[int, ...]:
    arr = _numeric(node, field).ravel()
    if arr.size not in (1, count) or not np.all(arr == np.round(arr)):
        raise _Refused(f"{field} must be 1 or {count} integers, got {arr.tolist()}")
    if np.any(arr < minimum) or np.any(arr > 2**31):
        raise _Refused(f"{field} {arr.tolist()} out of range (>= {minimum})")
    return tuple(int(v) for v in np.broadcast_to(arr, (count,)))


def _shape(value: object, what: str) -> tuple[int, ...]:
    arr = np.asarray(value) if value is not None else None
    if arr is None or arr.dtype.kind not in "iuf" or arr.ndim != 1:
        raise _Refused(f"{what} is not a shape: {value!r}")
    if np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise _Refused(f"{what} {arr.tolist()} is not a list of positive integers")
    if math.prod(float(v) for v in arr) > MAX_ARRAY_ELEMENTS:
        raise _Refused(f"{what} {arr.tolist()} has more than {MAX_ARRAY_ELEMENTS} elements")
    return tuple(int(v) for v in arr)


def _port_type(node: nir.NIRNode, attribute: str, port: str) -> object:
    types = getattr(node, attribute, None)
    return types.get(port) if isinstance(types, dict) else None


# -- structure and synapses


def _import_input(name: str, node: nir.Input, ctx: _Context) -> _Piece:
    inp = Input(name=name, shape=_shape(_port_type(node, "input_type", "input"), "input shape"))
    if not ctx.spiking:
        return _Piece((inp,), None, name)
    meta = node.metadata.get(KEY) if isinstance(node.metadata, dict) else None
    wanted = meta.get("encoder") if isinstance(meta, dict) else None
    enc = ctx.fresh(wanted if isinstance(wanted, str) and wanted else f"{name}_encoder")
    return _Piece((inp, Encoder(name=enc, kind="analog")), None, enc)


def _import_output(name: str, node: nir.Output, ctx: _Context) -> _Piece:
    return _single(name, Output(name=name))


def _import_dense(name: str, node: nir.NIRNode, ctx: _Context) -> _Piece:
    weight = _numeric(node, "weight")
    if weight.ndim != 2:
        raise _Refused(f"weight must be 2-D (out, in), got shape {weight.shape}")
    bias = _numeric(node, "bias") if isinstance(node, nir.Affine) else None
    if bias is not None and bias.shape != (weight.shape[0],):
        raise _Refused(f"bias shape {bias.shape} != ({weight.shape[0]},)")
    return _single(name, Dense(name=name, weight=weight, bias=bias))


def _import_conv(name: str, node: nir.Conv2d, ctx: _Context) -> _Piece:
    weight = _numeric(node, "weight")
    if weight.ndim != 4:
        raise _Refused(f"weight must be 4-D (out, in/groups, kh, kw), got {weight.shape}")
    stride = _ints(node, "stride", 2, 1)
    dilation = _ints(node, "dilation", 2, 1)
    groups = _ints(node, "groups", 1, 1)[0]
    bias = _numeric(node, "bias")
    if bias.shape != (weight.shape[0],):
        raise _Refused(f"bias shape {bias.shape} != ({weight.shape[0]},)")
    padding = _conv_padding(node, weight.shape[2:], stride, dilation)
    return _single(
        name,
        Conv2d(
            name=name,
            weight=weight,
            bias=bias if bias.any() else None,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
        ),
    )


def _conv_padding(
    node: nir.Conv2d, kernel: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    padding = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
    if not isinstance(padding, str):
        h, w = _ints(node, "padding", 2, 0)
        return (h, w, h, w)
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise _Refused("padding 'same' needs stride 1 (as in PyTorch)")
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    raise _Refused(f"padding {padding!r} is not 'same', 'valid' or integers")


def _import_pool(name: str, node: nir.NIRNode, ctx: _Context) -> _Piece:
    cls = AvgPool2d if isinstance(node, nir.AvgPool2d) else SumPool2d
    kernel = _ints(node, "kernel_size", 2, 1)
    stride = _ints(node, "stride", 2, 1)
    h, w = _ints(node, "padding", 2, 0)
    return _single(name, cls(name=name, kernel=kernel, stride=stride, padding=(h, w, h, w)))


def _import_flatten(name: str, node: nir.Flatten, ctx: _Context) -> _Piece:
    start, end = _ints(node, "start_dim", 1, -64)[0], _ints(node, "end_dim", 1, -64)[0]
    if start == 0 and end == -1:
        return _single(name, Flatten(name=name))
    in_type = _port_type(node, "input_type", "input")
    if in_type is None:
        raise _Refused(f"a partial flatten (dims {start}..{end}) needs its input_type")
    shape = list(_shape(in_type, "input_type"))
    first, last = start % len(shape), end % len(shape)
    if first > last:
        raise _Refused(f"start_dim {start} is after end_dim {end} for input {shape}")
    out = shape[:first] + [math.prod(shape[first : last + 1])] + shape[last + 1 :]
    if len(out) == 1:
        return _single(name, Flatten(name=name))
    return _single(name, Reshape(name=name, shape=tuple(out)))


def _scale_values(values: np.ndarray, what: str) -> np.ndarray | None:
    """An IR Scale factor (scalar or one per channel) equal to ``values``; None for 1."""
    if values.size and np.all(values == values.flat[0]):
        one = abs(float(values.flat[0]) - 1.0) <= GAIN_RTOL
        return None if one else np.asarray(values.flat[0])
    channels = values.reshape(values.shape[0], -1) if values.ndim else values
    if values.ndim and np.all(channels == channels[:, :1]):
        return channels[:, 0].copy()
    raise _Refused(f"{what} varies within a channel; an IR Scale is a scalar or per channel")


def _import_scale(name: str, node: nir.Scale, ctx: _Context) -> _Piece:
    factor = _scale_values(_numeric(node, "scale"), "scale")
    return _single(name, Scale(name=name, scale=1.0 if factor is None else factor))


# -- neurons


def _node_metadata(node: nir.NIRNode) -> dict:
    meta = node.metadata.get(KEY) if isinstance(node.metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def _with_gain(name: str, neuron: Node, gain: np.ndarray, ctx: _Context) -> _Piece:
    """The neuron, preceded by a Scale when its per-step input gain is not 1."""
    factor = _scale_values(gain, "the input gain")
    if factor is None:
        return _single(name, neuron)
    scale = Scale(name=ctx.fresh(f"{name}_gain"), scale=factor)
    return _Piece((scale, neuron), scale.name, name)


def _trusted(node: nir.NIRNode, derived: dict[str, float], gain: np.ndarray) -> dict | None:
    """The exact IR fields in metadata['neurohal'] when they agree with the node's
    parameters (neurohal's own export), else None."""
    meta = _node_metadata(node)
    try:
        exact = {key: float(meta[key]) for key in derived}
        reset, v_init = str(meta["reset"]), float(meta["v_init"])
    except (KeyError, TypeError, ValueError):
        return None
    v_reset = getattr(node, "v_reset", None)
    agrees = (
        reset in RESETS
        and math.isfinite(v_init)
        and np.allclose(gain, 1.0, rtol=0.0, atol=GAIN_RTOL)
        and (v_reset is None or not np.any(_numeric(node, "v_reset") != 0))
        and all(
            math.isclose(exact[k], v, rel_tol=GAIN_RTOL, abs_tol=1e-12) for k, v in derived.items()
        )
    )
    return dict(exact, reset=reset, v_init=v_init) if agrees else None


def _nir_semantics(node: nir.NIRNode, derived: dict[str, float]) -> dict:
    """IR fields for NIR's own neuron: reset to v_reset = 0, strict threshold, v = 0 at start."""
    if getattr(node, "v_reset", None) is not None and np.any(_numeric(node, "v_reset") != 0):
        raise _Refused("v_reset != 0; IR neurons reset to 0 or by subtraction")
    if not derived["v_threshold"] > 0:
        raise _Refused(f"v_threshold {derived['v_threshold']} is not positive")
    # NIR fires on v > thr, the IR on v >= thr: the next float above is the same test
    threshold = float(np.nextafter(derived["v_threshold"], np.inf))
    return dict(derived, v_threshold=threshold, reset="zero", v_init=0.0)


def _decay(node: nir.NIRNode, field: str, dt: float) -> float:
    tau = _uniform(node, field)
    if not tau >= dt:
        raise _Refused(f"{field} {tau} < dt {dt}: forward Euler needs dt <= tau (pass dt=)")
    return dt / tau


def _zero_leak(node: nir.NIRNode) -> None:
    if np.any(_numeric(node, "v_leak") != 0):
        raise _Refused("v_leak != 0 is a constant input current the IR neurons lack")


def _build_neuron(
    name: str,
    cls: type,
    node: nir.NIRNode,
    derived: dict[str, float],
    gain: np.ndarray,
    ctx: _Context,
) -> _Piece:
    exact = _trusted(node, derived, gain) if _node_metadata(node) else None
    if exact is None and _node_metadata(node):
        warnings.warn(
            f"NIR node {name!r}: metadata[{KEY!r}] disagrees with its parameters (edited by "
            "another tool, or imported with another dt?); using the parameters with NIR's "
            "reset to v_reset = 0",
            UserWarning,
            stacklevel=5,
        )
    try:
        neuron = cls(name=name, **(exact or _nir_semantics(node, derived)))
    except (TypeError, ValueError) as exc:
        raise _Refused(str(exc)) from exc
    return _single(name, neuron) if exact else _with_gain(name, neuron, gain, ctx)


def _import_if(name: str, node: nir.IF, ctx: _Context) -> _Piece:
    derived = {"v_threshold": _uniform(node, "v_threshold")}
    return _build_neuron(name, IF, node, derived, _numeric(node, "r"), ctx)


def _import_lif(name: str, node: nir.LIF, ctx: _Context) -> _Piece:
    _zero_leak(node)
    decay = _decay(node, "tau", ctx.dt)
    gain = ctx.dt * _numeric(node, "r") / _numeric(node, "tau")
    derived = {"v_threshold": _uniform(node, "v_threshold"), "decay_v": decay}
    return _build_neuron(name, LIF, node, derived, gain, ctx)


def _import_cubalif(name: str, node: nir.CubaLIF, ctx: _Context) -> _Piece:
    _zero_leak(node)
    decay_i, decay_v = _decay(node, "tau_syn", ctx.dt), _decay(node, "tau_mem", ctx.dt)
    # i' = s_v * i obeys the IR recursion with input s_i * s_v * x, so one gain suffices
    gain = (ctx.dt * _numeric(node, "w_in") / _numeric(node, "tau_syn")) * (
        ctx.dt * _numeric(node, "r") / _numeric(node, "tau_mem")
    )
    derived = {"v_threshold": _uniform(node, "v_threshold"), "decay_i": decay_i, "decay_v": decay_v}
    return _build_neuron(name, CubaLIF, node, derived, gain, ctx)


def _import_integrator(name: str, node: nir.I, ctx: _Context) -> _Piece:
    """A readout: neurohal's own (metadata node 'Readout', r = 1) exactly; another tool's
    integrator only where it feeds Outputs, as its membrane divided by T."""
    meta = _node_metadata(node)
    r = _numeric(node, "r")
    if (
        meta.get("node") == "Readout"
        and meta.get("kind") in ("membrane", "spike_count")
        and np.all(r == 1.0)
    ):
        return _single(name, Readout(name=name, kind=str(meta["kind"])))
    if not all(isinstance(c, nir.Output) for c in ctx.consumers(name)):
        raise _Refused(
            "an integrator inside the network has no IR equivalent (the IR's "
            "readout is a time average that feeds only outputs)"
        )
    return _with_gain(name, Readout(name=name, kind="membrane"), r, ctx)


_IMPORTERS: dict[type, Callable[[str, nir.NIRNode, _Context], _Piece]] = {
    nir.Input: _import_input,
    nir.Output: _import_output,
    nir.Affine: _import_dense,
    nir.Linear: _import_dense,
    nir.Conv2d: _import_conv,
    nir.AvgPool2d: _import_pool,
    nir.SumPool2d: _import_pool,
    nir.Flatten: _import_flatten,
    nir.Scale: _import_scale,
    nir.IF: _import_if,
    nir.LIF: _import_lif,
    nir.CubaLIF: _import_cubalif,
    nir.I: _import_integrator,
}

_UNSUPPORTED = {
    "LI": "a leaky integrator's membrane has no IR equivalent (the IR readout is a "
    "non-leaky time average); export the readout as nir.I",
    "CubaLI": "a current-based leaky integrator has no IR equivalent (see LI)",
    "Delay": "the IR has no synaptic delays",
    "Threshold": "a stateless threshold has no IR node",
    "Conv1d": "the IR has no 1-D convolution",
    "NIRGraph": "nested subgraphs are not imported; flatten the graph first",
}


# ====================================================================== file checks


_REFUSED_EXIT = 2


def _check_in_child(path: Path) -> None:
    """Check and read ``path`` in a child process, so that a file on which libhdf5 hangs or
    crashes gives IRFormatError here instead of taking this process down."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", __name__, os.fspath(path)],
            capture_output=True,
            text=True,
            timeout=READ_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise IRFormatError(
            f"{path}: reading did not finish within {READ_TIMEOUT_S:g} s; its HDF5 structures "
            "are corrupted (libhdf5 loops on some damaged files)"
        ) from exc
    if proc.returncode == _REFUSED_EXIT:
        raise IRFormatError(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise IRFormatError(
            f"{path}: reading it failed in the checker process ({tail[0]}); the file is corrupted"
        )


def _check_file(path: Path) -> None:
    """Refuse a file that is not HDF5, or whose links, types or sizes are unsafe to read."""
    try:
        with h5py.File(path, "r") as f:
            node = f.get("node", getlink=True)
            if not isinstance(node, h5py.HardLink) or not isinstance(f["node"], h5py.Group):
                raise IRFormatError(f"{path}: no 'node' group; not a NIR file")
            total = _check_group(path, f["node"], 0, is_node=True)
    except _READ_ERRORS as exc:
        raise IRFormatError(
            f"{path}: not a readable HDF5 file (truncated or corrupted?): {exc}"
        ) from exc
    if total > MAX_FILE_BYTES:
        raise IRFormatError(
            f"{path}: datasets would unpack to {total} bytes, more than "
            f"{MAX_FILE_BYTES}; refusing to read"
        )


_KNOWN_TYPES = {t.__name__ for t in _IMPORTERS} | set(_UNSUPPORTED)


def _check_group(path: Path, group: h5py.Group, depth: int, is_node: bool) -> int:
    """Check a group's links, datasets and (for node groups) type; returns its byte size.
    Node groups are the root ``node`` and the children of a node's ``nodes`` group."""
    if depth > MAX_DEPTH:
        raise IRFormatError(f"{path}: groups nest deeper than {MAX_DEPTH} at {group.name}")
    if is_node:
        _check_type(path, group)
    total = 0
    for key in group:
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise IRFormatError(
                f"{path}: {group.name}/{key} is a {type(link).__name__}; only "
                "plain groups and datasets are read"
            )
        item = group[key]
        if isinstance(item, h5py.Group):
            children_are_nodes = is_node and key == "nodes"
            for child in item if children_are_nodes else ():
                if not isinstance(item.get(child, getlink=True), h5py.HardLink):
                    raise IRFormatError(f"{path}: {item.name}/{child} is not a plain link")
                if not isinstance(item[child], h5py.Group):
                    raise IRFormatError(f"{path}: node {item.name}/{child} is not a group")
                total += _check_group(path, item[child], depth + 2, is_node=True)
            if not children_are_nodes:
                total += _check_group(path, item, depth + 1, is_node=False)
        elif isinstance(item, h5py.Dataset):
            total += _check_dataset(path, item)
        else:
            raise IRFormatError(f"{path}: {item.name} is neither a group nor a dataset")
    return total


def _check_dataset(path: Path, ds: h5py.Dataset) -> int:
    kind = ds.dtype.kind
    is_text = h5py.check_string_dtype(ds.dtype) is not None
    if kind not in "fiub" and not is_text:
        raise IRFormatError(f"{path}: dataset {ds.name} has unsupported type {ds.dtype}")
    if ds.size > MAX_ARRAY_ELEMENTS:
        raise IRFormatError(
            f"{path}: dataset {ds.name} has {ds.size} elements (shape "
            f"{ds.shape}), more than {MAX_ARRAY_ELEMENTS}"
        )
    return ds.size * (ds.dtype.itemsize if not is_text else 256)


def _check_type(path: Path, group: h5py.Group) -> None:
    ds = group.get("type")
    if (
        not isinstance(ds, h5py.Dataset)
        or ds.shape != ()
        or not (h5py.check_string_dtype(ds.dtype) or ds.dtype.kind == "S")
    ):
        raise IRFormatError(f"{path}: {group.name}/type is not a single string")
    value = ds[()]
    name = value.decode("utf8", "replace") if isinstance(value, bytes) else str(value)
    if name not in _KNOWN_TYPES:
        raise IRFormatError(
            f"{path}: node {group.name} has unknown NIR type {name!r} "
            f"(known: {sorted(_KNOWN_TYPES)})"
        )


def _main(argv: list[str]) -> int:
    """The checker process: exit 0 when ``argv[0]`` reads as NIR, else print why and exit 2."""
    path = Path(argv[0])
    try:
        _check_file(path)
        _read(path)
    except IRFormatError as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return _REFUSED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
