"""The NCS2 performance model reproduces the published figures it is calibrated on when fed
the IR graph of the same network, and stays inside the Myriad X's published peak."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

import itertools

from neurohal import ir
from neurohal_ncs2 import perf_model

MYRIAD_X_NCE_PEAK_MACS = 0.5e12
"""'more than 1 TOPS' of the Neural Compute Engine (Movidius/Intel, 2017), 2 ops per MAC."""


def test_mnist_mlp_throughput_matches_the_published_5525_fps(ncs2):
    # openvinotoolkit/openvino#9784: an NCS2 ran the MLP 784-512-200-10 at 5525.09 FPS
    rng = np.random.default_rng(0)
    sizes = (784, 512, 200, 10)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers += [
            ir.Dense(name=f"fc{i}", weight=rng.normal(size=(n_out, n_in)), bias=np.zeros(n_out)),
            ir.ReLU(name=f"relu{i}"),
        ]
    graph = ir.chain(ir.Input(name="x", shape=(784,)), *layers[:-1], ir.Output(name="y"))
    artifact = ncs2.compile(graph)
    latency = perf_model.estimate(artifact.report["layers"]).latency
    assert latency.provenance == "estimated"
    assert 1.0 / latency.value == pytest.approx(5525.09, rel=1e-3)


def test_calibrated_rates_are_below_the_published_peak():
    assert perf_model.CONV_MACS_PER_S < MYRIAD_X_NCE_PEAK_MACS
    assert perf_model.DENSE_MACS_PER_S < perf_model.CONV_MACS_PER_S


def test_power_figures_are_the_published_ones_and_add_up():
    # Blouw et al. 2019 Table 1 (idle 0.210 W); Intel 2017: Myriad X ~1 W
    assert perf_model.power_static().value == pytest.approx(0.210)
    total = perf_model.power_static().value + perf_model.power_dynamic().value
    assert total == pytest.approx(1.0)
