"""What runs on the host around the chip: the analog input layer and the per-layer constants.

Everything between an analog Encoder and the first neurons is affine, so the host evaluates it
in float64 (the reference's own node functions) once per sample; the result, together with the
biases of every projection into that layer, is the layer's input current. On the chip it is
the neurons' bias (mantissa and exponent), constant over the timesteps, as the Encoder's
constant current is in the IR.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neurohal.ir import Encoder, Graph
from neurohal.reference import apply
from neurohal_loihi.lowering import NEURONS


def layer_current(
    graph: Graph, dst: str, encoded: Mapping[str, np.ndarray] | None, batch: int
) -> np.ndarray:
    """Input current into ``dst`` with every neuron silent: (batch, neurons), real units.

    ``encoded`` gives each Encoder's (batch-first) input; ``None`` means zero input, leaving
    only the constant part (the biases).
    """
    memo: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name not in memo:
            node = graph.node(name)
            if isinstance(node, NEURONS):
                memo[name] = np.zeros((batch, *graph.shape(name)))
            elif isinstance(node, Encoder):
                memo[name] = (
                    np.zeros((batch, *graph.shape(name)))
                    if encoded is None
                    else np.asarray(encoded[name], dtype=np.float64)
                )
            else:
                ports = {p: sum(value(s) for s in graph.sources(name, p)) for p in node.ports()}
                memo[name] = apply(node, ports)
        return memo[name]

    total = sum(value(s) for s in graph.sources(dst))
    return np.asarray(total, dtype=np.float64).reshape(batch, -1)


def encoder_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each Encoder's input, from the graph inputs by name (an Encoder passes its input on)."""
    result = {}
    for node in graph.nodes:
        if isinstance(node, Encoder):
            srcs = graph.sources(node.name)
            result[node.name] = sum(inputs[s] for s in srcs)
    return result
