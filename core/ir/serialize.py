"""`.nhir` files: an IR graph in HDF5 (h5py), with an integer schema version and no pickle.

Layout (schema 1):
- root attributes ``format = "neurohal-ir"``, ``schema_version`` (int), ``metadata`` (JSON),
  ``edges`` (JSON list of [src, dst, port]);
- group ``nodes`` with one subgroup per node, named by its position (``0``, ``1`` ...), holding
  attributes ``type``, ``name`` and ``params`` (JSON of the non-array fields) and one dataset
  per array field.

Only hard links to plain datasets and groups are followed; object and string datasets, external
or soft links and anything unexpected are refused with `IRFormatError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import attrs
import h5py
import numpy as np

from neurohal.errors import IRFormatError, IRValidationError
from neurohal.ir.graph import Edge, Graph
from neurohal.ir.nodes import NODE_TYPES, Node

FORMAT = "neurohal-ir"
SCHEMA_VERSION = 1
MAX_ARRAY_ELEMENTS = 2**31  # refuse absurd sizes from a hostile header before reading


def node_to_record(node: Node) -> tuple[dict, dict[str, np.ndarray]]:
    """A node as (JSON-able params, arrays): the form both HDF5 and other formats store."""
    params, arrays = {}, {}
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        if isinstance(value, np.ndarray):
            arrays[field.name] = value
        elif value is not None:
            params[field.name] = list(value) if isinstance(value, tuple) else value
    return params, arrays


def node_from_record(type_name: str, params: Mapping, arrays: Mapping[str, np.ndarray]) -> Node:
    """Rebuild a node; any mismatch with the class raises IRFormatError."""
    cls = NODE_TYPES.get(type_name)
    if cls is None or type_name.startswith("_"):
        raise IRFormatError(f"unknown node type {type_name!r} (known: {sorted(NODE_TYPES)})")
    try:
        return cls(**params, **arrays)
    except (TypeError, ValueError) as exc:
        raise IRFormatError(f"node type {type_name}: bad fields: {exc}") from exc


def write_graph(group: h5py.Group, graph: Graph) -> None:
    """Write ``graph`` into an open HDF5 group (used by .nhir files and device artifacts)."""
    group.attrs["metadata"] = json.dumps(dict(graph.metadata), sort_keys=True)
    group.attrs["edges"] = json.dumps([[e.src, e.dst, e.port] for e in graph.edges])
    nodes = group.create_group("nodes")
    for index, node in enumerate(graph.nodes):
        params, arrays = node_to_record(node)
        sub = nodes.create_group(str(index))
        sub.attrs["type"] = node.type_name
        sub.attrs["params"] = json.dumps(params)
        for key, arr in arrays.items():
            sub.create_dataset(key, data=np.asarray(arr))


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Validate and write ``graph`` to ``path`` atomically (a partial file never remains)."""
    graph.validate()
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["schema_version"] = SCHEMA_VERSION
            write_graph(f, graph)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _text_attr(obj: h5py.HLObject, key: str, where: str) -> str:
    if key not in obj.attrs:
        raise IRFormatError(f"{where}: missing attribute {key!r}")
    value = obj.attrs[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="strict")
    if not isinstance(value, str):
        raise IRFormatError(f"{where}: attribute {key!r} is not text")
    return value


def _json_attr(obj: h5py.HLObject, key: str, where: str) -> object:
    try:
        return json.loads(_text_attr(obj, key, where))
    except json.JSONDecodeError as exc:
        raise IRFormatError(f"{where}: attribute {key!r} is not valid JSON: {exc}") from exc


def _hard_member(group: h5py.Group, key: str, where: str) -> h5py.HLObject:
    link = group.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise IRFormatError(f"{where}/{key}: only plain HDF5 members are allowed, found {link}")
    return group[key]


def _read_array(ds: h5py.HLObject, where: str) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset):
        raise IRFormatError(f"{where}: expected a dataset")
    if ds.dtype.kind not in "fiub":
        raise IRFormatError(f"{where}: dataset has non-numeric dtype {ds.dtype}")
    if ds.size > MAX_ARRAY_ELEMENTS:
        raise IRFormatError(f"{where}: dataset of {ds.size} elements is too large")
    return np.asarray(ds[()])


def read_graph(group: h5py.Group, where: str) -> Graph:
    """Read a graph written by `write_graph`, checking every member; returns it validated."""
    metadata = _json_attr(group, "metadata", where)
    edges_raw = _json_attr(group, "edges", where)
    if not isinstance(metadata, dict):
        raise IRFormatError(f"{where}: metadata is not a JSON object")
    if not isinstance(edges_raw, list) or not all(
        isinstance(e, list) and len(e) == 3 and all(isinstance(x, str) for x in e)
        for e in edges_raw
    ):
        raise IRFormatError(f"{where}: edges must be a list of [src, dst, port] strings")
    nodes_group = _hard_member(group, "nodes", where) if "nodes" in group else None
    if not isinstance(nodes_group, h5py.Group):
        raise IRFormatError(f"{where}: missing group 'nodes'")
    keys = list(nodes_group.keys())
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise IRFormatError(f"{where}/nodes: members must be numbered 0..{len(keys) - 1}")
    nodes = []
    for i in range(len(keys)):
        sub_where = f"{where}/nodes/{i}"
        sub = _hard_member(nodes_group, str(i), f"{where}/nodes")
        if not isinstance(sub, h5py.Group):
            raise IRFormatError(f"{sub_where}: expected a group")
        params = _json_attr(sub, "params", sub_where)
        if not isinstance(params, dict):
            raise IRFormatError(f"{sub_where}: params is not a JSON object")
        arrays = {k: _read_array(_hard_member(sub, k, sub_where), f"{sub_where}/{k}") for k in sub}
        try:
            nodes.append(node_from_record(_text_attr(sub, "type", sub_where), params, arrays))
        except IRFormatError as exc:
            raise IRFormatError(f"{sub_where}: {exc}") from exc
    try:
        graph = Graph(nodes, [Edge(*e) for e in edges_raw], metadata)
        return graph.validate()
    except IRValidationError as exc:
        raise IRFormatError(f"{where}: the stored graph is invalid: {exc}") from exc


def load(path: str | os.PathLike) -> Graph:
    """Read a `.nhir` file; any problem with the file raises IRFormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise IRFormatError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise IRFormatError(f"{path}: not a neurohal IR file (no format={FORMAT!r})")
            version = f.attrs.get("schema_version")
            if not isinstance(version, (int, np.integer)):
                raise IRFormatError(f"{path}: schema_version missing or not an integer")
            if version > SCHEMA_VERSION:
                raise IRFormatError(
                    f"{path}: IR schema version {version} is newer than this neurohal reads "
                    f"({SCHEMA_VERSION}); upgrade neurohal to read it"
                )
            if version < 1:
                raise IRFormatError(f"{path}: invalid schema version {version}")
            return read_graph(f, str(path))
    except IRFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, RuntimeError) as exc:
        raise IRFormatError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
