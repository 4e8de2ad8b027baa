"""``neurohal compare`` and ``neurohal demo``: one network on every device, side by side."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from neurohal.errors import NeurohalError

DEMO_MODEL = "lenet5"


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _data(text: str) -> tuple[str, str]:
    name, _, split = text.partition(":")
    return name, split or "test"


def run_comparison(
    model: str,
    snn_path: str | None,
    data: str,
    limit: int | None,
    devices: str | None,
    timesteps: str,
    baseline: str,
    out: str,
    calib_limit: int,
) -> None:
    """Shared by compare and demo: preflight, compare, print, write everything."""
    from neurohal import load
    from neurohal.comparison import compare
    from neurohal.comparison.output import check_writable, write_all
    from neurohal.modelio import load_model

    check_writable(out)
    started = time.perf_counter()
    ann = load_model(model)
    snn = load(snn_path) if snn_path else None
    table = compare(
        ann,
        snn,
        data=_data(data),
        devices=devices.split(",") if devices else None,
        timesteps=_ints(timesteps),
        limit=limit,
        calibration=(_data(data)[0], "train"),
        calibration_limit=calib_limit,
        baseline=baseline,
        model_name=Path(model).stem,
    )
    # a pipe or file gets the full width instead of rich's 80 columns
    Console(width=None if sys.stdout.isatty() else 160).print(table.to_rich())
    paths = write_all(table, out)
    err = Console(stderr=True)
    err.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    err.print(f"wall time {time.perf_counter() - started:.1f} s")


_common = [
    click.option(
        "--data", default="mnist:test", show_default=True, help="dataset:split to evaluate on."
    ),
    click.option("--devices", default=None, help="Comma-separated devices (default: all)."),
    click.option(
        "--baseline",
        default="ncs2",
        show_default=True,
        help="Device the power and energy ratios are relative to.",
    ),
    click.option(
        "--calib-limit",
        default=1000,
        show_default=True,
        help="Training images used to calibrate the conversion.",
    ),
]


def _with_common(f):
    for option in reversed(_common):
        f = option(f)
    return f


@click.command(name="compare")
@click.argument("model")
@click.option("--snn", "snn_path", default=None, help="A converted .nhir (default: convert).")
@click.option("--limit", type=int, default=None, help="Evaluate on the first N samples.")
@click.option("--timesteps", default="8,16,32", show_default=True)
@click.option("--out", default="neurohal-compare", show_default=True, help="Output folder.")
@_with_common
def compare_command(
    model, snn_path, limit, timesteps, out, data, devices, baseline, calib_limit
) -> None:
    """Run MODEL (.onnx, .nhir, .nir or zoo name) on every device and report side by side."""
    run_comparison(model, snn_path, data, limit, devices, timesteps, baseline, out, calib_limit)


@click.command(name="demo")
@click.option("--quick", is_flag=True, help="1,000 test images and T = 8, 16 instead of all.")
@click.option("--out", default="neurohal-demo", show_default=True, help="Output folder.")
@_with_common
def demo_command(quick, out, data, devices, baseline, calib_limit) -> None:
    """The headline comparison: the shipped LeNet-5 on MNIST on every installed device."""
    if data != "mnist:test":
        raise NeurohalError("the demo runs the shipped LeNet-5 on mnist:test; use compare")
    run_comparison(
        DEMO_MODEL,
        None,
        data,
        1000 if quick else None,
        devices,
        "8,16" if quick else "8,16,32",
        baseline,
        out,
        calib_limit,
    )
