"""ONNX -> IR: ``load_onnx`` reads an ONNX model (opset 9 to current) into a canonical ANN graph.

Steps:
1. read the model; external data is read only from inside the model's own folder;
2. ``check_onnx``: list every node that cannot be converted, and refuse before any work;
3. translate node by node in topological order. A node whose inputs are all constants is
   evaluated with onnx's own ``ReferenceEvaluator`` (so Shape / Gather / Unsqueeze / Concat ...
   chains that only compute constants fold away); every other node becomes IR nodes or frontend
   nodes (``neurohal.frontends.canonical``);
4. run the canonical passes and validate.

Shapes in the IR exclude the batch. ``Shape`` of an activation yields ``[batch, *shape]``: with a
fixed batch size in the model its value is used; with a symbolic one, a marker value is used and
followed, and may only end up as the batch entry of a Reshape target.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from neurohal.errors import ConversionError, IRValidationError
from neurohal.frontends.canonical import (
    BatchNorm,
    Constant,
    Dropout,
    GlobalAvgPool,
    Identity,
    canonicalize,
)
from neurohal.ir import (
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Edge,
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
)
from neurohal.ir.nodes import Shape

ModelSource = str | os.PathLike | onnx.ModelProto

MIN_OPSET = 9
_SYMBOLIC_BATCH = (1 << 40) + 7
"""Stands for a symbolic batch size in folded shape arithmetic (see the module docstring)."""
_SHAPE_OPS = frozenset(
    {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity", "Reshape"}
)
"""Operators that may carry a symbolic batch size towards a Reshape target."""
_NEVER_CONSTANT = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "If",
        "Loop",
        "Scan",
    }
)
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


@attrs.frozen
class UnsupportedNode:
    """One ONNX node that cannot be converted, and why."""

    name: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"node {self.name!r} ({self.op_type}): {self.reason}"


# ---------------------------------------------------------------- reading


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the graph: initializers and tensor attributes, subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            yield from a.tensors
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _tensors(a.g)
            for sub in a.graphs:
                yield from _tensors(sub)


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


def _load_external(model: onnx.ModelProto, path: Path) -> None:
    """Read external tensor data, refusing any location outside the model's folder."""
    folder = path.resolve().parent
    external = [t for t in _tensors(model.graph) if _is_external(t)]
    for tensor in external:
        location = external_data_helper.ExternalDataInfo(tensor).location
        target = (folder / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(folder):
            raise ConversionError(
                f"{path.name}: tensor {tensor.name!r} keeps its data at {location!r}, outside "
                f"the model's folder {str(folder)!r}; refusing to read it. Put the data file "
                "next to the model and name it by a relative path."
            )
        if not target.is_file():
            raise ConversionError(
                f"{path.name}: tensor {tensor.name!r} keeps its data in {location!r}, which "
                f"does not exist in {str(folder)!r}"
            )
    if external:
        try:
            external_data_helper.load_external_data_for_model(model, str(folder))
        except Exception as exc:
            raise ConversionError(f"{path.name}: cannot read external data: {exc}") from exc


def _read(source: ModelSource) -> tuple[onnx.ModelProto, str | None]:
    """The model (external data loaded) and its file name (None for an in-memory model)."""
    if isinstance(source, onnx.ModelProto):
        model, where = source, None
        if any(_is_external(t) for t in _tensors(model.graph)):
            raise ConversionError(
                "the in-memory ONNX model keeps tensors in external files; pass the model's "
                "path instead, so the data can be read from its folder"
            )
    else:
        path = Path(source)
        where = path.name
        if not path.is_file():
            raise ConversionError(f"ONNX file {str(path)!r} does not exist or is not a file")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise ConversionError(
                f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        _load_external(model, path)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        label = repr(where) if where else "the in-memory ONNX model"
        raise ConversionError(f"{label} is not a valid ONNX model: {exc}") from exc
    return model, where


def _opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions or versions[0] < MIN_OPSET:
        found = versions[0] if versions else "none"
        raise ConversionError(
            f"ONNX opset {found} is not supported (need {MIN_OPSET} or newer); upgrade the model "
            "with onnx.version_converter.convert_version(model, 13)"
        )
    return versions[0]


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


# ---------------------------------------------------------------- analysis


@attrs.frozen
class _Analysis:
    """What can be known without running the model."""

    nodes: tuple[onnx.NodeProto, ...]  # the nodes the outputs depend on, in order
    needed: frozenset[str]  # tensors the outputs depend on
    constants: frozenset[str]  # tensors computable without the inputs
    batch_dependent: frozenset[str]  # constants derived from a symbolic batch size
    inputs: tuple[onnx.ValueInfoProto, ...]
    batch: int  # the batch size Shape reports (``_SYMBOLIC_BATCH`` when symbolic)


def _batch(inputs: tuple[onnx.ValueInfoProto, ...]) -> int:
    sizes = set()
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        sizes.add(dims[0].dim_value if dims and dims[0].HasField("dim_value") else None)
    return sizes.pop() if len(sizes) == 1 and None not in sizes else _SYMBOLIC_BATCH


def _analyse(graph: onnx.GraphProto) -> _Analysis:
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    live.reverse()
    initial = {t.name for t in graph.initializer}
    inputs = tuple(vi for vi in graph.input if vi.name not in initial)
    batch = _batch(inputs)
    constants, dependent = set(initial), set()
    for node in live:
        ins = [i for i in node.input if i]
        if node.op_type == "Shape" and ins[0] not in constants:
            constants.update(node.output)
            if batch == _SYMBOLIC_BATCH and _attrs(node).get("start", 0) < 1:
                dependent.update(node.output)
        elif node.op_type not in _NEVER_CONSTANT and all(i in constants for i in ins):
            constants.update(node.output)
            if any(i in dependent for i in ins):
                dependent.update(node.output)
    return _Analysis(
        tuple(live), frozenset(needed), frozenset(constants), frozenset(dependent), inputs, batch
    )


# Per translated operator: indices of inputs that must be activations (``"any"``: at least one)
# and of inputs that must be constants when present.
_SIGNATURES: dict[str, tuple[tuple[int, ...] | str, tuple[int, ...]]] = {
    "Conv": ((0,), (1, 2)),
    "Gemm": ((0,), (1, 2)),
    "MatMul": ((0,), (1,)),
    "Relu": ((0,), ()),
    "Clip": ((0,), (1, 2)),
    "BatchNormalization": ((0,), (1, 2, 3, 4)),
    "AveragePool": ((0,), ()),
    "GlobalAveragePool": ((0,), ()),
    "MaxPool": ((0,), ()),
    "Add": ("any", ()),
    "Sum": ("any", ()),
    "Sub": ("any", ()),
    "Mul": ("any", ()),
    "Div": ((0,), (1,)),
    "Concat": ("all", ()),
    "Flatten": ((0,), ()),
    "Reshape": ((0,), (1,)),
    "Dropout": ((0,), (1, 2)),
    "Identity": ((0,), ()),
    "Softmax": ((0,), ()),
}


def _static_reason(node: onnx.NodeProto, a: dict, an: _Analysis) -> str | None:
    """Why ``node`` (which computes on activations) cannot be translated, or None."""
    if node.op_type not in _SIGNATURES:
        return "operator not supported on activations"
    ins = list(node.input)
    acts, consts = _SIGNATURES[node.op_type]
    present = [i for i, name in enumerate(ins) if name]
    must_act = present if acts == "all" else [] if acts == "any" else list(acts)
    for i in must_act:
        if ins[i] in an.constants:
            return f"input {i} ({ins[i]!r}) must be an activation, not a constant"
    for i in consts:
        if i < len(ins) and ins[i] and ins[i] not in an.constants:
            return f"input {i} ({ins[i]!r}) must be a constant (weights, bounds or shape)"
    for i, name in enumerate(ins):
        if name in an.batch_dependent and (node.op_type, i) != ("Reshape", 1):
            return f"input {i} ({name!r}) is computed from the batch size"
    extra = [o for o in node.output[1:] if o in an.needed]
    if extra:
        return f"its extra output(s) {extra} are used; only the first output is supported"
    op = node.op_type
    if op == "Mul" and all(i not in an.constants for i in ins):
        return "multiplies two activations; only a product with a constant is supported"
    if op == "Flatten" and a.get("axis", 1) not in (1, -1) and a.get("axis", 1) >= 0:
        return f"axis={a['axis']} mixes the batch axis into the features; only axis=1"
    if op == "Concat" and a.get("axis") == 0:
        return "concatenation along the batch axis is not supported"
    if op == "Gemm" and a.get("transA", 0):
        return "transA=1 transposes the batch axis"
    if op == "BatchNormalization" and a.get("training_mode", 0):
        return "training_mode=1; export the model in inference mode"
    if op in ("AveragePool", "MaxPool") and any(d != 1 for d in a.get("dilations", [])):
        return "dilated pooling is not supported"
    if (
        op == "AveragePool"
        and not a.get("count_include_pad", 0)
        and (any(a.get("pads", [])) or a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"))
    ):
        return (
            "count_include_pad=0 with padding: border windows divide by fewer elements, "
            "which AvgPool2d (padded zeros counted) cannot express; re-export with "
            "count_include_pad=1 or without padding"
        )
    return None


def _display_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"#{index} {node.op_type}"


def _problems(an: _Analysis) -> list[UnsupportedNode]:
    found = []
    for index, node in enumerate(an.nodes):
        name = _display_name(node, index)
        if node.domain not in ("", "ai.onnx"):
            reason = f"operator domain {node.domain!r} is not supported"
        elif node.output[0] in an.constants:
            dependent = node.output[0] in an.batch_dependent
            reason = (
                (
                    f"computes with the batch size; only {sorted(_SHAPE_OPS)} may, to build "
                    "a Reshape target"
                )
                if dependent and node.op_type not in _SHAPE_OPS
                else None
            )
        else:
            reason = _static_reason(node, _attrs(node), an)
        if reason:
            found.append(UnsupportedNode(name, node.op_type, reason))
    return found


SUPPORTED_OPS: tuple[str, ...] = tuple(sorted({*_SIGNATURES, "Constant"}))
"""Operators translated on activations; any standard operator is folded on constants."""


def _supported_text() -> str:
    return (
        f"supported operators: {', '.join(SUPPORTED_OPS)}; any other standard operator is "
        "accepted where all its inputs are constants (it is folded)"
    )


def check_onnx(source: ModelSource) -> list[UnsupportedNode]:
    """Every node of the model that cannot be converted, with the reason (empty: all fine).

    Reads and checks the file like ``load_onnx`` (a corrupt file raises ``ConversionError``);
    finds all problems at once, for ``neurohal convert --check``.
    """
    model, _ = _read(source)
    _opset(model)
    return _problems(_analyse(model.graph))


# ---------------------------------------------------------------- translation


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_.")


class _Builder:
    """Accumulates IR nodes and edges while the ONNX graph is translated (build-time only)."""

    def __init__(self, opset: int, batch: int) -> None:
        self.opset = opset
        self.batch = batch
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.shapes: dict[str, Shape] = {}
        self.values: dict[str, np.ndarray] = {}  # constant tensors
        self.producer: dict[str, str] = {}  # activation tensor -> IR node name
        self.node: onnx.NodeProto | None = None

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.shapes:
            i += 1
            name = f"{base}_{i}"
        return name

    def refuse(self, reason: str) -> ConversionError:
        node = self.node
        return ConversionError(f"node {node.name!r} ({node.op_type}): {reason}")

    def act(self, tensor: str) -> tuple[str, Shape]:
        src = self.producer[tensor]
        return src, self.shapes[src]

    def const(self, tensor: str) -> np.ndarray:
        return self.values[tensor]

    def weight(self, index: int) -> np.ndarray | None:
        """The constant on input ``index`` (None if absent), refused if it is not finite."""
        ins = self.node.input
        if index >= len(ins) or not ins[index]:
            return None
        value = self.values[ins[index]]
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise self.refuse(f"constant input {ins[index]!r} holds NaN or infinite values")
        return value

    def add(self, node: Node, sources: list[tuple[str, str]], output: str | None = None) -> str:
        """Add ``node`` fed by (IR source, port) pairs; bind ``output`` to it."""
        arriving: dict[str, Shape] = {}
        for src, port in sources:
            arriving.setdefault(port, self.shapes[src])
            self.edges.append(Edge(src, node.name, port))
        try:
            self.shapes[node.name] = tuple(node.infer_shape(arriving))
        except (IRValidationError, ValueError) as exc:
            raise self.refuse(str(exc)) from exc
        self.nodes.append(node)
        if output is not None:
            self.producer[output] = node.name
        return node.name


def _evaluate(b: _Builder, node: onnx.NodeProto, a: dict) -> list[np.ndarray]:
    """Outputs of a node whose inputs are all constant, by onnx's ReferenceEvaluator."""
    ins = [i for i in node.input if i]
    if node.op_type == "Shape" and ins[0] not in b.values:
        full = np.array([b.batch, *b.shapes[b.producer[ins[0]]]], dtype=np.int64)
        return [full[a.get("start", 0) : a.get("end")]]
    feeds = {i: b.values[i] for i in ins}
    infos = [
        helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for k, v in feeds.items()
    ]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output]
    model = helper.make_model(
        helper.make_graph([node], "fold", infos, outs),
        opset_imports=[helper.make_opsetid("", b.opset)],
    )
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feeds)]
    except Exception as exc:
        raise b.refuse(f"cannot evaluate it on its constant inputs: {exc}") from exc


def _pads(
    b: _Builder,
    a: dict,
    spatial: Shape,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, int, int, int]:
    """ONNX pads / auto_pad as the IR's (top, left, bottom, right)."""
    mode = a.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = list(a.get("pads", [0, 0, 0, 0]))
        return (pads[0], pads[1], pads[2], pads[3])
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise b.refuse(f"unknown auto_pad {mode!r}")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, stride, dilation, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _spatial(b: _Builder, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise b.refuse(f"only 2-D (N, C, H, W) data is supported, got per-sample shape {shape}")
    return shape[1:]


def _conv(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    weight = b.weight(1)
    if weight.ndim != 4:
        raise b.refuse(f"only 2-D convolution is supported (weight shape {weight.shape})")
    kernel = tuple(weight.shape[2:])
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    pads = _pads(b, a, _spatial(b, shape), kernel, stride, dilation)
    conv = Conv2d(
        name=name,
        weight=weight,
        bias=b.weight(2),
        stride=stride,
        padding=pads,
        dilation=dilation,
        groups=a.get("group", 1),
    )
    b.add(conv, [(x, "input")], node.output[0])


def _pool_padding(
    b: _Builder,
    a: dict,
    spatial: Shape,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    is_max: bool,
) -> tuple[int, int, int, int]:
    """Padding, with ceil_mode's extra end windows turned into extra end padding (max only)."""
    pads = list(_pads(b, a, spatial, kernel, stride, (1, 1)))
    if not a.get("ceil_mode", 0):
        return tuple(pads)
    for axis in (0, 1):
        size = spatial[axis] + pads[axis] + pads[axis + 2] - kernel[axis]
        floor_out, ceil_out = size // stride[axis] + 1, -(-size // stride[axis]) + 1
        if ceil_out == floor_out:
            continue
        if not is_max:
            raise b.refuse(
                "ceil_mode=1 adds partial windows whose divisor AvgPool2d cannot "
                "express; re-export with ceil_mode=0 or sizes that divide evenly"
            )
        if (ceil_out - 1) * stride[axis] >= spatial[axis] + pads[axis]:
            raise b.refuse("ceil_mode=1 adds a window that starts in the padding")
        pads[axis + 2] += (ceil_out - 1) * stride[axis] - size
    return tuple(pads)


def _pool(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    kernel = tuple(a["kernel_shape"])
    if len(kernel) != 2:
        raise b.refuse(f"only 2-D pooling is supported (kernel_shape {kernel})")
    stride = tuple(a.get("strides", (1, 1)))
    is_max = node.op_type == "MaxPool"
    pads = _pool_padding(b, a, _spatial(b, shape), kernel, stride, is_max)
    cls = MaxPool2d if is_max else AvgPool2d
    b.add(
        cls(name=name, kernel=kernel, stride=stride, padding=pads), [(x, "input")], node.output[0]
    )


def _gemm(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, _ = b.act(node.input[0])
    matrix = b.weight(1).astype(np.float64)
    weight = a.get("alpha", 1.0) * (matrix if a.get("transB", 0) else matrix.T)
    c = b.weight(2)
    bias = None
    if c is not None:
        c = a.get("beta", 1.0) * c.astype(np.float64)
        if c.ndim == 2 and c.shape[0] != 1:
            raise b.refuse(f"C of shape {c.shape} differs per sample; only a bias is supported")
        bias = np.broadcast_to(c.reshape(-1) if c.ndim == 2 else c, (weight.shape[0],))
    dtype = b.weight(1).dtype
    b.add(
        Dense(
            name=name,
            weight=weight.astype(dtype),
            bias=None if bias is None else bias.astype(dtype),
        ),
        [(x, "input")],
        node.output[0],
    )


def _matmul(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    weight = b.weight(1)
    if len(shape) != 1 or weight.ndim != 2:
        raise b.refuse(
            f"only (N, F) @ (F, M) is supported (per-sample shape {shape}, weight {weight.shape})"
        )
    b.add(Dense(name=name, weight=weight.T), [(x, "input")], node.output[0])


def _simple(cls: type[Node]) -> Callable[[_Builder, onnx.NodeProto, dict, str], None]:
    def translate(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
        b.add(cls(name=name), [(b.act(node.input[0])[0], "input")], node.output[0])

    return translate


def _clip(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, _ = b.act(node.input[0])
    big = float(np.finfo(np.float32).max)
    if b.opset < 11:
        lo, hi = a.get("min", -big), a.get("max", big)
    else:
        lo_in, hi_in = (
            b.values.get(node.input[i]) if len(node.input) > i else None for i in (1, 2)
        )
        lo = -np.inf if lo_in is None else float(lo_in.reshape(-1)[0])
        hi = np.inf if hi_in is None else float(hi_in.reshape(-1)[0])
    lo, hi = (-np.inf if lo <= -big else lo), (np.inf if hi >= big else hi)
    if lo == 0 and hi == np.inf:
        new: Node = ReLU(name=name)
    elif lo == -np.inf and hi == np.inf:
        new = Identity(name=name)
    elif math.isinf(lo) or math.isinf(hi):
        raise b.refuse(f"one-sided Clip to [{lo}, {hi}] is supported only as ReLU (min=0)")
    else:
        new = Clip(name=name, min=lo, max=hi)
    b.add(new, [(x, "input")], node.output[0])


def _batchnorm(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, _ = b.act(node.input[0])
    gamma, beta, mean, var = (b.weight(i) for i in (1, 2, 3, 4))
    bn = BatchNorm(
        name=name, gamma=gamma, beta=beta, mean=mean, var=var, epsilon=a.get("epsilon", 1e-5)
    )
    b.add(bn, [(x, "input")], node.output[0])


def _per_sample(b: _Builder, value: np.ndarray, shape: Shape) -> np.ndarray:
    """A constant broadcast against (N, *shape), as a per-sample (*shape) array."""
    if value.ndim == len(shape) + 1:
        if value.shape[0] != 1:
            raise b.refuse(f"constant of shape {value.shape} differs per sample")
        value = value[0]
    try:
        ok = value.ndim <= len(shape) and np.broadcast_shapes(value.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise b.refuse(f"constant of shape {value.shape} does not broadcast to {shape}")
    return np.broadcast_to(value, shape)


def _add(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    acts = [b.act(i) for i in node.input if i in b.producer]
    consts = [b.weight(i) for i, t in enumerate(node.input) if t in b.values]
    _sum(b, name, acts, consts, node.output[0])


def _sum(
    b: _Builder,
    name: str,
    acts: list[tuple[str, Shape]],
    consts: list[np.ndarray],
    output: str,
) -> None:
    """An Add of the activations ``acts`` (IR source, shape) and the constants ``consts``
    (summed into one per-sample Constant), bound to ONNX tensor ``output``."""
    shapes = {s for _, s in acts}
    if len(shapes) != 1:
        raise b.refuse(
            f"adds activations of different shapes {sorted(shapes)}; "
            "broadcasting between activations is not supported"
        )
    shape = shapes.pop()
    sources = [(src, "input") for src, _ in acts]
    if consts:
        value = sum(_per_sample(b, c.astype(np.float64), shape) for c in consts)
        const = Constant(name=b.unique(f"{name}_const"), value=value.astype(consts[0].dtype))
        sources.append((b.add(const, []), "input"))
    b.add(Add(name=name), sources, output)


def _sub(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    """``x - y`` as ``x + (-y)``: a constant ``y`` negated, an activation through Scale(-1)."""
    (left, right), acts, consts = node.input, [], []
    if left in b.producer:
        acts.append(b.act(left))
    else:
        consts.append(b.weight(0))
    if right in b.producer:
        src, shape = b.act(right)
        negated = Scale(name=b.unique(f"{name}_negate"), scale=np.array(-1.0, np.float32))
        acts.append((b.add(negated, [(src, "input")]), shape))
    else:
        consts.append(-b.weight(1))
    _sum(b, name, acts, consts, node.output[0])


def _factor(b: _Builder, value: np.ndarray, shape: Shape) -> np.ndarray:
    """A constant multiplier as Scale takes it: a scalar where it is the same everywhere,
    else one factor per channel (axis 0 of ``shape``) where it varies only along that."""
    full = _per_sample(b, value, shape)
    if full.size and np.all(full == full.flat[0]):
        return np.array(full.flat[0], dtype=value.dtype)
    per_channel = np.ascontiguousarray(full).reshape(shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise b.refuse(
            f"multiplies by a constant of shape {value.shape} that varies within a channel; "
            "only a scalar or one factor per channel (axis 1) is supported"
        )
    return per_channel[:, 0].astype(value.dtype)


def _mul(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    """An activation times a constant: a Scale (scalar or per channel)."""
    index = 0 if node.input[0] in b.producer else 1
    x, shape = b.act(node.input[index])
    factor = _factor(b, b.weight(1 - index), shape)
    b.add(Scale(name=name, scale=factor), [(x, "input")], node.output[0])


def _div(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    """An activation divided by a constant: a Scale by the constant's reciprocal (within an
    ulp of the division)."""
    x, shape = b.act(node.input[0])
    divisor = _factor(b, b.weight(1), shape)
    if divisor.dtype.kind != "f":
        raise b.refuse(f"divides by an integer constant ({divisor.dtype}); only float is supported")
    if np.any(divisor == 0):
        raise b.refuse("divides by a constant that holds zeros")
    factor = (1.0 / divisor.astype(np.float64)).astype(divisor.dtype)
    b.add(Scale(name=name, scale=factor), [(x, "input")], node.output[0])


def _rank_axis(b: _Builder, axis: int, shape: Shape) -> int:
    """An ONNX axis (batch included, may be negative) as a non-negative full-rank axis."""
    rank = len(shape) + 1
    if not -rank <= axis < rank:
        raise b.refuse(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _concat(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    acts = [b.act(i) for i in node.input if i]
    axis = _rank_axis(b, a["axis"], acts[0][1])
    if axis == 0:
        raise b.refuse("concatenation along the batch axis is not supported")
    concat = Concat(name=name, num_inputs=len(acts), axis=axis - 1)
    b.add(concat, [(src, f"input{i}") for i, (src, _) in enumerate(acts)], node.output[0])


def _flatten(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    if _rank_axis(b, a.get("axis", 1), shape) != 1:
        raise b.refuse(f"Flatten with axis={a.get('axis')} mixes the batch axis; only axis=1")
    b.add(Flatten(name=name), [(x, "input")], node.output[0])


def _reshape(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    target = [int(v) for v in b.const(node.input[1]).reshape(-1)]
    full = (b.batch, *shape)
    if not a.get("allowzero", 0):
        target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
    if not target or target[0] not in (b.batch, -1) or 0 in target:
        raise b.refuse(f"target shape {target} does not keep the batch as its first axis")
    rest = target[1:]
    if target[0] == -1 and -1 in rest:
        raise b.refuse(f"target shape {target} has two -1 entries")
    if -1 in rest:
        known = math.prod(v for v in rest if v != -1)
        rest[rest.index(-1)] = math.prod(shape) // known if known else 0
    if math.prod(rest) != math.prod(shape):
        raise b.refuse(f"cannot reshape per-sample {shape} to {tuple(rest)}")
    b.add(Reshape(name=name, shape=tuple(rest)), [(x, "input")], node.output[0])


def _dropout(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, _ = b.act(node.input[0])
    training = b.weight(2)
    if training is not None and bool(training):
        raise b.refuse("training_mode is true; export the model in inference mode")
    b.add(Dropout(name=name), [(x, "input")], node.output[0])


def _softmax(b: _Builder, node: onnx.NodeProto, a: dict, name: str) -> None:
    x, shape = b.act(node.input[0])
    axis = _rank_axis(b, a.get("axis", 1 if b.opset < 13 else -1), shape)
    if len(shape) == 1 and axis == 1:
        b.add(Softmax(name=name), [(x, "input")], node.output[0])
    elif b.opset < 13 and axis == 1:
        # Before opset 13, Softmax(axis=1) is taken over all non-batch axes at once.
        flat = b.add(Flatten(name=b.unique(f"{name}_flatten")), [(x, "input")])
        soft = b.add(Softmax(name=name), [(flat, "input")])
        b.add(
            Reshape(name=b.unique(f"{name}_reshape"), shape=shape),
            [(soft, "input")],
            node.output[0],
        )
    else:
        raise b.refuse(
            f"softmax over axis {axis} of per-sample shape {shape}; only over the "
            "features of (N, F) data is supported"
        )


_TRANSLATORS: dict[str, Callable[[_Builder, onnx.NodeProto, dict, str], None]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Relu": _simple(ReLU),
    "Clip": _clip,
    "BatchNormalization": _batchnorm,
    "AveragePool": _pool,
    "GlobalAveragePool": _simple(GlobalAvgPool),
    "MaxPool": _pool,
    "Add": _add,
    "Sum": _add,
    "Sub": _sub,
    "Mul": _mul,
    "Div": _div,
    "Concat": _concat,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _dropout,
    "Identity": _simple(Identity),
    "Softmax": _softmax,
}


def _add_inputs(b: _Builder, inputs: tuple[onnx.ValueInfoProto, ...]) -> None:
    for vi in inputs:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if tt.elem_type not in _FLOAT_TYPES:
            raise ConversionError(
                f"input {vi.name!r}: element type "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type)} is not float"
            )
        if len(dims) < 2 or None in dims[1:]:
            raise ConversionError(
                f"input {vi.name!r}: shape {dims} needs a batch axis and fixed per-sample sizes; "
                "export the model with a fixed input size"
            )
        name = b.unique(_sanitise(vi.name) or "input")
        b.add(Input(name=name, shape=tuple(dims[1:])), [], vi.name)


def _translate(model: onnx.ModelProto, an: _Analysis, opset: int) -> _Builder:
    b = _Builder(opset, an.batch)
    b.values.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    _add_inputs(b, an.inputs)
    for index, node in enumerate(an.nodes):
        b.node = node
        a = _attrs(node)
        if node.output[0] in an.constants:
            b.values.update(zip(node.output, _evaluate(b, node, a), strict=True))
            continue
        name = b.unique(_sanitise(node.name) or f"{node.op_type.lower()}_{index}")
        _TRANSLATORS[node.op_type](b, node, a, name)
    for vi in model.graph.output:
        if vi.name not in b.producer:
            raise ConversionError(f"graph output {vi.name!r} is a constant; it has no IR form")
        name = b.unique(_sanitise(vi.name) or "output")
        b.add(Output(name=name), [(b.producer[vi.name], "input")])
    return b


def load_onnx(source: ModelSource) -> Graph:
    """Load an ONNX model (a path or a ``ModelProto``) as a canonical, validated ANN graph.

    Raises ``ConversionError`` for an unreadable or invalid file, external data outside the
    model's folder, unsupported nodes (all listed, with the supported operators), and NaN or
    infinite weights (naming the node).
    """
    model, where = _read(source)
    opset = _opset(model)
    an = _analyse(model.graph)
    problems = _problems(an)
    if problems:
        label = repr(where) if where else "the ONNX model"
        lines = "\n".join(f"  {p}" for p in problems)
        raise ConversionError(
            f"{label} has {len(problems)} node(s) that cannot be converted:\n"
            f"{lines}\n{_supported_text()}"
        )
    b = _translate(model, an, opset)
    producer = f"{model.producer_name} {model.producer_version}".strip()
    metadata = {
        "source": {"format": "onnx", "file": where, "opset": opset, "producer": producer or None}
    }
    return canonicalize(Graph(b.nodes, b.edges, metadata))
