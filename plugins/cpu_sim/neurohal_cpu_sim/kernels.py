"""Torch kernels for the IR's stateless nodes, each matching `neurohal.reference` node by node.

Every kernel takes tensors whose first dimension is a batch of rows. The simulator passes
``(steps * batch, *shape)`` for a layer's values over many timesteps at once, so one call is
one large matrix product or convolution. Operations keep the reference's order where that
fixes rounding (bias added after the product, window sum then divide), so float64 runs give
the reference's values up to the summation order inside a product. (In float32, held to the
device tolerance only, a convolution's bias is added inside the convolution.)

Counting: a synapse node's ``synops`` per step is the sum, over nonzero input elements, of how
many synapses each element reaches (its *fan-out*); ``macs`` is the same sum over all
elements. `fanout` gives that per-element count once per node and port.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from neurohal import ir
from neurohal.errors import UnsupportedGraphError
from neurohal.ir import Node

Params = dict[str, torch.Tensor]


def params(node: Node, dtype: torch.dtype, device: torch.device) -> Params:
    """The node's arrays as torch tensors in the compute dtype, on the compute device."""
    out: Params = {}
    for key in ("weight", "bias", "scale"):
        value = getattr(node, key, None)
        if value is not None:
            out[key] = torch.from_numpy(np.array(value)).to(device=device, dtype=dtype)
    return out


def _pad(x: torch.Tensor, padding: tuple[int, int, int, int], fill: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = padding
    if not any(padding):
        return x
    return F.pad(x, (left, right, top, bottom), value=fill)


def _windows(
    x: torch.Tensor, node: ir.AvgPool2d | ir.SumPool2d | ir.MaxPool2d, fill: float = 0.0
) -> list[torch.Tensor]:
    """One strided view per kernel offset: element (i, j) of every window, (N, C, OH, OW).

    Combining kh * kw views elementwise is several times faster than torch's pooling kernels
    on large NCHW batches, and is the reference's window arithmetic.
    """
    x = _pad(x, node.padding, fill)
    (kh, kw), (sh, sw) = node.kernel, node.stride
    oh = (x.shape[2] - kh) // sh + 1
    ow = (x.shape[3] - kw) // sw + 1
    return [
        x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]


def _window_sum(x: torch.Tensor, node: ir.AvgPool2d | ir.SumPool2d) -> torch.Tensor:
    views = _windows(x, node)
    if len(views) == 1:
        return views[0]
    total = views[0] + views[1]
    for view in views[2:]:
        total.add_(view)
    return total


def _window_max(x: torch.Tensor, node: ir.MaxPool2d) -> torch.Tensor:
    views = _windows(x, node, -math.inf)
    if len(views) == 1:
        return views[0]
    best = torch.maximum(views[0], views[1])
    for view in views[2:]:
        torch.maximum(best, view, out=best)
    return best


def _add_along(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The sum over ``dim`` as elementwise adds of its slices (a new tensor)."""
    if x.shape[dim] == 1:
        return x.select(dim, 0).clone()
    total = x.select(dim, 0) + x.select(dim, 1)
    for i in range(2, x.shape[dim]):
        total.add_(x.select(dim, i))
    return total


def _tiled_sum(x: torch.Tensor, node: ir.AvgPool2d | ir.SumPool2d) -> torch.Tensor:
    """Window sums when the windows tile the input (stride = kernel, no padding): rows, then
    columns, two passes over contiguous memory instead of kh * kw strided ones. It adds in
    another order than the reference, so only for integer-valued (spike) inputs, where every
    order gives the same exact sums."""
    (kh, kw), (n, c, h, w) = node.kernel, x.shape
    oh, ow = h // kh, w // kw
    rows = _add_along(x[:, :, : oh * kh, : ow * kw].reshape(n, c, oh, kh, ow * kw), 3)
    return _add_along(rows.reshape(n, c, oh, ow, kw), 4)


def tiles(node: ir.AvgPool2d | ir.SumPool2d) -> bool:
    """Whether the pool's windows tile its input: stride = kernel, no padding."""
    return node.stride == node.kernel and not any(node.padding)


def _pool_sum(x: torch.Tensor, node: ir.AvgPool2d | ir.SumPool2d, binary: bool) -> torch.Tensor:
    """Window sums, by `_tiled_sum` for spikes in tiling windows; a new tensor unless the
    window is one element."""
    if binary and tiles(node):
        return _tiled_sum(x, node)
    return _window_sum(x, node)


def apply(
    node: Node, p: Params, ports: Mapping[str, torch.Tensor], binary: bool = False
) -> torch.Tensor:
    """The stateless function of ``node`` on the (summed) values arriving at its ports;
    ``binary`` says every input holds only 0 and 1."""
    x = ports.get("input")
    if isinstance(node, (ir.Output, ir.Add, ir.Encoder)):
        return x
    if isinstance(node, ir.Dense):
        y = x @ p["weight"].T
        return y if node.bias is None else y.add_(p["bias"])
    if isinstance(node, ir.Conv2d):
        # float32 (held to the device tolerance): the bias goes inside the convolution, one
        # pass fewer over its output; float64 adds it after, in the reference's order
        inside = p.get("bias") if x.dtype == torch.float32 else None
        y = F.conv2d(
            _pad(x, node.padding), p["weight"], inside, node.stride, 0, node.dilation, node.groups
        )
        if node.bias is None or inside is not None:
            return y
        return y.add_(p["bias"].reshape(1, -1, 1, 1))
    if isinstance(node, ir.AvgPool2d):
        area = node.kernel[0] * node.kernel[1]
        total = _pool_sum(x, node, binary)
        return total.div_(area) if area > 1 else total / 1
    if isinstance(node, ir.SumPool2d):
        return _pool_sum(x, node, binary)
    if isinstance(node, ir.MaxPool2d):
        return _window_max(x, node)
    if isinstance(node, ir.Concat):
        return torch.cat([ports[q] for q in node.ports()], dim=node.axis + 1)
    if isinstance(node, ir.Scale):
        s = p["scale"]
        return x * (s.reshape((1, -1) + (1,) * (x.dim() - 2)) if s.dim() == 1 else s)
    if isinstance(node, ir.ReLU):
        return torch.clamp_min(x, 0.0)
    if isinstance(node, ir.Clip):
        return torch.clamp(x, node.min, node.max)
    if isinstance(node, ir.Softmax):
        e = torch.exp(x - x.amax(dim=1, keepdim=True))
        return e / e.sum(dim=1, keepdim=True)
    if isinstance(node, ir.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(node, ir.Reshape):
        return x.reshape((x.shape[0], *node.shape))
    raise UnsupportedGraphError(f"node {node.name!r}: cpu_sim has no kernel for {node.type_name}")


def fanout(node: Node, in_shape: tuple[int, ...]) -> torch.Tensor | int:
    """Synapses reached by each input element of ``node`` (an int when all are equal).

    Convolutions and pools: the gradient of the summed all-ones map with respect to an all-ones
    input counts, per input element, the windows (times output channels) that contain it.
    """
    if isinstance(node, ir.Dense):
        return int(node.weight.shape[0])
    if not isinstance(node, (ir.Conv2d, ir.AvgPool2d, ir.SumPool2d)):
        return 1
    with torch.inference_mode(False), torch.enable_grad():  # also when called in inference
        x = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
        if isinstance(node, ir.Conv2d):
            ones = torch.ones(node.weight.shape, dtype=torch.float64)
            y = F.conv2d(
                _pad(x, node.padding), ones, None, node.stride, 0, node.dilation, node.groups
            )
        else:
            y = _window_sum(x, node)
        y.sum().backward()
    return x.grad[0].round().to(torch.int64)


EXACT_ROWS = 1 << 24
"""Below this many rows a float32 column sum of 0/1 values is an exact integer."""


def active_counts(x: torch.Tensor, binary: bool) -> torch.Tensor:
    """Per input element, how many rows of ``x`` hold a nonzero there (int64, x's shape[1:]).

    A matrix-vector product with a ones vector: one memory pass, and exact because every
    partial sum is an integer below 2**24 (float32) or 2**53 (float64). ``binary`` says ``x``
    holds only 0 and 1 (spikes), which skips the comparison.
    """
    rows = x.shape[0]
    dtype = torch.float64 if rows >= EXACT_ROWS else x.dtype
    if binary and dtype == x.dtype:
        active = x
    else:  # a comparison written straight into a float tensor: one pass, no bool temporary
        active = torch.ne(x, 0, out=torch.empty(x.shape, dtype=dtype, device=x.device))
    ones = torch.ones(rows, dtype=dtype, device=x.device)
    counts = torch.mv(active.reshape(rows, -1).T, ones)
    return counts.round().to(torch.int64).reshape(x.shape[1:])


def synapse_uses(
    counts: torch.Tensor, rows: int, fan: torch.Tensor | int, synapses: int
) -> tuple[int, int]:
    """(synops, macs) of one port over ``rows`` rows with per-element nonzero ``counts``
    (`active_counts`): the sum of ``fan`` over nonzero input elements, and ``synapses`` (its
    sum over all of them: `synapses_per_row`) per row."""
    if isinstance(fan, int):
        return int(counts.sum()) * fan, synapses * rows
    if counts.device.type == "cpu":  # numpy: a few microseconds less per call than torch
        return int(np.dot(counts.numpy().ravel(), fan.numpy().ravel())), synapses * rows
    return int((counts * fan).sum()), synapses * rows


def synapses_per_row(fan: torch.Tensor | int, in_shape: tuple[int, ...]) -> int:
    """Synapses from all input elements of one row (sample and step) with ``fan`` each."""
    return fan * math.prod(in_shape) if isinstance(fan, int) else int(fan.sum())
