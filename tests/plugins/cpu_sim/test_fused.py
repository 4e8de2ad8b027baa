"""The fused CPU loops (numba) against the reference interpreter.

A neuron layer whose spikes feed only a pool with tiling windows runs fused with it, its spikes
never stored, and with the Dense layer that alone reads the pool when nothing in between is
recorded; these graphs make that happen (static and per-step drive, every neuron type and
reset, windows that leave a remainder uncovered, sum and average pools) and check float64
outputs, the pool's per-step values and every counter against `neurohal.reference.run`.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurohal import ir, reference
from neurohal_cpu_sim import fused
from neurohal_cpu_sim.engine import Program
from neurohal_cpu_sim.settings import Settings

B = 3
STREAMED = {"batch_size": 2, "time_chunk": 3}


def _w(rng: np.random.Generator, *shape: int, gain: float = 3.0) -> np.ndarray:
    return (rng.normal(size=shape) * gain / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


NEURONS = {
    "if_subtract": ir.IF(name="n", v_threshold=0.7, v_init=0.2),
    "if_zero": ir.IF(name="n", v_threshold=0.9, reset="zero"),
    "lif_zero": ir.LIF(name="n", v_threshold=0.6, decay_v=0.25, reset="zero"),
    "cubalif_subtract": ir.CubaLIF(name="n", v_threshold=0.5, decay_i=0.3, decay_v=0.1),
}
POOLS = {
    "avg2x2": ir.AvgPool2d(name="pool", kernel=2, stride=2),
    "sum2x3": ir.SumPool2d(name="pool", kernel=(2, 3), stride=(2, 3)),
    "avg3x2": ir.AvgPool2d(name="pool", kernel=(3, 2), stride=(3, 2)),
}


PLANES = {"uncovered": (7, 8), "tiled": (6, 6)}
"""7 x 8 planes: a 2 x 2 or 3 x 2 window leaves a row uncovered, a 2 x 3 one a row and two
columns; 6 x 6 planes: all three tile every neuron (with a per-step drive, the loop's
natural-order path, whose window sums span kh rows of kw-sums)."""


def _graph(
    rng: np.random.Generator, neuron: ir.Node, pool: ir.Node, poisson: bool, plane: str
) -> ir.Graph:
    """Input -> Encoder -> conv -> neuron -> pool -> dense -> readout on ``PLANES[plane]``. An
    analog encoder makes the conv's output, the neuron's drive, the same every step (static)."""
    h, w = PLANES[plane]
    return ir.chain(
        ir.Input(name="x", shape=(2, h, w)),
        ir.Encoder(name="enc", kind="poisson" if poisson else "analog", seed=5),
        ir.Conv2d(
            name="conv", weight=_w(rng, 3, 2, 3, 3), bias=np.full(3, 0.1, np.float32), padding=1
        ),
        neuron,
        pool,
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 4, 3 * (h // pool.kernel[0]) * (w // pool.kernel[1]))),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


CASES = [
    (n, p, poisson, plane)
    for n in NEURONS
    for p in POOLS
    for poisson in (False, True)
    for plane in PLANES
]
IDS = [f"{n}-{p}-{'poisson' if q else 'static'}-{plane}" for n, p, q, plane in CASES]


@pytest.mark.parametrize("options", [{}, STREAMED], ids=["one_batch", "streamed"])
@pytest.mark.parametrize(("neuron", "pool", "poisson", "plane"), CASES, ids=IDS)
def test_neuron_fused_with_its_pool_matches_the_reference(
    cpu_sim, neuron, pool, poisson, plane, options
):
    rng = np.random.default_rng(CASES.index((neuron, pool, poisson, plane)))
    graph = _graph(rng, NEURONS[neuron], POOLS[pool], poisson, plane)
    x = rng.random((B, 2, *PLANES[plane])).astype(np.float32)
    steps = 8
    assert "n" in Program(graph, Settings(dtype="float64")).pooled  # the fused path is taken
    want = reference.run(graph, x, steps, record=["pool", "readout"])
    artifact = cpu_sim.compile(graph, dtype="float64", **options)
    got = cpu_sim.trace(artifact, x, steps, record=["pool", "readout"])  # "n" not recorded

    np.testing.assert_array_equal(got.records["pool"], want.records["pool"])
    np.testing.assert_allclose(got.records["readout"], want.records["readout"], rtol=1e-12)
    assert got.result.counters == want.counters
    assert want.counters["n"]["spikes"] > 0


@pytest.mark.parametrize(("neuron", "pool", "poisson", "plane"), CASES, ids=IDS)
def test_pool_fused_with_its_dense_layer_matches_the_reference(
    cpu_sim, neuron, pool, poisson, plane
):
    """Nothing recorded: the loop also feeds the pooled values to the Dense layer, never
    storing them (spike trains exact; the Dense sums in another order than the reference)."""
    rng = np.random.default_rng(CASES.index((neuron, pool, poisson, plane)))
    graph = _graph(rng, NEURONS[neuron], POOLS[pool], poisson, plane)
    x = rng.random((B, 2, *PLANES[plane])).astype(np.float32)
    program = Program(graph, Settings(dtype="float64"))
    assert program.pool_fed["pool"] == (graph.node("flat"), graph.node("fc"))
    want = reference.run(graph, x, 8)
    got = cpu_sim.run(cpu_sim.compile(graph, dtype="float64", **STREAMED), x, 8)
    np.testing.assert_allclose(got.outputs["out"], want.outputs["out"], rtol=1e-12, atol=1e-12)
    assert got.counters == want.counters


@pytest.mark.parametrize("record", ["pool", "flat"])
def test_fusion_stops_at_a_recorded_pool_or_flatten(cpu_sim, record):
    rng = np.random.default_rng(6)
    graph = _graph(rng, NEURONS["if_subtract"], POOLS["avg2x2"], poisson=True, plane="tiled")
    x = rng.random((B, 2, *PLANES["tiled"])).astype(np.float32)
    want = reference.run(graph, x, 6, record=[record])
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64"), x, 6, record=[record])
    np.testing.assert_array_equal(got.records[record], want.records[record])
    assert got.result.counters == want.counters


def test_static_drive_over_several_window_blocks_matches_the_reference(cpu_sim):
    """More windows than `fused.WINDOW_BLOCK`, in a last partial block, and uncovered
    neurons: every block and the uncovered strip step exactly once per step."""
    side = 2 * int(np.ceil(np.sqrt(fused.WINDOW_BLOCK * 1.3 / 2))) + 1  # odd: a row uncovered
    graph = ir.chain(
        ir.Input(name="x", shape=(2, side, side)),
        ir.Encoder(name="enc"),
        ir.IF(name="n", v_threshold=0.6, v_init=0.1),
        ir.SumPool2d(name="pool", kernel=2, stride=2),
        ir.Output(name="out"),
    )
    windows = 2 * (side // 2) ** 2
    assert windows > fused.WINDOW_BLOCK and windows % fused.WINDOW_BLOCK
    x = np.random.default_rng(7).random((B, 2, side, side))
    want = reference.run(graph, x, 9, record=["pool"])
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64"), x, 9, record=["pool"])
    np.testing.assert_array_equal(got.records["pool"], want.records["pool"])
    assert got.result.counters == want.counters


def test_recorded_neuron_layer_is_not_fused_and_still_matches(cpu_sim):
    rng = np.random.default_rng(3)
    graph = _graph(rng, NEURONS["if_subtract"], POOLS["avg2x2"], poisson=True, plane="uncovered")
    x = rng.random((B, 2, 7, 8)).astype(np.float32)
    want = reference.run(graph, x, 6, record=["n", "pool"])
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64"), x, 6, record=["n", "pool"])
    np.testing.assert_array_equal(got.records["n"], want.records["n"])
    np.testing.assert_array_equal(got.records["pool"], want.records["pool"])
    assert got.result.counters == want.counters


def test_float32_fused_within_the_device_tolerance(cpu_sim):
    rng = np.random.default_rng(4)
    graph = _graph(rng, NEURONS["lif_zero"], POOLS["avg2x2"], poisson=False, plane="uncovered")
    x = rng.random((B, 2, 7, 8)).astype(np.float32)
    want = reference.run(graph, x, 10)
    got = cpu_sim.run(cpu_sim.compile(graph), x, 10)
    tol = cpu_sim.tolerance
    np.testing.assert_allclose(
        got.outputs["out"], want.outputs["out"], rtol=tol.rtol, atol=tol.atol
    )
    assert got.counters["n"]["neuron_updates"] == want.counters["n"]["neuron_updates"]


def test_a_pool_fed_by_two_layers_is_not_fused():
    graph = ir.Graph(
        [
            ir.Input(name="x", shape=(1, 4, 4)),
            ir.Encoder(name="enc"),
            ir.IF(name="a", v_threshold=0.5),
            ir.IF(name="b", v_threshold=0.3),
            ir.AvgPool2d(name="pool", kernel=2, stride=2),
            ir.Output(name="out"),
        ],
        [
            ir.Edge("x", "enc"),
            ir.Edge("enc", "a"),
            ir.Edge("enc", "b"),
            ir.Edge("a", "pool"),
            ir.Edge("b", "pool"),
            ir.Edge("pool", "out"),
        ],
    )
    assert Program(graph, Settings()).pooled == {}


def test_window_order_by_hand():
    # 2 channels of 3 x 4, 2 x 2 windows: windows (0, 0) and (0, 1) per channel; row 2 of
    # each channel is uncovered
    order = fused.window_order(2, 3, 4, 2, 2)
    np.testing.assert_array_equal(
        order,
        [0, 2, 12, 14, 1, 3, 13, 15, 4, 6, 16, 18, 5, 7, 17, 19, 8, 9, 10, 11, 20, 21, 22, 23],
    )
