"""The README's accuracy table: ``python -m neurohal_loihi.accuracy MODEL [IMAGES] [T]``.

Converts a zoo model (calibration: 1000 MNIST training images), runs the float SNN with the
reference semantics (`neurohal.conversion.simulator.simulate`) and the loihi emulator for
Loihi 2 and Loihi 1 on the first IMAGES MNIST test images, and prints each accuracy. Loihi 1
keeps the SNN's reset by subtraction with two-compartment neurons (the default); the last line
shows the cost of running it as Loihi 1's single-compartment reset to zero instead
(``loihi1_soft_reset=False``). Host-clock times are for information.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import neurohal as nh
from neurohal.conversion.simulator import simulate
from neurohal.ir import Graph
from neurohal_loihi.device import LoihiDevice


def main(name: str, images: int = 10_000, timesteps: int = 32) -> None:
    ann = nh.load_onnx(nh.zoo.path(name))
    calibration = nh.datasets.mnist("train", limit=1000)[0]
    x, y = nh.datasets.mnist("test", limit=images)
    snn = nh.convert(ann, calibration=calibration)
    _float(f"{name}: float SNN T={timesteps}", snn, x, y, timesteps)
    _chip(f"{name}: loihi2 emulator", "loihi2", snn, x, y, timesteps, True)
    _chip(
        f"{name}: loihi1 emulator (two-compartment soft reset)",
        "loihi1",
        snn,
        x,
        y,
        timesteps,
        True,
    )
    _chip(f"{name}: loihi1 emulator (reset to zero)", "loihi1", snn, x, y, timesteps, False)


def _float(label: str, snn: Graph, x: np.ndarray, y: np.ndarray, timesteps: int) -> None:
    start = time.perf_counter()
    out = next(iter(simulate(snn, x, timesteps).values()))
    print(f"{label}: {np.mean(out.argmax(1) == y):.4f} ({time.perf_counter() - start:.0f} s)")


def _chip(
    label: str, chip: str, snn: Graph, x: np.ndarray, y: np.ndarray, steps: int, soft: bool
) -> None:
    device = LoihiDevice(chip)
    art = device.compile(snn, loihi1_soft_reset=soft)
    start = time.perf_counter()
    out = device.run(art, x, steps).output()
    print(
        f"{label}: {np.mean(out.argmax(1) == y):.4f} "
        f"({time.perf_counter() - start:.0f} s, {art.report['cores']} cores)"
    )


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
