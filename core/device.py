"""The device contract: what every device plugin implements and the data it returns.

A device compiles an IR graph into an immutable `Artifact` (all slow work), runs it on inputs
(`RunResult`: outputs plus per-layer counters) and measures it (`Measurement`: latency, power
and energy as `Quantity` values that each say whether they were measured, estimated from a
named model, or are unavailable).
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import attrs
import h5py
import numpy as np

from neurohal.errors import DeviceUnavailableError, IRFormatError, UnsupportedGraphError
from neurohal.ir import Graph
from neurohal.ir.serialize import read_graph, write_graph

PROVENANCES = ("measured", "estimated", "unavailable")
ARTIFACT_FORMAT = "neurohal-artifact"
ARTIFACT_VERSION = 1


def _json_copy(value: Mapping | None) -> dict:
    return json.loads(json.dumps(dict(value or {}), sort_keys=True))


@attrs.frozen
class Availability:
    """Whether a device can run here; ``reason`` says why not, or what runs instead."""

    ok: bool
    reason: str = ""
    details: Mapping = attrs.field(factory=dict, converter=_json_copy)

    def raise_if_unavailable(self, device: str) -> None:
        if not self.ok:
            raise DeviceUnavailableError(f"device {device!r} is unavailable: {self.reason}")


@attrs.frozen
class NodeSupport:
    node: str
    supported: bool
    reason: str = ""


@attrs.frozen
class SupportReport:
    """Per node: supported, or the reason it is not."""

    device: str
    nodes: tuple[NodeSupport, ...] = attrs.field(converter=tuple)

    @property
    def ok(self) -> bool:
        return all(n.supported for n in self.nodes)

    @property
    def unsupported(self) -> tuple[NodeSupport, ...]:
        return tuple(n for n in self.nodes if not n.supported)

    def raise_if_unsupported(self) -> None:
        if not self.ok:
            lines = "; ".join(f"{n.node}: {n.reason}" for n in self.unsupported)
            raise UnsupportedGraphError(f"device {self.device!r} cannot run node(s): {lines}")


def _check_provenance(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in PROVENANCES:
        raise ValueError(f"provenance must be one of {PROVENANCES}, got {value!r}")


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)


@attrs.frozen
class Quantity:
    """A number with its unit and where it came from.

    ``provenance``: ``measured`` (an instrument read during this run), ``estimated`` (a model;
    ``method`` names it and its published source) or ``unavailable`` (``value`` is None and
    ``method`` says why). ``samples`` keeps the raw readings behind a measured value.
    """

    value: float | None = attrs.field(converter=_optional_float)
    unit: str
    provenance: str = attrs.field(validator=_check_provenance)
    method: str
    samples: tuple[float, ...] = attrs.field(default=(), converter=lambda s: tuple(map(float, s)))

    def __attrs_post_init__(self) -> None:
        if (self.value is None) != (self.provenance == "unavailable"):
            raise ValueError("a Quantity has a value exactly when it is not 'unavailable'")
        if not self.method:
            raise ValueError("a Quantity must say how it was obtained (method)")

    @classmethod
    def unavailable(cls, unit: str, why: str) -> Quantity:
        return cls(None, unit, "unavailable", why)

    def format(self, digits: int = 4) -> str:
        """Short text with the provenance visible, e.g. ``1.23 ms (measured)``."""
        if self.value is None:
            return f"n/a ({self.method})"
        return f"{self.value:.{digits}g} {self.unit} ({self.provenance})"

    def to_dict(self) -> dict:
        return attrs.asdict(self)


QUANTITY_NAMES = (
    "latency",
    "power_static",
    "power_dynamic",
    "energy",
)
"""The quantities every Measurement carries, all per inference (power in W, energy in J)."""


@attrs.frozen
class RunResult:
    """Outputs by Output-node name (batch first) and counters per layer.

    ``counters[layer]`` holds totals over the whole batch and all timesteps of any of
    ``spikes``, ``synops`` (accumulates triggered by events), ``macs`` (dense multiply-
    accumulates) and ``neuron_updates``. ``notes`` says anything a reader must know about how
    the outputs were produced (e.g. a stand-in device ran them).
    """

    outputs: Mapping[str, np.ndarray]
    counters: Mapping[str, Mapping[str, int]]
    samples: int
    timesteps: int | None
    notes: tuple[str, ...] = ()

    def output(self) -> np.ndarray:
        """The only output (raises if the graph has several)."""
        if len(self.outputs) != 1:
            raise ValueError(f"graph has outputs {list(self.outputs)}; pick one by name")
        return next(iter(self.outputs.values()))

    def total(self, counter: str) -> int:
        return sum(int(c.get(counter, 0)) for c in self.counters.values())

    def per_inference(self, counter: str) -> float:
        return self.total(counter) / max(self.samples, 1)


@attrs.frozen
class Measurement:
    """Latency, static and dynamic power and energy per inference, each a Quantity."""

    device: str
    latency: Quantity
    power_static: Quantity
    power_dynamic: Quantity
    energy: Quantity
    run: RunResult
    extra: Mapping[str, Quantity] = attrs.field(factory=dict)

    def quantities(self) -> dict[str, Quantity]:
        return {**{n: getattr(self, n) for n in QUANTITY_NAMES}, **dict(self.extra)}


@attrs.frozen
class Artifact:
    """The immutable result of `Device.compile`: the graph plus device-specific data.

    ``arrays`` holds numeric payloads (e.g. quantised weights, a serialized model as uint8),
    ``report`` a JSON-able resource report (cores, memory ...), ``options`` the compile options.
    """

    device: str
    graph: Graph
    arrays: Mapping[str, np.ndarray] = attrs.field(factory=dict)
    report: Mapping = attrs.field(factory=dict, converter=_json_copy)
    options: Mapping = attrs.field(factory=dict, converter=_json_copy)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = ARTIFACT_FORMAT
                f.attrs["schema_version"] = ARTIFACT_VERSION
                f.attrs["device"] = self.device
                f.attrs["report"] = json.dumps(self.report, sort_keys=True)
                f.attrs["options"] = json.dumps(self.options, sort_keys=True)
                write_graph(f.create_group("graph"), self.graph)
                arrays = f.create_group("arrays")
                for key, arr in self.arrays.items():
                    arrays.create_dataset(key, data=np.asarray(arr))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Artifact:
        path = Path(path)
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != ARTIFACT_FORMAT:
                    raise IRFormatError(f"{path}: not a neurohal artifact")
                if f.attrs.get("schema_version", 0) > ARTIFACT_VERSION:
                    raise IRFormatError(f"{path}: artifact from a newer neurohal; upgrade")
                graph = read_graph(f["graph"], f"{path}:graph")
                arrays = {}
                for key in f["arrays"]:
                    ds = f["arrays"].get(key, getlink=True)
                    if (
                        not isinstance(ds, h5py.HardLink)
                        or f["arrays"][key].dtype.kind not in "fiub"
                    ):
                        raise IRFormatError(f"{path}: arrays/{key} is not a plain numeric dataset")
                    arrays[key] = np.asarray(f["arrays"][key][()])
                return cls(
                    device=str(f.attrs["device"]),
                    graph=graph,
                    arrays=arrays,
                    report=json.loads(f.attrs["report"]),
                    options=json.loads(f.attrs["options"]),
                )
        except IRFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise IRFormatError(f"{path}: cannot read artifact ({exc})") from exc


@attrs.frozen
class Tolerance:
    """How close a device's outputs must be to the reference interpreter's."""

    atol: float = 1e-5
    rtol: float = 1e-5
    note: str = "float arithmetic"

    def close(self, actual: np.ndarray, expected: np.ndarray) -> bool:
        return bool(np.allclose(actual, expected, atol=self.atol, rtol=self.rtol))


class Device(abc.ABC):
    """One device. Subclasses set ``name`` and implement the five methods.

    ``quantities`` maps each of QUANTITY_NAMES to ``measured``, ``estimated`` or
    ``unavailable`` as it will be under this device's usual conditions (for listings);
    the Quantities returned by `measure` are the authority.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    quantities: ClassVar[Mapping[str, str]] = {}
    tolerance: ClassVar[Tolerance] = Tolerance()

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Whether this device can run here and why not; must never raise."""

    @abc.abstractmethod
    def supports(self, graph: Graph) -> SupportReport:
        """Per node of ``graph``: supported, or the reason it is not."""

    @abc.abstractmethod
    def compile(self, graph: Graph, **options: object) -> Artifact:
        """Do all slow work once; raise UnsupportedGraphError for what cannot run."""

    @abc.abstractmethod
    def run(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> RunResult:
        """Run a compiled artifact on batch-first inputs."""

    @abc.abstractmethod
    def measure(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> Measurement:
        """Run and report latency, power and energy per inference as Quantities."""

    def __repr__(self) -> str:
        return f"<device {self.name}>"
