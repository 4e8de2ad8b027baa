"""Small hand-built analog graphs (neurohal.ir) for the converter tests."""

import numpy as np

from neurohal import ir


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))


def lenet_like(seed: int = 0, activation: str = "relu") -> ir.Graph:
    """Conv-act-avgpool-conv-act-avgpool-flatten-dense-act-dense on (1, 8, 8) inputs."""
    rng = np.random.default_rng(seed)

    def act(name: str) -> ir.Node:
        return ir.ReLU(name=name) if activation == "relu" else ir.Clip(name=name, min=0, max=0.8)

    return ir.chain(
        ir.Input(name="x", shape=(1, 8, 8)),
        ir.Conv2d(
            name="conv1", weight=_w(rng, 4, 1, 3, 3) * 2, bias=rng.normal(size=4) * 0.1, padding=1
        ),
        act("act1"),
        ir.AvgPool2d(name="pool1", kernel=2, stride=2),
        ir.Conv2d(
            name="conv2", weight=_w(rng, 6, 4, 3, 3) * 2, bias=rng.normal(size=6) * 0.1, padding=1
        ),
        act("act2"),
        ir.AvgPool2d(name="pool2", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc1", weight=_w(rng, 12, 24) * 2, bias=rng.normal(size=12) * 0.1),
        act("act3"),
        ir.Dense(name="fc2", weight=_w(rng, 5, 12), bias=rng.normal(size=5) * 0.1),
        ir.Output(name="out"),
    )


def residual(seed: int = 0) -> ir.Graph:
    """conv-relu, then a residual block relu(conv(relu(conv(h))) + h), then concat with a
    second branch, pool, flatten, dense."""
    rng = np.random.default_rng(seed)
    nodes = [
        ir.Input(name="x", shape=(1, 6, 6)),
        ir.Conv2d(
            name="stem", weight=_w(rng, 3, 1, 3, 3) * 2, bias=rng.normal(size=3) * 0.1, padding=1
        ),
        ir.ReLU(name="h"),
        ir.Conv2d(name="b1", weight=_w(rng, 3, 3, 3, 3), bias=rng.normal(size=3) * 0.1, padding=1),
        ir.ReLU(name="b1_act"),
        ir.Conv2d(name="b2", weight=_w(rng, 3, 3, 3, 3), bias=rng.normal(size=3) * 0.1, padding=1),
        ir.Add(name="join"),
        ir.ReLU(name="block_out"),
        ir.Conv2d(name="side", weight=_w(rng, 2, 3, 1, 1), bias=rng.normal(size=2) * 0.1),
        ir.Clip(name="side_act", min=0, max=0.7),
        ir.Concat(name="cat", num_inputs=2, axis=0),
        ir.AvgPool2d(name="pool", kernel=3, stride=3),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 4, 20), bias=rng.normal(size=4) * 0.1),
        ir.Output(name="out"),
    ]
    edges = [
        ir.Edge("x", "stem"), ir.Edge("stem", "h"), ir.Edge("h", "b1"), ir.Edge("b1", "b1_act"),
        ir.Edge("b1_act", "b2"), ir.Edge("b2", "join"), ir.Edge("h", "join"),
        ir.Edge("join", "block_out"), ir.Edge("h", "side"), ir.Edge("side", "side_act"),
        ir.Edge("block_out", "cat", "input0"), ir.Edge("side_act", "cat", "input1"),
        ir.Edge("cat", "pool"), ir.Edge("pool", "flat"), ir.Edge("flat", "fc"),
        ir.Edge("fc", "out"),
    ]  # fmt: skip
    return ir.Graph(nodes, edges).validate()


def maxpool_net(seed: int = 0) -> ir.Graph:
    rng = np.random.default_rng(seed)
    return ir.chain(
        ir.Input(name="x", shape=(1, 8, 8)),
        ir.Conv2d(
            name="conv", weight=_w(rng, 4, 1, 3, 3) * 2, bias=rng.normal(size=4) * 0.1, padding=1
        ),
        ir.Clip(name="act", min=0, max=1.0),
        ir.MaxPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=_w(rng, 5, 64), bias=rng.normal(size=5) * 0.1),
        ir.Softmax(name="prob"),
        ir.Output(name="out"),
    )
