"""The cpu_sim device contract: discovery, probe, supports, compile options, clean errors."""

from __future__ import annotations

import importlib.metadata

import attrs
import numpy as np
import pytest
import torch

import neurohal as nh
from neurohal import ir, reference
from neurohal.device import Artifact
from neurohal.errors import (
    DeviceUnavailableError,
    InputError,
    IRValidationError,
    NeurohalError,
    UnsupportedGraphError,
)

from .graphs import spiking_examples


@attrs.frozen(kw_only=True)
class _Mystery(ir.Node):
    """A node type cpu_sim has never heard of (underscore: kept out of the registry)."""

    domain = "analog"


def _dense_snn() -> ir.Graph:
    rng = np.random.default_rng(0)
    return ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=rng.normal(size=(4, 6)).astype(np.float32)),
        ir.IF(name="if1", v_threshold=0.5),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


X = np.random.default_rng(1).random((3, 6)).astype(np.float32)


def test_registered_through_the_entry_point():
    device = nh.device("cpu_sim")
    assert type(device).__name__ == "CpuSimDevice"


def test_probe_reports_torch_threads_cuda_and_rapl(cpu_sim):
    availability = cpu_sim.probe()
    assert availability.ok
    details = availability.details
    assert details["torch"] == torch.__version__
    assert details["numba"] == importlib.metadata.version("numba")
    assert details["threads"] == torch.get_num_threads()
    assert details["cuda"] == torch.cuda.is_available()
    assert details["rapl"]  # readable zones, or the reason they are not


def test_supports_names_the_unsupported_node(cpu_sim):
    graph = ir.chain(ir.Input(name="x", shape=(3,)), _Mystery(name="odd"), ir.Output(name="out"))
    report = cpu_sim.supports(graph)
    assert [n.node for n in report.unsupported] == ["odd"]
    assert "_Mystery" in report.unsupported[0].reason
    with pytest.raises(UnsupportedGraphError, match="odd"):
        cpu_sim.compile(graph)


def test_compile_reports_how_each_node_runs(cpu_sim):
    artifact = cpu_sim.compile(_dense_snn())
    assert artifact.report["schedule"] == {
        "x": "once per batch",
        "enc": "once per batch",
        "fc": "once per batch",
        "if1": "step loop",
        "readout": "step loop",
        "out": "time-batched",
    }
    assert artifact.options["dtype"] == "float32"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"dtype": "float16"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"time_chunk": 2.5}, "time_chunk"),
        ({"warmup": -1}, "warmup"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_compile_options_are_named(cpu_sim, options, fragment):
    with pytest.raises(InputError, match=fragment):
        cpu_sim.compile(_dense_snn(), **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error(cpu_sim):
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        cpu_sim.compile(_dense_snn(), device="cuda")


@pytest.mark.parametrize(
    ("inputs", "timesteps", "fragment"),
    [
        (X[:, :5], 4, "shape"),
        (X.astype(str), 4, "dtype"),
        (np.where(X > 0.5, np.nan, X), 4, "NaN"),
        (X, 0, "timesteps"),
        (X, -3, "timesteps"),
        (X, None, "timesteps"),
        (X, 2.0, "timesteps"),
        (X[:0], 4, "no samples"),
        ({"y": X}, 4, "expects"),
    ],
)
def test_bad_inputs_raise_input_error(cpu_sim, inputs, timesteps, fragment):
    artifact = cpu_sim.compile(_dense_snn())
    with pytest.raises(InputError, match=fragment):
        cpu_sim.run(artifact, inputs, timesteps)
    with pytest.raises(InputError, match=fragment):
        cpu_sim.measure(artifact, inputs, timesteps)


def test_artifact_of_another_device_is_refused(cpu_sim):
    foreign = Artifact("ncs2", _dense_snn())
    with pytest.raises(InputError, match="ncs2"):
        cpu_sim.run(foreign, X, 4)


def test_recording_an_unknown_node_names_it(cpu_sim):
    artifact = cpu_sim.compile(_dense_snn())
    with pytest.raises(IRValidationError, match="nope"):
        cpu_sim.trace(artifact, X, 4, record=["nope"])


def test_saved_artifact_runs_the_same(cpu_sim, tmp_path):
    artifact = cpu_sim.compile(_dense_snn(), dtype="float64", batch_size=2)
    loaded = Artifact.load(artifact.save(tmp_path / "a.nhart"))
    assert loaded.options == artifact.options
    want = reference.run(_dense_snn(), X, 7).outputs["out"]
    np.testing.assert_allclose(cpu_sim.run(loaded, X, 7).outputs["out"], want, rtol=1e-12)


def test_analog_graph_ignores_timesteps_like_the_reference(cpu_sim):
    rng = np.random.default_rng(2)
    graph = ir.chain(
        ir.Input(name="x", shape=(6,)),
        ir.Dense(name="fc", weight=rng.normal(size=(2, 6))),
        ir.Output(name="out"),
    )
    result = cpu_sim.run(cpu_sim.compile(graph, dtype="float64"), X, 5)
    assert result.timesteps is None
    np.testing.assert_allclose(result.outputs["out"], reference.run(graph, X).outputs["out"])


def test_every_error_is_a_neurohal_error(cpu_sim):
    artifact = cpu_sim.compile(_dense_snn())
    for bad in (X[:, :2], X.astype(object)):
        with pytest.raises(NeurohalError):
            cpu_sim.run(artifact, bad, 3)


def test_runs_inside_torch_inference_mode(cpu_sim):
    """Callers may hold torch.inference_mode(); fan-out counting must not need autograd."""
    example = spiking_examples(np.random.default_rng(9))[0]
    want = reference.run(example.graph, example.inputs, example.timesteps)
    artifact = cpu_sim.compile(example.graph, dtype="float64")
    with torch.inference_mode():
        got = cpu_sim.run(artifact, example.inputs, example.timesteps)
    assert got.counters == want.counters


@pytest.mark.parametrize(("steps", "batch"), [(1000, 64), (7, 3), (128, 1)])
def test_time_chunks_cover_every_step_within_the_memory_budget(steps, batch):
    from neurohal_cpu_sim.engine import STEP_ELEMENT_BUDGET, Program
    from neurohal_cpu_sim.settings import Settings

    graph = spiking_examples(np.random.default_rng(0))[0].graph
    program = Program(graph, Settings())
    largest = program.stored_per_step(set())
    chunks = program.chunks(steps, batch, set())
    starts = [t0 for t0, _ in chunks]
    assert starts == sorted(starts) and starts[0] == 0
    assert sum(n for _, n in chunks) == steps
    assert all(t0 + n == nxt for (t0, n), nxt in zip(chunks, [*starts[1:], steps], strict=True))
    assert all(n * batch * largest <= max(STEP_ELEMENT_BUDGET, batch * largest) for _, n in chunks)


def test_chunks_are_sized_by_the_values_a_run_stores():
    """A LeNet-like chain: conv1's value is static (stored once per batch) and if1's spikes
    are never stored while it runs fused with its pool; conv2 runs between two fused layers
    in sub-chunks, so the largest per-step value is fc's 5. Recording conv2 stores its
    8 x 6 x 6 output for the chunk (pool1's is 3 x 7 x 7); recording if1 its 3 x 14 x 14
    spikes."""
    from neurohal_cpu_sim.engine import STEP_ELEMENT_BUDGET, Program
    from neurohal_cpu_sim.settings import Settings

    rng = np.random.default_rng(3)
    graph = ir.chain(
        ir.Input(name="x", shape=(1, 14, 14)),
        ir.Encoder(name="enc"),
        ir.Conv2d(name="conv1", weight=rng.normal(size=(3, 1, 3, 3)), padding=1),
        ir.IF(name="if1", v_threshold=1.0),
        ir.AvgPool2d(name="pool1", kernel=2, stride=2),
        ir.Conv2d(name="conv2", weight=rng.normal(size=(8, 3, 2, 2))),
        ir.IF(name="if2", v_threshold=1.0),
        ir.AvgPool2d(name="pool2", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=rng.normal(size=(5, 72))),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )
    program = Program(graph, Settings())
    assert program.stored_per_step({"out"}) == 5
    assert program.stored_per_step({"out", "conv2"}) == 8 * 6 * 6
    assert program.stored_per_step({"out", "if1"}) == 3 * 14 * 14
    batch = 16
    most = STEP_ELEMENT_BUDGET // (batch * 288)
    assert program.chunks(10**6, batch, {"out", "conv2"})[0][1] == most


def test_a_graphs_program_is_kept_for_its_settings_only():
    from neurohal_cpu_sim.device import _program
    from neurohal_cpu_sim.settings import Settings

    graph = ir.chain(
        ir.Input(name="x", shape=(3,)), ir.IF(name="n", v_threshold=1.0), ir.Output(name="out")
    )
    first = _program(graph, Settings())
    assert _program(graph, Settings()) is first
    assert _program(graph, Settings(dtype="float64")) is not first
    same_nodes = ir.Graph(graph.nodes, graph.edges)  # an equal graph, another object
    assert _program(same_nodes, Settings()) is not _program(graph, Settings())
