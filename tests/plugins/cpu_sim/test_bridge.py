"""A convolution between two fused neuron layers (`engine._bridged_run`) against the reference.

When a fused pool layer's pooled values go only into a convolution, and its output only into
another fused neuron layer, the three run together in groups of samples and sub-chunks of a
few steps. These graphs make that happen (static and per-step drive, every neuron type and
reset, windows that leave neurons uncovered, the second layer fused with a pool, a pool and a
Dense layer, or a Dense layer), with groups and sub-chunks that do not divide the batch and
the steps, and check float64 outputs, recorded values and every counter against
`neurohal.reference.run`.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurohal import ir, reference
from neurohal_cpu_sim import engine
from neurohal_cpu_sim.engine import Program, plan
from neurohal_cpu_sim.settings import Settings

B = 3
STEPS = 7
STREAMED = {"batch_size": 2, "time_chunk": 4}

NEURONS = {
    "if_subtract": lambda name: ir.IF(name=name, v_threshold=0.7, v_init=0.2),
    "if_zero": lambda name: ir.IF(name=name, v_threshold=0.9, reset="zero"),
    "lif_zero": lambda name: ir.LIF(name=name, v_threshold=0.6, decay_v=0.25, reset="zero"),
    "cubalif": lambda name: ir.CubaLIF(name=name, v_threshold=0.5, decay_i=0.3, decay_v=0.1),
}
PLANES = {"tiled": 8, "uncovered": 9}
"""8 x 8 planes: pool1's 2 x 2 windows cover every neuron; 9 x 9: a row and a column not."""
TAILS = ("pool_dense", "pool", "dense")
"""What the second layer runs fused with: pool2 and fc, pool2 alone (recorded), fc alone."""


def _w(rng: np.random.Generator, *shape: int, gain: float = 3.0) -> np.ndarray:
    return (rng.normal(size=shape) * gain / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _graph(rng, neuron: str, poisson: bool, plane: str, tail: str) -> ir.Graph:
    """Input -> Encoder -> conv1 -> n1 -> pool1 -> conv2 -> n2 -> tail -> readout. An analog
    encoder makes n1's drive the same every step (static)."""
    side = PLANES[plane]
    half = side // 2
    nodes = [
        ir.Input(name="x", shape=(2, side, side)),
        ir.Encoder(name="enc", kind="poisson" if poisson else "analog", seed=5),
        ir.Conv2d(name="conv1", weight=_w(rng, 3, 2, 3, 3), padding=1),
        NEURONS[neuron]("n1"),
        ir.AvgPool2d(name="pool1", kernel=2, stride=2),
        ir.Conv2d(
            name="conv2", weight=_w(rng, 4, 3, 3, 3), bias=np.full(4, 0.1, np.float32), padding=1
        ),
        NEURONS[neuron]("n2"),
    ]
    if tail in ("pool_dense", "pool"):
        nodes.append(ir.AvgPool2d(name="pool2", kernel=2, stride=2))
    if tail == "pool":
        return ir.chain(*nodes, ir.Output(name="out"))
    width = 4 * (half // 2) ** 2 if tail == "pool_dense" else 4 * half * half
    nodes += [
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 5, width), bias=np.full(5, -0.05, np.float32)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    ]
    return ir.chain(*nodes)


CASES = [
    (n, poisson, plane, tail)
    for n in NEURONS
    for poisson in (False, True)
    for plane in PLANES
    for tail in TAILS
]
IDS = [f"{n}-{'poisson' if q else 'static'}-{p}-{t}" for n, q, p, t in CASES]


@pytest.mark.parametrize("options", [{}, STREAMED], ids=["one_batch", "streamed"])
@pytest.mark.parametrize(("neuron", "poisson", "plane", "tail"), CASES, ids=IDS)
def test_bridged_layers_match_the_reference(
    cpu_sim, monkeypatch, neuron, poisson, plane, tail, options
):
    rng = np.random.default_rng(CASES.index((neuron, poisson, plane, tail)))
    graph = _graph(rng, neuron, poisson, plane, tail)
    side = PLANES[plane]
    x = rng.random((B, 2, side, side))
    record = ["pool2"] if tail == "pool" else ["readout"]
    keep = set(record) | {"out"}
    program = Program(graph, Settings(dtype="float64"))
    bridged = {s.node.name: s.bridge for s in plan(program, keep) if s.bridge}
    assert list(bridged) == ["n1"] and bridged["n1"][1].name == "conv2"
    # groups of 2 samples and 1 (B = 3) or 2 (streamed); sub-chunks of 3 or 6 steps: none
    # divides 7, nor the streamed chunks of 4 and 3
    monkeypatch.setattr(engine, "BRIDGE_SAMPLES", 2)
    monkeypatch.setattr(engine, "BRIDGE_BYTES", 8 * 2 * B * 4 * (side // 2) ** 2)

    want = reference.run(graph, x, STEPS, record=record)
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64", **options), x, STEPS, record)

    if tail == "pool":  # the pooled values of n2's spikes: exact
        np.testing.assert_array_equal(got.records["pool2"], want.records["pool2"])
    else:  # fc sums in another order than the reference
        np.testing.assert_allclose(got.records["readout"], want.records["readout"], rtol=1e-12)
    assert got.result.counters == want.counters
    assert want.counters["n1"]["spikes"] > 0 and want.counters["n2"]["spikes"] > 0


@pytest.mark.parametrize("record", ["pool1", "conv2", "n2"])
def test_a_recorded_value_between_the_layers_turns_the_bridge_off(cpu_sim, record):
    rng = np.random.default_rng(11)
    graph = _graph(rng, "if_subtract", False, "tiled", "pool_dense")
    assert not any(s.bridge for s in plan(Program(graph, Settings()), {"out", record}))
    x = rng.random((B, 2, 8, 8))
    want = reference.run(graph, x, STEPS, record=[record])
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64"), x, STEPS, [record])
    np.testing.assert_allclose(got.records[record], want.records[record], rtol=1e-12)
    assert got.result.counters == want.counters


def test_sub_chunks_hold_the_convolution_output_within_the_budget(monkeypatch):
    """LeNet-5's conv2 (16 x 10 x 10) in groups of 32 samples: 51,200 elements a step."""
    monkeypatch.setattr(engine, "BRIDGE_BYTES", 1 << 20)
    assert engine.bridge_steps(32, (16, 10, 10), 4) == 5
    assert engine.bridge_steps(32, (16, 10, 10), 8) == 2
    assert engine.bridge_steps(10**6, (16, 10, 10), 4) == 1
    monkeypatch.setattr(engine, "BRIDGE_BYTES", None)  # the L2 cache's size
    assert engine.bridge_steps(1, (1,), 1) == engine.l2_cache_bytes() >= 1 << 10


def test_cache_sizes_as_sysfs_writes_them():
    assert engine.cache_size_bytes("2048K") == 2 << 20
    assert engine.cache_size_bytes("1M") == 1 << 20
    assert engine.cache_size_bytes("512") == 512
