"""NIR interop: IR -> NIR -> IR round trips judged by the reference interpreter, imports of
NIR graphs written the way other libraries write them checked against hand-computed dynamics,
refusals, and malformed or hostile .nir files."""

from __future__ import annotations

import itertools
import warnings

import h5py
import numpy as np
import pytest

nir = pytest.importorskip("nir")

import neurohal as nh  # noqa: E402
from neurohal import ir, reference  # noqa: E402
from neurohal.errors import (  # noqa: E402
    ConversionError,
    IRFormatError,
    NeurohalError,
    UnsupportedGraphError,
)
from neurohal.nir_interop import DEFAULT_DT, from_nir, load_nir, save_nir, to_nir  # noqa: E402
from neurohal.testing.cases import conformance_cases  # noqa: E402

RNG = np.random.default_rng(8)


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` with neurohal's export warnings silenced (they are tested separately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def _w(*shape: int, scale: float = 2.0) -> np.ndarray:
    return (RNG.normal(size=shape) * scale / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


# ---------------------------------------------------------------- graphs to round-trip


def _cuba_graph() -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=_w(5, 6, scale=3.0)),
        ir.CubaLIF(name="cuba", v_threshold=0.8, decay_i=0.3, decay_v=0.2, v_init=0.25),
        ir.Readout(name="rate", kind="spike_count"),
        ir.Output(name="out"),
    )


def _conv_pool_scale_graph() -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(2, 8, 8)),
        ir.Encoder(name="enc"),
        ir.Conv2d(
            name="conv",
            weight=_w(4, 1, 3, 3, scale=4.0),
            bias=np.full(4, 0.1),
            stride=2,
            padding=1,
            groups=2,
        ),
        ir.Scale(name="gain", scale=np.array([1.0, 0.5, 2.0, 1.5])),
        ir.LIF(name="lif", v_threshold=1.0, decay_v=0.1, reset="zero"),
        ir.SumPool2d(name="pool", kernel=2, stride=2),
        ir.Reshape(name="flat", shape=(16,)),
        ir.Dense(name="fc", weight=_w(3, 16), bias=np.array([0.1, 0.0, -0.1])),
        ir.Scale(name="half", scale=0.5),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


def _leak_edges_graph() -> ir.Graph:
    """LIF with decay 0 (exported as IF) and 1 (memoryless), two inputs summed into one."""
    nodes = [
        ir.Input(name="a", shape=(4,)),
        ir.Input(name="b", shape=(4,)),
        ir.Encoder(name="enc_a"),
        ir.Encoder(name="enc_b"),
        ir.LIF(name="no_leak", v_threshold=0.7, decay_v=0.0, v_init=0.3),
        ir.LIF(name="memoryless", v_threshold=0.4, decay_v=1.0),
        ir.Dense(name="fc", weight=_w(2, 4)),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    ]
    edges = [
        ir.Edge(*e)
        for e in [
            ("a", "enc_a"),
            ("b", "enc_b"),
            ("enc_a", "no_leak"),
            ("enc_b", "no_leak"),
            ("no_leak", "memoryless"),
            ("memoryless", "fc"),
            ("fc", "readout"),
            ("readout", "out"),
        ]
    ]
    return ir.Graph(nodes, edges, {"note": "two inputs"})


def _analog_linear_graph() -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(5,)),
        ir.Dense(name="fc", weight=_w(3, 5), bias=np.array([1.0, 2.0, 3.0])),
        ir.Output(name="y"),
    )


def _inputs(graph: ir.Graph, batch: int = 3) -> dict[str, np.ndarray]:
    return {n.name: RNG.random((batch, *n.shape)) for n in graph.inputs}


ROUND_TRIP = [
    *[
        (c.name, c.graph, c.inputs, c.timesteps)
        for c in conformance_cases("spiking")
        if "concat" not in c.name
    ],
    ("cuba_lif", _cuba_graph(), None, 12),
    ("conv_pool_scale", _conv_pool_scale_graph(), None, 10),
    ("leak_edges", _leak_edges_graph(), None, 9),
    ("analog_linear", _analog_linear_graph(), None, None),
]


# through a file: one graph per node family (each load starts a checker process)
FILE_CASES = ("spiking_residual_add", "cuba_lif", "conv_pool_scale", "leak_edges")


def _assert_same_outputs(a: ir.Graph, b: ir.Graph, inputs, timesteps) -> None:
    inputs = _inputs(a) if inputs is None else inputs
    want = reference.run(a, inputs, timesteps).outputs
    got = reference.run(b, inputs, timesteps).outputs
    assert set(got) == set(want)
    for name, value in want.items():
        assert np.array_equal(got[name], value), name


@pytest.mark.parametrize(
    ("name", "graph", "inputs", "timesteps"), ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP]
)
def test_round_trip_in_memory_gives_identical_outputs(name, graph, inputs, timesteps):
    back = from_nir(_quiet(to_nir, graph))
    _assert_same_outputs(graph, back, inputs, timesteps)
    assert dict(back.metadata) == dict(graph.metadata)
    # every node but the dissolved fan-in Adds comes back under its own name
    kept = {n.name for n in graph.nodes if not isinstance(n, ir.Add)}
    assert kept <= {n.name for n in back.nodes}


FILE_ROUND_TRIP = [r for r in ROUND_TRIP if r[0] in FILE_CASES]


@pytest.mark.parametrize(
    ("name", "graph", "inputs", "timesteps"),
    FILE_ROUND_TRIP,
    ids=[r[0] for r in FILE_ROUND_TRIP],
)
def test_round_trip_through_a_file_gives_identical_outputs(
    tmp_path, name, graph, inputs, timesteps
):
    path = _quiet(save_nir, graph, tmp_path / f"{name}.nir")
    # NIR's own reader accepts the file; its type check takes a grouped convolution's input
    # channels to be weight.shape[1] (nir 1.0), so it is skipped for that graph
    assert isinstance(nir.read(path, type_check=name != "conv_pool_scale"), nir.NIRGraph)
    back = nh.from_nir(str(path))
    _assert_same_outputs(graph, back, inputs, timesteps)


def test_round_trip_of_graphs_neurohal_converted():
    """ANNs converted by neurohal.convert (IF, reset by subtraction, half-threshold start,
    residual Add, membrane readout) come back with identical outputs."""
    for case in conformance_cases("analog"):
        if "maxpool" in case.name or "concat" in case.name:
            continue
        snn = nh.convert(case.graph, calibration=case.inputs)
        back = from_nir(_quiet(to_nir, snn))
        _assert_same_outputs(snn, back, case.inputs, 16)


def test_round_trip_of_converted_zoo_models():
    zoo = pytest.importorskip("neurohal.zoo", reason="the model zoo has not landed yet")
    x, _ = nh.datasets.mnist("test", limit=2)
    for name in zoo.names():
        snn = nh.convert(nh.load_onnx(zoo.path(name)), calibration=x)
        try:
            nir_graph = _quiet(to_nir, snn)
        except UnsupportedGraphError as exc:  # max pooling kept analog, say
            assert "MaxPool2d" in str(exc) or "Concat" in str(exc), (name, exc)
            continue
        _assert_same_outputs(snn, from_nir(nir_graph), x, 4)


# ---------------------------------------------------------------- what the export writes


def test_export_writes_continuous_time_parameters_and_the_metadata_convention():
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc"),
        ir.LIF(name="lif", v_threshold=2.0, decay_v=0.25, reset="subtract", v_init=1.0),
        ir.CubaLIF(name="cuba", v_threshold=1.0, decay_i=0.5, decay_v=0.125),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    with pytest.warns(UserWarning, match=r"reset by subtraction.*resets them to v_reset = 0"):
        g = to_nir(graph, dt=1e-3)
    lif, cuba = g.nodes["lif"], g.nodes["cuba"]
    assert isinstance(lif, nir.LIF) and isinstance(cuba, nir.CubaLIF)
    # forward Euler: decay = dt / tau, unit input gain r * dt / tau
    np.testing.assert_allclose(lif.tau, 1e-3 / 0.25)
    np.testing.assert_allclose(lif.r * 1e-3 / lif.tau, 1.0)
    np.testing.assert_allclose(cuba.tau_syn, 2e-3)
    np.testing.assert_allclose(cuba.tau_mem, 8e-3)
    np.testing.assert_allclose(cuba.w_in * 1e-3 / cuba.tau_syn, 1.0)
    assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    # v >= 2 (IR) is v > the float just below 2 (NIR)
    assert np.all(lif.v_threshold < 2.0) and np.all(np.nextafter(lif.v_threshold, 3) == 2.0)
    assert lif.metadata["neurohal"]["reset"] == "subtract"
    assert lif.metadata["neurohal"]["v_init"] == 1.0
    assert isinstance(g.nodes["readout"], nir.I)
    assert g.metadata["neurohal"]["dt"] == 1e-3
    assert "enc" not in g.nodes and ("x", "lif") in g.edges  # analog encoder = identity


def test_residual_add_becomes_edges_summing_into_the_node():
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    g = _quiet(to_nir, case.graph)
    assert "add" not in g.nodes
    assert {("conv2", "act2"), ("act1", "act2")} <= set(g.edges)


def test_export_without_subtraction_or_readout_does_not_warn():
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc"),
        ir.IF(name="if1", v_threshold=1.0, reset="zero"),
        ir.Output(name="out"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_nir(graph)


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        (ir.MaxPool2d(name="bad", kernel=2, stride=2), "max pooling"),
        (ir.ReLU(name="bad"), "analog ReLU"),
        (ir.Clip(name="bad", min=0, max=1), "analog Clip"),
        (ir.Reshape(name="bad", shape=(8, 4, 8)), "only Flatten"),
        (ir.AvgPool2d(name="bad", kernel=2, stride=2, padding=(0, 0, 1, 1)), "symmetric"),
    ],
)
def test_export_refuses_what_nir_cannot_express(node, needle):
    graph = ir.chain(
        ir.Input(name="x", shape=(4, 8, 8)),
        ir.Encoder(name="enc"),
        ir.IF(name="if1", v_threshold=1.0),
        node,
        ir.Flatten(name="flat"),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    with pytest.raises(UnsupportedGraphError, match=rf"node 'bad' \({node.type_name}\).*{needle}"):
        to_nir(graph)


def test_export_refuses_concat_softmax_and_poisson_listing_every_node():
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_concat")
    with pytest.raises(UnsupportedGraphError, match=r"'cat' \(Concat\): NIR has no concat"):
        to_nir(case.graph)
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="spikes", kind="poisson"),
        ir.Dense(name="fc", weight=np.eye(3)),
        ir.Softmax(name="soft"),
        ir.Output(name="out"),
    )
    with pytest.raises(UnsupportedGraphError) as info:
        to_nir(graph)
    assert "'spikes' (Encoder): NIR has no poisson encoder" in str(info.value)
    assert "'soft' (Softmax)" in str(info.value)


@pytest.mark.parametrize("dt", [0, -1e-4, float("nan"), "1e-4", True])
def test_bad_dt_is_refused(dt):
    with pytest.raises(ConversionError, match="dt must be"):
        to_nir(_analog_linear_graph(), dt=dt)


# ---------------------------------------------------------------- importing other tools' graphs
# Graphs built with NIR's own constructors and continuous-time parameters, as snnTorch
# exports them (snntorch/export_nir.py: dt = 1e-4, tau = dt / (1 - beta), r = tau / dt,
# w_in = tau_syn / dt) and with NIR's reset to v_reset = 0 and strict threshold v > thr.


def _nir_chain(*named: tuple[str, nir.NIRNode], size: int) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type={"input": np.array([size])}), **dict(named)}
    nodes["output"] = nir.Output(output_type={"output": np.array([size])})
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)))


def _snntorch_lif(beta: float, threshold: float, n: int, gain: float = 1.0) -> nir.LIF:
    tau = np.full(n, DEFAULT_DT / (1 - beta))
    return nir.LIF(
        tau=tau, r=gain * tau / DEFAULT_DT, v_leak=np.zeros(n), v_threshold=np.full(n, threshold)
    )


def _spikes(graph: ir.Graph, x: list[float], steps: int, node: str) -> list[list[int]]:
    result = reference.run(graph, np.array([x]), steps, record=[node])
    return result.records[node][:, 0, :].astype(int).tolist()


def test_imported_lif_matches_a_hand_computed_case():
    graph = from_nir(_nir_chain(("lif", _snntorch_lif(beta=0.5, threshold=1.0, n=2)), size=2))
    # neuron 0, input 0.6: v = 0.5 v + 0.6 -> 0.6, 0.9, 1.05 (spike, reset to 0), 0.6, 0.9, 1.05
    # neuron 1, input 0.3: v -> 0.3, 0.45, 0.525, ... approaches 0.6 and never fires
    assert _spikes(graph, [0.6, 0.3], 6, "lif") == [[0, 0], [0, 0], [1, 0], [0, 0], [0, 0], [1, 0]]
    assert graph.node("lif").reset == "zero" and graph.node("lif").decay_v == 0.5


def test_imported_cuba_lif_matches_a_hand_computed_case():
    alpha, beta, dt = 0.5, 0.75, DEFAULT_DT
    tau_syn, tau_mem = np.full(1, dt / (1 - alpha)), np.full(1, dt / (1 - beta))
    cuba = nir.CubaLIF(
        tau_syn=tau_syn,
        tau_mem=tau_mem,
        r=tau_mem / dt,
        v_leak=np.zeros(1),
        v_threshold=np.ones(1),
        w_in=tau_syn / dt,
    )
    graph = from_nir(_nir_chain(("cuba", cuba), size=1))
    # input 0.5: i = 0.5 i + 0.5 -> 0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375
    # v = 0.75 v + i -> 0.5 | 1.125 spike -> 0 | 0.875 | 1.59375 spike -> 0 | 0.96875 |
    #                   1.7109375 spike
    assert _spikes(graph, [0.5], 6, "cuba") == [[0], [1], [0], [1], [0], [1]]


def test_imported_if_fires_strictly_above_threshold_as_nir_defines():
    if_node = nir.IF(r=np.ones(1), v_threshold=np.ones(1))
    graph = from_nir(_nir_chain(("if1", if_node), size=1))
    # input 0.5: v = 0.5, 1.0 (not > 1: no spike), 1.5 spike -> 0, 0.5, 1.0, 1.5 spike
    assert _spikes(graph, [0.5], 6, "if1") == [[0], [0], [1], [0], [0], [1]]


def test_imported_integrator_readout_is_its_membrane_divided_by_t():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "if1": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
        "sum": nir.Linear(weight=np.array([[1.0, 1.0]])),
        "integrator": nir.I(r=np.array([0.5])),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "if1"), ("if1", "sum"), ("sum", "integrator"), ("integrator", "output")]
    graph = from_nir(nir.NIRGraph(nodes=nodes, edges=edges))
    out = reference.run(graph, np.array([[0.5, 0.7]]), 6).outputs["output"]
    # neuron 0 (0.5): spikes at t = 2, 5; neuron 1 (0.7): 0.7, 1.4 spike, 0.7, 1.4 spike, ...
    # at t = 1, 3, 5: 5 spikes in all; the integrator holds 0.5 * 5 = 2.5 after 6 steps
    assert out[0, 0] == pytest.approx(2.5 / 6)


def test_imported_gain_becomes_a_scale_in_front_of_the_neuron():
    lif = _snntorch_lif(beta=0.5, threshold=1.0, n=1, gain=2.0)
    graph = from_nir(_nir_chain(("lif", lif), size=1))
    assert isinstance(graph.node("lif_gain"), ir.Scale)
    # input 0.3 with gain 2 is neuron 0 of the LIF case: spikes at t = 2 and 5
    assert _spikes(graph, [0.3], 6, "lif") == [[0], [0], [1], [0], [0], [1]]


def test_dt_sets_the_discretisation_of_time_constants():
    tau = np.full(1, 2e-3)  # Norse-style dt = 1e-3: decay 0.5
    lif = nir.LIF(tau=tau, r=tau / 1e-3, v_leak=np.zeros(1), v_threshold=np.ones(1))
    graph = from_nir(_nir_chain(("lif", lif), size=1), dt=1e-3)
    assert graph.node("lif").decay_v == 0.5
    assert _spikes(graph, [0.6], 3, "lif") == [[0], [0], [1]]
    assert from_nir(_nir_chain(("lif", lif), size=1)).node("lif").decay_v == pytest.approx(0.05)


def test_stale_metadata_is_ignored_with_a_warning():
    graph = ir.chain(
        ir.Input(name="x", shape=(1,)),
        ir.Encoder(name="enc"),
        ir.LIF(name="lif", v_threshold=1.0, decay_v=0.5, v_init=0.5),
        ir.Output(name="out"),
    )
    g = _quiet(to_nir, graph)
    g.nodes["lif"].tau = g.nodes["lif"].tau * 2  # another tool edits the time constant
    g.nodes["lif"].r = g.nodes["lif"].tau / DEFAULT_DT
    with pytest.warns(UserWarning, match="disagrees with its parameters"):
        back = from_nir(g)
    assert back.node("lif").reset == "zero" and back.node("lif").v_init == 0.0
    assert back.node("lif").decay_v == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        (nir.LI(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2)), "leaky integrator"),
        (nir.Delay(delay=np.ones(2)), "synaptic delays"),
        (nir.Threshold(threshold=np.ones(2)), "stateless threshold"),
        (
            nir.LIF(
                tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.ones(2), v_threshold=np.ones(2)
            ),
            "v_leak",
        ),
        (
            nir.LIF(
                tau=np.array([1e-3, 2e-3]),
                r=np.full(2, 10.0),
                v_leak=np.zeros(2),
                v_threshold=np.ones(2),
            ),
            "tau varies across neurons",
        ),
        (
            nir.LIF(tau=np.full(2, 1e-5), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
            "forward Euler needs dt <= tau",
        ),
        (nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.full(2, -0.5)), "v_reset"),
        (nir.IF(r=np.ones(2), v_threshold=np.full(2, -1.0)), "not positive"),
        (nir.Affine(weight=np.array([["a", "b"], ["c", "d"]]), bias=np.zeros(2)), "non-numeric"),
        (nir.Scale(scale=np.array([1.0, np.nan])), "NaN"),
    ],
)
def test_import_refuses_what_the_ir_cannot_express(node, needle):
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "bad": node,
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "bad"), ("bad", "output")],
        type_check=False,
    )
    with pytest.raises(ConversionError, match=rf"node 'bad' \({type(node).__name__}\).*{needle}"):
        from_nir(graph)


def test_import_refuses_recurrence_and_nested_graphs():
    lif = _snntorch_lif(beta=0.5, threshold=1.0, n=2)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "lif": lif,
        "rec": nir.Linear(weight=np.eye(2)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    with pytest.raises(ConversionError, match="cycle"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    inner = _nir_chain(("lif", _snntorch_lif(0.5, 1.0, 2)), size=2)
    with pytest.raises(ConversionError, match="nested subgraphs"):
        from_nir(_nir_chain(("sub", inner), size=2))
    with pytest.raises(ConversionError, match="nir.NIRGraph or a .nir path"):
        from_nir({"nodes": {}})


def test_imported_graph_runs_on_available_devices():
    """An snnTorch-style graph (Linear -> Leaky -> Linear -> integrator readout), imported,
    compiled and run on each device that is here, matches the reference within the device's
    tolerance; the reference itself matches the hand-computed value."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "fc1": nir.Linear(weight=np.eye(2)),
        "lif": _snntorch_lif(beta=0.5, threshold=1.0, n=2),
        "fc2": nir.Affine(weight=np.array([[1.0, 0.5]]), bias=np.zeros(1)),
        "readout": nir.I(r=np.ones(1)),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    names = list(nodes)
    graph = from_nir(nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names))))
    x = np.array([[0.6, 0.3], [0.9, 0.45]])
    want = reference.run(graph, x, 12).outputs["output"]
    # row 0: neuron 0 fires at t = 2, 5, 8, 11 (see the LIF case), neuron 1 never: 4 / 12
    assert want[0, 0] == pytest.approx(4 / 12)
    ran = []
    for name in ("cpu_sim", "loihi"):
        if name not in nh.devices() or not nh.device(name).probe().ok:
            continue
        device = nh.device(name)
        assert device.supports(graph).ok, device.supports(graph).unsupported
        result = device.run(device.compile(graph), x, timesteps=12)
        assert device.tolerance.close(result.outputs["output"], want), (name, result.outputs)
        ran.append(name)
    if not ran:
        pytest.skip("neither cpu_sim nor loihi is available here")


# ---------------------------------------------------------------- malformed and hostile files


@pytest.fixture
def good_file(tmp_path):
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=np.eye(3), bias=np.zeros(3)),
        ir.IF(name="if1", v_threshold=1.0, reset="zero"),
        ir.Output(name="out"),
    )
    return save_nir(graph, tmp_path / "good.nir")


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(IRFormatError, match="no such NIR file"):
        load_nir(tmp_path / "absent.nir")


def test_truncated_file(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IRFormatError, match="good.nir: not a readable HDF5 file"):
        load_nir(good_file)


def test_not_hdf5(tmp_path):
    path = tmp_path / "junk.nir"
    path.write_bytes(b"NIR?" + bytes(range(256)) * 8)
    with pytest.raises(IRFormatError, match="not a readable HDF5 file"):
        load_nir(path)


def test_no_node_group(tmp_path):
    path = tmp_path / "empty.nir"
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0")
    with pytest.raises(IRFormatError, match="no 'node' group"):
        load_nir(path)


def test_unknown_node_type(good_file):
    def rename(f):
        del f["node/nodes/fc/type"]
        f["node/nodes/fc"].create_dataset("type", data="Quantum", dtype=h5py.string_dtype())

    _edit(good_file, rename)
    with pytest.raises(IRFormatError, match=r"unknown NIR type 'Quantum'"):
        load_nir(good_file)


def test_missing_key(good_file):
    _edit(good_file, lambda f: f["node/nodes/fc"].pop("weight"))
    with pytest.raises(IRFormatError, match="not a valid NIR graph"):
        load_nir(good_file)


def test_wrong_type(good_file):
    def stringify(f):
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset("weight", data="eye(3)", dtype=h5py.string_dtype())

    _edit(good_file, stringify)
    with pytest.raises(IRFormatError, match=r"not a valid NIR graph \(node 'fc'\)"):
        load_nir(good_file)


def test_huge_declared_shape_is_refused_before_reading(good_file):
    def inflate(f):
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset(
            "weight", shape=(2**20, 2**20), dtype="f8", chunks=(1, 1024)
        )

    _edit(good_file, inflate)
    with pytest.raises(IRFormatError, match="more than"):
        load_nir(good_file)


def test_external_link_is_refused(good_file, tmp_path):
    def link(f):
        del f["node/nodes/fc/bias"]
        f["node/nodes/fc/bias"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/data")

    _edit(good_file, link)
    with pytest.raises(IRFormatError, match="ExternalLink"):
        load_nir(good_file)


def test_huge_input_shape_is_refused(good_file):
    def widen(f):
        del f["node/nodes/x/shape"]
        f["node/nodes/x"].create_dataset("shape", data=np.array([2**20, 2**20]))

    _edit(good_file, widen)
    with pytest.raises(NeurohalError, match=r"'x'.*more than"):
        load_nir(good_file)


def test_metadata_from_a_newer_convention_is_refused():
    g = _quiet(to_nir, _analog_linear_graph())
    g.metadata["neurohal"]["convention"] = 99
    with pytest.raises(ConversionError, match="convention 99, newer"):
        from_nir(g)


def test_edges_into_an_input_or_to_missing_nodes_are_refused():
    g = _nir_chain(("lif", _snntorch_lif(0.5, 1.0, 2)), size=2)
    g.edges.append(("lif", "input"))
    with pytest.raises(ConversionError, match="enters an Input node"):
        from_nir(g)
    g.edges[-1] = ("lif", "nowhere")
    with pytest.raises(ConversionError, match="does not join two nodes"):
        from_nir(g)


def test_a_file_that_does_not_finish_reading_is_refused(good_file, monkeypatch):
    """libhdf5 loops forever on some corrupted files; load_nir reads in a child process and
    gives up after READ_TIMEOUT_S (here so short that even a good file cannot finish)."""
    from neurohal import nir_interop

    monkeypatch.setattr(nir_interop, "READ_TIMEOUT_S", 0.001)
    with pytest.raises(IRFormatError, match="did not finish within"):
        load_nir(good_file)
