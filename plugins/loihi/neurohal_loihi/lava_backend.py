"""The lava backend: the compiled network as Lava processes, run with Loihi2SimCfg("fixed_pt").

Imported only where lava-nc imports (the Lava interpreter, or in-process when available).
Every layer is a ``BatchLIF``: Lava's LIF process (du = 4095 so u holds one step's input, dv
from the IR, vth the threshold mantissa) run by a fixed-point model that keeps Lava's own
bit-accurate arithmetic (``AbstractPyLifModelFixed``: current, voltage, bias, saturation, reset
to zero) and adds what a batch needs: the samples run back to back in ONE Lava run, each
``steps`` long; at a sample's first step the model restores v and u, loads that sample's bias
and ignores the input still in flight from the previous sample (a clean start, exactly as a
fresh network), and it records its spikes (48 steps per int64 word) and final v in Vars read
once at the end. (Lava's ``Var.get`` and ``set`` move one value at a time, so per-sample
reads, writes or sink processes cost seconds per sample.) ``BatchLIFSubtract`` resets by
subtracting the threshold (Loihi 2's programmable neuron). A Loihi 1 two-compartment layer
(`network.reset_modes`) is a ``BatchLIFDendrite``, whose v never resets (the dendrite; it
spikes where the soma would, when v passes the threshold), with a Lava ``Sparse`` from its
spikes back to its own input carrying the inhibitory self-synapse (diagonal weights, delivered
one step later as every Lava connection is).

Every projection is a Lava ``Dense`` whose weight matrix is built here, independently of the
emulator, by explicit index arithmetic (pooling folded in as fixed weights). Lava's fixed-point
``Conv`` model ignores ``weight_exp`` (lava 0.10 ``PyConvModelFixed``), so convolutions are
expanded to Dense.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import Dense
from lava.proc.lif.models import AbstractPyLifModelFixed
from lava.proc.lif.process import LIF
from lava.proc.sparse.process import Sparse
from scipy import sparse

from neurohal.ir import AvgPool2d, Conv2d, Scale, SumPool2d
from neurohal.ir import Dense as DenseNode
from neurohal_loihi import fixedpoint as fx
from neurohal_loihi.lowering import Projection
from neurohal_loihi.network import Network

BITS_PER_WORD = 48


class BatchLIF(LIF):
    """Lava's LIF with per-sample biases, per-sample restart, and recorded spikes and v."""

    def __init__(
        self,
        *,
        steps: int,
        v_start: np.ndarray,
        bias_mant_all: np.ndarray,
        bias_exp_all: np.ndarray,
        **kwargs: object,
    ) -> None:
        size, samples = bias_mant_all.shape
        super().__init__(
            shape=(size,),
            v=v_start,
            bias_mant=bias_mant_all[:, 0],
            bias_exp=bias_exp_all[:, 0],
            **kwargs,
        )
        words = -(-steps // BITS_PER_WORD)
        self.proc_params["steps"] = steps
        self.v_start = Var(shape=(size,), init=v_start)
        self.bias_mant_all = Var(shape=(size, samples), init=bias_mant_all)
        self.bias_exp_all = Var(shape=(size, samples), init=bias_exp_all)
        self.record = Var(shape=(size, samples * words), init=0)
        self.v_final = Var(shape=(size, samples), init=0)


class BatchLIFSubtract(BatchLIF):
    """As BatchLIF, with reset by subtraction of the threshold."""


class BatchLIFDendrite(BatchLIF):
    """As BatchLIF, with no reset: the dendrite of a two-compartment soft-reset neuron."""


class _BatchBitAcc(AbstractPyLifModelFixed):
    """Lava's bit-accurate LIF arithmetic (inherited) with ``PyLifModelBitAcc``'s threshold
    (``vth << 6``, spike when v exceeds it) restated, as Lava forbids subclassing a model that
    already implements a process, plus the batch bookkeeping described in the module doc."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    v_start: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias_mant_all: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp_all: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)
    record: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v_final: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self) -> np.ndarray:
        return self.v > self.effective_vth

    def run_spk(self) -> None:
        steps = self.proc_params["steps"]
        local, sample = (self.time_step - 1) % steps, (self.time_step - 1) // steps
        a_in = self.a_in.recv()
        if local == 0:
            self.v[:] = self.v_start
            self.u[:] = 0
            self.bias_mant[:] = self.bias_mant_all[:, sample]
            self.bias_exp[:] = self.bias_exp_all[:, sample]
            a_in = np.zeros_like(a_in)
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        self.s_out_buff = self.spiking_activation()
        self.reset_voltage(spike_vector=self.s_out_buff)
        self.s_out.send(self.s_out_buff)
        words = self.record.shape[1] // self.v_final.shape[1]
        word = sample * words + local // BITS_PER_WORD
        bits = self.s_out_buff.astype(np.int64) << (local % BITS_PER_WORD)
        self.record[:, word] = self.record[:, word] + bits
        if local == steps - 1:
            self.v_final[:, sample] = self.v


@implements(proc=BatchLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyBatchLifModelBitAcc(_BatchBitAcc):
    """Reset to zero (Lava's own reset)."""


@implements(proc=BatchLIFSubtract, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyBatchLifSubtractModelBitAcc(_BatchBitAcc):
    """Reset by subtracting the threshold from v where a neuron spiked."""

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self.v[spike_vector] -= self.effective_vth


@implements(proc=BatchLIFDendrite, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyBatchLifDendriteModelBitAcc(_BatchBitAcc):
    """No reset: the self-synapse does the subtraction, through the input."""

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        pass


def _pool_matrix(shape: tuple[int, ...], node: AvgPool2d | SumPool2d) -> np.ndarray:
    """0/1 matrix (pooled, input) of a non-overlapping window sum with zero padding."""
    c, h, w = shape
    kh, kw = node.kernel
    top, left, bottom, right = node.padding
    oh, ow = (h + top + bottom) // kh, (w + left + right) // kw
    mat = np.zeros((c, oh, ow, c, h, w))
    ch, i, j = np.meshgrid(np.arange(c), np.arange(oh), np.arange(ow), indexing="ij")
    for di in range(kh):
        for dj in range(kw):
            y, x = i * kh + di - top, j * kw + dj - left
            ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            mat[ch[ok], i[ok], j[ok], ch[ok], y[ok], x[ok]] = 1.0
    return mat.reshape(c * oh * ow, c * h * w)


def _conv_matrix(shape: tuple[int, ...], weight: np.ndarray, node: Conv2d) -> np.ndarray:
    """Matrix (outputs, inputs) of a grouped, strided, dilated, zero-padded cross-correlation."""
    c, h, w = shape
    out_ch, in_per_group, kh, kw = weight.shape
    top, left, bottom, right = node.padding
    sh, sw = node.stride
    dh, dw = node.dilation
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    per_group_out = out_ch // node.groups
    mat = np.zeros((out_ch, oh, ow, c, h, w))
    i, j = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    for o in range(out_ch):
        g = o // per_group_out
        for ci in range(in_per_group):
            for a in range(kh):
                for b in range(kw):
                    y, x = i * sh + a * dh - top, j * sw + b * dw - left
                    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
                    mat[o, i[ok], j[ok], g * in_per_group + ci, y[ok], x[ok]] += weight[o, ci, a, b]
    return mat.reshape(out_ch * oh * ow, c * h * w)


def projection_matrix(net: Network, proj: Projection) -> np.ndarray:
    """Lava Dense weights (dst neurons, src neurons): 2 * m, pooling folded in.

    Composed in float64 (exact: every entry is a small integer) and returned as int64.
    """
    mant, _ = net.weights(proj)
    lava_w = 2.0 * mant.astype(np.float64)
    graph = net.graph
    shape = graph.shape(proj.src)
    mat: np.ndarray | None = None
    weighted = False
    first_scale = next((n for n in proj.nodes if isinstance(graph.node(n), Scale)), None)
    for name in proj.nodes:
        node = graph.node(name)
        step = None
        if isinstance(node, (AvgPool2d, SumPool2d)):
            step = _pool_matrix(shape, node)
        elif isinstance(node, DenseNode):
            step, weighted = lava_w, True
        elif isinstance(node, Conv2d):
            step, weighted = _conv_matrix(shape, lava_w, node), True
        elif name == first_scale and lava_w.ndim:
            # identity route: one weight per channel of the tensor here
            per_channel = int(np.prod(shape)) // lava_w.size
            step = np.diag(np.repeat(lava_w, per_channel))
        if step is not None:
            mat = step if mat is None else step @ mat
        shape = graph.shape(name)
    if mat is None:
        mat = np.eye(int(np.prod(graph.shape(proj.src))))
    if not weighted and not (first_scale and lava_w.ndim):
        mat = mat * float(lava_w)
    return np.rint(mat).astype(np.int64)


def _unpack(words: np.ndarray, samples: int, steps: int) -> np.ndarray:
    """(neurons, samples * words) int64 bit-packed spikes -> (steps, samples, neurons) int8."""
    per = words.shape[1] // samples
    packed = words.astype(np.int64).reshape(words.shape[0], samples, per)
    t = np.arange(steps)
    bits = (packed[:, :, t // BITS_PER_WORD] >> (t % BITS_PER_WORD)) & 1
    return bits.transpose(2, 1, 0).astype(np.int8)


def run(
    net: Network, encoded: Mapping[str, np.ndarray], timesteps: int, batch: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Run a batch in one Lava run: (outputs, spikes (steps, B, N), final v (B, N), steps)."""
    steps = net.run_steps(timesteps)
    parts = {la.name: net.bias_parts(la, encoded, batch) for la in net.plan.layers}
    neurons: dict[str, BatchLIF] = {}
    classes = {"subtract": BatchLIFSubtract, "two_compartment": BatchLIFDendrite}
    for layer in net.plan.layers:
        cls = classes.get(net.reset(layer), BatchLIF)
        mant, exp = parts[layer.name]
        neurons[layer.name] = cls(
            steps=steps,
            v_start=net.value(layer.name, "v_start"),
            bias_mant_all=np.ascontiguousarray(np.asarray(mant).T),
            bias_exp_all=np.ascontiguousarray(np.asarray(exp).T),
            du=fx.DECAY_UNITY - 1,
            dv=int(net.value(layer.name, "dv")),
            vth=int(net.value(layer.name, "vth")),
        )
        if cls is BatchLIFDendrite:
            mant_r, exp_r = net.self_synapse(layer)
            synapse = Sparse(
                weights=sparse.diags(np.full(layer.size, -mant_r), format="csr"),
                weight_exp=exp_r,
            )
            neurons[layer.name].s_out.connect(synapse.s_in)
            synapse.a_out.connect(neurons[layer.name].a_in)
        for proj in layer.projections:
            dense = Dense(
                weights=projection_matrix(net, proj),
                weight_exp=net.weights(proj)[1],
                num_weight_bits=8,
            )
            neurons[proj.src].s_out.connect(dense.s_in)
            dense.a_out.connect(neurons[layer.name].a_in)
    anchor = next(iter(neurons.values()))
    try:
        anchor.run(
            condition=RunSteps(num_steps=steps * batch), run_cfg=Loihi2SimCfg(select_tag="fixed_pt")
        )
        spikes = {
            name: _unpack(np.asarray(p.record.get()), batch, steps) for name, p in neurons.items()
        }
        readouts = set(net.plan.outputs.values())
        final_v = {
            name: np.asarray(p.v_final.get()).T.astype(np.int64)
            for name, p in neurons.items()
            if name in readouts
        }
    finally:
        anchor.stop()
    outputs = {}
    for out, readout in net.plan.outputs.items():
        layer = net.plan.layer(readout)
        bias_eff = fx.bias_value(*parts[readout])
        value = net.readout(layer, final_v[readout], bias_eff, steps)
        outputs[out] = value.reshape(batch, *net.graph.shape(readout))
    return outputs, spikes, final_v, steps
