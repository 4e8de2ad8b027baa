"""The IR's node vocabulary: frozen, keyword-only attrs classes, one name per concept.

Shapes never include the batch dimension: a 28x28 grey image is ``(1, 28, 28)`` (C, H, W) and a
dense layer's input is ``(features,)``. Every node has one output. Inputs arrive on named ports;
several edges into the same port are summed (fan-in sum, as in NIR). The semantics of each node
are defined by :mod:`neurohal.reference`.

Domains:
- ``structure``: Input, Output, Flatten, Reshape (move values, compute nothing)
- ``synapse``: linear maps (Dense, Conv2d, AvgPool2d, SumPool2d, Add, Concat, Scale)
- ``analog``: non-spiking activations (ReLU, Clip, MaxPool2d, Softmax)
- ``spiking``: neurons with state that emit spikes (IF, LIF, CubaLIF)
- ``boundary``: Encoder (values -> per-step input) and Readout (per-step values -> result)
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np

from neurohal.errors import IRValidationError

NODE_TYPES: dict[str, type[Node]] = {}
"""Every concrete node class by its type name; filled when a class is defined."""

Shape = tuple[int, ...]


def _array(value: object) -> np.ndarray:
    """Convert to a read-only float array (a private copy, so callers cannot mutate it)."""
    arr = np.array(value, dtype=np.float64 if _is_float64(value) else np.float32)
    arr.setflags(write=False)
    return arr


def _is_float64(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == np.float64


def _optional_array(value: object) -> np.ndarray | None:
    return None if value is None else _array(value)


def _int_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    return tuple(int(v) for v in value)  # type: ignore[union-attr]


def _pads(value: object) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right); a single int or (h, w) pair is symmetric."""
    vals = _int_tuple(value)
    if len(vals) == 2:
        vals = (vals[0], vals[1], vals[0], vals[1])
    if len(vals) != 4 or min(vals) < 0:
        raise ValueError(f"padding must be 4 non-negative ints (top, left, bottom, right): {vals}")
    return vals  # type: ignore[return-value]


_ARRAY_EQ = attrs.cmp_using(
    eq=lambda a, b: (
        a is b or (a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))
    )
)


def array_field(*, optional: bool = False) -> object:
    """An attrs field holding a read-only numpy array, compared by value."""
    if optional:
        return attrs.field(default=None, converter=_optional_array, eq=_ARRAY_EQ)
    return attrs.field(converter=_array, eq=_ARRAY_EQ)


@attrs.frozen(kw_only=True)
class Node:
    """Base of all nodes: a unique ``name`` and, per class, a domain and input ports."""

    name: str = attrs.field(validator=attrs.validators.instance_of(str))

    domain: ClassVar[str] = "synapse"
    input_ports: ClassVar[tuple[str, ...]] = ("input",)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            NODE_TYPES[cls.__name__] = cls

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def ports(self) -> tuple[str, ...]:
        """The input ports of this node (some nodes, like Concat, have a per-instance count)."""
        return self.input_ports

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        """Output shape from the shapes arriving on each port; raises on a mismatch."""
        return inputs["input"]

    def parameter_count(self) -> int:
        return sum(
            getattr(self, f.name).size
            for f in attrs.fields(type(self))
            if isinstance(getattr(self, f.name), np.ndarray)
        )

    def fail(self, reason: str) -> IRValidationError:
        return IRValidationError(f"node {self.name!r} ({self.type_name}): {reason}")


# ---------------------------------------------------------------- structure


@attrs.frozen(kw_only=True)
class Input(Node):
    """A graph input of the given per-sample shape."""

    shape: Shape = attrs.field(converter=_int_tuple)
    domain: ClassVar[str] = "structure"
    input_ports: ClassVar[tuple[str, ...]] = ()

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        return self.shape


@attrs.frozen(kw_only=True)
class Output(Node):
    """A graph output: the value of its input (after the last timestep in spiking graphs)."""

    domain: ClassVar[str] = "structure"


@attrs.frozen(kw_only=True)
class Flatten(Node):
    """Flattens all non-batch dimensions, in C order."""

    domain: ClassVar[str] = "structure"

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        return (math.prod(inputs["input"]),)


@attrs.frozen(kw_only=True)
class Reshape(Node):
    """Reshapes the non-batch dimensions, in C order, to ``shape``."""

    shape: Shape = attrs.field(converter=_int_tuple)
    domain: ClassVar[str] = "structure"

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        if math.prod(inputs["input"]) != math.prod(self.shape):
            raise self.fail(f"cannot reshape {inputs['input']} to {self.shape}")
        return self.shape


# ---------------------------------------------------------------- synapses (linear)


@attrs.frozen(kw_only=True)
class Dense(Node):
    """y = x @ weight.T + bias; weight is (out_features, in_features)."""

    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(optional=True)

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        if self.weight.ndim != 2:
            raise self.fail(f"weight must be 2-D (out, in), got shape {self.weight.shape}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise self.fail(f"bias shape {self.bias.shape} != ({self.weight.shape[0]},)")
        if inputs["input"] != (self.weight.shape[1],):
            raise self.fail(f"input shape {inputs['input']} != ({self.weight.shape[1]},)")
        return (self.weight.shape[0],)


def _pool_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


@attrs.frozen(kw_only=True)
class Conv2d(Node):
    """2-D cross-correlation, weight (out_ch, in_ch / groups, kh, kw), zero padding."""

    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(optional=True)
    stride: tuple[int, int] = attrs.field(default=(1, 1), converter=_int_tuple)
    padding: tuple[int, int, int, int] = attrs.field(default=(0, 0, 0, 0), converter=_pads)
    dilation: tuple[int, int] = attrs.field(default=(1, 1), converter=_int_tuple)
    groups: int = attrs.field(default=1, converter=int)

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shape = inputs["input"]
        if self.weight.ndim != 4:
            raise self.fail(f"weight must be 4-D (out, in/groups, kh, kw): {self.weight.shape}")
        if len(shape) != 3:
            raise self.fail(f"input must be (C, H, W), got {shape}")
        out_ch, in_per_group, kh, kw = self.weight.shape
        if self.groups < 1 or out_ch % self.groups or shape[0] != in_per_group * self.groups:
            raise self.fail(
                f"input channels {shape[0]} do not fit weight {self.weight.shape} "
                f"with groups={self.groups}"
            )
        if self.bias is not None and self.bias.shape != (out_ch,):
            raise self.fail(f"bias shape {self.bias.shape} != ({out_ch},)")
        top, left, bottom, right = self.padding
        h = _pool_out(shape[1], kh, self.stride[0], top + bottom, self.dilation[0])
        w = _pool_out(shape[2], kw, self.stride[1], left + right, self.dilation[1])
        if h < 1 or w < 1:
            raise self.fail(f"kernel larger than padded input {shape}")
        return (out_ch, h, w)


@attrs.frozen(kw_only=True)
class _Pool(Node):
    kernel: tuple[int, int] = attrs.field(converter=_int_tuple)
    stride: tuple[int, int] = attrs.field(converter=_int_tuple)
    padding: tuple[int, int, int, int] = attrs.field(default=(0, 0, 0, 0), converter=_pads)

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shape = inputs["input"]
        if len(shape) != 3:
            raise self.fail(f"input must be (C, H, W), got {shape}")
        top, left, bottom, right = self.padding
        h = _pool_out(shape[1], self.kernel[0], self.stride[0], top + bottom)
        w = _pool_out(shape[2], self.kernel[1], self.stride[1], left + right)
        if h < 1 or w < 1:
            raise self.fail(f"kernel {self.kernel} larger than padded input {shape}")
        return (shape[0], h, w)


@attrs.frozen(kw_only=True)
class AvgPool2d(_Pool):
    """Mean over each window; padded zeros count (divisor is always kh * kw)."""


@attrs.frozen(kw_only=True)
class SumPool2d(_Pool):
    """Sum over each window (zero padding)."""


@attrs.frozen(kw_only=True)
class Add(Node):
    """Fan-in sum: the sum of every edge arriving on its one port (residual joins)."""


@attrs.frozen(kw_only=True)
class Concat(Node):
    """Concatenates ports ``input0 .. input{n-1}`` along ``axis`` (0 = channels)."""

    num_inputs: int = attrs.field(converter=int)
    axis: int = attrs.field(default=0, converter=int)

    def ports(self) -> tuple[str, ...]:
        return tuple(f"input{i}" for i in range(self.num_inputs))

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shapes = [inputs[p] for p in self.ports()]
        rank = len(shapes[0])
        if not 0 <= self.axis < rank:
            raise self.fail(f"axis {self.axis} out of range for rank {rank}")
        rest = {s[: self.axis] + s[self.axis + 1 :] for s in shapes}
        if len(rest) != 1 or {len(s) for s in shapes} != {rank}:
            raise self.fail(f"input shapes {shapes} differ outside axis {self.axis}")
        total = sum(s[self.axis] for s in shapes)
        return shapes[0][: self.axis] + (total,) + shapes[0][self.axis + 1 :]


@attrs.frozen(kw_only=True)
class Scale(Node):
    """y = x * scale, with ``scale`` a scalar or one factor per channel (axis 0)."""

    scale: np.ndarray = array_field()

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        shape = inputs["input"]
        if self.scale.ndim > 1 or (self.scale.ndim == 1 and self.scale.shape[0] != shape[0]):
            raise self.fail(f"scale shape {self.scale.shape} does not fit input {shape}")
        return shape


# ---------------------------------------------------------------- analog activations


@attrs.frozen(kw_only=True)
class ReLU(Node):
    """y = max(x, 0)."""

    domain: ClassVar[str] = "analog"


@attrs.frozen(kw_only=True)
class Clip(Node):
    """y = min(max(x, min), max)."""

    min: float = attrs.field(converter=float)
    max: float = attrs.field(converter=float)
    domain: ClassVar[str] = "analog"

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        if not self.min <= self.max:
            raise self.fail(f"min {self.min} > max {self.max}")
        return inputs["input"]


@attrs.frozen(kw_only=True)
class MaxPool2d(_Pool):
    """Max over each window; padding is -inf (never selected)."""

    domain: ClassVar[str] = "analog"


@attrs.frozen(kw_only=True)
class Softmax(Node):
    """Softmax over the features (all non-batch dims must be one axis: input is (F,))."""

    domain: ClassVar[str] = "analog"

    def infer_shape(self, inputs: dict[str, Shape]) -> Shape:
        if len(inputs["input"]) != 1:
            raise self.fail(f"input must be (features,), got {inputs['input']}")
        return inputs["input"]


# ---------------------------------------------------------------- spiking neurons

RESETS = ("subtract", "zero")


def _check_reset(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {value!r}")


def _check_fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value}")


def _check_positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.frozen(kw_only=True)
class _Neuron(Node):
    v_threshold: float = attrs.field(converter=float, validator=_check_positive)
    reset: str = attrs.field(default="subtract", validator=_check_reset)
    v_init: float = attrs.field(default=0.0, converter=float)
    domain: ClassVar[str] = "spiking"


@attrs.frozen(kw_only=True)
class IF(_Neuron):
    """Integrate-and-fire: v += x; spike where v >= v_threshold; then reset."""


@attrs.frozen(kw_only=True)
class LIF(_Neuron):
    """Leaky integrate-and-fire: v = v * (1 - decay_v) + x; spike and reset as IF."""

    decay_v: float = attrs.field(converter=float, validator=_check_fraction)


@attrs.frozen(kw_only=True)
class CubaLIF(_Neuron):
    """Current-based LIF: i = i * (1 - decay_i) + x; v = v * (1 - decay_v) + i; spike as IF."""

    decay_i: float = attrs.field(converter=float, validator=_check_fraction)
    decay_v: float = attrs.field(converter=float, validator=_check_fraction)


# ---------------------------------------------------------------- boundaries

ENCODINGS = ("analog", "poisson")
READOUTS = ("membrane", "spike_count")


@attrs.frozen(kw_only=True)
class Encoder(Node):
    """Turns a static input into per-step input: the value itself every step (``analog``,
    a constant current) or Bernoulli spikes with probability clip(x, 0, 1) (``poisson``, seeded).
    """

    kind: str = attrs.field(default="analog", validator=attrs.validators.in_(ENCODINGS))
    seed: int = attrs.field(default=0, converter=int)
    domain: ClassVar[str] = "boundary"


@attrs.frozen(kw_only=True)
class Readout(Node):
    """Time average of its input over the steps so far: the membrane of a non-leaky,
    non-firing integrator divided by T (``membrane``), or a spike rate when fed by spiking
    neurons (``spike_count``). Its value after the last step is the network's output.
    """

    kind: str = attrs.field(default="membrane", validator=attrs.validators.in_(READOUTS))
    domain: ClassVar[str] = "boundary"


NEURON_TYPES = (IF, LIF, CubaLIF)
SYNAPSE_TYPES = (Dense, Conv2d, AvgPool2d, SumPool2d, Add, Concat, Scale)
