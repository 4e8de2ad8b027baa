"""Measured Loihi runs that the techniques re-cost, and early exit on the emulator.

`run_loihi` compiles and measures a converted SNN with this plugin's emulator; packing, offload
and early exit derive new `neurohal.techniques.outcome.Outcome`s from such runs.
"""

from __future__ import annotations

import attrs
import numpy as np

from neurohal.device import Artifact, Measurement
from neurohal.errors import InputError
from neurohal.ir import Graph, Output
from neurohal.techniques.outcome import Outcome, accuracy


@attrs.frozen
class LoihiRun:
    """A measured loihi run kept for the techniques that re-cost it (packing, offload)."""

    artifact: Artifact
    measurement: Measurement
    predictions: np.ndarray
    accuracy: float

    @property
    def outcome(self) -> Outcome:
        m = self.measurement
        return Outcome(
            accuracy=self.accuracy,
            samples=m.run.samples,
            timesteps=float(m.run.timesteps),
            latency=m.latency,
            power_static=m.power_static,
            power_dynamic=m.power_dynamic,
            energy=m.energy,
            spikes=m.run.per_inference("spikes"),
            synops=m.run.per_inference("synops"),
            cores=int(self.artifact.report["cores"]),
            chips=int(self.artifact.report["chips"]),
            notes=tuple(m.run.notes),
        )


def run_loihi(
    snn: Graph,
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int,
    chip: str = "loihi2",
    artifact: Artifact | None = None,
) -> LoihiRun:
    """Compile ``snn`` for ``chip`` (unless ``artifact`` is given) and measure it on the
    emulator over ``x`` for ``timesteps`` steps: the loihi plugin's estimated latency, power
    and energy (its Davies et al. 2018 / Blouw et al. 2019 model) and the accuracy on ``y``."""
    import neurohal

    if len(x) != len(y) or len(x) == 0:
        raise InputError(f"need as many labels as inputs (> 0), got {len(x)} and {len(y)}")
    device = neurohal.device("loihi")
    if artifact is None:
        artifact = device.compile(snn, chip=chip, max_timesteps=max(64, int(timesteps)))
    measurement = device.measure(artifact, x, timesteps=int(timesteps))
    scores = measurement.run.output()
    return LoihiRun(artifact, measurement, np.argmax(scores, axis=1), accuracy(scores, y))


def readout_trace(snn: Graph, x: np.ndarray, timesteps: int) -> np.ndarray:
    """The value feeding the SNN's single Output at every step on cpu_sim: (T, B, classes)."""
    import neurohal

    outputs = [n for n in snn.nodes if isinstance(n, Output)]
    if len(outputs) != 1:
        raise InputError(f"early exit needs a graph with one Output, found {len(outputs)}")
    (source,) = snn.sources(outputs[0].name)
    device = neurohal.device("cpu_sim")
    trace = device.trace(device.compile(snn), x, timesteps, record=[source])
    return trace.records[source]


def early_exit_runs(
    snn: Graph,
    x: np.ndarray,
    y: np.ndarray,
    steps: np.ndarray,
    chip: str = "loihi2",
    artifact: Artifact | None = None,
) -> list[tuple[LoihiRun, int]]:
    """Every group of samples with the same exit step run on the loihi emulator for exactly
    that many effective steps: (run, samples in the group) per distinct step count. Combine
    them with `neurohal.techniques.recost.combine` (after re-costing each, if wanted)."""
    steps = np.asarray(steps, dtype=np.int64)
    if steps.shape != (len(x),) or (steps < 1).any():
        raise InputError(f"steps must hold one positive step count per sample ({len(x)})")
    import neurohal

    if artifact is None:
        artifact = neurohal.device("loihi").compile(
            snn, chip=chip, max_timesteps=max(64, int(steps.max()))
        )
    runs = []
    for t in np.unique(steps):
        idx = np.flatnonzero(steps == t)
        runs.append((run_loihi(snn, x[idx], y[idx], int(t), artifact=artifact), len(idx)))
    return runs
