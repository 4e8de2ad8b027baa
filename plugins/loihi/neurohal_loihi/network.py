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
    """The lowered graph, its chip, its quantized arrays (keys ``layer:field``) and each
    layer's reset on the chip (`reset_modes`)."""

    graph: Graph
    plan: Plan
    chip: str
    arrays: Mapping[str, np.ndarray]
    resets: Mapping[str, str]

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Network:
        plan = lower(artifact.graph)
        chip = str(artifact.options["chip"])
        soft = bool(artifact.options["loihi1_soft_reset"])
        resets = reset_modes(artifact.graph, plan, chip, soft)
        return cls(artifact.graph, plan, chip, dict(artifact.arrays), resets)

    def value(self, layer: str, field: str) -> np.ndarray:
        return np.asarray(self.arrays[f"{layer}:{field}"])

    def weights(self, proj: Projection) -> tuple[np.ndarray, int]:
        """(int8 mantissas m, weight exponent) of a projection; Lava's weights are 2 * m."""
        return np.asarray(self.arrays[f"{proj.key}:w"]), int(self.arrays[f"{proj.key}:exp"])

    def reset(self, layer: Layer) -> str:
        """How the layer's neurons reset on this chip: zero, subtract or two_compartment."""
        return self.resets[layer.name]

    def self_synapse(self, layer: Layer) -> tuple[int, int]:
        """(mantissa, exponent) of a two-compartment layer's inhibitory self-synapse."""
        return fx.self_synapse(
            int(self.value(layer.name, "vth")), int(self.value(layer.name, "dv"))
        )

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


def reset_modes(graph: Graph, plan: Plan, chip: str, soft_reset: bool) -> dict[str, str]:
    """Each layer's reset on the chip: ``zero``, ``subtract`` or ``two_compartment``.

    Readouts and the IR's reset-to-zero neurons reset to zero. Reset by subtraction stays
    ``subtract`` on Loihi 2 (its programmable neurons subtract). Loihi 1's compartments reset
    to zero; with ``soft_reset`` it runs as NxTF's two-compartment neuron (Rueckauer et al.,
    "NxTF: An API and Compiler for Deep Spiking Neural Networks on Intel Loihi",
    arXiv:2101.04261, ACM JETC 2022; ``resetMode="soft"`` in its NxSDK module): a dendrite
    compartment integrates the input and never resets, a soma compartment spikes when the
    dendrite's v passes the threshold, and an inhibitory synapse from the soma back onto the
    dendrite subtracts the threshold one step later. That is reset by subtraction, at the
    price of a second compartment and a synapse per neuron. Without ``soft_reset`` it runs
    as reset to zero.
    """
    modes = {}
    for layer in plan.layers:
        own = "zero" if layer.kind == "readout" else graph.node(layer.name).reset
        if own == "subtract" and chip == "loihi1":
            own = "two_compartment" if soft_reset else "zero"
        modes[layer.name] = own
    return modes
