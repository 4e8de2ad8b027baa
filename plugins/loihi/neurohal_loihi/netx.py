"""Export a spiking graph as a lava-dl NetX HDF5 network description (``--format netx``).

Layout, as lava-dl's ``lava.lib.dl.netx.hdf5.Network`` reads it (lava-dl ``netx/README.md`` and
``netx/hdf5.py``): group ``layer`` with subgroups ``0 .. n-1`` in order, each with datasets
``type`` (``input``, ``flatten``, ``dense``, ``conv``), ``shape`` (C, H, W or (N,)), and for
dense/conv a ``neuron`` group (``type`` "LOIHI", ``vThMant``, ``iDecay``, ``vDecay``,
``refDelay``), ``weight`` (dense: (out, in); conv: (out, in, kh, kw) cross-correlation),
optional ``bias`` (added as ``bias << 6``), and for conv ``stride``, ``padding``, ``dilation``
(as (y, x)) and ``groups``. Weights are in the units NetX feeds its synapses (it picks the
weight exponent itself), i.e. the chip's Dense output before the 6-bit shift into u.

What is exported is the network as compiled for Loihi 1 with one compartment per neuron
(``loihi1_soft_reset=False``: reset to zero, as NetX's LOIHI neuron does; 8-bit weights, the
same thresholds and biases the emulator runs), with these differences that NetX imposes:
NetX's input block turns the input into spikes, so the first layer receives input spikes
(NetX ``input``) where neurohal drives it with the analog input as a current; the membrane
readout becomes a dense layer whose neurons never fire (read its v). Pooling is lowered into
the next weighted layer: pool k then dense becomes a dense layer over the unpooled input; pool
k then conv becomes a conv whose kernel is repeated over k x k and whose stride and padding are
multiplied by k. Graphs NetX cannot express (branches, residual adds, identity routes,
dilated or asymmetrically padded convolutions after pooling) are refused with the node.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from neurohal.errors import UnsupportedGraphError
from neurohal.ir import AvgPool2d, Conv2d, Dense, Flatten, Graph, Reshape, Scale
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.device import LoihiDevice
from neurohal_loihi.lowering import POOLS, Layer, routes
from neurohal_loihi.network import Network


def _refuse(node: str, why: str) -> UnsupportedGraphError:
    return UnsupportedGraphError(f"netx export: node {node!r}: {why}")


def _route(net: Network, layer: Layer) -> tuple[str, tuple[str, ...], bool]:
    """The one route into ``layer``: (source, nodes, from the host input)."""
    graph = net.graph
    if layer.host:
        if layer.projections:
            raise _refuse(layer.name, "mixes the analog input with spikes; NetX has no such join")
        found = routes(graph, layer.name)
        if len(found) != 1:
            raise _refuse(layer.name, "has several input routes; NetX is a chain")
        scales = [n for n in found[0][1] if isinstance(graph.node(n), Scale)]
        if scales:
            raise _refuse(scales[0], "a Scale on the input route is not exported; fold it")
        return found[0][0], found[0][1], True
    if len(layer.projections) != 1:
        raise _refuse(
            layer.name,
            "has several input projections (a residual join); NetX chains one layer after another",
        )
    proj = layer.projections[0]
    return proj.src, proj.nodes, False


def _lowered(
    graph: Graph,
    nodes: tuple[str, ...],
    src_shape: tuple[int, ...],
    weight: np.ndarray,
    divide: bool,
) -> dict:
    """The NetX layer for a route: pooling folded into the weighted node (``divide``: apply
    the average pools' divisors, which compiled projection weights already hold)."""
    pools = [graph.node(n) for n in nodes if isinstance(graph.node(n), POOLS)]
    weighted = [graph.node(n) for n in nodes if isinstance(graph.node(n), (Dense, Conv2d))]
    if not weighted:
        raise _refuse(nodes[-1] if nodes else "?", "an identity route has no NetX layer type")
    node = weighted[0]
    factor = 1.0
    for pool in pools:
        if any(pool.padding):
            raise _refuse(pool.name, "padded pooling cannot be folded into a NetX layer")
        if isinstance(pool, AvgPool2d):
            factor /= pool.kernel[0] * pool.kernel[1]
    if len(pools) > 1:
        raise _refuse(pools[1].name, "two poolings in a row cannot be folded into one layer")
    weight = weight * factor if divide else weight
    if isinstance(node, Dense):
        if pools:
            weight = _unpool_dense(weight, src_shape, pools[0].kernel)
        return {"type": "dense", "weight": weight}
    return _conv_layer(node, weight, pools[0].kernel if pools else (1, 1))


def _unpool_dense(
    weight: np.ndarray, src_shape: tuple[int, ...], kernel: tuple[int, int]
) -> np.ndarray:
    """Dense weights over pooled features -> the same map over the unpooled (C, H, W)."""
    c, h, w = src_shape
    kh, kw = kernel
    oh, ow = h // kh, w // kw
    ch, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    pooled = (ch * oh + y // kh) * ow + x // kw
    inside = (y < oh * kh) & (x < ow * kw)
    full = np.zeros((weight.shape[0], c * h * w), dtype=weight.dtype)
    flat_inside = inside.reshape(-1)
    full[:, flat_inside] = weight[:, pooled.reshape(-1)[flat_inside]]
    return full


def _conv_layer(node: Conv2d, weight: np.ndarray, kernel: tuple[int, int]) -> dict:
    top, left, bottom, right = node.padding
    if (top, left) != (bottom, right):
        raise _refuse(node.name, "asymmetric padding has no NetX form")
    if kernel != (1, 1) and node.dilation != (1, 1):
        raise _refuse(node.name, "a dilated convolution after pooling has no NetX form")
    kh, kw = kernel
    weight = np.repeat(np.repeat(weight, kh, axis=2), kw, axis=3)
    return {
        "type": "conv",
        "weight": weight,
        "stride": np.array([node.stride[0] * kh, node.stride[1] * kw]),
        "padding": np.array([top * kh, left * kw]),
        "dilation": np.array(node.dilation),
        "groups": node.groups,
    }


def _neuron(group: h5py.Group, net: Network, layer: Layer) -> None:
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data="LOIHI")
    neuron.create_dataset("vThMant", data=int(net.value(layer.name, "vth")))
    neuron.create_dataset("iDecay", data=fx.DECAY_UNITY)
    neuron.create_dataset("vDecay", data=int(net.value(layer.name, "dv")))
    neuron.create_dataset("refDelay", data=1)


def export_netx(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` (compiled for Loihi 1) as a NetX HDF5 file; refuse what NetX lacks."""
    artifact = LoihiDevice("loihi1").compile(graph, loihi1_soft_reset=False)
    net = Network.from_artifact(artifact)
    if len(graph.inputs) != 1:
        raise _refuse(graph.inputs[1].name, "NetX networks have one input")
    layers: list[dict] = [{"type": "input", "shape": np.array(graph.inputs[0].shape)}]
    previous = None
    for layer in net.plan.layers:
        src, nodes, host = _route(net, layer)
        if not host and src != previous:
            raise _refuse(
                layer.name, f"is fed by {src!r}, not the layer before it; NetX is a chain"
            )
        scale = float(net.value(layer.name, "scale"))
        if host:
            node = next(graph.node(n) for n in nodes if isinstance(graph.node(n), (Dense, Conv2d)))
            weight = node.weight.astype(np.float64) * scale / 2**fx.ACT_SHIFT
            channel_bias = np.zeros(layer.shape[0]) if node.bias is None else node.bias * scale
            bias = np.broadcast_to(
                channel_bias.reshape((-1,) + (1,) * (len(layer.shape) - 1)), layer.shape
            )
        else:
            mant, exp = net.weights(layer.projections[0])
            weight = 2.0 * mant.astype(np.float64) * 2.0**exp
            bias = fx.bias_value(
                net.value(layer.name, "bias_mant"), net.value(layer.name, "bias_exp")
            )
        src_shape = graph.shape(src)
        if (
            any(isinstance(graph.node(n), (Flatten, Reshape)) for n in nodes)
            and len(src_shape) == 3
        ):
            layers.append({"type": "flatten", "shape": np.array([int(np.prod(src_shape))])})
        entry = _lowered(graph, nodes, src_shape, weight, divide=host)
        entry["shape"] = np.array(layer.shape)
        bias_units = np.round(np.reshape(bias, (layer.shape[0], -1)) / 2**fx.ACT_SHIFT)
        if np.any(bias_units):
            entry["bias"] = bias_units[:, 0] if entry["type"] == "conv" else bias_units.reshape(-1)
        entry["layer"] = layer
        layers.append(entry)
        previous = layer.name
    return _write(Path(path), layers, net)


def _write(path: Path, layers: list[dict], net: Network) -> Path:
    tmp = path.with_name(path.name + ".partial")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["generator"] = "neurohal loihi plugin (compiled for loihi1)"
            root = f.create_group("layer")
            for index, entry in enumerate(layers):
                group = root.create_group(str(index))
                for key, value in entry.items():
                    if key == "layer":
                        _neuron(group, net, value)
                    else:
                        group.create_dataset(key, data=value)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
