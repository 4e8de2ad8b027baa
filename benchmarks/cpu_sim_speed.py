"""cpu_sim speed: samples x timesteps per second against a naive step-by-step torch loop.

Two spiking networks built directly from IR nodes with random weights, a LeNet-5-sized CNN
and an MLP, with each layer's threshold set to the 99.9th percentile of its ReLU activation
on the benchmark inputs, divided by the previous layer's (data-based normalisation, so
spiking is realistic; the printed rates show it). Each runs through cpu_sim (float32, CPU)
and through the loop most SNN libraries use, ``for t in range(T): for layer in layers: ...``,
in plain torch with the same weights. Both are timed in this run with the host clock (best of
a few alternating repeats after a warm-up) on ``torch.set_num_threads(2)``; the 1-minute load
average is saved with the results, because other processes on the same cores distort both.
Results go to ``benchmarks/results/cpu_sim_speed.json``.

Run: ``.venv/bin/python benchmarks/cpu_sim_speed.py [--threads N]`` (other thread counts save
to ``cpu_sim_speed_<N>t.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F

import neurohal as nh
from neurohal import ir
from neurohal_cpu_sim.engine import cpu_caches

BATCHES = (1, 64, 256)
TIMESTEPS = (32, 128)
THREADS = 2
REPEATS = 3
TIME_CAP_S = 6.0  # stop repeating a configuration once this much time went into it
RESULTS = Path(__file__).parent / "results" / "cpu_sim_speed.json"


def _weight(rng: np.random.Generator, *shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def lenet_layers(rng: np.random.Generator) -> list[ir.Node]:
    """LeNet-5 with average pooling; an IF layer after every conv and hidden dense layer."""
    return [
        ir.Conv2d(
            name="conv1", weight=_weight(rng, 6, 1, 5, 5), bias=np.zeros(6, np.float32), padding=2
        ),
        ir.IF(name="if1", v_threshold=1.0),
        ir.AvgPool2d(name="pool1", kernel=2, stride=2),
        ir.Conv2d(name="conv2", weight=_weight(rng, 16, 6, 5, 5), bias=np.zeros(16, np.float32)),
        ir.IF(name="if2", v_threshold=1.0),
        ir.AvgPool2d(name="pool2", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=_weight(rng, 120, 400), bias=np.zeros(120, np.float32)),
        ir.IF(name="if3", v_threshold=1.0),
        ir.Dense(name="fc2", weight=_weight(rng, 84, 120), bias=np.zeros(84, np.float32)),
        ir.IF(name="if4", v_threshold=1.0),
        ir.Dense(name="fc3", weight=_weight(rng, 10, 84), bias=np.zeros(10, np.float32)),
    ]


def mlp_layers(rng: np.random.Generator) -> list[ir.Node]:
    """784-256-128-10 with IF hidden layers (the zoo's MLP shape)."""
    return [
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=_weight(rng, 256, 784), bias=np.zeros(256, np.float32)),
        ir.IF(name="if1", v_threshold=1.0),
        ir.Dense(name="fc2", weight=_weight(rng, 128, 256), bias=np.zeros(128, np.float32)),
        ir.IF(name="if2", v_threshold=1.0),
        ir.Dense(name="fc3", weight=_weight(rng, 10, 128), bias=np.zeros(10, np.float32)),
    ]


# ---------------------------------------------------------------- the naive loop


def _synapse(node: ir.Node, x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(node, ir.Conv2d):
        return F.conv2d(x, w[node.name], w[node.name + ".b"], node.stride, node.padding[:2])
    if isinstance(node, ir.Dense):
        return F.linear(x, w[node.name], w[node.name + ".b"])
    if isinstance(node, ir.AvgPool2d):
        return F.avg_pool2d(x, node.kernel, node.stride)
    return x.flatten(1)


def naive_run(layers: list[ir.Node], x: torch.Tensor, steps: int) -> torch.Tensor:
    """The usual SNN loop: every step, every layer, neuron state in a list."""
    w = _torch_weights(layers)
    v = [None] * len(layers)
    total = 0.0
    for _ in range(steps):
        h = x
        for i, node in enumerate(layers):
            if isinstance(node, ir.IF):
                v[i] = (v[i] if v[i] is not None else torch.zeros_like(h)) + h
                s = (v[i] >= node.v_threshold).float()
                v[i] = v[i] - node.v_threshold * s
                h = s
            else:
                h = _synapse(node, h, w)
        total = total + h
    return total / steps


def ann_activations(layers: list[ir.Node], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ReLU network's activation entering each IF layer (for threshold balancing)."""
    w = _torch_weights(layers)
    acts = {}
    h = x
    for node in layers:
        if isinstance(node, ir.IF):
            acts[node.name] = h
            h = torch.relu(h)
        else:
            h = _synapse(node, h, w)
    return acts


def _torch_weights(layers: list[ir.Node]) -> dict[str, torch.Tensor]:
    w = {}
    for node in layers:
        if isinstance(node, (ir.Dense, ir.Conv2d)):
            w[node.name] = torch.from_numpy(np.array(node.weight))
            w[node.name + ".b"] = torch.from_numpy(np.array(node.bias))
    return w


def balanced(layers: list[ir.Node], x: torch.Tensor) -> list[ir.Node]:
    """Data-based normalisation: with lam_l the 99.9th percentile of layer l's positive ReLU
    activation, a spike of layer l stands for lam_l, so layer l's threshold is
    lam_l / lam_(l-1) (lam_0 = 1 for the analog input)."""
    acts = ann_activations(layers, x)
    out = []
    previous = 1.0
    for node in layers:
        if isinstance(node, ir.IF):
            a = acts[node.name]
            lam = float(torch.quantile(a[a > 0][:1_000_000], 0.999))
            node = attrs.evolve(node, v_threshold=lam / previous)
            previous = lam
        out.append(node)
    return out


def graph_of(layers: list[ir.Node], shape: tuple[int, ...]) -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=shape),
        ir.Encoder(name="enc"),
        *layers,
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


# ---------------------------------------------------------------- timing


def race(sim, naive):
    """Best seconds of each and their first results. Calls alternate (sim, naive, sim, ...),
    so load from other processes hits both alike; the first call of each is a warm-up unless
    it alone used up TIME_CAP_S; at most REPEATS timed calls each."""
    times: dict[str, list[float]] = {"sim": [], "naive": []}
    results = {}
    for _ in range(REPEATS + 1):
        for key, fn in (("sim", sim), ("naive", naive)):
            start = time.perf_counter()
            results.setdefault(key, fn())
            times[key].append(time.perf_counter() - start)
        if sum(times["sim"]) + sum(times["naive"]) > TIME_CAP_S:
            break
    best = {k: min(v[1:] or v) for k, v in times.items()}
    return best["sim"], best["naive"], results["sim"], results["naive"]


def bench(name: str, layers: list[ir.Node], shape: tuple[int, ...], rng) -> list[dict]:
    calib = torch.from_numpy(rng.random((256, *shape), dtype=np.float32))
    layers = balanced(layers, calib)
    graph = graph_of(layers, shape)
    device = nh.device("cpu_sim")
    rows = []
    for batch in BATCHES:
        x = rng.random((batch, *shape), dtype=np.float32)
        xt = torch.from_numpy(x)
        artifact = device.compile(graph, batch_size=batch)
        for steps in TIMESTEPS:
            with torch.inference_mode():
                t_sim, t_naive, result, naive_out = race(
                    lambda a=artifact, x=x, s=steps: device.run(a, x, s),
                    lambda x=xt, s=steps: naive_run(layers, x, s),
                )
            diff = float(np.abs(result.output() - naive_out.numpy()).max())
            spikes = result.total("spikes")
            rate = spikes / max(result.total("neuron_updates"), 1)
            row = {
                "network": name,
                "batch": batch,
                "timesteps": steps,
                "cpu_sim_samples_steps_per_s": batch * steps / t_sim,
                "naive_samples_steps_per_s": batch * steps / t_naive,
                "speedup": t_naive / t_sim,
                "cpu_sim_s": t_sim,
                "naive_s": t_naive,
                "spike_rate": rate,
                "max_abs_output_diff_vs_naive": diff,
            }
            rows.append(row)
            print(
                f"{name:6s} B={batch:3d} T={steps:3d}"
                f"  cpu_sim {row['cpu_sim_samples_steps_per_s']:10.0f}"
                f"  naive {row['naive_samples_steps_per_s']:10.0f}  samples*steps/s"
                f"  ratio {row['speedup']:5.1f}x  spike rate {rate:.3f}  |diff| {diff:.1e}",
                flush=True,
            )
    return rows


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows: the
    ratios depend on the machine, so the results say which one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rows = bench("lenet5", lenet_layers(rng), (1, 28, 28), rng)
    rows += bench("mlp", mlp_layers(rng), (1, 28, 28), rng)
    meta = {
        "torch": torch.__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "caches": {level: f"{size >> 10}K" for level, size in cpu_caches().items()},
        "timing": f"host perf_counter, best of up to {REPEATS} alternating runs after a warm-up "
        "run, float32, CPU",
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "wall_s": time.perf_counter() - start,
    }
    out = (
        RESULTS if args.threads == THREADS else RESULTS.with_stem(f"{RESULTS.stem}_{args.threads}t")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(
        f"total {meta['wall_s']:.0f} s, 1-min load average {load_before:.1f} -> "
        f"{meta['load_average_1min'][1]:.1f} on {os.cpu_count()} CPUs ({meta['cpu']}, "
        f"caches {meta['caches']}); results in {out}"
    )


if __name__ == "__main__":
    main()
