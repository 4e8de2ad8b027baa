"""The README's accuracy table: ``python -m neurohal_loihi.accuracy MODEL [IMAGES] [T]``.

Converts a zoo model (calibration: 1000 MNIST training images), runs the float SNN with the
reference semantics (`neurohal.conversion.simulator.simulate`) and the loihi emulator for
Loihi 1 and Loihi 2 on the first IMAGES MNIST test images, and prints each accuracy. Loihi 1
resets to zero, so the same SNN loses the charge above threshold there; the last two lines
show what converting for it recovers: the SNN converted with ``reset="zero"`` and bias
calibration for T (Li et al., ICML 2021), as a float SNN and on the Loihi 1 emulator.
Host-clock times are for information.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import neurohal as nh
from neurohal.conversion import ConversionConfig
from neurohal.conversion.simulator import simulate
from neurohal.ir import Graph
from neurohal_loihi.device import LoihiDevice


def main(name: str, images: int = 10_000, timesteps: int = 32) -> None:
    ann = nh.load_onnx(nh.zoo.path(name))
    calibration = nh.datasets.mnist("train", limit=1000)[0]
    x, y = nh.datasets.mnist("test", limit=images)
    snn = nh.convert(ann, calibration=calibration)
    _float(f"{name}: float SNN T={timesteps}", snn, x, y, timesteps)
    for chip in ("loihi2", "loihi1"):
        _chip(f"{name}: {chip} emulator", chip, snn, x, y, timesteps)
    for_loihi1 = nh.convert(
        ann,
        calibration=calibration,
        config=ConversionConfig(reset="zero", bias_calibration_timesteps=timesteps),
    )
    label = f"{name}: converted for reset to zero + bias calibration (T={timesteps})"
    _float(f"{label}, float SNN", for_loihi1, x, y, timesteps)
    _chip(f"{label}, loihi1 emulator", "loihi1", for_loihi1, x, y, timesteps)


def _float(label: str, snn: Graph, x: np.ndarray, y: np.ndarray, timesteps: int) -> None:
    start = time.perf_counter()
    out = next(iter(simulate(snn, x, timesteps).values()))
    print(f"{label}: {np.mean(out.argmax(1) == y):.4f} ({time.perf_counter() - start:.0f} s)")


def _chip(label: str, chip: str, snn: Graph, x: np.ndarray, y: np.ndarray, steps: int) -> None:
    device = LoihiDevice(chip)
    art = device.compile(snn)
    start = time.perf_counter()
    out = device.run(art, x, steps).output()
    print(
        f"{label}: {np.mean(out.argmax(1) == y):.4f} "
        f"({time.perf_counter() - start:.0f} s, {art.report['cores']} cores)"
    )


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
