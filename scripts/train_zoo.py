"""Train the MNIST model zoo, export it to ONNX and record it in core/zoo/models.json.

Usage: ``python scripts/train_zoo.py [--only NAME ...] [--out DIR]`` (needs torch, onnx,
onnxruntime and an importable ``neurohal``, e.g. after ``pip install -e .``).

The models are made for ANN-to-SNN conversion. Each hidden activation is trained as a
quantization clip-floor-shift (QCFS) unit (Bu et al., ICLR 2022),
``h(x) = lam * clip(floor(x * L / lam + 0.5) / L, 0, 1)`` with a trainable ``lam`` per layer and a
straight-through gradient, which keeps converted SNNs accurate at few timesteps. The export
replaces each QCFS unit by a plain ``Clip(min=0, max=lam)``; the ONNX file is the truth, so its
accuracy is measured with onnxruntime on the full MNIST test set and recorded with ``lam``.

The ONNX graphs are written by hand from the trained modules (not by ``torch.onnx.export``) so
that they hold only standard operators with readable node names, BatchNormalization stays
unfused, and the files do not depend on which torch exporter is installed.
Training is deterministic: fixed seeds, deterministic algorithms, 2 CPU threads; a rerun on the
same software and CPU reproduces the files byte for byte. On a busy machine, run it with
``OMP_WAIT_POLICY=PASSIVE``: same results, several times faster.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from neurohal import datasets

ZOO_DIR = Path(__file__).resolve().parents[1] / "core" / "zoo"
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17, so older runtimes can read the files
THREADS = 2
SEED = 0
LEVELS = 8
CALIBRATION_QUANTILE = 0.99


class QCFS(nn.Module):
    """Quantization clip-floor-shift activation with a trainable clip value ``lam``.

    ``quantize=False`` turns it into the exported ``clip(x, 0, lam)``; ``calibrating=True``
    sets ``lam`` from the next batch so training starts at the data's scale.
    """

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(1.0))
        self.quantize = True
        self.calibrating = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            with torch.no_grad():
                positive = x[x > 0]
                self.lam.fill_(torch.quantile(positive, CALIBRATION_QUANTILE).item())
        if not self.quantize:
            return torch.minimum(torch.relu(x), self.lam)
        y = torch.clamp(x / self.lam, 0.0, 1.0) * self.levels + 0.5
        y = y + (torch.floor(y) - y).detach()  # floor with a straight-through gradient
        return y / self.levels * self.lam


class ResidualBlock(nn.Module):
    """``act2(bn2(conv2(act1(bn1(conv1(x))))) + x)``: two 3x3 convolutions, identity skip."""

    def __init__(self, channels: int, levels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = QCFS(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(h)) + x)


def _seq(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(collections.OrderedDict(layers))


def build_mlp(levels: int) -> nn.Module:
    return _seq(
        flatten=nn.Flatten(),
        fc1=nn.Linear(784, 256), act1=QCFS(levels),
        fc2=nn.Linear(256, 128), act2=QCFS(levels),
        fc3=nn.Linear(128, 10),
    )  # fmt: skip


def build_lenet5(levels: int) -> nn.Module:
    return _seq(
        conv1=nn.Conv2d(1, 6, 5, padding=2), act1=QCFS(levels), pool1=nn.AvgPool2d(2),
        conv2=nn.Conv2d(6, 16, 5), act2=QCFS(levels), pool2=nn.AvgPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(400, 120), act3=QCFS(levels),
        fc2=nn.Linear(120, 84), act4=QCFS(levels),
        fc3=nn.Linear(84, 10),
    )  # fmt: skip


def build_cnn_maxpool(levels: int) -> nn.Module:
    return _seq(
        conv1=nn.Conv2d(1, 16, 3, padding=1), act1=QCFS(levels), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(16, 32, 3, padding=1), act2=QCFS(levels), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def build_resnet_small(levels: int) -> nn.Module:
    return _seq(
        conv1=nn.Conv2d(1, 16, 3, padding=1), bn1=nn.BatchNorm2d(16), act1=QCFS(levels),
        pool1=nn.AvgPool2d(2),
        block1=ResidualBlock(16, levels),
        pool2=nn.AvgPool2d(2),
        conv2=nn.Conv2d(16, 32, 3, padding=1), bn2=nn.BatchNorm2d(32), act2=QCFS(levels),
        block2=ResidualBlock(32, levels),
        gap=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(32, 10),
    )  # fmt: skip


MODELS: dict[str, dict] = {
    "mlp": {
        "build": build_mlp,
        "description": "Fully connected 784-256-128-10 network.",
        "architecture": "Flatten - Gemm 784->256 - Clip - Gemm 256->128 - Clip - Gemm 128->10",
        "epochs": 8,
        "batch_size": 128,
        "lr": 1e-3,
    },
    "lenet5": {
        "build": build_lenet5,
        "description": "LeNet-5 with average pooling.",
        "architecture": (
            "Conv 6@5x5 pad 2 - Clip - AveragePool 2 - Conv 16@5x5 - Clip - AveragePool 2 - "
            "Flatten - Gemm 400->120 - Clip - Gemm 120->84 - Clip - Gemm 84->10"
        ),
        "epochs": 6,
        "batch_size": 128,
        "lr": 2e-3,
    },
    "cnn_maxpool": {
        "build": build_cnn_maxpool,
        "description": "Small CNN with max pooling.",
        "architecture": (
            "Conv 16@3x3 pad 1 - Clip - MaxPool 2 - Conv 32@3x3 pad 1 - Clip - MaxPool 2 - "
            "Flatten - Gemm 1568->10"
        ),
        "epochs": 5,
        "batch_size": 128,
        "lr": 8e-3,
    },
    "resnet_small": {
        "build": build_resnet_small,
        "description": (
            "Small residual network: two identity-skip residual blocks, average pooling, "
            "global average pooling; BatchNormalization left unfused in the ONNX file."
        ),
        "architecture": (
            "Conv 16@3x3 pad 1 - BN - Clip - AveragePool 2 - ResBlock(16) - AveragePool 2 - "
            "Conv 32@3x3 pad 1 - BN - Clip - ResBlock(32) - GlobalAveragePool - Flatten - "
            "Gemm 32->10; ResBlock(c) = Clip(BN(Conv c@3x3(Clip(BN(Conv c@3x3(x))))) + x)"
        ),
        "epochs": 4,
        "batch_size": 128,
        "lr": 4e-3,
        "train_levels": (4, 8, 16, 0),
    },
}


def qcfs_units(model: nn.Module) -> list[QCFS]:
    return [m for m in model.modules() if isinstance(m, QCFS)]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: dict) -> None:
    """Adam with a per-step cosine schedule, QCFS clip values calibrated on the first batch."""
    gen = torch.Generator().manual_seed(SEED)
    batch_size, epochs = recipe["batch_size"], recipe["epochs"]
    steps_per_epoch = -(-len(x) // batch_size)
    model.train()
    for unit in qcfs_units(model):
        unit.calibrating = True
    with torch.no_grad():
        model(x[torch.randperm(len(x), generator=gen)[:1024]])
    for unit in qcfs_units(model):
        unit.calibrating = False
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    choices = recipe.get("train_levels", ())
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if choices:
                _set_levels(model, choices[int(torch.randint(len(choices), (1,), generator=gen))])
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", file=sys.stderr)
    if choices:
        _set_levels(model, recipe.get("levels", LEVELS))


def _set_levels(model: nn.Module, levels: int) -> None:
    """Quantize every QCFS unit to ``levels`` levels (0: the plain clip, unquantized)."""
    for unit in qcfs_units(model):
        unit.levels = levels or unit.levels
        unit.quantize = levels > 0


@torch.no_grad()
def torch_logits(model: nn.Module, x: torch.Tensor, quantize: bool) -> np.ndarray:
    model.eval()
    for unit in qcfs_units(model):
        unit.quantize = quantize
    out = torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)]).numpy()
    for unit in qcfs_units(model):
        unit.quantize = True
    return out


def _pair(value: int | tuple[int, ...]) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


class OnnxWriter:
    """Emits a trained module tree as an opset-17 ONNX graph of standard operators."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.lambdas: dict[str, float] = {}

    def const(self, name: str, value: torch.Tensor | float) -> str:
        array = np.array(torch.as_tensor(value).detach().numpy(), dtype=np.float32, order="C")
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def emit(self, module: nn.Module, x: str, name: str) -> str:
        """Append the nodes computing ``module(x)`` and return the output tensor's name."""
        emitter = self._EMITTERS.get(type(module))
        if emitter is None:
            raise TypeError(f"{name}: no ONNX emitter for {type(module).__name__}")
        return emitter(self, module, x, name)

    def _sequential(self, m: nn.Sequential, x: str, name: str) -> str:
        for child_name, child in m.named_children():
            x = self.emit(child, x, f"{name}.{child_name}" if name else child_name)
        return x

    def _residual(self, m: ResidualBlock, x: str, name: str) -> str:
        h = x
        for part in ("conv1", "bn1", "act1", "conv2", "bn2"):
            h = self.emit(getattr(m, part), h, f"{name}.{part}")
        return self.emit(m.act2, self.node("Add", [h, x], f"{name}.add"), f"{name}.act2")

    def _conv(self, m: nn.Conv2d, x: str, name: str) -> str:
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            raise TypeError(f"{name}: only explicit zero padding is exported")
        ph, pw = m.padding
        inputs = [x, self.const(f"{name}.weight", m.weight)]
        if m.bias is not None:
            inputs.append(self.const(f"{name}.bias", m.bias))
        return self.node(
            "Conv", inputs, name, kernel_shape=list(m.kernel_size), pads=[ph, pw, ph, pw],
            strides=list(m.stride), dilations=list(m.dilation), group=m.groups,
        )  # fmt: skip

    def _linear(self, m: nn.Linear, x: str, name: str) -> str:
        inputs = [x, self.const(f"{name}.weight", m.weight), self.const(f"{name}.bias", m.bias)]
        return self.node("Gemm", inputs, name, transB=1)

    def _flatten(self, m: nn.Flatten, x: str, name: str) -> str:
        if m.start_dim != 1 or m.end_dim != -1:
            raise TypeError(f"{name}: only Flatten(start_dim=1) is exported")
        return self.node("Flatten", [x], name, axis=1)

    def _pool(self, m: nn.AvgPool2d | nn.MaxPool2d, x: str, name: str) -> str:
        if m.padding != 0 or m.ceil_mode:
            raise TypeError(f"{name}: only unpadded floor-mode pooling is exported")
        op = "MaxPool" if isinstance(m, nn.MaxPool2d) else "AveragePool"
        kernel, stride = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
        return self.node(op, [x], name, kernel_shape=kernel, strides=stride)

    def _global_pool(self, m: nn.AdaptiveAvgPool2d, x: str, name: str) -> str:
        if _pair(m.output_size) != [1, 1]:
            raise TypeError(f"{name}: only AdaptiveAvgPool2d(1) is exported")
        return self.node("GlobalAveragePool", [x], name)

    def _batchnorm(self, m: nn.BatchNorm2d, x: str, name: str) -> str:
        inputs = [x] + [
            self.const(f"{name}.{p}", getattr(m, p))
            for p in ("weight", "bias", "running_mean", "running_var")
        ]
        return self.node("BatchNormalization", inputs, name, epsilon=m.eps)

    def _qcfs(self, m: QCFS, x: str, name: str) -> str:
        lam = float(np.float32(m.lam.item()))
        if not lam > 0:
            raise ValueError(f"{name}: clip value {lam} is not positive")
        self.lambdas[name] = lam
        inputs = [x, self.const(f"{name}.min", 0.0), self.const(f"{name}.max", lam)]
        return self.node("Clip", inputs, name)

    _EMITTERS: dict[type, Callable[..., str]] = {
        nn.Sequential: _sequential,
        ResidualBlock: _residual,
        nn.Conv2d: _conv,
        nn.Linear: _linear,
        nn.Flatten: _flatten,
        nn.AvgPool2d: _pool,
        nn.MaxPool2d: _pool,
        nn.AdaptiveAvgPool2d: _global_pool,
        nn.BatchNorm2d: _batchnorm,
        QCFS: _qcfs,
    }


def export(model: nn.Module, name: str, description: str) -> tuple[onnx.ModelProto, dict]:
    """The ONNX model of ``model`` with Clip activations, and its clip values by node name."""
    writer = OnnxWriter()
    writer.emit(model, "input", "")
    writer.nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        writer.nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        writer.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="neurohal scripts/train_zoo.py",
        doc_string=description,
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto, writer.lambdas


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [session.run(["logits"], {"input": x[i : i + 1000]})[0] for i in range(0, len(x), 1000)]
    )


def _trained_as(spec: dict, levels: int) -> str:
    choices = spec.get("train_levels")
    if not choices:
        return f"QCFS with L={levels} levels (Bu et al., ICLR 2022)"
    drawn = ", ".join(str(c) if c else "unquantized clip" for c in choices)
    return (
        f"QCFS (Bu et al., ICLR 2022) with L drawn per batch from {{{drawn}}}, the same L in "
        f"every unit, so that the network is accurate at every T; evaluated at L={levels}"
    )


def make(name: str, out: Path, train_xy: tuple, test_xy: tuple) -> dict:
    """Train, export and evaluate one model; return its models.json entry."""
    spec = MODELS[name]
    torch.manual_seed(SEED)
    levels = spec.get("levels", LEVELS)
    model = spec["build"](levels)
    print(f"{name}: training", file=sys.stderr)
    started = time.perf_counter()
    train(model, *train_xy, spec)
    seconds = time.perf_counter() - started
    x_test, y_test = test_xy
    quantized_acc = float((torch_logits(model, x_test, True).argmax(1) == y_test.numpy()).mean())
    clip_logits = torch_logits(model, x_test, False)

    proto, lambdas = export(model, name, spec["description"])
    path = out / f"{name}.onnx"
    onnx.save(proto, path)
    logits = ort_logits(path, x_test.numpy())
    gap = float(np.abs(logits - clip_logits).max())
    if gap > 1e-3:
        raise RuntimeError(f"{name}: onnxruntime and torch logits differ by {gap}")
    accuracy = float((logits.argmax(1) == y_test.numpy()).mean())
    print(f"{name}: {seconds:.0f} s, ONNX test accuracy {accuracy:.4f}", file=sys.stderr)
    return {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "description": spec["description"],
        "architecture": spec["architecture"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "input": {
            "name": "input",
            "shape": ["N", 1, 28, 28],
            "dtype": "float32",
            "preprocessing": "pixel / 255 in [0, 1], no mean/std normalization",
        },
        "output": {"name": "logits", "shape": ["N", 10], "note": "raw logits, no Softmax"},
        "onnx_ops": sorted({n.op_type for n in proto.graph.node}),
        "opset": OPSET,
        "ir_version": IR_VERSION,
        "activation": {
            "trained_as": _trained_as(spec, levels),
            "levels": levels,
            "exported_as": "Clip(min=0, max=lambda)",
            "lambdas": lambdas,
        },
        "training": {
            "dataset": "MNIST train, 60000 images",
            "epochs": spec["epochs"],
            "batch_size": spec["batch_size"],
            "seed": SEED,
            "optimizer": f"Adam lr={spec['lr']}, cosine annealing to 0 per step",
            "loss": "cross-entropy",
            "lambda_init": f"{CALIBRATION_QUANTILE} quantile of positive pre-activations "
            "on 1024 training images",
            "threads": THREADS,
            "deterministic": True,
            "seconds": round(seconds, 1),
        },
        "accuracy": {
            "test": accuracy,
            "test_qcfs_torch": quantized_acc,
            "evaluated_on": "MNIST test, 10000 images, onnxruntime on the exported file",
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(MODELS), help="repeatable")
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help="zoo directory")
    args = parser.parse_args(argv)

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    x, y = datasets.mnist("train")
    train_xy = (torch.tensor(x), torch.tensor(y))
    x, y = datasets.mnist("test")
    test_xy = (torch.tensor(x), torch.tensor(y))

    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "models.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"models": {}}
    for name in args.only or list(MODELS):
        index["models"][name] = make(name, args.out, train_xy, test_xy)
        index["models"] = dict(sorted(index["models"].items()))
        index_path.write_text(json.dumps(index, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
