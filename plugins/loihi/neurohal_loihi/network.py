"""A compiled Loihi network: the layer plan plus its integer parameters, read from an Artifact.

Both backends (the emulator and Lava) build from this one description, so what they run is
the same network; only how they run it differs.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.device import Artifact
from neurohal.ir import Graph
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.hostside import layer_current
from neurohal_loihi.lowering import Layer, Plan, Projection, lower


@attrs.frozen
class Network:
    """The lowered graph, its chip, and its quantized arrays (keys ``layer:field``)."""

    graph: Graph
    plan: Plan
    chip: str
    arrays: Mapping[str, np.ndarray]

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Network:
        plan = lower(artifact.graph)
        return cls(artifact.graph, plan, str(artifact.options["chip"]), dict(artifact.arrays))

    def value(self, layer: str, field: str) -> np.ndarray:
        return np.asarray(self.arrays[f"{layer}:{field}"])

    def weights(self, proj: Projection) -> tuple[np.ndarray, int]:
        """(int8 mantissas m, weight exponent) of a projection; Lava's weights are 2 * m."""
        return np.asarray(self.arrays[f"{proj.key}:w"]), int(self.arrays[f"{proj.key}:exp"])

    def reset(self, layer: Layer) -> str:
        """``zero`` on Loihi 1 (and for readouts); the IR's reset on Loihi 2."""
        if layer.kind == "readout" or self.chip == "loihi1":
            return "zero"
        return self.graph.node(layer.name).reset

    def vth_eff(self, layer: Layer) -> int:
        return int(self.value(layer.name, "vth")) << fx.VTH_SHIFT

    def run_steps(self, timesteps: int) -> int:
        """Steps to run so that every readout sees ``timesteps`` steps of input (the delay)."""
        return timesteps + max(la.delay for la in self.plan.layers if la.kind == "readout")

    def bias_parts(
        self, layer: Layer, encoded: Mapping[str, np.ndarray] | None, batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (mantissa, exponent) of the layer's bias, (batch, neurons) each.

        A layer fed by the analog input gets the host-computed current of each sample; the
        others their constant, compiled bias.
        """
        if layer.host:
            scale = float(self.value(layer.name, "scale"))
            return fx.bias_parts(layer_current(self.graph, layer.name, encoded, batch) * scale)
        mant = np.broadcast_to(self.value(layer.name, "bias_mant"), (batch, layer.size))
        exp = np.broadcast_to(self.value(layer.name, "bias_exp"), (batch, layer.size))
        return mant, exp

    def readout(
        self, layer: Layer, v_final: np.ndarray, bias_eff: np.ndarray, run_steps: int
    ) -> np.ndarray:
        """The IR readout (mean input over the steps after the delay) from the final v."""
        steps = run_steps - layer.delay
        v_start = self.value(layer.name, "v_start")
        total = v_final - v_start - layer.delay * bias_eff
        scale = float(self.value(layer.name, "scale"))
        return total / (steps * scale)
