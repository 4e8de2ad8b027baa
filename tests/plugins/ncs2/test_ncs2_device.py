"""The ncs2 device: OpenVINO IR with FP16 weights, outputs and counters against the reference
interpreter, clear errors for what it cannot run, and the provenance of every figure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs
import numpy as np
import pytest

openvino = pytest.importorskip("openvino")

from neurohal import ir, reference  # noqa: E402
from neurohal.device import Artifact  # noqa: E402
from neurohal.errors import (  # noqa: E402
    DeviceUnavailableError,
    InputError,
    PluginError,
    UnsupportedGraphError,
)
from neurohal_ncs2 import openvino_backend  # noqa: E402
from neurohal_ncs2.device import RUN_BATCH  # noqa: E402

RNG = np.random.default_rng(11)
NO_MYRIAD = not openvino_backend.info().has_myriad


def _w(*shape: int) -> np.ndarray:
    return (RNG.normal(size=shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _lenet_like() -> ir.Graph:
    return ir.chain(
        ir.Input(name="img", shape=(1, 12, 12)),
        ir.Conv2d(name="c1", weight=_w(4, 1, 3, 3), bias=_w(4), padding=(1, 0, 1, 2)),
        ir.ReLU(name="r1"),
        ir.SumPool2d(name="sp", kernel=2, stride=2),
        ir.Conv2d(name="c2", weight=_w(6, 2, 3, 3), groups=2, dilation=2),
        ir.Clip(name="clip", min=0.0, max=3.0),
        ir.MaxPool2d(name="mp", kernel=2, stride=1, padding=1),
        ir.Scale(name="sc", scale=np.linspace(0.5, 1.5, 6)),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(10, 54), bias=_w(10)),
        ir.Softmax(name="soft"),
        ir.Output(name="probs"),
    )


@pytest.fixture(scope="module")
def lenet(ncs2):
    graph = _lenet_like()
    return graph, ncs2.compile(graph)


def test_artifact_holds_openvino_ir_with_fp16_weights(lenet):
    graph, artifact = lenet
    xml = artifact.arrays["openvino_xml"].tobytes()
    weights = artifact.arrays["openvino_bin"].tobytes()
    assert artifact.arrays["openvino_xml"].dtype == np.uint8
    root = ET.fromstring(xml)
    assert root.tag == "net"
    consts = [layer for layer in root.iter("layer") if layer.get("type") == "Const"]
    f16 = [c for c in consts if c.find("data").get("element_type") == "f16"]
    f16_values = sum(int(c.find("data").get("size")) // 2 for c in f16)
    # every weight, bias and scale of the graph is stored in half precision
    assert f16_values >= graph.parameter_count()
    assert len(weights) < 4 * graph.parameter_count()
    tensor = openvino.Tensor(np.frombuffer(weights, np.uint8))
    model = openvino.Core().read_model(xml.decode(), tensor)
    assert [p.get_any_name() for p in model.inputs] == ["img"]


def test_outputs_equal_the_reference_on_fp16_rounded_weights(ncs2, lenet):
    # the stand-in computes in FP32 on FP16 weights: the reference run on the same graph with
    # its arrays rounded to float16 must agree to FP32 precision
    graph, artifact = lenet
    x = RNG.normal(size=(5, 1, 12, 12)).astype(np.float32)
    rounded = graph.replace_nodes(
        attrs.evolve(
            n,
            **{
                k: getattr(n, k).astype(np.float16).astype(np.float32)
                for k in ("weight", "bias", "scale")
                if getattr(n, k, None) is not None
            },
        )
        for n in graph.nodes
    )
    got = ncs2.run(artifact, x).output()
    np.testing.assert_allclose(got, reference.run(rounded, x).outputs["probs"], atol=2e-6)
    assert ncs2.tolerance.close(got, reference.run(graph, x).outputs["probs"])


def test_counters_are_the_reference_macs(ncs2, lenet):
    graph, artifact = lenet
    x = RNG.normal(size=(3, 1, 12, 12)).astype(np.float32)
    want = reference.run(graph, x).counters
    got = ncs2.run(artifact, x).counters
    assert got == {layer: {"macs": c["macs"]} for layer, c in want.items() if "macs" in c}


def test_batches_larger_than_one_request(ncs2, lenet):
    graph, artifact = lenet
    x = RNG.normal(size=(RUN_BATCH + 7, 1, 12, 12)).astype(np.float32)
    result = ncs2.run(artifact, x)
    assert result.samples == RUN_BATCH + 7
    assert ncs2.tolerance.close(result.output(), reference.run(graph, x).outputs["probs"])


@pytest.mark.skipif(not NO_MYRIAD, reason="a MYRIAD device is present")
def test_stand_in_is_said_in_probe_and_notes(ncs2, lenet):
    availability = ncs2.probe()
    assert availability.ok and availability.details["runs_on"] == "CPU"
    assert "no NCS2" in availability.reason and "stand-in" in availability.reason
    _, artifact = lenet
    notes = ncs2.run(artifact, np.zeros((1, 1, 12, 12))).notes
    assert any("CPU as a numerical stand-in" in n for n in notes)


@pytest.mark.skipif(not NO_MYRIAD, reason="a MYRIAD device is present")
def test_measure_without_a_stick_estimates_the_ncs2_and_measures_the_host(ncs2, lenet):
    _, artifact = lenet
    m = ncs2.measure(artifact, RNG.normal(size=(4, 1, 12, 12)).astype(np.float32))
    for name in ("latency", "power_static", "power_dynamic", "energy"):
        q = getattr(m, name)
        assert q.provenance == "estimated" and q.value > 0
    assert "QuTiBench" in m.latency.method and "QuTiBench" in m.power_static.method
    # energy per inference is the total power times the latency (hand-computed)
    total = m.power_static.value + m.power_dynamic.value
    assert m.energy.value == pytest.approx(total * m.latency.value)
    host = m.extra["latency_host_cpu"]
    assert host.provenance == "measured" and len(host.samples) >= 20
    assert host.value == pytest.approx(float(np.median(host.samples)))


def test_spiking_graph_is_refused_naming_the_nodes(ncs2):
    graph = ir.chain(
        ir.Input(name="x", shape=(4,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=_w(3, 4)),
        ir.IF(name="neurons", v_threshold=1.0),
        ir.Readout(name="readout"),
        ir.Output(name="y"),
    )
    report = ncs2.supports(graph)
    assert {n.node for n in report.unsupported} == {"enc", "neurons", "readout"}
    with pytest.raises(UnsupportedGraphError, match="neurons.*runs the ANN"):
        ncs2.compile(graph)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 1, 12, 11)), np.zeros((1, 12, 12)), np.full((1, 1, 12, 12), np.nan)],
    ids=["wrong_width", "no_batch_dim", "nan"],
)
def test_bad_inputs_raise_input_error(ncs2, lenet, bad):
    _, artifact = lenet
    with pytest.raises(InputError):
        ncs2.run(artifact, bad)


def test_timesteps_and_unknown_options_are_refused(ncs2, lenet):
    graph, artifact = lenet
    with pytest.raises(InputError, match="no timesteps"):
        ncs2.run(artifact, np.zeros((1, 1, 12, 12)), timesteps=4)
    with pytest.raises(PluginError, match="unknown option"):
        ncs2.compile(graph, precision="fp32")


@pytest.mark.skipif(not NO_MYRIAD, reason="a MYRIAD device is present")
def test_forced_myriad_without_a_stick_is_a_clear_error(ncs2, lenet, tmp_path):
    graph, artifact = lenet
    with pytest.raises(DeviceUnavailableError, match=r"MYRIAD.*2022\.3"):
        ncs2.compile(graph, device="MYRIAD")
    # an artifact compiled for MYRIAD on an NCS2 host and carried here fails the same way
    carried = Artifact(
        artifact.device, artifact.graph, artifact.arrays, artifact.report, {"device": "MYRIAD"}
    )
    loaded = Artifact.load(carried.save(tmp_path / "carried.nhart"))
    with pytest.raises(DeviceUnavailableError, match="MYRIAD"):
        ncs2.run(loaded, np.zeros((1, 1, 12, 12)))
