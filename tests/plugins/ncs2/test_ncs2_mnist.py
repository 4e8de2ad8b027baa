"""ANN accuracy on MNIST through the ncs2 device (FP16 weights) within 0.1 points of the float
ANN run by the reference interpreter. The ANN is a small MLP trained here with torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")

import neurohal as nh  # noqa: E402
from neurohal import ir, reference  # noqa: E402
from neurohal.errors import DatasetError  # noqa: E402


def _mnist(split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        return nh.datasets.mnist(split, limit=limit)
    except DatasetError as exc:
        pytest.skip(f"MNIST not available: {exc}")


@pytest.fixture(scope="module")
def mlp() -> ir.Graph:
    x, y = _mnist("train", 10000)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.as_tensor(np.array(x)), torch.as_tensor(np.array(y))
    for _ in range(3):
        for idx in torch.randperm(len(xt)).split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    fc1, fc2 = model[1], model[3]
    return ir.chain(
        ir.Input(name="image", shape=(1, 28, 28)),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=fc1.weight.detach().numpy(), bias=fc1.bias.detach().numpy()),
        ir.ReLU(name="relu"),
        ir.Dense(name="fc2", weight=fc2.weight.detach().numpy(), bias=fc2.bias.detach().numpy()),
        ir.Output(name="logits"),
    )


def _accuracies(ncs2, graph: ir.Graph, limit: int | None) -> tuple[float, float]:
    x, y = _mnist("test", limit)
    float_ann = reference.run(graph, x).outputs["logits"].argmax(axis=1)
    on_ncs2 = ncs2.run(ncs2.compile(graph), x).output().argmax(axis=1)
    return 100 * float(np.mean(float_ann == y)), 100 * float(np.mean(on_ncs2 == y))


def test_mnist_accuracy_2000_images_within_a_tenth_of_a_point(ncs2, mlp):
    float_acc, ncs2_acc = _accuracies(ncs2, mlp, 2000)
    assert float_acc > 90
    assert abs(ncs2_acc - float_acc) <= 0.1


@pytest.mark.slow
def test_mnist_accuracy_full_test_set_within_a_tenth_of_a_point(ncs2, mlp):
    float_acc, ncs2_acc = _accuracies(ncs2, mlp, None)
    assert abs(ncs2_acc - float_acc) <= 0.1
