"""loihi emulator speed against Lava's fixed-point simulator, same network and inputs, one run.

The zoo MLP and LeNet-5 converted to SNNs (or, when the zoo or MNIST is absent, the LeNet-5
shape with random weights, converted on random images) are compiled for Loihi 2 and run for
``TIMESTEPS`` effective steps on the same images by both backends: the emulator (this
interpreter) and Lava 0.10 ``Loihi2SimCfg(select_tag="fixed_pt")`` (the Lava interpreter,
worker or in-process). Both produce identical spike trains (checked here too). Reported:
samples x timesteps per second of each, wall clock on the host, and their ratio; Lava's time
includes building the network (done once per call, as a user would). Results go to
``benchmarks/results/loihi_emulator_speed.json``.

Run: ``.venv/bin/python benchmarks/loihi_emulator_speed.py``
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

import neurohal as nh
from neurohal import ir
from neurohal.errors import DatasetError, ZooError
from neurohal_loihi.device import LoihiDevice

TIMESTEPS = 32
EMULATOR_SAMPLES = 1000
LAVA_SAMPLES = 100
RESULTS = Path(__file__).parent / "results" / "loihi_emulator_speed.json"


def _random_lenet(rng: np.random.Generator) -> ir.Graph:
    def w(*shape: int) -> np.ndarray:
        return rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))

    return ir.chain(
        ir.Input(name="x", shape=(1, 28, 28)),
        ir.Conv2d(name="conv1", weight=w(6, 1, 5, 5), padding=2),
        ir.ReLU(name="a1"),
        ir.AvgPool2d(name="p1", kernel=2, stride=2),
        ir.Conv2d(name="conv2", weight=w(16, 6, 5, 5)),
        ir.ReLU(name="a2"),
        ir.AvgPool2d(name="p2", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=w(120, 400)),
        ir.ReLU(name="a3"),
        ir.Dense(name="fc2", weight=w(84, 120)),
        ir.ReLU(name="a4"),
        ir.Dense(name="fc3", weight=w(10, 84)),
        ir.Output(name="out"),
    )


def networks() -> list[tuple[nh.Graph, np.ndarray, str]]:
    try:
        calibration, _ = nh.datasets.mnist("train", limit=500)
        images, _ = nh.datasets.mnist("test", limit=EMULATOR_SAMPLES)
        return [
            (
                nh.convert(nh.load_onnx(nh.zoo.path(name)), calibration=calibration),
                images,
                f"zoo {name} on MNIST test",
            )
            for name in ("mlp", "lenet5")
        ]
    except (ZooError, DatasetError):
        rng = np.random.default_rng(0)
        images = rng.random((EMULATOR_SAMPLES, 1, 28, 28)).astype(np.float32)
        snn = nh.convert(_random_lenet(rng), calibration=images[:256])
        return [(snn, images, "random-weight LeNet-5 shape on uniform random images")]


def main() -> None:
    results = [measure(*entry) for entry in networks()]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def measure(snn: nh.Graph, images: np.ndarray, what: str) -> dict:
    device = LoihiDevice("loihi2")
    artifact = device.compile(snn)
    device.run(artifact, images[:8], TIMESTEPS)  # warm-up
    start = time.perf_counter()
    device.run(artifact, images, TIMESTEPS)
    emu_s = time.perf_counter() - start
    start = time.perf_counter()
    lava, lava_spikes = device.run_detailed(
        artifact, images[:LAVA_SAMPLES], TIMESTEPS, backend="lava"
    )
    lava_s = time.perf_counter() - start
    emu, emu_spikes = device.run_detailed(artifact, images[:LAVA_SAMPLES], TIMESTEPS)
    identical = all(
        np.array_equal(emu_spikes[k], lava_spikes[k]) for k in lava_spikes
    ) and np.array_equal(emu.output(), lava.output())
    emu_rate = len(images) * TIMESTEPS / emu_s
    lava_rate = LAVA_SAMPLES * TIMESTEPS / lava_s
    result = {
        "network": what,
        "chip": "loihi2",
        "timesteps": TIMESTEPS,
        "emulator": {"samples": len(images), "seconds": emu_s, "sample_steps_per_s": emu_rate},
        "lava": {"samples": LAVA_SAMPLES, "seconds": lava_s, "sample_steps_per_s": lava_rate},
        "ratio": emu_rate / lava_rate,
        "identical_spikes_and_outputs": bool(identical),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
    }
    print(f"{what}, T={TIMESTEPS}, chip loihi2")
    print(f"emulator: {emu_rate:10.1f} samples x steps / s ({len(images)} samples, {emu_s:.1f} s)")
    print(
        f"lava    : {lava_rate:10.1f} samples x steps / s ({LAVA_SAMPLES} samples, {lava_s:.1f} s)"
    )
    print(f"ratio   : {emu_rate / lava_rate:.0f}x   identical spikes and outputs: {identical}")
    return result


if __name__ == "__main__":
    main()
