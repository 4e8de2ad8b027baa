"""ANN vs converted SNN accuracy on MNIST, per zoo model, timestep budget and recipe.

For each model: the ANN's test accuracy, and the SNN's at T = 4 .. 128 for the best recipe
(`neurohal.ConversionConfig()` defaults), for models with a residual Add the
`neurohal.conversion.RESIDUAL` recipe, alone and with bias calibration for the column's T
(``bias_calibration_timesteps=T``: one SNN per T, for T <= 32), the naive
baseline (`neurohal.conversion.NAIVE`: layer-wise max normalization, reset to zero,
spike-count readout), the max-pool strategy
``avg`` for models with MaxPool2d (its accuracy cost against ``spike_or``), and per-technique
ablations (each one change from the best recipe) on the first ``--ablation-limit`` images.

SNNs run on `neurohal.conversion.simulate`: float64, the reference interpreter's semantics
step for step (its spike trains are tested identical to `neurohal.reference.run`'s), with the
output read after each step so that one run of max(T) steps gives every T (the state at step
T does not depend on how many steps follow). ``--crosscheck N`` reruns the first N test images
of each best-recipe SNN through `neurohal.reference.run` itself and reports how many
predictions differ. Every accuracy here is measured in this run.

Run: ``.venv/bin/python benchmarks/conversion_accuracy.py`` (full test set; about an hour on
2 cores) or with ``--limit 1000`` for a quick look. Results: benchmarks/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import attrs
import numpy as np
from rich.console import Console
from rich.table import Table

import neurohal as nh
from neurohal import reference
from neurohal.conversion import NAIVE, RESIDUAL, ConversionConfig, evaluate, simulate
from neurohal.conversion.calibrate import progress_bar
from neurohal.ir import Add, Graph, MaxPool2d

TIMESTEPS = (4, 8, 16, 32, 64, 128)
TARGET_T = 32
"""The largest T with an accuracy target; longer runs may use fewer images (--long-limit)."""
RESULTS = Path(__file__).resolve().parent / "results" / "conversion_accuracy.json"
ABLATIONS = {
    "no clip bound (channel p99.99)": ConversionConfig(use_clip_bound=False),
    "no clip bound, layer-wise p99.99": ConversionConfig(use_clip_bound=False,
                                                        granularity="layer"),
    "no clip bound, channel p99": ConversionConfig(use_clip_bound=False, percentile=99.0),
    "no clip bound, channel p99.9": ConversionConfig(use_clip_bound=False, percentile=99.9),
    "no clip bound, max norm": ConversionConfig(use_clip_bound=False, normalization="max"),
    "reset to zero": ConversionConfig(reset="zero"),
    "v_init 0": ConversionConfig(v_init=0.0),
    "spike-count readout": ConversionConfig(readout="spike_count"),
    "poisson input": ConversionConfig(encoding="poisson", seed=0),
    "threshold balancing": ConversionConfig(use_clip_bound=False,
                                            normalization="threshold_balancing"),
}  # fmt: skip


def model_file(model: str) -> Path:
    return Path(model) if model.endswith(".onnx") else Path(nh.zoo.path(model))


def ann_accuracy(ann: Graph, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    (out,) = (o.name for o in ann.outputs)
    correct = sum(
        int((evaluate(ann, x[i : i + batch], keep=[out])[out].argmax(1) == y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return correct / len(x)


def snn_accuracy(
    snn: Graph,
    x: np.ndarray,
    y: np.ndarray,
    timesteps: tuple[int, ...],
    batch: int,
    label: str,
    long_limit: int | None = None,
) -> dict:
    """Accuracy and image count after each T in ``timesteps``, from one run per batch:
    ``max(T)`` steps for the first ``long_limit`` images, and for the others only up to the
    largest T <= `TARGET_T` (to bound the cost of long runs on the full test set)."""
    (out,) = (o.name for o in snn.outputs)
    correct, images = dict.fromkeys(timesteps, 0), dict.fromkeys(timesteps, 0)
    short = max([t for t in timesteps if t <= TARGET_T], default=max(timesteps))
    with progress_bar(None) as bar:
        task = bar.add_task(label, total=len(x))
        for i in range(0, len(x), batch):
            labels = y[i : i + batch]

            def count(t: int, values: dict, labels: np.ndarray = labels) -> None:
                if t + 1 in correct:
                    correct[t + 1] += int((values[out].argmax(1) == labels).sum())
                    images[t + 1] += len(labels)

            long = long_limit is None or i < long_limit
            simulate(snn, x[i : i + batch], max(timesteps) if long else short, on_step=count)
            bar.advance(task, len(labels))
    return {"accuracy": {t: correct[t] / images[t] for t in timesteps}, "images": images}


def per_timestep(
    ann: Graph,
    config: ConversionConfig,
    x_cal: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    args: argparse.Namespace,
    label: str,
) -> dict:
    """A recipe whose SNN is made for one T (bias calibration on the first
    ``bias_calibration_samples`` calibration images): converted and run once per T <=
    `TARGET_T`, where the targets are (longer runs need no calibration)."""
    accuracy, images = {}, {}
    for t in (t for t in args.timesteps if t <= TARGET_T):
        tuned = attrs.evolve(config, bias_calibration_timesteps=t)
        snn = nh.convert(ann, x_cal, tuned)
        run = snn_accuracy(snn, x, y, (t,), args.batch, f"{label}, T={t}")
        accuracy[t], images[t] = run["accuracy"][t], run["images"][t]
    return {
        "config": config.to_dict(),
        "bias_calibration_timesteps": "the T of each column",
        "accuracy": accuracy,
        "images": images,
    }


def crosscheck(snn: Graph, x: np.ndarray, timesteps: int) -> dict:
    """Predictions of simulate vs reference.run on the same images."""
    (out,) = (o.name for o in snn.outputs)
    fast = simulate(snn, x, timesteps)[out]
    ref = reference.run(snn, x, timesteps=timesteps).outputs[out]
    return {
        "images": len(x),
        "timesteps": timesteps,
        "differing_predictions": int((fast.argmax(1) != ref.argmax(1)).sum()),
        "max_abs_output_difference": float(np.abs(fast - ref).max()),
    }


def run_model(model: str, args: argparse.Namespace, console: Console) -> dict:
    path = model_file(model)
    ann = nh.load_onnx(path)
    x_test, y_test = nh.datasets.mnist("test", args.limit)
    x_cal, _ = nh.datasets.mnist("train", args.calib)
    x_test, x_cal = np.asarray(x_test), np.asarray(x_cal)
    started = time.perf_counter()
    subsets = {len(x_test), min(args.long_limit or len(x_test), len(x_test))}
    if args.ablation_limit:
        subsets.add(min(args.ablation_limit, len(x_test)))
    result = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "calibration_images": len(x_cal),
        "ann_accuracy_on_first": {
            n: ann_accuracy(ann, x_test[:n], y_test[:n], args.batch) for n in sorted(subsets)
        },
        "recipes": {},
        "ablations": {},
    }
    recipes = {"best": ConversionConfig(), "naive": NAIVE}
    if any(isinstance(n, MaxPool2d) for n in ann.nodes):
        recipes["best, maxpool=avg"] = ConversionConfig(maxpool="avg")
    if any(isinstance(n, Add) for n in ann.nodes):
        recipes["residual (channel p99, no clip bound)"] = RESIDUAL
    calibrated = {}
    if any(isinstance(n, Add) for n in ann.nodes):
        calibrated["residual + bias calibration"] = RESIDUAL
    if args.recipes:
        recipes = {k: v for k, v in recipes.items() if k in args.recipes}
        calibrated = {k: v for k, v in calibrated.items() if k in args.recipes}
    for label, config in calibrated.items():
        result["recipes"][label] = per_timestep(ann, config, x_cal, x_test, y_test, args, label)
        console.print(f"{model} {label}: {result['recipes'][label]['accuracy']}", style="dim")
    for label, config in recipes.items():
        snn = nh.convert(ann, x_cal, config)
        acc = snn_accuracy(
            snn, x_test, y_test, args.timesteps, args.batch, f"{model} {label}", args.long_limit
        )
        result["recipes"][label] = {"config": config.to_dict(), **acc}
        console.print(f"{model} {label}: {acc['accuracy']}", style="dim")
        if label == "best" and args.crosscheck:
            result["crosscheck"] = crosscheck(snn, x_test[: args.crosscheck], 8)
    if args.ablation_limit:
        x_ab, y_ab = x_test[: args.ablation_limit], y_test[: args.ablation_limit]
        chosen = {k: ABLATIONS[k] for k in args.ablations or ABLATIONS}
        for label, config in {"best": ConversionConfig(), **chosen}.items():
            cal = x_cal[:256] if config.normalization == "threshold_balancing" else x_cal
            snn = nh.convert(ann, cal, config)
            result["ablations"][label] = {
                "config": config.to_dict(),
                **snn_accuracy(snn, x_ab, y_ab, args.timesteps, args.batch, f"{model} {label}"),
            }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def table(results: dict, timesteps: tuple[int, ...]) -> Table:
    t = Table(
        title="MNIST test accuracy (%) of the SNN, (gap to the ANN on the same images, "
        "in points) [images, if fewer than the row's first column]"
    )
    for col in ("model", "recipe", "ANN", *(f"T={T}" for T in timesteps)):
        t.add_column(col, justify="right")
    for model, r in results.items():
        ann = r["ann_accuracy_on_first"]
        rows = [(k, v) for k, v in r["recipes"].items()]
        rows += [(f"ablation: {k}", v) for k, v in r["ablations"].items()]
        for label, v in rows:
            first = v["images"][str(timesteps[0])]
            cells = []
            for T in timesteps:
                if str(T) not in v["accuracy"]:  # JSON keys
                    cells.append("-")
                    continue
                acc, n = v["accuracy"][str(T)], v["images"][str(T)]
                extra = f" [{n}]" if n != first else ""
                cells.append(f"{100 * acc:.2f} ({100 * (acc - ann[str(n)]):+.2f}){extra}")
            t.add_row(model, f"{label} [{first}]", f"{100 * ann[str(first)]:.2f}", *cells)
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="zoo names or .onnx paths (default: zoo)")
    parser.add_argument("--limit", type=int, default=None, help="test images (default all)")
    parser.add_argument("--calib", type=int, default=1000, help="training images to calibrate")
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument(
        "--ablation-limit",
        type=int,
        default=1000,
        help="test images for the ablations (0: skip them)",
    )
    parser.add_argument(
        "--crosscheck",
        type=int,
        default=100,
        help="images rerun through neurohal.reference.run (0: skip)",
    )
    parser.add_argument(
        "--long-limit",
        type=int,
        default=None,
        help=f"images run beyond T={TARGET_T} for the main recipes (default all)",
    )
    parser.add_argument(
        "--ablations",
        nargs="+",
        choices=list(ABLATIONS),
        help="which ablations to run (default all)",
    )
    parser.add_argument("--recipes", nargs="+", help="only these recipe labels (default all)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="only combine result files of earlier (parallel) runs into --out",
    )
    args = parser.parse_args()
    args.timesteps = tuple(sorted(args.timesteps))
    console = Console(stderr=True)
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        results = {k: v for run in runs for k, v in run["models"].items()}
        commands = [c for run in runs for c in run["commands"]]
        write(args.out, results, commands, runs[0]["timesteps"])
    else:
        results = {}
        for model in args.models or nh.zoo.names():
            results[Path(model).stem] = run_model(model, args, console)
            write(args.out, results, [shlex.join(sys.argv)], list(args.timesteps))
    timesteps = tuple(json.loads(args.out.read_text())["timesteps"])
    Console(width=200).print(table(json.loads(args.out.read_text())["models"], timesteps))
    console.print(f"results written to {args.out}")


def write(out: Path, results: dict, commands: list[str], timesteps: list[int]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "conversion_accuracy",
        "provenance": "measured in this run: MNIST test accuracy of ANN (neurohal "
                      "evaluate, reference semantics) and SNN (neurohal.conversion.simulate, "
                      "float64, reference semantics)",
        "commands": commands,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "timesteps": timesteps,
        "models": results,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
