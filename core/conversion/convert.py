"""ANN-to-SNN conversion: thresholds from clip bounds or calibration, weights rescaled so every
spiking layer has threshold 1.

Scales. Every tensor of the SNN carries a per-element scale ``s`` such that ``rate * s`` (or
value * s for analog currents) approximates the ANN's value there. The encoded input has
``s = 1``; an IF replacing an activation with threshold scale ``lam`` (per channel or per
layer) emits spikes worth ``lam`` each. A Dense/Conv2d fed at scale ``s_in`` whose result
should arrive at scale ``t`` gets ``W' = W * s_in / t`` and ``b' = b / t`` (data-based
normalization, Diehl et al., IJCNN 2015; Rueckauer et al. 2017, Front. Neurosci. 11:682); the
bias stays in the layer as a constant current, injected every step. ``t`` is the threshold
scale of the activation the layer feeds (through an Add, if any), else 1. Wherever two scales
still disagree (the identity branch of a residual Add, an activation after a pool), a Scale
node converts one to the other, so every input of an Add arrives at the same scale. Concat
needs nothing: scales concatenate like the values.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.conversion.bias_calibration import calibrate_biases
from neurohal.conversion.calibrate import batches, calibrate, check_data, progress_bar
from neurohal.conversion.config import ConversionConfig
from neurohal.conversion.simulator import simulate
from neurohal.conversion.stats import CalibrationStats
from neurohal.conversion.support import (
    ACTIVATIONS,
    check_convertible,
    readout_sources,
    with_explicit_adds,
)
from neurohal.errors import ConversionError
from neurohal.ir import (
    IF,
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Edge,
    Encoder,
    Flatten,
    Graph,
    Input,
    MaxPool2d,
    Node,
    Output,
    Readout,
    Reshape,
    Scale,
    Softmax,
    SumPool2d,
)

Thresholds = dict[str, np.ndarray]
"""Threshold scale per spiking unit (an activation's name, or an Output's name for a
spike-count readout): a vector with one entry per channel."""


def convert(
    ann: Graph,
    calibration: np.ndarray | CalibrationStats | None = None,
    config: ConversionConfig | None = None,
    progress: bool | None = None,
) -> Graph:
    """The SNN equivalent of ``ann``: Input -> Encoder -> synapses -> IF -> ... -> Readout.

    ``calibration`` is data of shape (N, *input shape) or the result of `calibrate`; it is
    needed unless every activation is a ``Clip(0, lam)`` used as its own bound (and the
    readout is ``membrane``). Raises ConversionError, before any work, for unsupported nodes,
    missing or malformed calibration data; returns a validated graph whose metadata records
    every choice. ``progress``: a progress bar on stderr for calibration and threshold
    balancing (``None``: only when stderr is a terminal).
    """
    config = ConversionConfig() if config is None else config
    if not isinstance(config, ConversionConfig):
        raise ConversionError(f"config must be a ConversionConfig, got {type(config).__name__}")
    check_convertible(ann)
    graph = with_explicit_adds(ann)
    units = _spiking_units(graph, config)
    bias_data = (
        _bias_calibration_data(graph, calibration, config)
        if config.bias_calibration_timesteps
        else None
    )
    needing = [u for u, node in units.items() if _needs_data(node, config)]
    data, stats = _calibration_inputs(graph, calibration, config, units, needing, progress)
    fixed = {u: _clip_bound(graph, units[u]) for u in units if u not in needing}
    if config.normalization == "threshold_balancing":
        lams = _balance(graph, units, needing, fixed, data, config, progress)
    else:
        lams = {**fixed, **{u: _from_stats(graph, units[u], stats, u, config) for u in needing}}
    snn, _ = _build(graph, lams, config)
    corrections = None
    if bias_data is not None:
        snn, corrections = calibrate_biases(
            snn, bias_data, config.bias_calibration_timesteps, progress
        )
    metadata = {
        **dict(ann.metadata),
        "conversion": {
            "config": config.to_dict(),
            "thresholds": {
                u: {
                    "source": "clip_bound" if u in fixed else _source_text(config),
                    "granularity": "layer" if u in fixed else config.granularity,
                    "scale": [float(v) for v in lams[u]],
                }
                for u in units
            },
            "calibration_samples": _samples(data, stats),
            "notes": _notes(graph, config),
            "bias_calibration": None
            if corrections is None
            else {
                "timesteps": config.bias_calibration_timesteps,
                "samples": len(bias_data),
                "mean_abs_correction": corrections,
                "method": "Li et al., ICML 2021, bias calibration, against the analog twin",
            },
            "units": "IF thresholds are 1; weights W*s_in/lam_out, biases b/lam_out, where "
            "s_in is the incoming scale and lam the threshold scale above",
        },
    }
    return snn.with_metadata(**metadata).validate()


# ---------------------------------------------------------------- thresholds


def _spiking_units(graph: Graph, config: ConversionConfig) -> dict[str, Node]:
    """The node each IF layer stands for, by unit name: activations, and for a spike-count
    readout each Output (standing for the value it reads out)."""
    units: dict[str, Node] = {
        n.name: n for n in graph.topological_order() if isinstance(n, ACTIVATIONS)
    }
    if config.readout == "spike_count":
        for out, src in readout_sources(graph).items():
            units[out] = graph.node(src)
    return units


def _needs_data(node: Node, config: ConversionConfig) -> bool:
    return not (isinstance(node, Clip) and config.use_clip_bound)


def _clip_bound(graph: Graph, node: Node) -> np.ndarray:
    return np.full(graph.shape(node.name)[0], node.max)


def _source_text(config: ConversionConfig) -> str:
    if config.normalization == "percentile":
        return f"percentile {config.percentile:g} of positive activations"
    if config.normalization == "threshold_balancing":
        return f"threshold balancing over {config.balancing_timesteps} steps"
    return "max activation"


def _finish(
    graph: Graph, node: Node, unit: str, per_channel: np.ndarray, per_layer: float
) -> np.ndarray:
    """Broadcast to one value per channel; dead channels take the layer's value; a Clip's
    threshold never exceeds its bound."""
    channels = graph.shape(node.name)[0]
    if per_layer <= 0:
        raise ConversionError(
            f"node {node.name!r} ({node.type_name}, unit {unit!r}) was never positive on the "
            "calibration data, so it has no threshold; calibrate with more or other data"
        )
    lam = np.broadcast_to(np.asarray(per_channel, dtype=np.float64), (channels,)).copy()
    lam[lam <= 0] = per_layer
    if isinstance(node, Clip):
        lam = np.minimum(lam, node.max)
    return lam


def _from_stats(
    graph: Graph, node: Node, stats: CalibrationStats, unit: str, config: ConversionConfig
) -> np.ndarray:
    s = stats.nodes[node.name]

    def value(granularity: str) -> np.ndarray:
        if config.normalization == "max":
            return s.max(granularity)
        return s.percentile(config.percentile, granularity)

    per_channel = value(config.granularity)
    return _finish(graph, node, unit, per_channel, float(value("layer")[0]))


def _balance(
    graph: Graph,
    units: Mapping[str, Node],
    needing: list[str],
    fixed: Thresholds,
    data: np.ndarray,
    config: ConversionConfig,
    progress: bool | None,
) -> Thresholds:
    """Threshold balancing (Sengupta et al. 2019): unit by unit in graph order, run the SNN
    with the thresholds found so far and set this unit's threshold scale to the largest
    input current it receives (in ANN units) over ``balancing_timesteps`` steps."""
    lams = {**fixed, **{u: np.ones(graph.shape(units[u].name)[0]) for u in needing}}
    with progress_bar(progress) as bar:
        task = bar.add_task("threshold balancing", total=len(needing) * len(data))
        for unit in needing:
            snn, neurons = _build(graph, lams, config)
            feeds = snn.sources(neurons[unit])
            channels = lams[unit].size
            peak = np.zeros(channels)

            def record(
                t: int,
                values: Mapping[str, np.ndarray],
                feeds: tuple = feeds,
                peak: np.ndarray = peak,
                channels: int = channels,
            ) -> None:
                current = sum(values[f] for f in feeds)
                per_channel = np.moveaxis(current, 1, 0).reshape(channels, -1)
                np.maximum(peak, per_channel.max(axis=1), out=peak)

            for batch in batches(data, 256):
                simulate(snn, batch, config.balancing_timesteps, on_step=record)
                bar.advance(task, len(batch))
            per_channel = peak if config.granularity == "channel" else peak.max()
            lams[unit] = _finish(graph, units[unit], unit, per_channel, float(peak.max()))
    return lams


# ---------------------------------------------------------------- calibration input


def _calibration_inputs(
    graph: Graph,
    calibration: object,
    config: ConversionConfig,
    units: Mapping[str, Node],
    needing: list[str],
    progress: bool | None,
) -> tuple[np.ndarray | None, CalibrationStats | None]:
    """Check ``calibration`` against what the conversion needs: (raw data, statistics)."""
    if not needing:
        return None, None
    why = f"units {needing} need calibration data (no clip bound used for them" + (
        ", and a spike-count readout needs its output's range)"
        if config.readout == "spike_count"
        else ")"
    )
    if calibration is None:
        raise ConversionError(
            f"{why}: pass calibration=x with x of shape (N, *{graph.inputs[0].shape}) or the "
            "result of neurohal.calibrate"
        )
    if isinstance(calibration, CalibrationStats):
        if config.normalization == "threshold_balancing":
            raise ConversionError(
                "threshold balancing simulates the SNN on calibration data: pass the data "
                "itself, not CalibrationStats"
            )
        if calibration.input_shape != graph.inputs[0].shape:
            raise ConversionError(
                f"calibration stats are for inputs {calibration.input_shape}, the model "
                f"takes {graph.inputs[0].shape}: they come from another model"
            )
        missing = [u for u in needing if units[u].name not in calibration.nodes]
        if missing:
            raise ConversionError(
                f"calibration stats lack nodes for {missing}: they come from another model; "
                "run neurohal.calibrate on this one"
            )
        return None, calibration
    data = check_data(graph, calibration)
    if config.encoding == "poisson" and (data.min() < 0 or data.max() > 1):
        raise ConversionError(
            f"poisson encoding needs inputs in [0, 1]; the calibration data spans "
            f"[{data.min():g}, {data.max():g}]: rescale it or use encoding='analog'"
        )
    if config.normalization == "threshold_balancing":
        return data, None
    return data, calibrate(graph, data, progress=progress)


def _bias_calibration_data(
    graph: Graph, calibration: object, config: ConversionConfig
) -> np.ndarray:
    """The samples bias calibration runs the SNN on (the first bias_calibration_samples)."""
    if calibration is None or isinstance(calibration, CalibrationStats):
        raise ConversionError(
            f"bias_calibration_timesteps={config.bias_calibration_timesteps} runs the SNN on "
            f"calibration data: pass calibration=x with x of shape (N, "
            f"*{graph.inputs[0].shape}), not "
            + ("nothing" if calibration is None else "CalibrationStats")
        )
    return check_data(graph, calibration)[: config.bias_calibration_samples]


def _samples(data: np.ndarray | None, stats: CalibrationStats | None) -> int:
    if stats is not None:
        return stats.samples
    return 0 if data is None else len(data)


def _notes(graph: Graph, config: ConversionConfig) -> list[str]:
    notes = []
    for node in graph.nodes:
        if isinstance(node, Softmax):
            notes.append(f"Softmax {node.name!r} dropped: it does not change the argmax")
        if isinstance(node, MaxPool2d):
            notes.append(
                f"MaxPool2d {node.name!r}: "
                + (
                    "kept on the spiking path (max of binary spikes = OR)"
                    if config.maxpool == "spike_or"
                    else "replaced by AvgPool2d"
                )
            )
    return notes


# ---------------------------------------------------------------- building the SNN


def _per_channel(ratio: np.ndarray, where: str) -> np.ndarray:
    """A per-element scale that is constant over all but the first axis, as (C,) or ()."""
    flat = ratio.reshape(ratio.shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise ConversionError(
            f"{where}: scales vary within a channel, so no per-channel weight or Scale node "
            "can match them; convert with granularity='layer'"
        )
    vec = flat[:, 0]
    return vec[:1].reshape(()) if np.all(vec == vec[0]) else vec


@attrs.define
class _Builder:
    """Accumulates SNN nodes and edges; ``value[ann_name] = (snn_name, scale)``."""

    graph: Graph
    lams: Thresholds
    config: ConversionConfig
    nodes: list[Node] = attrs.Factory(list)
    edges: list[Edge] = attrs.Factory(list)
    value: dict[str, tuple[str, np.ndarray]] = attrs.Factory(dict)
    neurons: dict[str, str] = attrs.Factory(dict)

    def fresh(self, name: str) -> str:
        taken = {n.name for n in self.nodes} | {n.name for n in self.graph.nodes}
        candidate, i = name, 1
        while candidate in taken:
            candidate, i = f"{name}_{i}", i + 1
        return candidate

    def add(self, node: Node, *sources: str, port: str = "input") -> str:
        self.nodes.append(node)
        self.edges += [Edge(s, node.name, port) for s in sources]
        return node.name

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.shape(name)

    def lam(self, unit: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(self.lams[unit].reshape((-1,) + (1,) * (len(shape) - 1)), shape)

    def target(self, name: str) -> np.ndarray:
        """The scale ``name``'s weights should produce: the threshold scale of the single
        activation (or spike-count output) it feeds, through Adds; else 1."""
        shape = self.shape(name)
        consumers = set(self.graph.consumers(name))
        if len(consumers) == 1:
            c = self.graph.node(consumers.pop())
            if isinstance(c, ACTIVATIONS):
                return self.lam(c.name, shape)
            if isinstance(c, Add):
                return self.target(c.name)
            if c.name in self.lams and isinstance(c, Output):
                return self.lam(c.name, shape)
            outs = set(self.graph.consumers(c.name))
            if isinstance(c, Softmax) and len(outs) == 1 and next(iter(outs)) in self.lams:
                return self.lam(next(iter(outs)), shape)
        return np.ones(shape)

    def rescaled(self, name: str, scale: np.ndarray, into: str) -> str:
        """``name``'s SNN value brought from ``scale`` to the ANN-unit scale of ``into``'s
        target (a Scale node unless they already agree)."""
        snn_name, current = self.value[name]
        if np.array_equal(current, scale):
            return snn_name
        factor = _per_channel(current / scale, f"node {into!r}")
        return self.add(Scale(name=self.fresh(f"{into}.scale_{name}"), scale=factor), snn_name)

    def source(self, node: Node, port: str = "input") -> str:
        (src,) = self.graph.sources(node.name, port)
        return src

    def convert_node(self, node: Node) -> None:
        g, cfg = self.graph, self.config
        if isinstance(node, Input):
            self.add(node)
            enc = Encoder(name=self.fresh(f"{node.name}.encoder"), kind=cfg.encoding, seed=cfg.seed)
            self.value[node.name] = (self.add(enc, node.name), np.ones(node.shape))
            return
        if isinstance(node, (Dense, Conv2d)):
            src = self.source(node)
            snn_src, s_in = self.value[src]
            t = self.target(node.name)
            new = _rescale_weights(node, s_in, t)
            self.value[node.name] = (self.add(new, snn_src), t)
            return
        if isinstance(node, Add):
            t = self.target(node.name)
            ins = [self.rescaled(s, t, node.name) for s in g.sources(node.name)]
            self.value[node.name] = (self.add(node, *ins), t)
            return
        if isinstance(node, ACTIVATIONS):
            lam = self.lam(node.name, self.shape(node.name))
            src = self.rescaled(self.source(node), lam, node.name)
            neuron = IF(name=node.name, v_threshold=1.0, reset=cfg.reset, v_init=cfg.v_init)
            self.value[node.name] = (self.add(neuron, src), lam)
            self.neurons[node.name] = node.name
            return
        if isinstance(node, Output):
            self.convert_output(node)
            return
        if isinstance(node, Softmax):
            self.value[node.name] = self.value[self.source(node)]
            return
        if isinstance(node, Concat):
            parts = [self.value[self.source(node, p)] for p in node.ports()]
            for port, (snn_src, _) in zip(node.ports(), parts, strict=True):
                self.edges.append(Edge(snn_src, node.name, port))
            scale = np.concatenate([s for _, s in parts], axis=node.axis)
            self.value[node.name] = (self.add(node), scale)
            return
        snn_src, s_in = self.value[self.source(node)]
        if isinstance(node, (AvgPool2d, SumPool2d, MaxPool2d)):
            per = _per_channel(s_in, f"node {node.name!r}")
            new = node
            if isinstance(node, MaxPool2d) and cfg.maxpool == "avg":
                new = AvgPool2d(
                    name=node.name, kernel=node.kernel, stride=node.stride, padding=node.padding
                )
            shape = self.shape(node.name)
            scale = np.broadcast_to(np.reshape(per, (-1, 1, 1)), shape)
            self.value[node.name] = (self.add(new, snn_src), scale)
        elif isinstance(node, Flatten):
            self.value[node.name] = (self.add(node, snn_src), s_in.reshape(-1))
        elif isinstance(node, Reshape):
            self.value[node.name] = (self.add(node, snn_src), s_in.reshape(node.shape))
        else:  # Scale: the ANN's own scaling stays, the SNN scale passes through
            self.value[node.name] = (self.add(node, snn_src), s_in)

    def convert_output(self, node: Output) -> None:
        src = self.source(node)
        if node.name in self.lams:  # spike-count readout: IF neurons read out by their rate
            lam = self.lam(node.name, self.shape(src))
            current = self.rescaled(src, lam, node.name)
            neurons = IF(
                name=self.fresh(f"{node.name}.neurons"),
                v_threshold=1.0,
                reset=self.config.reset,
                v_init=self.config.v_init,
            )
            spikes = self.neurons[node.name] = self.add(neurons, current)
            readout = self.add(
                Readout(name=self.fresh(f"{node.name}.readout"), kind="spike_count"), spikes
            )
            scale = lam
        else:
            snn_src, scale = self.value[src]
            readout = self.add(
                Readout(name=self.fresh(f"{node.name}.readout"), kind="membrane"), snn_src
            )
        if not np.all(scale == 1.0):
            factor = _per_channel(scale, f"output {node.name!r}")
            readout = self.add(Scale(name=self.fresh(f"{node.name}.scale"), scale=factor), readout)
        self.add(node, readout)


def _rescale_weights(node: Dense | Conv2d, s_in: np.ndarray, t: np.ndarray) -> Node:
    """``W * s_in / t`` per (output, input) channel and ``b / t``, in float64."""
    w = node.weight.astype(np.float64)
    if isinstance(node, Dense):
        t_out = t
        w = w * s_in[None, :] / t_out[:, None]
    else:
        t_out = np.broadcast_to(_per_channel(t, f"node {node.name!r}"), (w.shape[0],))
        s_ch = np.broadcast_to(_per_channel(s_in, f"node {node.name!r}"), (s_in.shape[0],))
        out_per_group = w.shape[0] // node.groups
        group = np.arange(w.shape[0]) // out_per_group
        in_index = group[:, None] * w.shape[1] + np.arange(w.shape[1])[None, :]
        w = w * s_ch[in_index][:, :, None, None] / t_out[:, None, None, None]
    bias = None if node.bias is None else node.bias.astype(np.float64) / t_out
    return attrs.evolve(node, weight=w, bias=bias)


def _build(
    graph: Graph, lams: Thresholds, config: ConversionConfig
) -> tuple[Graph, dict[str, str]]:
    """The SNN for thresholds ``lams``, and the IF node standing for each unit."""
    builder = _Builder(graph, dict(lams), config)
    for node in graph.topological_order():
        builder.convert_node(node)
    return Graph(builder.nodes, builder.edges), builder.neurons
