"""ANN-to-SNN conversion, judged by the reference interpreter and hand-computed cases."""

import json

import numpy as np
import pytest
from conversion_graphs import lenet_like, maxpool_net, residual

import neurohal as nh
from neurohal import ir, reference
from neurohal.conversion import NAIVE, simulate
from neurohal.errors import ConversionError


def _ann(graph, x):
    return reference.run(graph, x).outputs["out"]


def test_hand_computed_clip_network():
    """One Clip(0, 2) layer: with v_init = half threshold and reset by subtraction the IF
    emits round(T * x / 2) spikes for a constant input x (QCFS, Bu et al. 2022), and the
    membrane readout of the next layer is w * 2 * count / T + b."""
    graph = ir.chain(
        ir.Input(name="x", shape=(3,)),
        ir.Dense(name="fc1", weight=np.eye(3), bias=np.zeros(3)),
        ir.Clip(name="act", min=0.0, max=2.0),
        ir.Dense(name="fc2", weight=[[1.0, 10.0, 100.0]], bias=[0.25]),
        ir.Output(name="out"),
    )
    snn = nh.convert(graph)  # a clip bound needs no data
    x = np.array([[0.3, 1.1, 2.5]])
    for T in (1, 4, 7):
        counts = np.clip(np.floor(T * x / 2.0 + 0.5), 0, T)
        expected = (2.0 * counts / T) @ np.array([1.0, 10.0, 100.0]) + 0.25
        got = reference.run(snn, x, timesteps=T).outputs["out"]
        np.testing.assert_allclose(got[:, 0], expected, rtol=1e-12)


def test_structure_and_metadata(images):
    ann = lenet_like().with_metadata(model="lenet-like")
    snn = nh.convert(ann, images)
    kinds = {n.name: n.type_name for n in snn.nodes}
    assert kinds["x.encoder"] == "Encoder"
    assert [kinds[a] for a in ("act1", "act2", "act3")] == ["IF"] * 3
    assert kinds["out.readout"] == "Readout"
    assert all(
        n.v_threshold == 1.0 and n.v_init == 0.5 and n.reset == "subtract"
        for n in snn.nodes
        if isinstance(n, ir.IF)
    )
    assert snn.kind == "snn"
    meta = json.loads(json.dumps(dict(snn.metadata)))
    assert meta["model"] == "lenet-like"
    conv = meta["conversion"]
    assert conv["config"] == nh.ConversionConfig().to_dict()
    assert conv["calibration_samples"] == len(images)
    assert set(conv["thresholds"]) == {"act1", "act2", "act3"}
    assert len(conv["thresholds"]["act2"]["scale"]) == 6  # channel-wise


def test_max_normalization_thresholds_are_the_recorded_maxima(images):
    """Oracle: the per-channel maximum of each ReLU in a reference run of the ANN."""
    ann = lenet_like()
    rec = reference.run(ann, images, record=["act1", "act3"]).records
    for granularity in ("channel", "layer"):
        cfg = nh.ConversionConfig(normalization="max", granularity=granularity)
        meta = nh.convert(ann, images, cfg).metadata["conversion"]["thresholds"]
        for name in ("act1", "act3"):
            values = np.moveaxis(rec[name][0], 1, 0).reshape(rec[name].shape[2], -1)
            expected = values.max(axis=1) if granularity == "channel" else values.max()
            expected = np.where(expected > 0, expected, values.max())  # dead: layer's max
            np.testing.assert_allclose(
                meta[name]["scale"], np.broadcast_to(expected, (values.shape[0],)), rtol=1e-12
            )


@pytest.mark.parametrize("graph_fn", [lenet_like, residual])
@pytest.mark.parametrize("granularity", ["channel", "layer"])
def test_snn_converges_to_the_ann(graph_fn, granularity, images):
    """With max normalization nothing is clipped, so the error must shrink towards 0 as T
    grows (about 1/T): the scales on every branch, Add and Concat are consistent."""
    graph = graph_fn()
    x = images[:, :, : graph.inputs[0].shape[1], : graph.inputs[0].shape[2]]
    snn = nh.convert(graph, x, nh.ConversionConfig(normalization="max", granularity=granularity))
    ann = _ann(graph, x)
    outputs = {}
    simulate(snn, x, 512, on_step=lambda t, v: outputs.__setitem__(t + 1, v["out"].copy()))
    errors = {T: np.abs(outputs[T] - ann).mean() for T in (16, 512)}
    assert errors[512] < 0.01 * np.abs(ann).mean()
    assert errors[512] < errors[16] / 4
    # the fast simulator's value at T = 16 is the reference interpreter's
    ref = reference.run(snn, x[:8], timesteps=16).outputs["out"]
    np.testing.assert_allclose(outputs[16][:8], ref, rtol=1e-12, atol=1e-12)


def test_residual_add_inputs_share_one_scale(images):
    x = images[:, :, :6, :6]
    snn = nh.convert(residual(), x)
    thresholds = snn.metadata["conversion"]["thresholds"]
    lam_h = np.array(thresholds["h"]["scale"])
    lam_out = np.array(thresholds["block_out"]["scale"])
    (skip,) = [n for n in snn.nodes if isinstance(n, ir.Scale) and "join" in n.name]
    assert snn.sources(skip.name) == ("h",)
    np.testing.assert_allclose(skip.scale, lam_h / lam_out)
    assert set(snn.sources("join")) == {"b2", skip.name}


def test_clip_bound_is_the_threshold_without_data():
    snn = nh.convert(lenet_like(activation="clip"))
    for name in ("act1", "act2", "act3"):
        meta = snn.metadata["conversion"]["thresholds"][name]
        assert meta["source"] == "clip_bound"
        assert set(meta["scale"]) == {0.8}


def test_clip_threshold_never_exceeds_the_bound(images):
    cfg = nh.ConversionConfig(use_clip_bound=False, normalization="max")
    ann = lenet_like(activation="clip")
    meta = nh.convert(ann, images, cfg).metadata["conversion"]["thresholds"]
    rec = reference.run(ann, images, record=["act1"]).records["act1"]
    assert max(meta["act1"]["scale"]) <= 0.8
    assert max(meta["act1"]["scale"]) == pytest.approx(rec.max())


def test_naive_baseline_uses_spike_count_readout(images):
    snn = nh.convert(lenet_like(), images, NAIVE)
    readout = snn.node("out.readout")
    assert readout.kind == "spike_count"
    assert isinstance(snn.node(snn.sources("out.readout")[0]), ir.IF)
    assert all(n.reset == "zero" and n.v_init == 0.0 for n in snn.nodes if isinstance(n, ir.IF))
    ann = _ann(lenet_like(), images)
    out = reference.run(snn, images, timesteps=64).outputs["out"]
    assert out.shape == ann.shape
    assert np.all(out >= 0)  # rates times positive thresholds


def test_threshold_balancing_thresholds_bound_the_currents(images):
    """Each balanced threshold scale is the largest input current its IF layer receives in
    the final SNN (layers before it fixed), checked with the reference's records."""
    cfg = nh.ConversionConfig(
        normalization="threshold_balancing", granularity="layer", balancing_timesteps=8
    )
    ann = lenet_like()
    snn = nh.convert(ann, images[:16], cfg)
    thresholds = snn.metadata["conversion"]["thresholds"]
    feeds = {a: snn.sources(a)[0] for a in ("act1", "act2", "act3")}
    rec = reference.run(snn, images[:16], timesteps=8, record=list(feeds.values())).records
    for act, src in feeds.items():
        # currents into an IF with threshold 1 are in units of its threshold scale
        assert rec[src].max() == pytest.approx(1.0)
        assert thresholds[act]["source"].startswith("threshold balancing")


def test_maxpool_strategies(images):
    ann = maxpool_net()
    kept = nh.convert(ann, images)
    assert kept.kind == "mixed" and isinstance(kept.node("pool"), ir.MaxPool2d)
    avg = nh.convert(ann, images, nh.ConversionConfig(maxpool="avg"))
    assert avg.kind == "snn" and isinstance(avg.node("pool"), ir.AvgPool2d)
    notes = " ".join(kept.metadata["conversion"]["notes"])
    assert "Softmax 'prob' dropped" in notes and "MaxPool2d 'pool'" in notes
    for snn in (kept, avg):
        out = reference.run(snn, images, timesteps=8).outputs["out"]
        assert out.shape == (len(images), 5)


def test_poisson_encoding(images):
    snn = nh.convert(lenet_like(), images, nh.ConversionConfig(encoding="poisson", seed=5))
    enc = snn.node("x.encoder")
    assert (enc.kind, enc.seed) == ("poisson", 5)
    with pytest.raises(ConversionError, match=r"poisson encoding needs inputs in \[0, 1\]"):
        nh.convert(lenet_like(), images * 3, nh.ConversionConfig(encoding="poisson"))


def test_calibration_stats_can_be_reused(images):
    stats = nh.calibrate(lenet_like(), images)
    a = nh.convert(lenet_like(), stats)
    b = nh.convert(lenet_like(), images)
    assert a == b
    with pytest.raises(ConversionError, match="another model"):
        nh.convert(residual(), stats)
    with pytest.raises(ConversionError, match="pass the data itself"):
        nh.convert(lenet_like(), stats, nh.ConversionConfig(normalization="threshold_balancing"))


def test_missing_and_malformed_calibration(images):
    with pytest.raises(ConversionError, match=r"act1.*need calibration data"):
        nh.convert(lenet_like())
    with pytest.raises(ConversionError, match="spike-count readout"):
        nh.convert(lenet_like(activation="clip"), None, NAIVE)
    with pytest.raises(ConversionError, match=r"needs \(N, \*\(1, 8, 8\)\)"):
        nh.convert(lenet_like(), images[:, :, :6, :6])
    bad = images.copy()
    bad[3, 0, 2, 2] = np.nan
    with pytest.raises(ConversionError, match="NaN"):
        nh.convert(lenet_like(), bad)


def test_unsupported_nodes_are_all_reported_up_front(images):
    graph = ir.chain(
        ir.Input(name="x", shape=(4,)),
        ir.Dense(name="fc", weight=np.ones((4, 4))),
        ir.Clip(name="hardtanh", min=-1.0, max=1.0),
        ir.Softmax(name="mid_softmax"),
        ir.Dense(name="head", weight=np.ones((2, 4)) * np.nan),
        ir.Output(name="out"),
    )
    with pytest.raises(ConversionError) as info:
        nh.convert(graph, np.ones((2, 4)))
    text = str(info.value)
    assert "3 node(s)" in text
    assert "'hardtanh' (Clip)" in text and "'mid_softmax' (Softmax)" in text
    assert "'head' (Dense): weight holds NaN" in text


def test_spiking_input_graph_is_refused(images):
    snn = nh.convert(lenet_like(), images)
    with pytest.raises(ConversionError, match="already snn"):
        nh.convert(snn, images)


def test_snn_survives_a_file_round_trip(tmp_path, images):
    snn = nh.convert(residual(), images[:, :, :6, :6])
    path = nh.save(snn, tmp_path / "res.nhir")
    assert nh.load(path) == snn
