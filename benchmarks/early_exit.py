"""Early exit vs fixed T on the full MNIST test set, from one command.

    .venv/bin/python benchmarks/early_exit.py                     # lenet5, T=16, margins 1,4,8
    .venv/bin/python benchmarks/early_exit.py --model resnet_small --timesteps 32 --limit 2000

The exit rule (neurohal.techniques.timesteps): stop at the first step where the top-1 class of
the readout's running mean has been the same for ``--patience`` steps and leads the second by
at least the margin. Steps and float-SNN accuracy come from one cpu_sim trace of the readout;
the Loihi rows run every group of samples for its own exit step on the loihi emulator (chip
``--chip``) and report accuracy, latency and energy per inference from those runs. Writes
benchmarks/results/early_exit.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import neurohal as nh
from neurohal.techniques.timesteps import ExitRule, exit_steps
from neurohal_loihi.techniques.recost import combine
from neurohal_loihi.techniques.runs import early_exit_runs, readout_trace, run_loihi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--margins", default="1,4,8")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--chip", default="loihi2", choices=["loihi1", "loihi2"])
    parser.add_argument("--out", default="benchmarks/results/early_exit.json")
    args = parser.parse_args()
    started = time.time()
    ann = nh.load_onnx(nh.zoo.path(args.model))
    snn = nh.convert(ann, progress=False)
    x, y = nh.datasets.mnist("test", limit=args.limit)
    print(f"cpu_sim readout trace, {len(x)} images, T={args.timesteps}...", file=sys.stderr)
    trace = readout_trace(snn, x, args.timesteps)
    fixed_acc = float(np.mean(trace[-1].argmax(axis=1) == y))
    art = nh.device("loihi").compile(snn, chip=args.chip, max_timesteps=64)
    print("loihi fixed-T run...", file=sys.stderr)
    fixed = run_loihi(snn, x, y, args.timesteps, artifact=art).outcome
    rows = [
        {
            "rule": f"fixed T={args.timesteps}",
            "mean_steps": float(args.timesteps),
            "cpu_sim_accuracy": fixed_acc,
            "loihi_accuracy": fixed.accuracy,
            "loihi_latency_s": fixed.latency.value,
            "loihi_energy_j": fixed.energy.value,
        }
    ]
    for margin in (float(m) for m in args.margins.split(",")):
        rule = ExitRule(margin, args.patience)
        steps, predictions = exit_steps(trace, rule)
        print(f"loihi early exit, margin {margin}...", file=sys.stderr)
        groups = early_exit_runs(snn, x, y, steps, artifact=art)
        out = combine([(r.outcome, n) for r, n in groups], f"early exit {rule}")
        rows.append(
            {
                "rule": f"exit margin {margin:g}, patience {args.patience}",
                "mean_steps": float(steps.mean()),
                "steps_histogram": np.bincount(steps, minlength=args.timesteps + 1)[1:].tolist(),
                "cpu_sim_accuracy": float(np.mean(predictions == y)),
                "loihi_accuracy": out.accuracy,
                "loihi_latency_s": out.latency.value,
                "loihi_energy_j": out.energy.value,
            }
        )
    print(
        f"{args.model}, {len(x)} MNIST test images, Loihi {args.chip} emulator "
        "(latency/energy estimated by the loihi plugin's model)"
    )
    print(
        f"{'rule':32s} {'mean T':>7s} {'acc cpu_sim':>11s} {'acc loihi':>9s} "
        f"{'latency s':>10s} {'energy J':>10s}"
    )
    for r in rows:
        print(
            f"{r['rule']:32s} {r['mean_steps']:7.2f} {r['cpu_sim_accuracy']:11.4f} "
            f"{r['loihi_accuracy']:9.4f} {r['loihi_latency_s']:10.3e} {r['loihi_energy_j']:10.3e}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    record = {"args": vars(args), "samples": len(x), "rows": rows}
    record["seconds"] = time.time() - started
    Path(args.out).write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"wrote {args.out} in {record['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
