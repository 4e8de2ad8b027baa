"""loihi compile: time and peak memory as the network grows, and resource reports of large nets.

Part 1 (scaling): one convolutional SNN (conv 16 - IF - conv 32 - IF - avgpool - conv 64 - IF
- avgpool - flatten - dense 10 - readout) at input sizes 32, 64 and 128 pixels: 1x, 4x and 16x
the neurons. Each is compiled for Loihi 1 (quantization + core mapping + resource report);
compile time is the host clock, peak memory the Python allocations traced by tracemalloc,
both measured in this run. Part 2 (mapping): resource reports of VGG-16- and ResNet-18-sized
SNNs (224 x 224 x 3 input, random weights, average pooling in place of max pooling, which
Loihi runs only as an extra layer of OR neurons per pool) for Loihi 1 (two-compartment soft
reset, the default, and single-compartment reset to zero) and Loihi 2. Results go
to
``benchmarks/results/loihi_compile_scaling.json``.

Run: ``.venv/bin/python benchmarks/loihi_compile_scaling.py``
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from neurohal import ir
from neurohal_loihi.device import LoihiDevice

SIZES = (32, 64, 128)
RESULTS = Path(__file__).parent / "results" / "loihi_compile_scaling.json"


class Builder:
    """Chains IR nodes with unique names; ``skip`` adds a residual edge."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[ir.Node] = [ir.Input(name="x", shape=shape), ir.Encoder(name="enc")]
        self.edges: list[ir.Edge] = [ir.Edge("x", "enc")]
        self.last = "enc"

    def add(self, node: ir.Node, src: str | None = None) -> str:
        self.nodes.append(node)
        self.edges.append(ir.Edge(src or self.last, node.name))
        self.last = node.name
        return node.name

    def conv(
        self,
        name: str,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        pad: int = 0,
        src: str | None = None,
    ) -> str:
        weight = self.rng.normal(size=(cout, cin, k, k)).astype(np.float32) / np.sqrt(cin * k * k)
        return self.add(
            ir.Conv2d(
                name=name,
                weight=weight,
                bias=np.zeros(cout, np.float32),
                stride=stride,
                padding=pad,
            ),
            src,
        )

    def dense(self, name: str, fin: int, fout: int) -> str:
        weight = self.rng.normal(size=(fout, fin)).astype(np.float32) / np.sqrt(fin)
        return self.add(ir.Dense(name=name, weight=weight))

    def neuron(self, name: str) -> str:
        return self.add(ir.IF(name=name, v_threshold=1.0, v_init=0.5))

    def finish(self) -> ir.Graph:
        self.add(ir.Readout(name="readout"))
        self.add(ir.Output(name="out"))
        return ir.Graph(self.nodes, self.edges).validate()


def scaling_net(size: int) -> ir.Graph:
    b = Builder((3, size, size))
    b.conv("c1", 3, 16, 3, pad=1), b.neuron("n1")
    b.conv("c2", 16, 32, 3, pad=1), b.neuron("n2")
    b.add(ir.AvgPool2d(name="p2", kernel=2, stride=2))
    b.conv("c3", 32, 64, 3, pad=1), b.neuron("n3")
    b.add(ir.AvgPool2d(name="p3", kernel=2, stride=2))
    b.add(ir.Flatten(name="flat"))
    b.dense("fc", 64 * (size // 4) ** 2, 10)
    return b.finish()


def vgg16() -> ir.Graph:
    b = Builder((3, 224, 224))
    cin, side, index = 3, 224, 0
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        for _ in range(convs):
            index += 1
            b.conv(f"conv{index}", cin, width, 3, pad=1), b.neuron(f"if{index}")
            cin = width
        b.add(ir.AvgPool2d(name=f"pool{block + 1}", kernel=2, stride=2))
        side //= 2
    b.add(ir.Flatten(name="flat"))
    b.dense("fc1", 512 * side * side, 4096), b.neuron("if_fc1")
    b.dense("fc2", 4096, 4096), b.neuron("if_fc2")
    b.dense("fc3", 4096, 1000)
    return b.finish()


def resnet18() -> ir.Graph:
    b = Builder((3, 224, 224))
    b.conv("stem", 3, 64, 7, stride=2, pad=3), b.neuron("stem_if")
    b.add(ir.AvgPool2d(name="stem_pool", kernel=2, stride=2))
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage and block == 0 else 1
            tag = f"s{stage}b{block}"
            entry = b.last
            b.conv(f"{tag}_c1", cin, width, 3, stride=stride, pad=1, src=entry)
            b.neuron(f"{tag}_if1")
            main = b.conv(f"{tag}_c2", width, width, 3, pad=1)
            skip = entry
            if stride != 1 or cin != width:
                skip = b.conv(f"{tag}_down", cin, width, 1, stride=stride, src=entry)
            b.add(ir.Add(name=f"{tag}_add"), src=main)
            b.edges.append(ir.Edge(skip, f"{tag}_add"))
            b.neuron(f"{tag}_if2")
            cin = width
    b.add(ir.AvgPool2d(name="gap", kernel=7, stride=7))
    b.add(ir.Flatten(name="flat"))
    b.dense("fc", 512, 1000)
    return b.finish()


def summary(report: dict) -> dict:
    return {
        k: report[k]
        for k in ("chip", "cores", "chips", "neurons", "synapses", "synaptic_memory_bytes")
    }


def main() -> None:
    device = LoihiDevice("loihi1")
    scaling = []
    for size in SIZES:
        graph = scaling_net(size)
        tracemalloc.start()
        start = time.perf_counter()
        report = device.compile(graph).report
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        scaling.append({"input": size, "seconds": seconds, "peak_bytes": peak, **summary(report)})
        print(
            f"{size:4d}px: {report['neurons']:9d} neurons  compile {seconds:6.2f} s  "
            f"peak {peak / 2**20:7.1f} MiB  cores {report['cores']:5d}  chips {report['chips']}"
        )
    base = scaling[0]
    for row in scaling[1:]:
        print(
            f"x{row['neurons'] / base['neurons']:.0f} neurons: time x"
            f"{row['seconds'] / base['seconds']:.1f}, memory x"
            f"{row['peak_bytes'] / base['peak_bytes']:.1f}"
        )
    large = {}
    for name, build in (("vgg16", vgg16), ("resnet18", resnet18)):
        graph = build()
        for chip, soft in (("loihi1", True), ("loihi1", False), ("loihi2", True)):
            label = chip if soft else f"{chip}-reset-zero"
            start = time.perf_counter()
            report = LoihiDevice(chip).compile(graph, loihi1_soft_reset=soft).report
            row = {**summary(report), "seconds": time.perf_counter() - start}
            large[f"{name}/{label}"] = row
            print(
                f"{name:8s} {label:18s}: {row['neurons']:9d} neurons {row['synapses']:13d} "
                f"synapses  {row['cores']:6d} cores  {row['chips']:4d} chips  "
                f"({row['seconds']:.1f} s)"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"scaling": scaling, "large": large}, indent=2) + "\n")


if __name__ == "__main__":
    main()
