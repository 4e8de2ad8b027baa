"""``neurohal compile | run | measure | export``: one device, one model, from the shell."""

from __future__ import annotations

import json

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from neurohal.device import QUANTITY_NAMES, Artifact


def _artifact(model: str, device_name: str):
    """A saved artifact (.nhart) as is, or a model compiled for ``device_name`` now."""
    import neurohal
    from neurohal.modelio import load_model

    device = neurohal.device(device_name)
    if model.endswith(".nhart"):
        artifact = Artifact.load(model)
        if artifact.device != device.name:
            raise click.UsageError(
                f"{model} was compiled for {artifact.device!r}, not {device.name!r}"
            )
        return device, artifact
    device.probe().raise_if_unavailable(device.name)
    return device, device.compile(load_model(model))


def _inputs(data: str, limit: int):
    from neurohal import datasets

    name, _, split = data.partition(":")
    return datasets.load(name, split or "test", limit=limit)


@click.command(name="compile")
@click.argument("model")
@click.option("--device", "device_name", required=True, help="Device to compile for.")
@click.option("-o", "--out", required=True, help="Where to save the artifact (.nhart).")
def compile_command(model: str, device_name: str, out: str) -> None:
    """Compile MODEL for a device and save the artifact; prints its resource report (JSON)."""
    _, artifact = _artifact(model, device_name)
    artifact.save(out)
    click.echo(json.dumps(dict(artifact.report), indent=2))
    click.echo(f"saved {out}", err=True)


@click.command(name="run")
@click.argument("model")
@click.option("--device", "device_name", required=True)
@click.option("--data", default="mnist:test", show_default=True)
@click.option("--limit", default=1000, show_default=True)
@click.option("--timesteps", "-T", type=int, default=None, help="Steps (spiking graphs).")
@click.option("--batch-size", default=250, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def run_command(model, device_name, data, limit, timesteps, batch_size, as_json) -> None:
    """Run MODEL (or a .nhart) on a device over a dataset: accuracy and counters."""
    device, artifact = _artifact(model, device_name)
    x, y = _inputs(data, limit)
    correct, totals = 0, {}
    for start in range(0, len(x), batch_size):
        result = device.run(artifact, x[start : start + batch_size], timesteps)
        correct += int((result.output().argmax(axis=1) == y[start : start + batch_size]).sum())
        for counts in result.counters.values():
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + int(value)
    summary = {
        "device": device.name,
        "samples": len(x),
        "timesteps": timesteps,
        "accuracy": correct / len(x),
        "per_inference": {k: v / len(x) for k, v in totals.items()},
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{device.name}: accuracy {100 * summary['accuracy']:.2f}% on {len(x)} "
            f"samples; per inference: "
            + ", ".join(f"{k} {v:,.0f}" for k, v in summary["per_inference"].items())
        )


@click.command(name="measure")
@click.argument("model")
@click.option("--device", "device_name", required=True)
@click.option("--data", default="mnist:test", show_default=True)
@click.option("--limit", default=256, show_default=True)
@click.option("--timesteps", "-T", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def measure_command(model, device_name, data, limit, timesteps, as_json) -> None:
    """Latency, power and energy per inference, each marked measured or estimated."""
    device, artifact = _artifact(model, device_name)
    x, _ = _inputs(data, limit)
    m = device.measure(artifact, np.asarray(x), timesteps)
    quantities = m.quantities()
    if as_json:
        click.echo(json.dumps({k: q.to_dict() for k, q in quantities.items()}, indent=2))
        return
    table = Table(title=f"{device.name}: per inference ({len(x)} samples)")
    for col in ("quantity", "value", "provenance", "method"):
        table.add_column(col)
    for name in (*QUANTITY_NAMES, *(k for k in quantities if k not in QUANTITY_NAMES)):
        q = quantities[name]
        value = "n/a" if q.value is None else f"{q.value:.4g} {q.unit}"
        table.add_row(name, value, q.provenance, q.method)
    Console().print(table)


@click.command(name="export")
@click.argument("model")
@click.option("--format", "fmt", required=True, help="nir, onnx, or a plugin's format.")
@click.option("-o", "--out", required=True)
def export_command(model: str, fmt: str, out: str) -> None:
    """Write MODEL in another tool's format (`neurohal formats` lists them)."""
    from neurohal.exporters import export
    from neurohal.modelio import load_model

    path = export(load_model(model), fmt, out)
    click.echo(f"wrote {path}", err=True)


@click.command(name="formats")
def formats_command() -> None:
    """List the export formats available here."""
    from neurohal.exporters import formats

    for name, description in sorted(formats().items()):
        click.echo(f"{name}\t{description}")
