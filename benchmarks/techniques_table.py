"""Before/after table: Loihi (estimated) vs NCS2 (estimated) power and energy per inference
for zoo models with no technique, each technique alone and all together, with accuracy.

    .venv/bin/python benchmarks/techniques_table.py                    # lenet5 and resnet_small
    .venv/bin/python benchmarks/techniques_table.py --models lenet5 --samples 200

Every Loihi row is the loihi plugin's emulator run and time/energy model (Davies et al. 2018;
Blouw et al. 2019; neurocore operations and idle power only, so a lower bound), re-costed by
the technique where it changes the accounting (packing, offload); the NCS2 row is the ncs2
plugin's batch-1 estimate for the ANN (fitted to QuTiBench's measured NCS2 latencies and
power, Blott et al., ACM JETC 2019). The ratios are therefore upper bounds on Loihi's
advantage. Ratios are NCS2 / Loihi:
total power (static + dynamic) and energy per inference, set against the published 27x / 5x
(Chandarana et al., IEEE IGSC 2022, arXiv:2210.05006) and 20.64x / 4.10x (Mohammadi et al.,
Neuromorph. Comput. Eng. 2(4), 2022). Writes benchmarks/results/techniques_table.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import neurohal as nh
from neurohal.techniques.activity import activity_aware_scales, scale_thresholds
from neurohal.techniques.outcome import Outcome, accuracy
from neurohal.techniques.timesteps import ExitRule, exit_steps, smallest_timesteps
from neurohal_loihi.techniques.model import plugin
from neurohal_loihi.techniques.recost import combine, recost
from neurohal_loihi.techniques.runs import early_exit_runs, readout_trace, run_loihi

PUBLISHED = {
    "Chandarana et al. 2022 (image classifiers)": (27.0, 5.0),
    "Mohammadi et al. 2022 (ASL)": (20.64, 4.10),
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def activity_of(run) -> dict[str, int]:
    """Synaptic operations each spiking layer's spikes trigger on the chip (per projection
    out of it, from the run's counters)."""
    p = plugin()
    graph, counters = run.artifact.graph, run.measurement.run.counters
    plan = p.lower(graph)
    neurons = {la.name for la in plan.layers if la.kind == "neuron"}
    out = dict.fromkeys(sorted(neurons), 0)
    for proj in plan.projections:
        if proj.src in neurons:
            out[proj.src] += int(counters[p.projection_name(graph, proj)]["synops"])
    return out


def rows_for(model: str, samples: int, chip: str, t0: int, budget: float, margin: float) -> dict:
    ann = nh.load_onnx(nh.zoo.path(model))
    x, y = nh.datasets.mnist("test", limit=samples)
    (scores,) = nh.reference.run(ann, x[:samples]).outputs.values()
    ann_acc = accuracy(scores, y)
    target = ann_acc - budget / 100
    log(f"{model}: ANN accuracy {ann_acc:.4f}, target {target:.4f}")
    device = nh.device("loihi")

    def snn_of(source):
        return nh.convert(source, progress=False)

    def compiled(snn):
        return device.compile(snn, chip=chip, max_timesteps=64)

    snn = snn_of(ann)
    art = compiled(snn)
    rows: dict[str, Outcome] = {}
    knobs: dict[str, str] = {}
    base_run = run_loihi(snn, x, y, t0, artifact=art)
    rows["none"] = base_run.outcome
    knobs["none"] = f"T={t0}"
    log(f"  none: {rows['none'].summary()}")

    search = smallest_timesteps(
        lambda t: run_loihi(snn, x, y, t, artifact=art).accuracy, target, (4, 8, 12, 16, 24, t0)
    )
    t_min = search.timesteps or t0
    rows["fewer timesteps"] = run_loihi(snn, x, y, t_min, artifact=art).outcome
    knobs["fewer timesteps"] = f"T={t_min} (evaluated {search.evaluated})"
    log(f"  fewer timesteps: {rows['fewer timesteps'].summary()}")

    rule = ExitRule(margin)
    steps, _ = exit_steps(readout_trace(snn, x, t0), rule)
    groups = early_exit_runs(snn, x, y, steps, artifact=art)
    rows["early exit"] = combine([(r.outcome, n) for r, n in groups], f"early exit {rule}")
    knobs["early exit"] = f"T<={t0}, margin {margin}, patience {rule.patience}"
    log(f"  early exit: {rows['early exit'].summary()}")

    sub = slice(0, min(samples, 200))

    def scaled_accuracy(scales: dict[str, float]) -> float:
        s = snn_of(scale_thresholds(ann, scales))
        return run_loihi(s, x[sub], y[sub], t0, artifact=compiled(s)).accuracy

    (sub_scores,) = nh.reference.run(ann, x[sub]).outputs.values()
    sub_target = accuracy(sub_scores, y[sub]) - budget / 100
    found = activity_aware_scales(activity_of(base_run), scaled_accuracy, sub_target, (2.0, 3.0))
    scaled = snn_of(scale_thresholds(ann, found.scales))
    scaled_art = compiled(scaled)
    rows["activity-aware thresholds"] = run_loihi(scaled, x, y, t0, artifact=scaled_art).outcome
    knobs["activity-aware thresholds"] = f"T={t0}, scales {found.scales}"
    log(f"  activity: {rows['activity-aware thresholds'].summary()}")

    rows["core packing"] = recost(base_run, "shared", None)
    knobs["core packing"] = "shared cores, only used cores powered"
    rows["classifier on host (transfers counted)"] = recost(base_run, None, "host")
    knobs["classifier on host (transfers counted)"] = "host link counted"
    rows["classifier on chip (transfers counted)"] = recost(base_run, None, "chip")
    knobs["classifier on chip (transfers counted)"] = "reference for the offload row"

    # the techniques together: the smallest exit margin (of margin, 2x, 4x) that keeps the
    # combination within the budget, since scaled thresholds settle the readout differently
    trace = readout_trace(scaled, x, t0)
    for m_all in (margin, 2 * margin, 4 * margin):
        rule_all = ExitRule(m_all)
        steps_s, _ = exit_steps(trace, rule_all)
        groups_s = early_exit_runs(scaled, x, y, steps_s, artifact=scaled_art)
        if combine([(r.outcome, n) for r, n in groups_s], "check").accuracy >= target:
            break
    for name, placement in (("all but offload", None), ("all together", "host")):
        rows[name] = combine(
            [(recost(r, "shared", placement), n) for r, n in groups_s], f"early exit {rule_all}"
        )
        knobs[name] = (
            f"scales {found.scales}, early exit (T<={t0}, margin {m_all}), shared packing"
            + (", classifier on host" if placement else "")
        )
        log(f"  {name}: {rows[name].summary()}")

    ncs2 = nh.device("ncs2")
    m = ncs2.measure(ncs2.compile(ann), x)
    ncs2_power = m.power_static.value + m.power_dynamic.value
    result = {
        "model": model,
        "samples": samples,
        "chip": chip,
        "ann_accuracy": ann_acc,
        "ncs2": {
            "accuracy": accuracy(m.run.output(), y),
            "power_w": ncs2_power,
            "energy_j": m.energy.value,
            "latency_s": m.latency.value,
            "method": m.energy.method,
        },
        "rows": {},
    }
    for name, o in rows.items():
        power = o.power_static.value + o.power_dynamic.value
        result["rows"][name] = {
            "knobs": knobs[name],
            "accuracy": o.accuracy,
            "timesteps": o.timesteps,
            "power_w": power,
            "energy_j": o.energy.value,
            "latency_s": o.latency.value,
            "cores": o.cores,
            "spikes": o.spikes,
            "power_ratio_ncs2_over_loihi": ncs2_power / power,
            "energy_ratio_ncs2_over_loihi": m.energy.value / o.energy.value,
            "energy_method": o.energy.method,
        }
    return result


def print_table(result: dict) -> None:
    n = result["ncs2"]
    print(
        f"\n{result['model']} ({result['samples']} MNIST test images, Loihi chip "
        f"{result['chip']}, ANN accuracy {result['ann_accuracy']:.4f}); all costs estimated"
    )
    print(
        f"{'row':46s} {'acc':>7s} {'T':>6s} {'power W':>9s} {'energy J':>10s} "
        f"{'latency s':>10s} {'cores':>5s} {'P ratio':>8s} {'E ratio':>8s}"
    )
    print(
        f"{'NCS2 (ANN)':46s} {n['accuracy']:7.4f} {'-':>6s} {n['power_w']:9.4f} "
        f"{n['energy_j']:10.3e} {n['latency_s']:10.3e} {'-':>5s} {'1':>8s} {'1':>8s}"
    )
    for name, r in result["rows"].items():
        print(
            f"{'Loihi: ' + name:46s} {r['accuracy']:7.4f} {r['timesteps']:6.2f} "
            f"{r['power_w']:9.4f} {r['energy_j']:10.3e} {r['latency_s']:10.3e} {r['cores']:5d} "
            f"{r['power_ratio_ncs2_over_loihi']:8.2f} {r['energy_ratio_ncs2_over_loihi']:8.2f}"
        )
    for source, (p, e) in PUBLISHED.items():
        print(f"published, {source}: power ratio {p}x, energy ratio {e}x (measured on hardware)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet5,resnet_small")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--chip", default="loihi2", choices=["loihi1", "loihi2"])
    parser.add_argument("--timesteps", type=int, default=32, help="T of the no-technique row")
    parser.add_argument("--budget", type=float, default=0.5, help="accuracy loss, points")
    parser.add_argument("--margin", type=float, default=1.0, help="early-exit margin")
    parser.add_argument("--out", default="benchmarks/results/techniques_table.json")
    args = parser.parse_args()
    started = time.time()
    results = []
    for model in args.models.split(","):
        res = rows_for(model, args.samples, args.chip, args.timesteps, args.budget, args.margin)
        print_table(res)
        results.append(res)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    record = {"args": vars(args), "seconds": time.time() - started, "results": results}
    Path(args.out).write_text(json.dumps(record, indent=1), encoding="utf-8")
    log(f"wrote {args.out} in {time.time() - started:.0f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
