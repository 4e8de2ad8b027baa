"""Every shipped zoo ANN (core/zoo/*.onnx) on the ncs2 device matches the reference interpreter
within the device's FP16 tolerance on MNIST test images, with the same predicted classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

import neurohal as nh
from neurohal import reference
from neurohal.errors import DatasetError

ZOO = sorted((Path(nh.__file__).parent / "zoo").glob("*.onnx"))


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_model_matches_the_reference(ncs2, path):
    try:
        x, _ = nh.datasets.mnist("test", limit=64)
    except DatasetError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    graph = nh.load_onnx(path)
    want = reference.run(graph, x).outputs
    got = ncs2.run(ncs2.compile(graph), x).outputs
    for name, expected in want.items():
        assert ncs2.tolerance.close(got[name], expected), name
        assert np.mean(got[name].argmax(1) == expected.argmax(1)) >= 63 / 64
