"""ANN accuracy on MNIST through the ncs2 device (FP16 weights) within 0.1 points of the float
ANN run by the reference interpreter. The ANN is a small MLP fitted here in numpy."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

import neurohal as nh
from neurohal import ir, reference
from neurohal.errors import DatasetError


def _mnist(split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        return nh.datasets.mnist(split, limit=limit)
    except DatasetError as exc:
        pytest.skip(f"MNIST not available: {exc}")


@pytest.fixture(scope="module")
def mlp() -> ir.Graph:
    """784-512-10 MLP: a fixed random ReLU layer and a ridge-regression readout (numpy, ~1 s)."""
    x, y = _mnist("train", 10000)
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(512, 784)) * 3 / np.sqrt(784)
    b1 = rng.normal(size=512) * 0.5
    hidden = np.maximum(np.reshape(x, (len(x), -1)) @ w1.T + b1, 0.0)
    targets = np.eye(10)[y]
    w2 = np.linalg.solve(hidden.T @ hidden + 0.1 * np.eye(512), hidden.T @ targets).T
    return ir.chain(
        ir.Input(name="image", shape=(1, 28, 28)),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=w1, bias=b1),
        ir.ReLU(name="relu"),
        ir.Dense(name="fc2", weight=w2),
        ir.Output(name="logits"),
    )


def _accuracies(ncs2, graph: ir.Graph, limit: int | None) -> tuple[float, float]:
    x, y = _mnist("test", limit)
    float_ann = reference.run(graph, x).outputs["logits"].argmax(axis=1)
    on_ncs2 = ncs2.run(ncs2.compile(graph), x).output().argmax(axis=1)
    return 100 * float(np.mean(float_ann == y)), 100 * float(np.mean(on_ncs2 == y))


def test_mnist_accuracy_2000_images_within_a_tenth_of_a_point(ncs2, mlp):
    float_acc, ncs2_acc = _accuracies(ncs2, mlp, 2000)
    assert float_acc > 85
    assert abs(ncs2_acc - float_acc) <= 0.1


@pytest.mark.slow
def test_mnist_accuracy_full_test_set_within_a_tenth_of_a_point(ncs2, mlp):
    float_acc, ncs2_acc = _accuracies(ncs2, mlp, None)
    assert abs(ncs2_acc - float_acc) <= 0.1
