"""Packing and offload re-costing of a real loihi emulator run, against hand-counted sizes."""

from __future__ import annotations

import numpy as np
import pytest

import neurohal as nh
from neurohal.ir import Clip, Dense, Input, Output, chain
from neurohal_loihi.techniques.offload import transfer
from neurohal_loihi.techniques.recost import recost
from neurohal_loihi.techniques.runs import run_loihi


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    ann = chain(
        Input(name="x", shape=(6,)),
        Dense(name="d1", weight=rng.uniform(-0.2, 0.6, (8, 6)), bias=np.zeros(8)),
        Clip(name="a1", min=0.0, max=1.0),
        Dense(name="d2", weight=rng.uniform(-0.5, 0.5, (3, 8)), bias=np.zeros(3)),
        Output(name="y"),
    )
    x = rng.uniform(0, 1, (20, 6))
    (scores,) = nh.reference.run(ann, x).outputs.values()
    return run_loihi(nh.convert(ann, progress=False), x, scores.argmax(1), 5)


def test_transfer_sizes_hand_counted(run) -> None:
    chip = transfer(run, "chip")
    assert (chip.bytes_in, chip.bytes_out, chip.host_macs) == (2 * 8, 4 * 3, 0)
    host = transfer(run, "host")  # 8 hidden neurons: one byte of spike bitmap per step
    assert (host.bytes_in, host.bytes_out, host.host_macs) == (16, 1 * 5, 8 * 3)


def test_recost_powers_only_used_cores_and_drops_the_readout(run) -> None:
    base = run.outcome
    assert base.cores == 2  # one core for a1, one for the readout
    packed = recost(run, "shared", None)
    assert packed.cores == 1
    assert packed.power_static.value == pytest.approx(0.029 / 128)
    dynamic = base.energy.value - base.power_static.value * base.latency.value
    assert packed.energy.value == pytest.approx(
        dynamic + packed.power_static.value * packed.latency.value
    )
    host = recost(run, None, "host")
    assert host.cores == 1
    assert host.latency.value > base.latency.value  # the host link's microframes
    assert host.accuracy == base.accuracy
