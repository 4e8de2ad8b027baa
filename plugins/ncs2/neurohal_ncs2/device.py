"""The ``ncs2`` device: the ANN on an Intel Neural Compute Stick 2 through OpenVINO.

compile: analog IR graph -> ONNX -> OpenVINO IR with FP16 weights, stored in the artifact.
run: on ``MYRIAD`` when the installed OpenVINO has it, else on OpenVINO's CPU device as a
numerical stand-in (FP16-rounded weights, FP32 arithmetic), said so in ``RunResult.notes``.
measure: latency measured on the device that ran (host clock, sync requests, warm-up, median
of the raw samples, as OpenVINO's ``benchmark_app`` reports it); NCS2 latency, power and energy
estimated by `neurohal_ncs2.perf_model` unless a stick ran (then its latency is measured).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from neurohal import reference
from neurohal.device import (
    Artifact,
    Availability,
    Device,
    Measurement,
    NodeSupport,
    Quantity,
    RunResult,
    SupportReport,
    Tolerance,
)
from neurohal.errors import InputError, PluginError
from neurohal.ir import NODE_TYPES, Graph
from neurohal_ncs2 import openvino_backend as backend
from neurohal_ncs2 import perf_model
from neurohal_ncs2.counters import macs_per_inference

ANALOG_TYPES = frozenset(
    name for name, cls in NODE_TYPES.items() if cls.domain in ("structure", "synapse", "analog")
)
RUN_BATCH = 256
"""Samples per inference request in `run` (bounds memory; the stick's own limit is lower)."""
WARMUP = 3
LATENCY_SAMPLES = (20, 200)
"""At least and at most this many timed single-sample requests in `measure`."""


def _to_bytes(arr: np.ndarray) -> bytes:
    return np.asarray(arr, dtype=np.uint8).tobytes()


class Ncs2Device(Device):
    """Intel Neural Compute Stick 2 (Myriad X) through OpenVINO; runs analog graphs only."""

    name: ClassVar[str] = "ncs2"
    description: ClassVar[str] = (
        "Intel NCS2 (Myriad X) via OpenVINO, FP16; CPU stand-in when no MYRIAD device"
    )
    quantities: ClassVar[Mapping[str, str]] = {
        "latency": "estimated",
        "power_static": "estimated",
        "power_dynamic": "estimated",
        "energy": "estimated",
    }
    tolerance: ClassVar[Tolerance] = Tolerance(
        atol=1e-2,
        rtol=1e-2,
        note="FP16 weights (relative rounding up to 2**-11 per weight) and, on MYRIAD, FP16 "
        "activations and accumulation; about ten times the FP16 unit roundoff over a few layers",
    )

    def probe(self) -> Availability:
        found = backend.info()
        if found.error:
            return Availability(
                False,
                f"OpenVINO is not usable: {found.error}; install it with `pip install openvino`",
            )
        details = {
            "openvino": found.version,
            "devices": list(found.devices),
            "myriad": found.has_myriad,
            "runs_on": backend.choose_device(None),
        }
        if found.has_myriad:
            return Availability(
                True, f"an NCS2 (MYRIAD) is usable with OpenVINO {found.version}", details
            )
        return Availability(
            True,
            f"no NCS2: OpenVINO {found.version} offers {list(found.devices)} and no MYRIAD "
            "device (its plugin ended with the 2022.3 LTS release); models run on OpenVINO's "
            "CPU device as a numerical stand-in (FP16 weights, FP32 arithmetic) and NCS2 "
            "latency, power and energy are estimated from a published-measurement model",
            details,
        )

    def supports(self, graph: Graph) -> SupportReport:
        nodes = []
        for node in graph.nodes:
            if node.type_name in ANALOG_TYPES:
                nodes.append(NodeSupport(node.name, True))
            elif node.domain in ("spiking", "boundary"):
                nodes.append(
                    NodeSupport(
                        node.name,
                        False,
                        f"{node.type_name} is a {node.domain} node: the NCS2 runs the ANN, not the "
                        "SNN; compile the analog graph the SNN was converted from",
                    )
                )
            else:
                nodes.append(NodeSupport(node.name, False, f"no mapping for {node.type_name}"))
        return SupportReport(self.name, nodes)

    def compile(self, graph: Graph, **options: object) -> Artifact:
        """Options: ``device`` = ``"MYRIAD"`` (must exist here), ``"CPU"`` or None (auto)."""
        unknown = set(options) - {"device"}
        if unknown:
            raise PluginError(f"ncs2.compile: unknown option(s) {sorted(unknown)}; known: device")
        graph.validate()
        self.supports(graph).raise_if_unsupported()
        requested = options.get("device")
        backend.choose_device(requested)
        xml, weights = backend.to_openvino_ir(graph)
        layers = {
            name: {"type": graph.node(name).type_name, "macs": macs}
            for name, macs in macs_per_inference(graph).items()
        }
        report = {
            "format": "OpenVINO IR (model.xml + model.bin in arrays openvino_xml/openvino_bin)",
            "weights": "FP16",
            "openvino": backend.info().version,
            "parameters": graph.parameter_count(),
            "layers": layers,
            "macs_per_inference": sum(v["macs"] for v in layers.values()),
        }
        arrays = {
            "openvino_xml": np.frombuffer(xml, dtype=np.uint8),
            "openvino_bin": np.frombuffer(weights, dtype=np.uint8),
        }
        return Artifact(self.name, graph, arrays, report, {"device": requested})

    # -- running --------------------------------------------------------------------------

    def _prepare(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None,
    ) -> tuple[dict[str, np.ndarray], str]:
        if artifact.device != self.name:
            raise PluginError(f"artifact was compiled for {artifact.device!r}, not {self.name!r}")
        if timesteps is not None:
            raise InputError("the NCS2 runs analog graphs, which take no timesteps")
        values = reference.normalize_inputs(artifact.graph, inputs)
        return values, backend.choose_device(artifact.options.get("device"))

    def _compiled(self, artifact: Artifact, device: str, batch: int) -> object:
        return backend.compiled_model(
            _to_bytes(artifact.arrays["openvino_xml"]),
            _to_bytes(artifact.arrays["openvino_bin"]),
            device,
            batch,
        )

    def _notes(self, device: str) -> tuple[str, ...]:
        if device == backend.MYRIAD:
            return ("ran on MYRIAD (NCS2): FP16 weights and arithmetic",)
        return (
            f"ran on OpenVINO {backend.info().version} CPU as a numerical stand-in for the NCS2 "
            "(no MYRIAD device): FP16-rounded weights, FP32 arithmetic",
        )

    def run(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> RunResult:
        values, device = self._prepare(artifact, inputs, timesteps)
        samples = len(next(iter(values.values())))
        chunks: dict[str, list[np.ndarray]] = {n.name: [] for n in artifact.graph.outputs}
        for start in range(0, samples, RUN_BATCH):
            part = {k: v[start : start + RUN_BATCH] for k, v in values.items()}
            compiled = self._compiled(artifact, device, len(next(iter(part.values()))))
            result = backend.infer(compiled, part)
            for name in chunks:
                chunks[name].append(result[name])
        outputs = {name: np.concatenate(parts) for name, parts in chunks.items()}
        counters = {
            layer: {"macs": v["macs"] * samples} for layer, v in artifact.report["layers"].items()
        }
        return RunResult(outputs, counters, samples, None, self._notes(device))

    def _host_latency(
        self, artifact: Artifact, values: dict[str, np.ndarray], device: str
    ) -> Quantity:
        """Median wall time of single-sample synchronous requests (benchmark_app's latency)."""
        compiled = self._compiled(artifact, device, 1)
        request = compiled.create_infer_request()
        samples = len(next(iter(values.values())))
        count = min(max(samples, LATENCY_SAMPLES[0]), LATENCY_SAMPLES[1])
        one = [
            {
                k: np.ascontiguousarray(v[i % samples : i % samples + 1], np.float32)
                for k, v in values.items()
            }
            for i in range(count)
        ]
        for i in range(WARMUP):
            request.infer(one[i % count])
        times = []
        for sample in one:
            start = time.perf_counter()
            request.infer(sample)
            times.append(time.perf_counter() - start)
        where = "the NCS2 (MYRIAD)" if device == backend.MYRIAD else "OpenVINO CPU (stand-in)"
        return Quantity(
            float(np.median(times)),
            "s",
            "measured",
            f"host clock (time.perf_counter) around synchronous single-sample requests on "
            f"{where}; median of {count} after {WARMUP} warm-up requests, as benchmark_app",
            samples=times,
        )

    def measure(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> Measurement:
        values, device = self._prepare(artifact, inputs, timesteps)
        result = self.run(artifact, inputs, timesteps)
        host = self._host_latency(artifact, values, device)
        est = perf_model.estimate(artifact.report["layers"])
        if device == backend.MYRIAD:
            energy, energy_dynamic = perf_model.energy_for(host)
            return Measurement(
                self.name,
                host,
                est.power_static,
                est.power_dynamic,
                energy,
                result,
                {"energy_dynamic": energy_dynamic, "latency_model": est.latency},
            )
        return Measurement(
            self.name,
            est.latency,
            est.power_static,
            est.power_dynamic,
            est.energy,
            result,
            {"energy_dynamic": est.energy_dynamic, "latency_host_cpu": host},
        )
