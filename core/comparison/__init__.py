"""Side-by-side comparison: one network on every device, with provenance on every figure.

``compare`` runs the ANN on devices that take analog graphs (ncs2, cpu_sim) and the SNN on
devices that take spiking graphs (loihi, cpu_sim), over the whole test set for each T, and
collects accuracy, latency, power and energy per inference (each from the device's own
``measure``), spikes and synaptic operations per inference and resource use. Devices that are
unavailable appear as rows with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurohal import plugins
from neurohal.comparison.runner import checked_data, evaluate, unavailable_row
from neurohal.comparison.table import ComparisonTable, Row, with_ratios
from neurohal.errors import NeurohalError
from neurohal.ir import Graph

__all__ = ["ComparisonTable", "Row", "compare", "load_data"]


def load_data(data: tuple, limit: int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(name, split)`` of a neurohal dataset, or ``(x, y)`` arrays; returns x, y, a label."""
    from neurohal import datasets

    if len(data) == 2 and isinstance(data[0], str):
        name, split = data
        x, y = datasets.load(name, split, limit=limit)
        return x, y, f"{name}:{split}"
    x, y = (np.asarray(a) for a in data)
    return (x[:limit], y[:limit], "arrays") if limit else (x, y, "arrays")


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def compare(
    ann: Graph,
    snn: Graph | None = None,
    data: tuple = ("mnist", "test"),
    devices: Sequence[str] | None = None,
    timesteps: Sequence[int] = (8, 16, 32),
    limit: int | None = None,
    calibration: tuple = ("mnist", "train"),
    calibration_limit: int = 1000,
    baseline: str | None = "ncs2",
    batch_size: int = 250,
    measure_samples: int = 256,
    model_name: str = "model",
    progress: bool = True,
) -> ComparisonTable:
    """Run ``ann`` (and ``snn``, converted from ``ann`` when not given) on ``devices``.

    ``devices`` defaults to every registered device; an unknown name raises before any work
    with the known names listed. Power and energy ratios are relative to ``baseline``.
    """
    names = list(devices) if devices is not None else sorted(plugins.devices())
    chosen = [plugins.device(n) for n in names]  # unknown names fail here, before any work
    x, y, source = load_data(data, limit)
    checked_data(ann, x, y, source)
    if snn is None:
        from neurohal.conversion import convert

        x_cal, _, _ = load_data(calibration, calibration_limit)
        snn = convert(ann, calibration=x_cal)
    ts = [int(t) for t in timesteps]
    if not ts or min(ts) < 1:
        raise NeurohalError(f"timesteps must be integers >= 1, got {list(timesteps)}")
    rows: list[Row] = []
    cache: dict = {}
    with _progress(progress) as bar:
        for device in chosen:
            availability = device.probe()
            if not availability.ok:
                rows.append(
                    unavailable_row(device.name, model_name, "-", None, availability.reason)
                )
                continue
            jobs = []
            if device.supports(ann).ok:
                jobs.append(("ann", ann, None))
            if device.supports(snn).ok:
                jobs += [("snn", snn, t) for t in ts]
            if not jobs:
                reasons = "; ".join(
                    f"{n.node}: {n.reason}" for n in device.supports(snn).unsupported
                )
                rows.append(
                    unavailable_row(
                        device.name, model_name, "-", None, f"supports neither graph ({reasons})"
                    )
                )
                continue
            for label, graph, t in jobs:
                task = bar.add_task(
                    f"{device.name} {label}" + (f" T={t}" if t else ""), total=len(x)
                )
                rows.append(
                    evaluate(
                        device,
                        graph,
                        label,
                        model_name,
                        x,
                        y,
                        t,
                        batch_size,
                        measure_samples,
                        lambda n, task=task: bar.advance(task, n),
                        cache,
                    )
                )
    config = {
        "model": model_name,
        "data": source,
        "samples": len(x),
        "devices": names,
        "timesteps": ts,
        "baseline": baseline,
        "measure_samples": min(measure_samples, len(x)),
        "conversion": dict(snn.metadata),
    }
    return ComparisonTable(with_ratios(rows, baseline), config)
