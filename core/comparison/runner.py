"""Runs one graph on one device over a whole test set (streamed) and measures it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurohal.comparison.table import COUNTER_NAMES, Row
from neurohal.device import Device
from neurohal.errors import NeurohalError
from neurohal.ir import Graph


def evaluate(
    device: Device,
    graph: Graph,
    graph_label: str,
    model: str,
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int | None,
    batch_size: int,
    measure_samples: int,
    advance: Callable[[int], None] = lambda n: None,
    artifact_cache: dict | None = None,
) -> Row:
    """Accuracy and counters over all of ``x`` in batches; quantities from ``device.measure``.

    ``measure`` runs on the first ``measure_samples`` inputs, the same inputs every device gets.
    Compiling is done once per (device, graph) and shared through ``artifact_cache``.
    """
    cache = artifact_cache if artifact_cache is not None else {}
    key = (device.name, graph_label)
    if key not in cache:
        cache[key] = device.compile(graph)
    artifact = cache[key]
    correct = 0
    totals = dict.fromkeys(COUNTER_NAMES, 0)
    layer_spikes: dict[str, int] = {}
    notes: set[str] = set()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        result = device.run(artifact, xb, timesteps)
        correct += int((np.argmax(result.output(), axis=1) == yb).sum())
        for layer, counts in result.counters.items():
            for name in COUNTER_NAMES:
                totals[name] += int(counts.get(name, 0))
            if "spikes" in counts:
                layer_spikes[layer] = layer_spikes.get(layer, 0) + int(counts["spikes"])
        notes.update(result.notes)
        advance(len(xb))
    n = len(x)
    measurement = device.measure(artifact, x[:measure_samples], timesteps)
    notes.update(measurement.run.notes)
    return Row(
        device=device.name,
        model=model,
        graph=graph_label,
        timesteps=timesteps,
        available=True,
        accuracy=correct / n,
        samples=n,
        quantities=measurement.quantities(),
        per_inference={k: v / n for k, v in totals.items() if v},
        layer_spikes={k: v / n for k, v in layer_spikes.items()},
        resources=dict(artifact.report),
        notes=tuple(sorted(notes)),
    )


def unavailable_row(device: str, model: str, graph: str, timesteps: int | None, reason: str) -> Row:
    return Row(device, model, graph, timesteps, available=False, reason=reason)


def checked_data(graph: Graph, x: np.ndarray, y: np.ndarray, source: str) -> None:
    """Fail before any work when the data does not fit the model."""
    expected = graph.inputs[0].shape
    if x.shape[1:] != tuple(expected):
        raise NeurohalError(
            f"data {source!r} has samples of shape {x.shape[1:]}, the model expects {expected}; "
            "pick a dataset that matches the model's input"
        )
    if len(x) != len(y):
        raise NeurohalError(f"data {source!r}: {len(x)} inputs but {len(y)} labels")
