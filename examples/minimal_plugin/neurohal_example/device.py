"""``example_numpy``: runs any IR graph on the host with numpy (the reference interpreter).

It shows the smallest honest device: latency is measured on the host clock, power and energy
are unavailable because nothing here can read or model them.
"""

from __future__ import annotations

import statistics
import time

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
)
from neurohal.ir import NODE_TYPES, Graph


class NumpyDevice(Device):
    name = "example_numpy"
    description = "example third-party plugin: the reference interpreter on the host CPU"
    quantities = {
        "latency": "measured",
        "power_static": "unavailable",
        "power_dynamic": "unavailable",
        "energy": "unavailable",
    }

    def probe(self) -> Availability:
        return Availability(True, "runs anywhere numpy does", {"numpy": np.__version__})

    def supports(self, graph: Graph) -> SupportReport:
        return SupportReport(
            self.name,
            [NodeSupport(n.name, n.type_name in NODE_TYPES, "") for n in graph.nodes],
        )

    def compile(self, graph: Graph, **options: object) -> Artifact:
        graph.validate()
        return Artifact(self.name, graph, report={"nodes": len(graph.nodes)})

    def run(self, artifact: Artifact, inputs, timesteps=None) -> RunResult:
        result = reference.run(artifact.graph, inputs, timesteps)
        samples = len(next(iter(result.outputs.values())))
        return RunResult(result.outputs, result.counters, samples, result.timesteps)

    def measure(self, artifact: Artifact, inputs, timesteps=None, repeats: int = 3) -> Measurement:
        self.run(artifact, inputs, timesteps)  # warm-up; also validates the inputs
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            run = self.run(artifact, inputs, timesteps)
            seconds.append((time.perf_counter() - start) / run.samples)
        why = "the example device has no power instrument or model"
        return Measurement(
            device=self.name,
            latency=Quantity(
                statistics.median(seconds),
                "s",
                "measured",
                "host perf_counter, median per inference",
                seconds,
            ),
            power_static=Quantity.unavailable("W", why),
            power_dynamic=Quantity.unavailable("W", why),
            energy=Quantity.unavailable("J", why),
            run=run,
        )
