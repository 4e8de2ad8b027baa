"""Calibration: run the ANN on data in batches and keep streaming activation statistics."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from neurohal.conversion.simulator import evaluate
from neurohal.conversion.stats import ActivationStats, CalibrationStats, HistogramAccumulator
from neurohal.conversion.support import check_convertible, tracked_nodes, with_explicit_adds
from neurohal.errors import ConversionError
from neurohal.ir import Graph

DEFAULT_PERCENTILES = (99.0, 99.9, 99.99, 99.999)


def check_data(graph: Graph, data: object) -> np.ndarray:
    """``data`` as a float array of shape (N, *input shape), N >= 1, all finite."""
    expected = graph.inputs[0].shape
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        raise ConversionError(
            f"calibration data must be a numeric numpy array of shape (N, *{expected}), "
            f"got {type(data).__name__}"
        )
    if data.shape[1:] != expected or data.ndim != len(expected) + 1:
        raise ConversionError(
            f"calibration data has shape {data.shape}; input {graph.inputs[0].name!r} "
            f"needs (N, *{expected})"
        )
    if len(data) == 0:
        raise ConversionError("calibration data is empty; pass at least one sample")
    if not np.all(np.isfinite(data)):
        raise ConversionError("calibration data holds NaN or infinite values; clean it first")
    return data


def progress_bar(enabled: bool | None) -> Progress:
    """A rich progress bar on stderr; ``None`` shows it only when stderr is a terminal."""
    console = Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=sys.stderr.isatty(),
    )


def batches(data: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(data), batch_size):
        yield data[start : start + batch_size]


def calibrate(
    ann: Graph,
    data: np.ndarray,
    batch_size: int = 256,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    bins: int = 2048,
    progress: bool | None = None,
) -> CalibrationStats:
    """Per-layer and per-channel max and percentile statistics of every activation (ReLU,
    Clip) and every read-out value of ``ann`` on ``data``, in memory independent of N.

    ``percentiles`` are the ones `CalibrationStats.summary` reports; any other can be read
    from the stats afterwards. ``bins`` (a power of two) sets the histogram resolution.
    ``progress``: a progress bar on stderr (``None``: only when stderr is a terminal).
    """
    check_convertible(ann)
    if batch_size < 1:
        raise ConversionError(f"batch_size must be >= 1, got {batch_size}")
    if bins < 2 or bins & (bins - 1):
        raise ConversionError(f"bins must be a power of two >= 2, got {bins}")
    if not all(0.0 < p <= 100.0 for p in percentiles):
        raise ConversionError(f"percentiles must lie in (0, 100], got {tuple(percentiles)}")
    graph = with_explicit_adds(ann)
    data = check_data(graph, data)
    names = tracked_nodes(graph)
    shapes = graph.shapes()
    channel_acc = {n: HistogramAccumulator(shapes[n][0], bins) for n in names}
    layer_acc = {n: HistogramAccumulator(1, bins) for n in names}
    with progress_bar(progress) as bar:
        task = bar.add_task("calibrating", total=len(data))
        for batch in batches(data, batch_size):
            values = evaluate(graph, batch, keep=names)
            for name in names:
                per_channel = np.moveaxis(values[name], 1, 0).reshape(shapes[name][0], -1)
                channel_acc[name].update(per_channel)
                layer_acc[name].update(per_channel.reshape(1, -1))
            bar.advance(task, len(batch))
    return CalibrationStats(
        input_shape=graph.inputs[0].shape,
        samples=len(data),
        bins=bins,
        percentiles=tuple(float(p) for p in percentiles),
        nodes={
            n: ActivationStats(
                node=n,
                shape=shapes[n],
                channels=channel_acc[n].freeze(),
                layer=layer_acc[n].freeze(),
            )
            for n in names
        },
    )
