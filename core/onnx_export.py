"""Export an analog (ANN) IR graph to ONNX, so any ONNX runtime or toolchain can run it.

One IR node becomes one ONNX node (plus a ``Sum`` where several edges meet at a port, the IR's
fan-in sum) and its output tensor carries the IR node's name. Weights are stored as float32.
The batch dimension is the symbolic ``batch`` on every input and output. Mapping, exact in
real arithmetic to `neurohal.reference`:

- ``Dense`` -> ``Gemm(transB=1)``; ``Conv2d`` -> ``Conv`` (pads top, left, bottom, right);
- ``AvgPool2d`` -> ``AveragePool(count_include_pad=1)``; ``SumPool2d`` -> a depthwise ``Conv``
  with all-ones weights (a window sum with zero padding); ``MaxPool2d`` -> ``MaxPool``;
- ``Add`` -> ``Sum`` of its edges; ``Concat`` -> ``Concat`` (axis + 1 for the batch);
  ``Scale`` -> ``Mul`` by a scalar or a per-channel constant;
- ``ReLU`` -> ``Relu``; ``Clip`` -> ``Clip``; ``Softmax`` -> ``Softmax(axis=1)``;
  ``Flatten`` -> ``Flatten(axis=1)``; ``Reshape`` -> ``Reshape`` to ``(batch, *shape)``.

Spiking and boundary nodes (neurons, Encoder, Readout) have state over timesteps, which ONNX
cannot express: such graphs are refused, naming every offending node.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from neurohal.errors import ConversionError, UnsupportedGraphError
from neurohal.ir import (
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    MaxPool2d,
    Node,
    Output,
    ReLU,
    Reshape,
    Scale,
    Softmax,
    SumPool2d,
)

MIN_OPSET = 13
"""Softmax over one axis and Clip bounds as inputs need opset 13."""

BATCH = "batch"


class _Builder:
    """Collects ONNX nodes and initializers while walking the IR graph in order."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray, dtype: type = np.float32) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def port(self, node: Node, port: str) -> str:
        """The tensor arriving at ``port``: the single source, or the Sum of several."""
        sources = list(self.graph.sources(node.name, port))
        if len(sources) == 1:
            return sources[0]
        return self.op("Sum", sources, f"{node.name}:{port}:sum", f"{node.name}:{port}:sum")


def _refuse_spiking(graph: Graph) -> None:
    stateful = [n for n in graph.nodes if n.domain in ("spiking", "boundary")]
    if stateful:
        listed = "; ".join(
            f"{n.name!r} ({n.type_name}): {n.domain} node with state over timesteps"
            for n in stateful
        )
        raise UnsupportedGraphError(
            f"ONNX export covers analog graphs only, this graph is {graph.kind!r}: {listed}. "
            "Export the ANN the spiking graph was converted from."
        )


def _window(kernel: tuple[int, ...], stride: tuple[int, int], padding: tuple[int, ...]) -> dict:
    """ONNX window attributes; IR padding (top, left, bottom, right) is ONNX's pads order."""
    return {"kernel_shape": list(kernel), "strides": list(stride), "pads": list(padding)}


def _emit(b: _Builder, node: Node, shape_in: tuple[int, ...] | None) -> None:
    """Append the ONNX operators computing ``node``; their final output is named node.name."""
    name = node.name
    x = b.port(node, "input") if "input" in node.ports() else ""
    if isinstance(node, (Output, Add)):
        b.op("Identity", [x], name, name)
    elif isinstance(node, Dense):
        ins = [x, b.const(f"{name}.weight", node.weight)]
        if node.bias is not None:
            ins.append(b.const(f"{name}.bias", node.bias))
        b.op("Gemm", ins, name, name, transB=1)
    elif isinstance(node, Conv2d):
        ins = [x, b.const(f"{name}.weight", node.weight)]
        if node.bias is not None:
            ins.append(b.const(f"{name}.bias", node.bias))
        window = _window(node.weight.shape[2:], node.stride, node.padding)
        b.op("Conv", ins, name, name, dilations=list(node.dilation), group=node.groups, **window)
    elif isinstance(node, AvgPool2d):
        window = _window(node.kernel, node.stride, node.padding)
        b.op("AveragePool", [x], name, name, count_include_pad=1, **window)
    elif isinstance(node, SumPool2d):
        channels = shape_in[0]
        ones = b.const(f"{name}.ones", np.ones((channels, 1, *node.kernel)))
        window = _window(node.kernel, node.stride, node.padding)
        b.op("Conv", [x, ones], name, name, group=channels, **window)
    elif isinstance(node, MaxPool2d):
        b.op("MaxPool", [x], name, name, **_window(node.kernel, node.stride, node.padding))
    elif isinstance(node, Concat):
        ins = [b.port(node, p) for p in node.ports()]
        b.op("Concat", ins, name, name, axis=node.axis + 1)
    elif isinstance(node, Scale):
        scale = node.scale
        if scale.ndim == 1:
            scale = scale.reshape((-1,) + (1,) * (len(shape_in) - 1))
        b.op("Mul", [x, b.const(f"{name}.scale", scale)], name, name)
    elif isinstance(node, ReLU):
        b.op("Relu", [x], name, name)
    elif isinstance(node, Clip):
        lo = b.const(f"{name}.min", np.float32(node.min))
        hi = b.const(f"{name}.max", np.float32(node.max))
        b.op("Clip", [x, lo, hi], name, name)
    elif isinstance(node, Softmax):
        b.op("Softmax", [x], name, name, axis=1)
    elif isinstance(node, Flatten):
        b.op("Flatten", [x], name, name, axis=1)
    elif isinstance(node, Reshape):
        target = b.const(f"{name}.shape", np.array((0, *node.shape)), dtype=np.int64)
        b.op("Reshape", [x, target], name, name)
    else:
        raise UnsupportedGraphError(
            f"node {name!r} ({node.type_name}): no ONNX mapping for this node type"
        )


def _value_info(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])


def to_onnx(graph: Graph, opset: int = 17) -> onnx.ModelProto:
    """The analog ``graph`` as a checked ONNX model (float32, dynamic batch dimension).

    Raises UnsupportedGraphError for spiking graphs (naming each stateful node) and
    ConversionError for an opset below `MIN_OPSET`.
    """
    if opset < MIN_OPSET:
        raise ConversionError(f"ONNX export needs opset >= {MIN_OPSET}, got {opset}")
    graph.validate()
    _refuse_spiking(graph)
    shapes = graph.shapes()
    builder = _Builder(graph)
    for node in graph.topological_order():
        if isinstance(node, Input):
            continue
        sources = graph.sources(node.name, node.ports()[0])
        _emit(builder, node, shapes[sources[0]])
    onnx_graph = helper.make_graph(
        builder.nodes,
        str(graph.metadata.get("name", "neurohal")),
        [_value_info(n.name, n.shape) for n in graph.inputs],
        [_value_info(n.name, shapes[n.name]) for n in graph.outputs],
        builder.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        onnx_graph,
        producer_name="neurohal",
        opset_imports=opsets,
        # the oldest IR version that carries this opset, so older runtimes can read the file
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string="Analog neurohal IR graph exported by neurohal.onnx_export.to_onnx",
    )
    onnx.checker.check_model(model, full_check=True)
    return model
