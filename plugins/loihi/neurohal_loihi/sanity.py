"""The README's model-against-publication table: run ``python -m neurohal_loihi.sanity``.

Network shape published with Loihi measurements: the keyword spotter of P. Blouw et al.,
"Benchmarking Keyword Spotting Efficiency on Neuromorphic Hardware", NICE 2019
(arXiv:1812.01739): 390 inputs, two hidden layers of 256 spiking neurons, 29 outputs. Their
Table 1 measured on Loihi: 296 inferences/s, 0.081 W dynamic, 0.27 mJ dynamic energy per
inference. Here the same shape with random weights (scaled for moderate spike rates) and
random inputs runs on the emulator for Loihi 1 with one compartment per neuron (reset to zero,
``loihi1_soft_reset=False``: Nengo Loihi, which they used, runs single-compartment neurons),
and the time/energy model's estimates are printed next to the published figures.
"""

from __future__ import annotations

import numpy as np

from neurohal import ir
from neurohal_loihi.device import LoihiDevice

PUBLISHED = {"inferences_per_s": 296.0, "dynamic_energy_j": 0.081 / 296.0}


def kws_network(seed: int = 0) -> ir.Graph:
    rng = np.random.default_rng(seed)

    def w(out: int, inp: int, gain: float) -> np.ndarray:
        return rng.normal(size=(out, inp)) * gain / np.sqrt(inp)

    return ir.chain(
        ir.Input(name="x", shape=(390,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=w(256, 390, 0.6)),
        ir.IF(name="if1", v_threshold=1.0, v_init=0.5),
        ir.Dense(name="fc2", weight=w(256, 256, 1.5)),
        ir.IF(name="if2", v_threshold=1.0, v_init=0.5),
        ir.Dense(name="fc3", weight=w(29, 256, 1.0)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


def main(timesteps: int = 32, samples: int = 64) -> None:
    device = LoihiDevice("loihi1")
    art = device.compile(kws_network(), loihi1_soft_reset=False)
    x = np.random.default_rng(1).random((samples, 390))
    m = device.measure(art, x, timesteps)
    dynamic = m.energy.value - m.extra["energy_static"].value
    rates = {
        k: v["spikes"] / v["neuron_updates"]
        for k, v in m.run.counters.items()
        if "neuron_updates" in v and k.startswith("if")
    }
    print(
        f"KWS shape 390-256-256-29 on loihi1, T={timesteps}, {art.report['cores']} cores, "
        f"spike rates {', '.join(f'{k} {r:.2f}' for k, r in rates.items())}"
    )
    print("| quantity | model (estimated) | Blouw et al. 2019, measured |")
    print("|---|---|---|")
    print(
        f"| dynamic energy / inference | {dynamic * 1e6:.2f} uJ | "
        f"{PUBLISHED['dynamic_energy_j'] * 1e6:.0f} uJ |"
    )
    print(
        f"| latency / inference | {m.latency.value * 1e6:.1f} us | "
        f"{1e6 / PUBLISHED['inferences_per_s']:.0f} us (1 / throughput) |"
    )


if __name__ == "__main__":
    main()
