"""Every shipped zoo model (core/zoo/*.onnx) loads and matches onnxruntime on MNIST images."""

from pathlib import Path

import onnxruntime as ort
import pytest
from frontend_helpers import relative_error

import neurohal
from neurohal.frontends import check_onnx, load_onnx
from neurohal.reference import run

ZOO = sorted((Path(neurohal.__file__).parent / "zoo").glob("*.onnx"))


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_zoo_model_matches_onnxruntime(path):
    x, _ = neurohal.datasets.mnist("test", limit=16)
    assert check_onnx(path) == []
    graph = load_onnx(path)
    (ours,) = run(graph, x).outputs.values()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = session.run(None, {name: x})[0]
    assert ours.shape == expected.shape
    assert relative_error(ours, expected) <= 1e-4
    assert dict(graph.metadata)["source"]["file"] == path.name
