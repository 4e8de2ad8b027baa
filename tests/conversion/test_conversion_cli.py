"""``neurohal convert`` through click's test runner, with ONNX files built in the test."""

import json
import re

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import neurohal as nh
from neurohal import reference
from neurohal.cli.convert import command


def _onnx_file(path, hidden_op="Relu", extra_ops=(), clip=(0.0, 1.0)):
    """Flatten -> Gemm 784->16 -> hidden op -> [extra ops] -> Gemm 16->10, saved at path."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.normal(size=(16, 784)) * 0.05).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.normal(size=16) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.normal(size=(10, 16)) * 0.3).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(10, np.float32), "b2"),
        numpy_helper.from_array(np.array(clip[0], np.float32), "lo"),
        numpy_helper.from_array(np.array(clip[1], np.float32), "hi"),
    ]
    hidden_inputs = ["h"] + (["lo", "hi"] if hidden_op == "Clip" else [])
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node(hidden_op, hidden_inputs, ["a0"], name="act"),
    ]
    for i, op in enumerate(extra_ops):
        nodes.append(helper.make_node(op, [f"a{i}"], [f"a{i + 1}"], name=f"bad{i}"))
    last = f"a{len(extra_ops)}"
    nodes.append(helper.make_node("Gemm", [last, "w2", "b2"], ["logits"], name="fc2", transB=1))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return str(path)


def test_convert_with_mnist_calibration(tmp_path):
    model = _onnx_file(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.nhir"
    result = CliRunner().invoke(
        command,
        [model, "--calib", "mnist:64", "--out", str(out), "--granularity", "layer", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["conversion"]["config"]["granularity"] == "layer"
    assert summary["conversion"]["calibration_samples"] == 64
    snn = nh.load(out)
    assert snn.kind == "snn"
    x, _ = nh.datasets.mnist("test", 8)
    ann = nh.load_onnx(model)
    ref_ann = reference.run(ann, x).outputs
    ref_snn = reference.run(snn, x, timesteps=64).outputs
    (name,) = ref_snn
    err = np.abs(ref_snn[name] - ref_ann[name]).mean()
    assert err < 0.1 * np.abs(ref_ann[name]).mean()


def test_clip_model_needs_no_calibration(tmp_path):
    model = _onnx_file(tmp_path / "clip.onnx", hidden_op="Clip")
    out = tmp_path / "clip.nhir"
    result = CliRunner().invoke(command, [model, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert nh.load(out).metadata["conversion"]["thresholds"]["act"]["source"] == "clip_bound"


def test_check_lists_every_unsupported_onnx_node(tmp_path):
    model = _onnx_file(tmp_path / "bad.onnx", extra_ops=("Sigmoid", "Tanh"))
    result = CliRunner().invoke(command, ["--check", model, "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)["unsupported"]
    assert {(p["name"], p["op"]) for p in found} == {("bad0", "Sigmoid"), ("bad1", "Tanh")}


def test_check_includes_the_converters_own_limits(tmp_path):
    model = _onnx_file(tmp_path / "hardtanh.onnx", hidden_op="Clip", clip=(-1.0, 1.0))
    result = CliRunner().invoke(command, ["--check", model])
    assert result.exit_code == 1
    assert "Clip" in result.stdout and "min=-1.0" in result.stdout
    good = _onnx_file(tmp_path / "good.onnx")
    assert CliRunner().invoke(command, ["--check", good]).exit_code == 0


@pytest.mark.parametrize(
    ("make_calib", "match"),
    [
        (lambda p: np.save(p, np.full((4, 1, 28, 28), np.nan)), "NaN"),
        (lambda p: np.save(p, np.zeros((4, 1, 20, 20))), r"needs \(N, \*\(1, 28, 28\)\)"),
    ],
)
def test_bad_calibration_fails_cleanly_and_writes_nothing(tmp_path, make_calib, match):
    model = _onnx_file(tmp_path / "tiny.onnx")
    calib = tmp_path / "calib.npy"
    make_calib(calib)
    out = tmp_path / "never.nhir"
    result = CliRunner().invoke(command, [model, "--calib", str(calib), "--out", str(out)])
    assert result.exit_code == 1
    assert re.search(match, result.output)
    assert not out.exists()
    assert list(tmp_path.glob("never*")) == []


def test_missing_calibration_is_a_clear_error(tmp_path):
    model = _onnx_file(tmp_path / "tiny.onnx")
    result = CliRunner().invoke(command, [model, "--out", str(tmp_path / "x.nhir")])
    assert result.exit_code == 1
    assert "need calibration data" in result.output


def test_bad_option_value(tmp_path):
    model = _onnx_file(tmp_path / "tiny.onnx")
    result = CliRunner().invoke(
        command, [model, "--calib", "mnist:8", "--out", str(tmp_path / "x.nhir"),
                  "--v-init", "2"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "v_init must be in [0, 1)" in result.output


def test_calibrate_for_a_timestep_budget(tmp_path):
    model = _onnx_file(tmp_path / "clip.onnx", hidden_op="Clip")
    out = tmp_path / "tuned.nhir"
    args = [model, "--calib", "mnist:32", "--calibrate-for", "8", "--out", str(out)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    meta = nh.load(out).metadata["conversion"]["bias_calibration"]
    assert (meta["timesteps"], meta["samples"]) == (8, 32)
    # the same SNN as the Python API makes: the CLI only forwards the option
    x, _ = nh.datasets.mnist("train", 32)
    config = nh.ConversionConfig(bias_calibration_timesteps=8)
    direct = nh.convert(nh.load_onnx(model), x, config)
    np.testing.assert_array_equal(nh.load(out).node("fc1").bias, direct.node("fc1").bias)
    missing = CliRunner().invoke(command, [model, "--calibrate-for", "8", "--out", str(out)])
    assert missing.exit_code != 0 and "calibration data" in missing.output
