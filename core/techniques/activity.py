"""Less spiking activity: higher thresholds, chosen layer by layer under an accuracy target.

An IF neuron standing for an activation with threshold scale ``lam`` fires at rate
``a / lam``; raising the threshold to ``k * lam`` divides every rate (and so the spikes, the
synaptic operations they trigger and the dynamic energy) by ``k``, at the price of a coarser
rate code: ``T`` steps resolve ``k * lam / T`` instead of ``lam / T``, so accuracy at a fixed
``T`` eventually drops. `scale_thresholds` applies ``k`` to the ANN's ``Clip(0, lam)`` bounds
before conversion (the converter then uses ``k * lam`` as the threshold, exactly, and rescales
the weights to match); for ReLU networks the same lever is the normalization percentile
(``ConversionConfig(normalization="percentile", percentile=...)``).

Activity-aware calibration (`activity_aware_scales`) spends the accuracy budget where the
activity is: layers are visited in decreasing order of the synaptic operations their spikes
trigger (measured on calibration data, `unit_activity`), and each layer's scale is raised
through the candidates for as long as the accuracy stays at or above the target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

from neurohal.errors import ConversionError, InputError
from neurohal.ir import IF, LIF, SYNAPSE_TYPES, Clip, CubaLIF, Graph, ReLU


def scale_thresholds(ann: Graph, scale: float | Mapping[str, float]) -> Graph:
    """``ann`` with each ``Clip(0, lam)`` (all, or those named in ``scale``) made
    ``Clip(0, k * lam)``; the conversion of the result has thresholds ``k * lam``.

    Raises ConversionError for a ReLU activation (it has no bound to scale) or a name in
    ``scale`` that is not a Clip of ``ann``.
    """
    clips = {n.name: n for n in ann.nodes if isinstance(n, Clip)}
    relus = [n.name for n in ann.nodes if isinstance(n, ReLU)]
    if isinstance(scale, Mapping):
        factors = {str(k): float(v) for k, v in scale.items()}
        unknown = sorted(set(factors) - set(clips))
        if unknown:
            raise ConversionError(
                f"threshold scales name {unknown}, which are not Clip activations of the "
                f"model; its Clip activations are {sorted(clips)}"
            )
    else:
        if relus:
            raise ConversionError(
                f"ReLU activations {relus} have no clip bound to scale: scale their thresholds "
                "through the normalization percentile (ConversionConfig(percentile=...))"
            )
        factors = {name: float(scale) for name in clips}
    bad = {k: v for k, v in factors.items() if not v > 0}
    if bad:
        raise InputError(f"threshold scales must be > 0, got {bad}")
    for name in factors:
        if clips[name].min != 0.0:
            raise ConversionError(
                f"Clip {name!r} has min {clips[name].min}; only Clip(0, lam) activations "
                "convert to IF neurons"
            )
    return ann.replace_nodes(
        attrs.evolve(clips[name], max=clips[name].max * k) for name, k in factors.items()
    )


def unit_activity(snn: Graph, counters: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Per spiking layer (an IF/LIF node of a converted SNN, named as its ANN activation):
    the synaptic operations its spikes trigger, summed over the synapse nodes between it and
    the next neurons, from a run's ``counters`` (keyed by IR node, as cpu_sim reports them)."""
    neurons = (IF, LIF, CubaLIF)
    activity = {}
    for node in snn.nodes:
        if not isinstance(node, neurons):
            continue
        total, seen, frontier = 0, set(), list(snn.consumers(node.name))
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            child = snn.node(name)
            if isinstance(child, SYNAPSE_TYPES):
                total += int(counters.get(name, {}).get("synops", 0))
            if not isinstance(child, neurons):
                frontier.extend(snn.consumers(name))
        activity[node.name] = total
    return activity


@attrs.frozen
class ScaleSearch:
    """The per-layer threshold scales chosen and every trial: (scales, accuracy)."""

    target: float
    scales: dict[str, float]
    order: tuple[str, ...]
    trials: tuple[tuple[dict[str, float], float], ...]


def activity_aware_scales(
    activity: Mapping[str, int],
    accuracy_of: Callable[[dict[str, float]], float],
    target: float,
    candidates: Sequence[float] = (1.25, 1.5, 2.0, 3.0),
) -> ScaleSearch:
    """Greedy per-layer threshold scales: most active layer first, each raised through the
    ascending ``candidates`` while ``accuracy_of(scales) >= target``; a layer stops at its
    first failing candidate (larger ones would remove more spikes still)."""
    steps = sorted(float(c) for c in candidates)
    if not steps or steps[0] <= 1.0:
        raise InputError(f"candidate scales must be > 1 (1 is the start), got {list(candidates)}")
    order = tuple(sorted(activity, key=lambda u: (-activity[u], u)))
    scales = {u: 1.0 for u in order}
    trials: list[tuple[dict[str, float], float]] = []
    for unit in order:
        for k in steps:
            trial = {**scales, unit: k}
            acc = float(accuracy_of(trial))
            trials.append((trial, acc))
            if acc < target:
                break
            scales = trial
    return ScaleSearch(target, scales, order, tuple(trials))
