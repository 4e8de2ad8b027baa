"""cpu_sim against the reference interpreter: every node's per-step values, outputs, counters.

float64 must reproduce the reference's spike trains exactly (and its Poisson draws), also when
inputs are streamed in batches and time in chunks; float32 must stay within the tolerance the
device states.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurohal import ir, reference
from neurohal_cpu_sim import engine

from .graphs import all_examples

EXAMPLES = all_examples()
STREAMED = {"batch_size": 2, "time_chunk": 4}


def _recorded(graph: ir.Graph) -> list[str]:
    return [n.name for n in graph.nodes if not isinstance(n, ir.Input)]


def _is_event(node: ir.Node) -> bool:
    return node.domain == "spiking" or (isinstance(node, ir.Encoder) and node.kind == "poisson")


@pytest.mark.parametrize("options", [{}, STREAMED], ids=["one_batch", "streamed"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_float64_matches_the_reference_step_by_step(cpu_sim, example, options):
    graph = example.graph
    names = _recorded(graph)
    want = reference.run(graph, example.inputs, example.timesteps, record=names)
    artifact = cpu_sim.compile(graph, dtype="float64", **options)
    got = cpu_sim.trace(artifact, example.inputs, example.timesteps, record=names)

    for name in names:
        assert got.records[name].shape == want.records[name].shape, name
        if _is_event(graph.node(name)):
            np.testing.assert_array_equal(got.records[name], want.records[name], err_msg=name)
        else:
            np.testing.assert_allclose(
                got.records[name], want.records[name], rtol=1e-12, atol=1e-12, err_msg=name
            )
    for name, value in want.outputs.items():
        np.testing.assert_allclose(got.result.outputs[name], value, rtol=1e-12, atol=1e-12)
    assert got.result.counters == want.counters
    assert got.result.samples == len(next(iter(want.outputs.values())))
    assert got.result.timesteps == example.timesteps


@pytest.mark.parametrize("options", [{}, STREAMED], ids=["one_batch", "streamed"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_float64_spike_trains_when_synaptic_currents_are_not_kept(cpu_sim, example, options):
    """Recording only the event nodes lets a neuron layer's torch loop reuse its synaptic
    current's memory for its spikes (nothing else reads the current), and frees values early:
    the spike trains must not change."""
    graph = example.graph
    names = [n.name for n in graph.nodes if _is_event(n)]
    want = reference.run(graph, example.inputs, example.timesteps, record=names)
    artifact = cpu_sim.compile(graph, dtype="float64", **options)
    got = cpu_sim.trace(artifact, example.inputs, example.timesteps, record=names)

    for name in names:
        np.testing.assert_array_equal(got.records[name], want.records[name], err_msg=name)
    for name, value in want.outputs.items():
        np.testing.assert_allclose(got.result.outputs[name], value, rtol=1e-12, atol=1e-12)
    assert got.result.counters == want.counters


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_float64_matches_the_reference_with_the_batch_split_over_threads(
    cpu_sim, example, threads, monkeypatch
):
    """With torch on N threads and no least work per slice, a batch runs as N slices of
    samples side by side (N = 3 splits the 5 samples 2 + 1 + 2): the same spike trains and
    counters, and torch's thread setting is left as it was."""
    monkeypatch.setattr(engine, "SPLIT_MACS", 0)
    graph = example.graph
    names = [n.name for n in graph.nodes if _is_event(n)]
    want = reference.run(graph, example.inputs, example.timesteps, record=names)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        artifact = cpu_sim.compile(graph, dtype="float64")
        got = cpu_sim.trace(artifact, example.inputs, example.timesteps, record=names)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for name in names:
        np.testing.assert_array_equal(got.records[name], want.records[name], err_msg=name)
    for name, value in want.outputs.items():
        np.testing.assert_allclose(got.result.outputs[name], value, rtol=1e-12, atol=1e-12)
    assert got.result.counters == want.counters


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_spike_trains_are_not_trivial(example):
    """The examples exercise thresholds: every neuron layer spikes, but not always."""
    want = reference.run(example.graph, example.inputs, example.timesteps)
    for node in example.graph.nodes:
        if node.domain == "spiking":
            counts = want.counters[node.name]
            assert 0 < counts["spikes"] < counts["neuron_updates"], node.name


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_float32_default_is_within_the_stated_tolerance(cpu_sim, example):
    want = reference.run(example.graph, example.inputs, example.timesteps)
    result = cpu_sim.run(cpu_sim.compile(example.graph), example.inputs, example.timesteps)
    for name, value in want.outputs.items():
        assert result.outputs[name].dtype == np.float32
        assert cpu_sim.tolerance.close(result.outputs[name], value), name


def test_poisson_draws_follow_numpy_default_rng(cpu_sim):
    """Encoder(poisson) draws numpy.random.default_rng(seed).random((B, *shape)) per step."""
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc", kind="poisson", seed=42),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    x = np.tile(np.array([0.0, 0.5, 1.0]), (4, 1))
    steps = 6
    rng = np.random.default_rng(42)
    expected = np.stack([rng.random((4, 3)) < x for _ in range(steps)]).astype(np.float64)
    artifact = cpu_sim.compile(graph, batch_size=3, time_chunk=4)
    got = cpu_sim.trace(artifact, x, steps, record=["enc"]).records["enc"]
    np.testing.assert_array_equal(got, expected)
