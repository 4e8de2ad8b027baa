"""A neuron layer fused with the Dense layer it alone feeds, against the reference interpreter.

Such a layer runs as one loop with its Dense (`fused.DenseSteps`), its spikes never stored:
these graphs make that happen (every neuron type and reset, directly or through a Flatten,
with and without bias, static and per-step drive, streamed in batches and time chunks, samples
split over threads) and check the float64 spike trains of the next layer, the Dense's values
and every counter against `neurohal.reference.run`, and that the fusion is not taken where
something else reads the spikes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurohal import ir, reference
from neurohal_cpu_sim import fused
from neurohal_cpu_sim.engine import Program
from neurohal_cpu_sim.settings import Settings

B = 5
STEPS = 9
STREAMED = {"batch_size": 3, "time_chunk": 4}


def _w(rng: np.random.Generator, *shape: int, gain: float = 3.0) -> np.ndarray:
    return (rng.normal(size=shape) * gain / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


NEURONS = {
    "if_subtract": ir.IF(name="n", v_threshold=0.7, v_init=0.2),
    "if_zero": ir.IF(name="n", v_threshold=0.9, reset="zero"),
    "lif_subtract": ir.LIF(name="n", v_threshold=0.5, decay_v=0.2),
    "lif_zero": ir.LIF(name="n", v_threshold=0.6, decay_v=0.25, reset="zero"),
    "cubalif_subtract": ir.CubaLIF(name="n", v_threshold=0.5, decay_i=0.3, decay_v=0.1),
    "cubalif_zero": ir.CubaLIF(name="n", v_threshold=0.4, decay_i=0.2, decay_v=0.05, reset="zero"),
}


def _graph(
    rng: np.random.Generator, neuron: ir.Node, flatten: bool, bias: bool, poisson: bool
) -> ir.Graph:
    """Input -> Encoder -> synapse -> neuron ``n`` -> [Flatten] -> Dense ``fc`` -> IF ``n2``
    -> Dense -> Readout. With ``flatten`` the synapse is a convolution onto (3, 4, 5), else a
    Dense onto 23 neurons. An analog encoder makes ``n``'s drive the same every step."""
    if flatten:
        first = ir.Conv2d(name="syn", weight=_w(rng, 3, 2, 3, 3), padding=1)
        source, width, between = (2, 4, 5), 60, [ir.Flatten(name="flat")]
    else:
        first = ir.Dense(name="syn", weight=_w(rng, 23, 17), bias=np.full(23, 0.1, np.float32))
        source, width, between = (17,), 23, []
    return ir.chain(
        ir.Input(name="x", shape=source),
        ir.Encoder(name="enc", kind="poisson" if poisson else "analog", seed=7),
        first,
        neuron,
        *between,
        ir.Dense(
            name="fc",
            weight=_w(rng, 11, width),
            bias=rng.normal(size=11).astype(np.float32) * 0.2 if bias else None,
        ),
        ir.IF(name="n2", v_threshold=0.8),
        ir.Dense(name="fc2", weight=_w(rng, 4, 11)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


CASES = [
    (n, flatten, bias, poisson)
    for n in NEURONS
    for flatten, bias, poisson in ((True, True, False), (False, False, True), (True, False, True))
]


@pytest.fixture
def two_threads(monkeypatch):
    """torch on two threads, and `fused.DenseSteps` splitting even these few samples over
    two."""
    monkeypatch.setattr(fused, "SPREAD_UPDATES", 0)
    count = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(count)


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("options", [{}, STREAMED], ids=["one_batch", "streamed"])
@pytest.mark.parametrize(
    ("neuron", "flatten", "bias", "poisson"),
    CASES,
    ids=[
        f"{n}-{'flatten' if f else 'direct'}-{'bias' if b else 'nobias'}-"
        f"{'poisson' if p else 'static'}"
        for n, f, b, p in CASES
    ],
)
def test_neuron_fused_with_its_dense_matches_the_reference(
    cpu_sim, neuron, flatten, bias, poisson, options
):
    rng = np.random.default_rng(CASES.index((neuron, flatten, bias, poisson)))
    graph = _graph(rng, NEURONS[neuron], flatten, bias, poisson)
    x = rng.random((B, *graph.node("x").shape)).astype(np.float32)
    assert Program(graph, Settings(dtype="float64")).dense_fed["n"][1].name == "fc"
    record = ["fc", "n2", "readout"]  # "n" is not recorded: it runs fused
    want = reference.run(graph, x, STEPS, record=record)
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64", **options), x, STEPS, record)

    np.testing.assert_array_equal(got.records["n2"], want.records["n2"])
    np.testing.assert_allclose(got.records["fc"], want.records["fc"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.records["readout"], want.records["readout"], rtol=1e-12)
    assert got.result.counters == want.counters
    assert 0 < want.counters["n"]["spikes"] < want.counters["n"]["neuron_updates"]


@pytest.mark.usefixtures("two_threads")
def test_fused_counters_equal_the_unfused_run(cpu_sim):
    rng = np.random.default_rng(11)
    graph = _graph(rng, NEURONS["lif_subtract"], flatten=True, bias=True, poisson=True)
    x = rng.random((B, 2, 4, 5)).astype(np.float32)
    artifact = cpu_sim.compile(graph, dtype="float64", **STREAMED)
    fused_run = cpu_sim.trace(artifact, x, STEPS, record=["n2"])
    unfused = cpu_sim.trace(artifact, x, STEPS, record=["n", "flat", "n2"])  # kept: not fused
    np.testing.assert_array_equal(fused_run.records["n2"], unfused.records["n2"])
    assert fused_run.result.counters == unfused.result.counters
    assert fused_run.result.counters["fc"]["synops"] == 11 * unfused.records["n"].sum()


def test_float32_fused_within_the_device_tolerance(cpu_sim):
    rng = np.random.default_rng(12)
    graph = _graph(rng, NEURONS["if_subtract"], flatten=False, bias=True, poisson=False)
    x = rng.random((B, 17)).astype(np.float32)
    want = reference.run(graph, x, 12)
    got = cpu_sim.run(cpu_sim.compile(graph), x, 12)
    tol = cpu_sim.tolerance
    np.testing.assert_allclose(
        got.outputs["out"], want.outputs["out"], rtol=tol.rtol, atol=tol.atol
    )
    assert got.counters["n"]["neuron_updates"] == want.counters["n"]["neuron_updates"]


def _also_read(graph: ir.Graph, reader: str) -> ir.Graph:
    """``graph`` where ``reader``'s spikes also go to a second output."""
    return ir.Graph(
        [*graph.nodes, ir.Output(name="spikes")], [*graph.edges, ir.Edge(reader, "spikes")]
    )


@pytest.mark.parametrize(("reader", "flatten"), [("n", False), ("n", True), ("flat", True)])
def test_spikes_read_elsewhere_are_not_fused(cpu_sim, reader, flatten):
    rng = np.random.default_rng(13)
    graph = _also_read(_graph(rng, NEURONS["if_zero"], flatten, True, False), reader)
    x = rng.random((B, *graph.node("x").shape)).astype(np.float32)
    assert "n" not in Program(graph, Settings(dtype="float64")).dense_fed
    want = reference.run(graph, x, STEPS, record=["n2"])
    got = cpu_sim.trace(cpu_sim.compile(graph, dtype="float64"), x, STEPS, ["n2"])
    np.testing.assert_array_equal(got.records["n2"], want.records["n2"])
    np.testing.assert_array_equal(got.result.outputs["spikes"], want.outputs["spikes"])
    assert got.result.counters == want.counters


def test_a_dense_with_two_inputs_is_not_fused():
    graph = ir.Graph(
        [
            ir.Input(name="x", shape=(6,)),
            ir.Encoder(name="enc"),
            ir.IF(name="a", v_threshold=0.5),
            ir.IF(name="b", v_threshold=0.3),
            ir.Dense(name="fc", weight=np.ones((2, 6), np.float32)),
            ir.Output(name="out"),
        ],
        [
            ir.Edge("x", "enc"),
            ir.Edge("enc", "a"),
            ir.Edge("enc", "b"),
            ir.Edge("a", "fc"),
            ir.Edge("b", "fc"),
            ir.Edge("fc", "out"),
        ],
    )
    assert Program(graph, Settings()).dense_fed == {}
