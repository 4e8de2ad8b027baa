"""Multiply-accumulates per inference of every synapse layer, as `neurohal.reference` counts them.

The reference's ``macs`` is every weight use on a dense (all-ones) input: a Dense layer makes
``in * out`` of them, a convolution or pooling window one per real (not padded) input element it
covers, and Add, Concat and Scale one per element. The count does not depend on the input's
values, so it is computed once per graph at compile time and scaled by the number of samples.
"""

from __future__ import annotations

import numpy as np

from neurohal import ir, reference

LINEAR_TYPES = ("Dense",)
"""Layers the NCS2 runs as matrix-vector products (the rest as convolution-like layers)."""


def _uses(node: ir.Node, shape: tuple[int, ...]) -> int:
    ones = np.ones((1, *shape))
    if isinstance(node, ir.Dense):
        return int(node.weight.shape[0] * node.weight.shape[1])
    if isinstance(node, ir.Conv2d):
        kernel = np.ones_like(node.weight, dtype=np.float64)
        out = reference.conv2d(
            ones, kernel, None, node.stride, node.padding, node.dilation, node.groups
        )
        return round(float(out.sum()))
    if isinstance(node, (ir.AvgPool2d, ir.SumPool2d)):
        return round(
            float(reference.pool2d(ones, "sum", node.kernel, node.stride, node.padding).sum())
        )
    return int(np.prod(shape, dtype=np.int64))


def macs_per_inference(graph: ir.Graph) -> dict[str, int]:
    """``{layer: macs}`` for one sample, for every synapse node of ``graph``."""
    counts: dict[str, int] = {}
    for node in graph.topological_order():
        if node.domain != "synapse":
            continue
        sources = {p: graph.sources(node.name, p)[0] for p in node.ports()}
        counts[node.name] = sum(_uses(node, graph.shape(src)) for src in sources.values())
    return counts
