"""``neurohal convert``: an ANN (.onnx, .nhir or zoo name) to an SNN ``.nhir`` file.

``--check`` lists every node that cannot be converted, all at once: the ONNX frontend's
operator check (`neurohal.frontends.onnx.check_onnx`) for ONNX files and zoo models, then the
converter's own check (`neurohal.conversion.unsupported_nodes`) on the loaded graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from neurohal.errors import ConversionError, NeurohalError


def load_calibration(spec: str) -> np.ndarray:
    """``NAME[:N]`` for a dataset's training split (``mnist``, ``digits``; first N samples)
    or the path of a ``.npy`` array of shape (N, *input shape)."""
    if spec.endswith(".npy"):
        try:
            return np.load(spec, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConversionError(f"cannot read calibration array {spec!r}: {exc}") from exc
    from neurohal import datasets

    name, _, count = spec.partition(":")
    if count and not count.isdigit():
        raise ConversionError(f"--calib {spec!r}: N in NAME:N must be a positive integer")
    limit = int(count) if count else None
    x, _ = datasets.load(name, "train", limit)
    return np.asarray(x)


def _onnx_path(model: str) -> Path | None:
    """The ONNX file behind ``model`` (a .onnx path or a zoo name), else None."""
    if model.lower().endswith(".onnx"):
        return Path(model)
    if model.lower().endswith((".nhir", ".nir")):
        return None
    from neurohal import zoo

    return zoo.path(model) if model in zoo.names() else None


def check_report(model: str) -> list[dict]:
    """Every unsupported node of ``model``, as dicts with name, op and reason."""
    from neurohal.conversion import unsupported_nodes
    from neurohal.modelio import load_model

    path = _onnx_path(model)
    if path is not None:
        from neurohal.frontends.onnx import check_onnx

        found = check_onnx(path)
        if found:
            return [{"name": u.name, "op": u.op_type, "reason": u.reason} for u in found]
    graph = load_model(model)
    return [{"name": n, "op": op, "reason": r} for n, op, r in unsupported_nodes(graph)]


def _config(options: dict) -> object:
    from neurohal.conversion import ConversionConfig

    given = {k: v for k, v in options.items() if v is not None}
    try:
        return ConversionConfig(**given)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command(name="convert")
@click.argument("model")
@click.option("--calib", help="Calibration data: mnist[:N], digits[:N] or an .npy file.")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the SNN (.nhir).")
@click.option("--check", is_flag=True, help="Only list every node that cannot be converted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--normalization", type=click.Choice(["max", "percentile", "threshold_balancing"]))
@click.option("--granularity", type=click.Choice(["layer", "channel"]))
@click.option("--percentile", type=float)
@click.option("--reset", type=click.Choice(["subtract", "zero"]))
@click.option("--v-init", "v_init", type=float, help="Initial membrane / threshold.")
@click.option("--readout", type=click.Choice(["membrane", "spike_count"]))
@click.option("--encoding", type=click.Choice(["analog", "poisson"]))
@click.option("--seed", type=int)
@click.option("--maxpool", type=click.Choice(["spike_or", "avg"]))
@click.option(
    "--clip-bound/--no-clip-bound",
    "use_clip_bound",
    default=None,
    help="Use Clip(0, lam) bounds as thresholds (default: on).",
)
@click.option("--balancing-timesteps", "balancing_timesteps", type=int)
@click.option(
    "--calibrate-for",
    "bias_calibration_timesteps",
    type=int,
    help="Tune the SNN for this many timesteps by bias calibration (needs --calib).",
)
@click.option("--calibrate-samples", "bias_calibration_samples", type=int)
def command(
    model: str, calib: str | None, out: str | None, check: bool, as_json: bool, **options: object
) -> None:
    """Convert MODEL (.onnx, .nhir or zoo name) to a spiking network written to --out."""
    try:
        if check:
            _run_check(model, as_json)
            return
        _run_convert(model, calib, out, as_json, options)
    except NeurohalError as exc:
        raise click.ClickException(str(exc)) from exc


def _run_check(model: str, as_json: bool) -> None:
    problems = check_report(model)
    if as_json:
        click.echo(json.dumps({"model": model, "unsupported": problems}, indent=2))
    else:
        for p in problems:
            click.echo(f"{p['name']}\t{p['op']}\t{p['reason']}")
        click.echo(f"{model}: {len(problems)} unsupported node(s)", err=True)
    if problems:
        raise click.exceptions.Exit(1)


def _run_convert(
    model: str, calib: str | None, out: str | None, as_json: bool, options: dict
) -> None:
    from neurohal.conversion import convert
    from neurohal.ir import save
    from neurohal.modelio import load_model

    if out is None:
        raise click.UsageError("--out FILE.nhir is required (or use --check)")
    config = _config(options)
    graph = load_model(model)
    data = None if calib is None else load_calibration(calib)
    snn = convert(graph, data, config, progress=None)
    path = save(snn, out)
    summary = {
        "model": model,
        "out": str(path),
        "kind": snn.kind,
        "nodes": len(snn.nodes),
        "conversion": dict(snn.metadata)["conversion"],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(str(path))
    click.echo(f"converted {model} -> {path} ({snn.kind}, {len(snn.nodes)} nodes)", err=True)
