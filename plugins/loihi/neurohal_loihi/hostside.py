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
    memo: dict[str, np.ndarray | None] = {}

    def value(name: str) -> np.ndarray | None:
        """The node's value, or None where it is all zeros (silent neurons, no input):
        a weighted node then contributes just its bias, without computing the product."""
        if name not in memo:
            node = graph.node(name)
            if isinstance(node, NEURONS) or (isinstance(node, Encoder) and encoded is None):
                memo[name] = None
            elif isinstance(node, Encoder):
                memo[name] = np.asarray(encoded[name], dtype=np.float64)
            else:
                ports = {
                    p: _total([value(s) for s in graph.sources(name, p)]) for p in node.ports()
                }
                if all(v is None for v in ports.values()):
                    bias = getattr(node, "bias", None)
                    memo[name] = (
                        None if bias is None else _channel_bias(bias, graph.shape(name), batch)
                    )
                else:
                    filled = {
                        p: np.zeros((batch, *graph.shape(s))) if v is None else v
                        for (p, v), s in zip(
                            ports.items(), _first_sources(graph, name), strict=True
                        )
                    }
                    memo[name] = apply(node, filled)
        return memo[name]

    total = _total([value(s) for s in graph.sources(dst)])
    if total is None:
        return np.zeros((batch, int(np.prod(graph.shape(dst)))))
    return np.broadcast_to(total, (batch, *graph.shape(dst))).reshape(batch, -1).astype(np.float64)


def _total(values: list[np.ndarray | None]) -> np.ndarray | None:
    present = [v for v in values if v is not None]
    return sum(present[1:], present[0]) if present else None


def _first_sources(graph: Graph, name: str) -> list[str]:
    return [graph.sources(name, p)[0] for p in graph.node(name).ports()]


def _channel_bias(bias: np.ndarray, shape: tuple[int, ...], batch: int) -> np.ndarray:
    """A Dense or Conv2d bias as the node's output on zero input: (batch, *shape)."""
    b = bias.astype(np.float64).reshape((1, -1) + (1,) * (len(shape) - 1))
    return np.broadcast_to(b, (batch, *shape))


def encoder_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each Encoder's input, from the graph inputs by name (an Encoder passes its input on)."""
    result = {}
    for node in graph.nodes:
        if isinstance(node, Encoder):
            srcs = graph.sources(node.name)
            result[node.name] = sum(inputs[s] for s in srcs)
    return result
