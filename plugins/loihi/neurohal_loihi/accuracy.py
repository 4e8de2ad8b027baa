"""The README's accuracy table: ``python -m neurohal_loihi.accuracy MODEL [IMAGES] [T]``.

Converts a zoo model (calibration: 1000 MNIST training images), runs the float SNN with the
reference semantics (`neurohal.conversion.simulator.simulate`) and the loihi emulator for
Loihi 1 and Loihi 2 on the MNIST test images, and prints each accuracy (host-clock times are
for information).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import neurohal as nh
from neurohal.conversion.simulator import simulate
from neurohal_loihi.device import LoihiDevice


def main(name: str, images: int = 10_000, timesteps: int = 32) -> None:
    snn = nh.convert(
        nh.load_onnx(nh.zoo.path(name)), calibration=nh.datasets.mnist("train", limit=1000)[0]
    )
    x, y = nh.datasets.mnist("test", limit=images)
    start = time.perf_counter()
    float_out = next(iter(simulate(snn, x, timesteps).values()))
    print(
        f"{name}: float SNN T={timesteps}: {np.mean(float_out.argmax(1) == y):.4f} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    for chip in ("loihi2", "loihi1"):
        device = LoihiDevice(chip)
        art = device.compile(snn)
        start = time.perf_counter()
        out = device.run(art, x, timesteps).output()
        print(
            f"{name}: {chip} emulator: {np.mean(out.argmax(1) == y):.4f} "
            f"({time.perf_counter() - start:.0f} s, {art.report['cores']} cores)"
        )


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
