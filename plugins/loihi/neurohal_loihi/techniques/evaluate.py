"""The Loihi evaluation behind the search: one run's knobs to its configurations.

Converts the ANN with the run's threshold scale, runs it on the loihi emulator for T steps
(or, with an exit margin, decides each sample's exit step on the float SNN and runs every
group for its own steps), then re-costs the run under every packing mode and classifier
placement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from neurohal.conversion import ConversionConfig, convert
from neurohal.ir import Graph
from neurohal.techniques.activity import scale_thresholds
from neurohal.techniques.search import Config, RunKnobs
from neurohal.techniques.timesteps import ExitRule, exit_steps
from neurohal_loihi.techniques.recost import combine, recost
from neurohal_loihi.techniques.runs import early_exit_runs, readout_trace, run_loihi

PACKINGS: tuple[str | None, ...] = (None, "layer", "shared")
CLASSIFIERS: tuple[str | None, ...] = (None, "host")
PATIENCE = 2


def snn_for(
    ann: Graph,
    knobs: RunKnobs,
    calibration: np.ndarray | None = None,
    config: ConversionConfig | None = None,
) -> Graph:
    """The SNN of ``ann`` with ``knobs``' threshold scale (1: the ANN's own clip bounds)."""
    source = ann if knobs.threshold_scale == 1.0 else scale_thresholds(ann, knobs.threshold_scale)
    return convert(source, calibration, config, progress=False)


def loihi_evaluator(
    ann: Graph,
    x: np.ndarray,
    y: np.ndarray,
    chip: str = "loihi2",
    calibration: np.ndarray | None = None,
    packings: Sequence[str | None] = PACKINGS,
    classifiers: Sequence[str | None] = CLASSIFIERS,
) -> Callable[[RunKnobs], list[Config]]:
    """A function from a run's knobs to its configurations on ``x``, ``y``."""
    import neurohal

    device = neurohal.device("loihi")
    artifacts: dict[float, tuple[Graph, object]] = {}

    def compiled(scale: float) -> tuple[Graph, object]:
        if scale not in artifacts:
            snn = snn_for(ann, RunKnobs(scale, 1), calibration)
            artifacts[scale] = (snn, device.compile(snn, chip=chip, max_timesteps=64))
        return artifacts[scale]

    def evaluate(knobs: RunKnobs) -> list[Config]:
        snn, artifact = compiled(knobs.threshold_scale)
        if knobs.timesteps > 64:
            artifact = device.compile(snn, chip=chip, max_timesteps=knobs.timesteps)
        if knobs.exit_margin is None:
            run = run_loihi(snn, x, y, knobs.timesteps, artifact=artifact)
            return [Config(knobs, p, c, recost(run, p, c)) for p in packings for c in classifiers]
        rule = ExitRule(knobs.exit_margin, PATIENCE)
        steps, _ = exit_steps(readout_trace(snn, x, knobs.timesteps), rule)
        groups = early_exit_runs(snn, x, y, steps, artifact=artifact)
        note = f"early exit {rule}: mean {steps.mean():.2f} of {knobs.timesteps} steps"
        return [
            Config(knobs, p, c, combine([(recost(r, p, c), n) for r, n in groups], note))
            for p in packings
            for c in classifiers
        ]

    return evaluate
