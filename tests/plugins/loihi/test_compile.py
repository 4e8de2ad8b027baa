"""compile: quantization (hand-computed), core mapping, refusals and saved artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from neurohal import ir, reference
from neurohal.device import Artifact
from neurohal.errors import InputError, UnsupportedGraphError
from neurohal.testing.cases import conformance_cases
from neurohal_loihi.lowering import lower_max_pools


def _mlp(hidden: int, inputs: int = 784, outputs: int = 10) -> ir.Graph:
    rng = np.random.default_rng(0)
    return ir.chain(
        ir.Input(name="x", shape=(inputs,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=rng.normal(size=(hidden, inputs)) * 0.05),
        ir.IF(name="if1", v_threshold=1.0),
        ir.Dense(name="fc2", weight=rng.normal(size=(outputs, hidden)) * 0.05),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


def test_quantization_by_hand(loihi1) -> None:
    graph = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=np.eye(2)),
        ir.IF(name="if1", v_threshold=0.5, v_init=0.25),
        ir.Dense(name="fc2", weight=np.array([[0.25, -0.5], [0.1, 0.0]]), bias=[0.01, 0.0]),
        ir.IF(name="if2", v_threshold=2.0),
        ir.Dense(name="fc3", weight=[[1.0, -1.0]]),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    art = loihi1.compile(graph)
    a = art.arrays
    # threshold 0.5 -> mantissa 2048 (2048 << 6 = 2**17), scale 2**18 per unit
    assert int(a["if1:vth"]) == 2048 and float(a["if1:scale"]) == 2.0**18
    assert int(a["if1:v_start"][0]) == 2**16  # v_init 0.25 * 2**18
    # if2: scale 2**17 / 2 = 2**16; largest weight 0.5 -> 32768 v units = 128 * 2**8 > 127.5
    # * 2**8, so exponent 9 - 7 = 2 and m = weight * 2**16 / 2**9
    assert float(a["if2:scale"]) == 2.0**16
    key = "if1->if2:fc2"
    assert int(a[f"{key}:exp"]) == 2
    np.testing.assert_array_equal(a[f"{key}:w"], [[32, -64], [13, 0]])
    # bias 0.01 * 2**16 = 655.36 -> mantissa 655, exponent 0; delay 1 -> v starts at -655
    np.testing.assert_array_equal(a["if2:bias_mant"], [655, 0])
    np.testing.assert_array_equal(a["if2:bias_exp"], [0, 0])
    np.testing.assert_array_equal(a["if2:v_start"], [-655, 0])
    assert art.report["delay_steps"] == 2
    assert art.report["two_compartment_reset"] == ["if1", "if2"]
    assert art.report["reset_lowered_to_zero"] == []


def test_hand_computed_run(loihi1, loihi2) -> None:
    """x = 0.3 into an IF of threshold 1: bias 0.3 * 2**17 = 39321.6 -> 2458 << 4 = 39328."""
    graph = ir.chain(
        ir.Input(name="x", shape=(1,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=[[1.0]]),
        ir.IF(name="if1", v_threshold=1.0),
        ir.Dense(name="fc2", weight=[[0.5]]),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    x = np.array([[0.3]])
    # readout scale: (2**23 - 1) / ((64 max steps + 1 delay) * 0.5); weight 0.5 * S ->
    # exponent 3, m = 126, so each spike adds 126 << 10 to the readout
    scale = (2**23 - 1) / (65 * 0.5)
    # by subtraction (Loihi 2; Loihi 1's two-compartment neuron, whose dendrite keeps
    # 4 * 39328 - 2**17 = 26240 after the first spike, the self-synapse taking 2**17 one step
    # later): v passes 2**17 at steps 3, 6, 9, 13; reset to zero: every 4th step
    expected = {
        ("loihi1", True): [3, 6, 9, 13],
        ("loihi1", False): [3, 7, 11, 15],
        ("loihi2", True): [3, 6, 9, 13],
    }
    for (chip, soft), times_want in expected.items():
        device = loihi1 if chip == "loihi1" else loihi2
        art = device.compile(graph, loihi1_soft_reset=soft)
        result, spikes = device.run_detailed(art, x, 16)
        assert spikes["if1"].shape == (17, 1, 1)
        times = np.flatnonzero(spikes["if1"][:16, 0, 0]).tolist()
        assert times == times_want
        want = 4 * 126 * 2**10 / (16 * scale)
        np.testing.assert_allclose(result.output(), [[want]], rtol=1e-12)


def test_resource_report_by_hand(loihi1, loihi2) -> None:
    graph = _mlp(2000)
    r1 = loihi1.compile(graph, loihi1_soft_reset=False).report
    # if1: 2000 neurons fed from the host, 1024 per core -> 2 cores; readout: 10 neurons of
    # fan-in 2000 (2000 bytes each) in one core
    assert r1["layers"]["if1"]["cores"] == 2
    assert r1["layers"]["readout"]["cores"] == 1
    assert r1["layers"]["readout"]["synaptic_bytes_per_core"] == 20000
    assert (r1["cores"], r1["chips"]) == (3, 1)
    # two-compartment soft reset: 2 compartments per neuron -> 512 neurons per core -> 4
    # cores, each with 512 self-synapses (1 byte, 1 input axon each); the readout as before
    soft = loihi1.compile(graph).report
    if1 = soft["layers"]["if1"]
    assert (if1["cores"], if1["neurons_per_core"], if1["compartments_per_core"]) == (4, 512, 1024)
    assert (if1["synaptic_bytes_per_core"], if1["input_axons_per_core"]) == (512, 512)
    assert if1["utilisation"]["neurons"] == 1.0
    assert soft["synapses"] == 2000 * 10 + 2000
    assert (soft["cores"], soft["chips"]) == (5, 1)
    r2 = loihi2.compile(graph).report
    assert (r2["layers"]["if1"]["cores"], r2["cores"]) == (1, 2)


def test_too_large_for_chips(loihi1) -> None:
    graph = _mlp(200_000, inputs=4, outputs=2)
    # readout: fan-in 200000 > 4096 axons -> 49 compartments per neuron (4082 synapses each);
    # both neurons fit one block -> 49 cores. if1: 1024 neurons per core (each reaches one
    # compartment share of the readout) -> ceil(200000 / 1024) = 196 cores. 245 > 128.
    with pytest.raises(
        UnsupportedGraphError,
        match=r"needs 245 loihi1 cores \(2 chips\) but max_chips=1 gives 128 cores",
    ):
        loihi1.compile(graph, max_chips=1, loihi1_soft_reset=False)
    assert loihi1.compile(graph, max_chips=2, loihi1_soft_reset=False).report["chips"] == 2
    # two-compartment soft reset: if1 holds 512 neurons per core -> 391 cores; 440 in all
    with pytest.raises(UnsupportedGraphError, match=r"needs 440 loihi1 cores \(4 chips\)"):
        loihi1.compile(graph, max_chips=3)


def test_unsupported_nodes_named(loihi1) -> None:
    concat = next(c for c in conformance_cases("spiking") if c.name == "spiking_concat")
    report = loihi1.supports(concat.graph)
    assert [n.node for n in report.unsupported] == ["cat"]
    with pytest.raises(UnsupportedGraphError, match="cat: Concat has no Loihi lowering"):
        loihi1.compile(concat.graph)
    poisson = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc", kind="poisson"),
        ir.Dense(name="fc", weight=np.ones((2, 3))),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    assert "poisson" in loihi1.supports(poisson).unsupported[0].reason
    ann = next(c for c in conformance_cases("analog")).graph
    assert not loihi1.supports(ann).ok
    with pytest.raises(InputError, match="chip must be one of"):
        loihi1.compile(_mlp(4), chip="loihi3")


def test_overlapping_pool_refused(loihi1) -> None:
    graph = ir.chain(
        ir.Input(name="x", shape=(1, 6, 6)),
        ir.Encoder(name="enc"),
        ir.Conv2d(name="c1", weight=np.ones((2, 1, 3, 3)), padding=1),
        ir.IF(name="if1", v_threshold=1.0),
        ir.AvgPool2d(name="pool", kernel=3, stride=1),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=np.ones((2, 32))),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    with pytest.raises(UnsupportedGraphError, match="pool: overlapping pooling"):
        loihi1.compile(graph)


def test_artifact_round_trip(loihi2, tmp_path) -> None:
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    art = loihi2.compile(case.graph)
    loaded = Artifact.load(art.save(tmp_path / "net.nhart"))
    assert loaded.report == art.report and loaded.options == art.options
    first = loihi2.run(art, case.inputs, 8).output()
    np.testing.assert_array_equal(first, loihi2.run(loaded, case.inputs, 8).output())


def _pooled(pool_after: str) -> ir.Graph:
    """A conv net with a max pool after ``pool_after`` (its IF neurons, or the conv)."""
    rng = np.random.default_rng(3)
    conv = ir.Conv2d(name="c1", weight=rng.normal(size=(3, 1, 3, 3)), padding=1)
    neurons = ir.IF(name="if1", v_threshold=1.0)
    pool = ir.MaxPool2d(name="pool", kernel=2, stride=2)
    body = [conv, neurons, pool] if pool_after == "if1" else [conv, pool, neurons]
    return ir.chain(
        ir.Input(name="x", shape=(1, 6, 6)),
        ir.Encoder(name="enc"),
        *body,
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=rng.normal(size=(2, 27))),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )


def test_max_pool_of_spikes_lowers_to_or_neurons(loihi1) -> None:
    graph = _pooled("if1")
    lowered = lower_max_pools(graph)
    assert isinstance(lowered.node("pool"), ir.SumPool2d)
    assert lowered.node("pool.or").reset == "zero"
    # the reference interpreter (the oracle) gives the original graph's spike trains
    x = np.random.default_rng(4).random((3, 1, 6, 6)) * 2
    want = reference.run(graph, x, 12, record=["pool"])
    got = reference.run(lowered, x, 12, record=["pool.or"])
    np.testing.assert_array_equal(got.records["pool.or"], want.records["pool"])
    assert want.records["pool"].sum() > 0
    np.testing.assert_array_equal(got.outputs["out"], want.outputs["out"])
    assert loihi1.supports(graph).ok
    art = loihi1.compile(graph)
    assert "pool.or" in art.report["layers"]


def test_max_pool_of_currents_refused(loihi1) -> None:
    graph = _pooled("c1")
    assert [n.node for n in loihi1.supports(graph).unsupported] == ["pool"]
    with pytest.raises(UnsupportedGraphError, match="pool: MaxPool2d is lowered only on spikes"):
        loihi1.compile(graph)
