"""Torch kernels for the IR's stateless nodes, each matching `neurohal.reference` node by node.

Every kernel takes tensors whose first dimension is a batch of rows. The simulator passes
``(steps * batch, *shape)`` for a layer's values over many timesteps at once, so one call is
one large matrix product or convolution. Operations keep the reference's order where that
fixes rounding (bias added after the product, window sum then divide), so float64 runs give
the reference's values up to the summation order inside a product.

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


def _window_sum(x: torch.Tensor, node: ir.AvgPool2d | ir.SumPool2d) -> torch.Tensor:
    padded = _pad(x, node.padding)
    return F.avg_pool2d(padded, node.kernel, node.stride, divisor_override=1)


def apply(node: Node, p: Params, ports: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The stateless function of ``node`` on the (summed) values arriving at its ports."""
    x = ports.get("input")
    if isinstance(node, (ir.Output, ir.Add, ir.Encoder)):
        return x
    if isinstance(node, ir.Dense):
        y = x @ p["weight"].T
        return y if node.bias is None else y + p["bias"]
    if isinstance(node, ir.Conv2d):
        y = F.conv2d(
            _pad(x, node.padding), p["weight"], None, node.stride, 0, node.dilation, node.groups
        )
        return y if node.bias is None else y + p["bias"].reshape(1, -1, 1, 1)
    if isinstance(node, ir.AvgPool2d):
        return _window_sum(x, node) / (node.kernel[0] * node.kernel[1])
    if isinstance(node, ir.SumPool2d):
        return _window_sum(x, node)
    if isinstance(node, ir.MaxPool2d):
        return F.max_pool2d(_pad(x, node.padding, -math.inf), node.kernel, node.stride)
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
    with torch.enable_grad():
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


def synapse_uses(x: torch.Tensor, fan: torch.Tensor | int, dense: bool = False) -> int:
    """Sum of ``fan`` over the rows of ``x``: over nonzero elements, or all when ``dense``."""
    rows = x.shape[0]
    if isinstance(fan, int):
        count = x[0].numel() * rows if dense else int(torch.count_nonzero(x))
        return count * fan
    if dense:
        return int(fan.sum()) * rows
    active = torch.count_nonzero(x, dim=0) if rows > 1 else (x[0] != 0).to(torch.int64)
    return int((active * fan.to(active.device)).sum())
