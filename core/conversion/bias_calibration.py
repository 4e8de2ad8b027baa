"""Bias calibration for a timestep budget: shift each spiking layer's constant current so that
its mean firing rate over T steps matches the activation it stands for.

At small T a converted SNN's rates drift from the ANN's activations in a systematic way:
rates are quantized to multiples of threshold / T, and neurons fed by spikes fire unevenly
(Bu et al., ICLR 2022, Sec. 4), so each layer's mean error adds up through the network. Bias
calibration (Li et al., "A Free Lunch From ANN: Towards Efficient, Accurate Spiking Neural
Networks Calibration", ICML 2021, Sec. 4.2) removes the mean error layer by layer: in
topological order, run the SNN (with the layers before already corrected) for T steps on
calibration data, compare each channel's rate x threshold with the *analog twin's* value (the
same graph with every IF neuron replaced by its ideal rate function ``clip(x, 0, threshold)``:
the rescaled ANN), and add the mean difference to the bias of the Dense/Conv2d feeding the
layer, since an IF neuron's rate moves one-for-one with a constant input current.

The result is specific to T: the converter runs it when ``ConversionConfig.timesteps`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.conversion.calibrate import batches, progress_bar
from neurohal.conversion.simulator import evaluate, simulate
from neurohal.ir import IF, Add, Clip, Conv2d, Dense, Graph, Node, Readout, Scale

BATCH = 256


def analog_twin(snn: Graph) -> Graph:
    """``snn`` with each IF as ``Clip(0, threshold)`` and each Readout as the identity: the
    values its rates and readouts approximate."""
    nodes: list[Node] = []
    for node in snn.nodes:
        if isinstance(node, IF):
            nodes.append(Clip(name=node.name, min=0.0, max=node.v_threshold))
        elif isinstance(node, Readout):
            nodes.append(Scale(name=node.name, scale=np.array(1.0)))
        else:
            nodes.append(node)
    return Graph(nodes, list(snn.edges))


def bias_entry(snn: Graph, layer: str) -> tuple[str, np.ndarray] | None:
    """Where a constant current into ``layer`` can be added: (Dense/Conv2d name, factor) such
    that adding ``d / factor`` to its bias adds ``d`` to the layer's input, per channel. The
    route is searched through Add and Scale nodes only (the first weighted branch of an Add);
    None when there is no such node, or a Scale on the route zeroes it."""

    def through(name: str, factor: np.ndarray) -> tuple[str, np.ndarray] | None:
        for src in snn.sources(name):
            node = snn.node(src)
            if isinstance(node, (Dense, Conv2d)):
                return src, factor
            found = None
            if isinstance(node, Scale):
                found = through(src, factor * node.scale)
            elif isinstance(node, Add):
                found = through(src, factor)
            if found is not None:
                return found
        return None

    found = through(layer, np.ones(()))
    return found if found is not None and np.all(found[1] != 0) else None


def calibrate_biases(
    snn: Graph, data: np.ndarray, timesteps: int, progress: bool | None = None
) -> tuple[Graph, dict[str, float]]:
    """The bias-calibrated SNN for ``timesteps`` steps, and per IF layer the mean absolute
    correction added (in threshold units); layers with no bias to adjust are left out."""
    layers = [n.name for n in snn.topological_order() if isinstance(n, IF)]
    targets = _twin_means(snn, data, layers)
    corrections: dict[str, float] = {}
    with progress_bar(progress) as bar:
        task = bar.add_task(f"bias calibration (T={timesteps})", total=len(layers))
        for layer in layers:
            entry = bias_entry(snn, layer)
            if entry is not None:
                rates = _rates(snn, data, timesteps, layer)
                error = targets[layer] - rates * snn.node(layer).v_threshold
                snn = _add_bias(snn, entry, error)
                corrections[layer] = float(np.abs(error).mean() / snn.node(layer).v_threshold)
            bar.advance(task)
    return snn, corrections


def _channel_mean(value: np.ndarray) -> np.ndarray:
    """Mean over the batch and spatial axes: one value per channel (or per feature)."""
    return value.mean(axis=(0, *range(2, value.ndim)))


def _twin_means(snn: Graph, data: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
    """Per channel, each layer's mean value in the analog twin over ``data``."""
    twin = analog_twin(snn)
    sums: dict[str, np.ndarray] = {}
    for batch in batches(data, BATCH):
        for name, value in evaluate(twin, batch, layers).items():
            sums[name] = sums.get(name, 0.0) + _channel_mean(value) * len(batch)
    return {name: total / len(data) for name, total in sums.items()}


def _rates(snn: Graph, data: np.ndarray, timesteps: int, layer: str) -> np.ndarray:
    """Per channel, ``layer``'s mean spikes per step over ``timesteps`` steps on ``data``."""
    total = 0.0
    for batch in batches(data, BATCH):
        counts: dict[str, np.ndarray] = {}

        def count(t: int, values: Mapping[str, np.ndarray], counts: dict = counts) -> None:
            counts["n"] = counts.get("n", 0.0) + _channel_mean(values[layer])

        simulate(snn, batch, timesteps, on_step=count)
        total = total + counts["n"] * len(batch)
    return total / (len(data) * timesteps)


def _add_bias(snn: Graph, entry: tuple[str, np.ndarray], error: np.ndarray) -> Graph:
    name, factor = entry
    node = snn.node(name)
    channels = node.weight.shape[0]
    bias = np.zeros(channels) if node.bias is None else node.bias.astype(np.float64)
    delta = np.broadcast_to(error / factor, (channels,))
    new = attrs.evolve(node, bias=bias + delta)
    return Graph([new if n.name == name else n for n in snn.nodes], list(snn.edges), snn.metadata)
