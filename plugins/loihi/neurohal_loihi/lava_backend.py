"""The lava backend: the compiled network as Lava processes, run with Loihi2SimCfg("fixed_pt").

Imported only where lava-nc imports (the Lava interpreter, or in-process when available).
Every layer is a Lava ``LIF`` (du = 4095 so u holds one step's input, dv from the IR, vth the
threshold mantissa, bias per sample) or, for Loihi 2 with reset by subtraction, ``LIFSubtract``,
whose fixed-point model (below) is Lava's bit-accurate LIF with the reset changed. Every
projection is a Lava ``Dense`` whose weight matrix is built here, independently of the
emulator, by explicit index arithmetic (pooling folded in as fixed weights). Lava's fixed-point
``Conv`` model ignores ``weight_exp`` (lava 0.10 ``PyConvModelFixed``), so convolutions are
expanded to Dense. Samples run one after another: before each, v, u, the Dense buffers and the
per-sample biases are set; spikes are recorded by ring-buffer sinks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import Dense
from lava.proc.io.sink import RingBuffer
from lava.proc.lif.models import AbstractPyLifModelFixed
from lava.proc.lif.process import LIF

from neurohal.ir import AvgPool2d, Conv2d, SumPool2d
from neurohal.ir import Dense as DenseNode
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.lowering import Projection
from neurohal_loihi.network import Network


class LIFSubtract(LIF):
    """Lava's LIF with reset by subtraction of the threshold (Loihi 2's programmable neuron)."""


@implements(proc=LIFSubtract, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyLifSubtractModelBitAcc(AbstractPyLifModelFixed):
    """Lava's bit-accurate LIF (``PyLifModelBitAcc``: threshold ``vth << 6``, spike when v
    exceeds it) with the reset changed to subtracting the threshold. Lava forbids subclassing
    a model that already implements a process, so the three members are restated here."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self) -> np.ndarray:
        return self.v > self.effective_vth

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self.v[spike_vector] -= self.effective_vth


def _pool_matrix(shape: tuple[int, ...], node: AvgPool2d | SumPool2d) -> np.ndarray:
    """0/1 matrix (pooled, input) of a non-overlapping window sum with zero padding."""
    c, h, w = shape
    kh, kw = node.kernel
    top, left, bottom, right = node.padding
    oh, ow = (h + top + bottom) // kh, (w + left + right) // kw
    mat = np.zeros((c * oh * ow, c * h * w), dtype=np.int64)
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                row = (ch * oh + i) * ow + j
                for di in range(kh):
                    for dj in range(kw):
                        y, x = i * kh + di - top, j * kw + dj - left
                        if 0 <= y < h and 0 <= x < w:
                            mat[row, (ch * h + y) * w + x] = 1
    return mat


def _conv_matrix(shape: tuple[int, ...], weight: np.ndarray, node: Conv2d) -> np.ndarray:
    """Integer matrix (outputs, inputs) of a grouped, strided, dilated, padded convolution."""
    c, h, w = shape
    out_ch, in_per_group, kh, kw = weight.shape
    top, left, bottom, right = node.padding
    sh, sw = node.stride
    dh, dw = node.dilation
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    per_group_out = out_ch // node.groups
    mat = np.zeros((out_ch * oh * ow, c * h * w), dtype=np.int64)
    for o in range(out_ch):
        g = o // per_group_out
        for i in range(oh):
            for j in range(ow):
                row = (o * oh + i) * ow + j
                for ci in range(in_per_group):
                    ch = g * in_per_group + ci
                    for a in range(kh):
                        for b in range(kw):
                            y, x = i * sh + a * dh - top, j * sw + b * dw - left
                            if 0 <= y < h and 0 <= x < w:
                                mat[row, (ch * h + y) * w + x] += weight[o, ci, a, b]
    return mat


def projection_matrix(net: Network, proj: Projection) -> np.ndarray:
    """Lava Dense weights (dst neurons, src neurons): 2 * m, pooling folded in."""
    mant, _ = net.weights(proj)
    lava_w = 2 * mant.astype(np.int64)
    graph = net.graph
    size = int(np.prod(graph.shape(proj.src)))
    mat = np.eye(size, dtype=np.int64)
    shape = graph.shape(proj.src)
    weighted = False
    for name in proj.nodes:
        node = graph.node(name)
        if isinstance(node, (AvgPool2d, SumPool2d)):
            mat = _pool_matrix(shape, node) @ mat
        elif isinstance(node, DenseNode):
            mat = lava_w @ mat
            weighted = True
        elif isinstance(node, Conv2d):
            mat = _conv_matrix(shape, lava_w, node) @ mat
            weighted = True
        shape = graph.shape(name)
    return mat if weighted else mat * int(lava_w)


class LavaNetwork:
    """The Lava processes of one compiled network (built once, reused for every sample)."""

    def __init__(
        self,
        net: Network,
        run_steps: int,
        mant: Mapping[str, np.ndarray],
        exp: Mapping[str, np.ndarray],
    ) -> None:
        """Build with the first sample's biases (Lava sets Vars only once it runs)."""
        self.net = net
        self.run_steps = run_steps
        self.neurons: dict[str, LIF] = {}
        self.denses: list[Dense] = []
        self.sinks: dict[str, RingBuffer] = {}
        for layer in net.plan.layers:
            cls = LIFSubtract if net.reset(layer) == "subtract" else LIF
            self.neurons[layer.name] = cls(
                shape=(layer.size,),
                du=fx.DECAY_UNITY - 1,
                dv=int(net.value(layer.name, "dv")),
                vth=int(net.value(layer.name, "vth")),
                v=net.value(layer.name, "v_start"),
                bias_mant=mant[layer.name],
                bias_exp=exp[layer.name],
            )
            sink = RingBuffer(shape=(layer.size,), buffer=run_steps)
            self.neurons[layer.name].s_out.connect(sink.a_in)
            self.sinks[layer.name] = sink
            for proj in layer.projections:
                dense = Dense(
                    weights=projection_matrix(net, proj),
                    weight_exp=net.weights(proj)[1],
                    num_weight_bits=8,
                )
                self.neurons[proj.src].s_out.connect(dense.s_in)
                dense.a_out.connect(self.neurons[layer.name].a_in)
                self.denses.append(dense)
        self.anchor = next(iter(self.neurons.values()))
        self.started = False

    def run_sample(
        self, mant: Mapping[str, np.ndarray], exp: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One sample from a clean state: (spikes (steps, N) per layer, final v per layer)."""
        if self.started:
            for layer in self.net.plan.layers:
                proc = self.neurons[layer.name]
                proc.bias_mant.set(mant[layer.name].astype(np.float64))
                proc.bias_exp.set(exp[layer.name].astype(np.float64))
                proc.v.set(self.net.value(layer.name, "v_start").astype(np.float64))
                proc.u.set(np.zeros(layer.size))
            for dense in self.denses:
                dense.a_buff.set(np.zeros(dense.a_buff.shape))
        self.anchor.run(
            condition=RunSteps(num_steps=self.run_steps),
            run_cfg=Loihi2SimCfg(select_tag="fixed_pt"),
        )
        self.started = True
        spikes = {
            name: np.asarray(s.data.get()).T.astype(np.int8) for name, s in self.sinks.items()
        }
        final_v = {name: np.asarray(p.v.get()).astype(np.int64) for name, p in self.neurons.items()}
        return spikes, final_v

    def stop(self) -> None:
        if self.started:
            self.anchor.stop()


def run(
    net: Network, encoded: Mapping[str, np.ndarray], timesteps: int, batch: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Run a batch sample by sample in Lava: (outputs, spikes (steps, B, N), final v, steps)."""
    steps = net.run_steps(timesteps)
    parts = {la.name: net.bias_parts(la, encoded, batch) for la in net.plan.layers}

    def sample(b: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return (
            {name: np.asarray(p[0][b]) for name, p in parts.items()},
            {name: np.asarray(p[1][b]) for name, p in parts.items()},
        )

    lava_net = LavaNetwork(net, steps, *sample(0))
    spikes = {la.name: np.zeros((steps, batch, la.size), np.int8) for la in net.plan.layers}
    final_v = {la.name: np.zeros((batch, la.size), np.int64) for la in net.plan.layers}
    try:
        for b in range(batch):
            s, v = lava_net.run_sample(*sample(b))
            for name in spikes:
                spikes[name][:, b] = s[name]
                final_v[name][b] = v[name]
    finally:
        lava_net.stop()
    outputs = {}
    for out, readout in net.plan.outputs.items():
        layer = net.plan.layer(readout)
        bias_eff = fx.bias_value(*parts[readout])
        value = net.readout(layer, final_v[readout], bias_eff, steps)
        outputs[out] = value.reshape(batch, *net.graph.shape(readout))
    return outputs, spikes, final_v, steps
