"""The fast simulator against the reference interpreter: identical spikes, equal outputs."""

import numpy as np
import pytest
from conversion_graphs import lenet_like, maxpool_net, residual

import neurohal as nh
from neurohal import ir, reference
from neurohal.conversion import evaluate, simulate
from neurohal.errors import InputError


def _spiking_cases():
    rng = np.random.default_rng(7)
    x8 = rng.random((6, 1, 8, 8))
    x6 = rng.random((6, 1, 6, 6))
    cases = []
    for name, graph, x in [
        ("lenet", lenet_like(), x8),
        ("residual_concat", residual(), x6),
        ("maxpool", maxpool_net(), x8),
    ]:
        for cfg in (
            nh.ConversionConfig(),
            nh.ConversionConfig(reset="zero", v_init=0.0, readout="spike_count"),
            nh.ConversionConfig(encoding="poisson", seed=3, granularity="layer"),
        ):
            cases.append((f"{name}-{cfg.reset}-{cfg.encoding}", nh.convert(graph, x, cfg), x))
    strided = ir.chain(
        ir.Input(name="x", shape=(2, 9, 9)),
        ir.Encoder(name="enc"),
        ir.Conv2d(
            name="c",
            weight=rng.normal(size=(4, 2, 3, 3)),
            bias=rng.normal(size=4),
            stride=2,
            padding=(1, 0, 2, 1),
            dilation=(2, 1),
        ),
        ir.IF(name="n", v_threshold=0.7, v_init=0.2),
        ir.Conv2d(name="g", weight=rng.normal(size=(4, 2, 1, 1)), groups=2),
        ir.IF(name="m", v_threshold=0.5, reset="zero"),
        ir.AvgPool2d(name="p", kernel=2, stride=1, padding=1),
        ir.SumPool2d(name="s", kernel=2, stride=2),
        ir.Flatten(name="f"),
        ir.Readout(name="r"),
        ir.Output(name="o"),
    )
    cases.append(("strided_grouped_pools", strided, rng.random((5, 2, 9, 9)) * 2))
    return cases


@pytest.mark.parametrize(("name", "graph", "x"), _spiking_cases(), ids=lambda c: "")
def test_simulate_matches_reference(name, graph, x):
    spiking = [n.name for n in graph.nodes if isinstance(n, ir.IF)]
    ref = reference.run(graph, x, timesteps=12, record=spiking)
    seen = {s: [] for s in spiking}

    def keep(t, values):
        for s in spiking:
            seen[s].append(values[s].copy())

    out = simulate(graph, x, 12, on_step=keep)
    for s in spiking:
        np.testing.assert_array_equal(np.stack(seen[s]), ref.records[s], err_msg=s)
    for o, value in out.items():
        np.testing.assert_allclose(value, ref.outputs[o], rtol=1e-12, atol=1e-12)


def test_evaluate_matches_reference(images):
    graph = lenet_like()
    names = [n.name for n in graph.nodes if not isinstance(n, ir.Input)]
    got = evaluate(graph, images, keep=names)
    ref = reference.run(graph, images, record=names)
    for name in names:
        np.testing.assert_allclose(got[name], ref.records[name][0], rtol=1e-12, atol=1e-12)


def test_simulate_refuses_analog_graphs(images):
    with pytest.raises(InputError, match="spiking graphs"):
        simulate(lenet_like(), images, 4)
