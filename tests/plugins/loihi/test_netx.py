"""netx export: the file's layers reproduce the graph's maps (judged by the reference's own
conv and pool functions), carry the compiled Loihi parameters, and refuse what NetX lacks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurohal import ir
from neurohal.errors import UnsupportedGraphError
from neurohal.exporters import export
from neurohal.reference import conv2d, pool2d
from neurohal.testing.cases import conformance_cases
from neurohal_loihi.device import LoihiDevice


def _lenet_like() -> ir.Graph:
    rng = np.random.default_rng(3)
    return ir.chain(
        ir.Input(name="x", shape=(1, 12, 12)),
        ir.Encoder(name="enc"),
        ir.Conv2d(name="c1", weight=rng.normal(size=(4, 1, 3, 3)), bias=np.full(4, 0.1), padding=1),
        ir.IF(name="if1", v_threshold=1.0),
        ir.AvgPool2d(name="p1", kernel=2, stride=2),
        ir.Conv2d(name="c2", weight=rng.normal(size=(6, 4, 3, 3)) * 0.3, padding=1),
        ir.IF(name="if2", v_threshold=1.0),
        ir.AvgPool2d(name="p2", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=rng.normal(size=(5, 54)) * 0.2),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
    )


def test_layers_and_folded_pooling(tmp_path) -> None:
    graph = _lenet_like()
    path = export(graph, "netx", tmp_path / "net.h5")
    art = LoihiDevice("loihi1").compile(graph)
    with h5py.File(path, "r") as f:
        layers = [f["layer"][str(i)] for i in range(len(f["layer"]))]
        types = [g["type"][()].decode() for g in layers]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        conv2 = layers[2]
        mant, exp = art.arrays["if1->if2:p1,c2:w"], int(art.arrays["if1->if2:p1,c2:exp"])
        # pool 2 then conv (stride 1, pad 1) == conv with the kernel repeated 2x2, stride 2,
        # pad 2, on the unpooled spikes
        spikes = (np.random.default_rng(0).random((3, 4, 12, 12)) < 0.3).astype(float)
        weight = 2.0 * mant * 2.0**exp
        want = conv2d(
            pool2d(spikes, "sum", (2, 2), (2, 2), (0, 0, 0, 0)),
            weight,
            None,
            (1, 1),
            (1, 1, 1, 1),
            (1, 1),
            1,
        )
        stride = tuple(conv2["stride"][()])
        pad = tuple(conv2["padding"][()])
        got = conv2d(spikes, conv2["weight"][()], None, stride, (*pad, *pad), (1, 1), 1)
        np.testing.assert_array_equal(got, want)
        dense = layers[4]
        mant, exp = art.arrays["if2->readout:p2,flat,fc:w"], 0
        exp = int(art.arrays["if2->readout:p2,flat,fc:exp"])
        flat_spikes = (np.random.default_rng(1).random((3, 6, 6, 6)) < 0.3).astype(float)
        pooled = pool2d(flat_spikes, "sum", (2, 2), (2, 2), (0, 0, 0, 0)).reshape(3, -1)
        np.testing.assert_array_equal(
            flat_spikes.reshape(3, -1) @ dense["weight"][()].T, pooled @ (2.0 * mant * 2.0**exp).T
        )
        assert dense["neuron"]["vThMant"][()] == 131071
        assert conv2["neuron"]["vThMant"][()] == 2048
        assert conv2["neuron"]["iDecay"][()] == 4096 and conv2["neuron"]["vDecay"][()] == 0
        # first layer: bias 0.1 * 2**17 / 64 = 204.8 -> 205 per channel
        np.testing.assert_array_equal(layers[1]["bias"][()], np.full(4, 205.0))


def test_residual_refused(tmp_path) -> None:
    case = next(c for c in conformance_cases("spiking") if c.name == "spiking_residual_add")
    with pytest.raises(UnsupportedGraphError, match="node 'act2'.*residual"):
        export(case.graph, "netx", tmp_path / "res.h5")
    assert not (tmp_path / "res.h5").exists()
