"""cpu_sim on CUDA gives the reference's spike trains in float64 (skipped without CUDA)."""

import numpy as np
import pytest
import torch

from neurohal import reference

from .graphs import spiking_examples

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("index", range(3))
def test_cuda_float64_matches_the_reference(cpu_sim, index):
    example = spiking_examples(np.random.default_rng(5))[index]
    names = [n.name for n in example.graph.nodes if n.domain == "spiking"]
    want = reference.run(example.graph, example.inputs, example.timesteps, record=names)
    artifact = cpu_sim.compile(example.graph, device="cuda", dtype="float64", batch_size=2)
    got = cpu_sim.trace(artifact, example.inputs, example.timesteps, record=names)
    for name in names:
        np.testing.assert_array_equal(got.records[name], want.records[name])
    assert got.result.counters == want.counters
