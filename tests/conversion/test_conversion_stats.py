"""Streaming statistics and calibration, against numpy and the reference interpreter."""

import tracemalloc

import numpy as np
import pytest
from conversion_graphs import lenet_like, residual

import neurohal as nh
from neurohal import reference
from neurohal.conversion.stats import HistogramAccumulator
from neurohal.errors import ConversionError


def test_histogram_merging_is_exact():
    """Batches with growing ranges give the same counts as one np.histogram of all data."""
    rng = np.random.default_rng(0)
    acc = HistogramAccumulator(channels=2, bins=64)
    batches = [rng.random((2, 500)) * scale - 0.2 for scale in (0.3, 1.0, 5.0, 40.0)]
    for b in batches:
        acc.update(b)
    everything = np.concatenate(batches, axis=1)
    hist = acc.freeze()
    for c in range(2):
        upper = 2.0 ** hist.exponents[c]
        positive = everything[c][everything[c] > 0]
        expected, _ = np.histogram(positive, bins=64, range=(0, upper))
        np.testing.assert_array_equal(hist.counts[c], expected)
        assert hist.nonpositive[c] == np.sum(everything[c] <= 0)
        assert hist.maxima[c] == everything[c].max()


@pytest.mark.parametrize("p", [50.0, 99.0, 99.9, 99.99, 100.0])
def test_percentile_within_one_bin_of_numpy(p):
    rng = np.random.default_rng(1)
    values = np.concatenate([np.zeros(3000), rng.lognormal(size=20000)])[None, :]
    acc = HistogramAccumulator(channels=1, bins=2048)
    for chunk in np.array_split(values, 7, axis=1):
        acc.update(chunk)
    hist = acc.freeze()
    exact = np.percentile(values[values > 0], p)
    width = 2.0 ** hist.exponents[0] / 2048
    assert abs(hist.percentile(p)[0] - exact) <= width


def test_calibrate_against_reference_records(images):
    graph = lenet_like()
    stats = nh.calibrate(graph, images, batch_size=10, percentiles=(99.0,), bins=4096)
    acts = ["act1", "act2", "act3", "fc2"]
    recorded = reference.run(graph, images, record=acts).records
    assert set(stats.nodes) == set(acts)
    for name in acts:
        values = recorded[name][0]  # (B, C, ...)
        per_channel = np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)
        s = stats.nodes[name]
        positive_max = np.maximum(per_channel.max(axis=1), 0.0)  # stats keep positive values
        np.testing.assert_allclose(s.max("channel"), positive_max, rtol=1e-12)
        np.testing.assert_allclose(s.max("layer"), [max(values.max(), 0.0)], rtol=1e-12)
        positive = values[values > 0]
        width = 2.0 ** s.layer.exponents[0] / 4096
        assert abs(s.percentile(99.0, "layer")[0] - np.percentile(positive, 99.0)) <= width
        for c in range(per_channel.shape[0]):
            row = per_channel[c][per_channel[c] > 0]
            if row.size == 0:  # a channel that never fired has percentile 0
                assert s.percentile(99.0, "channel")[c] == 0.0
                continue
            width = 2.0 ** s.channels.exponents[c] / 4096
            got = s.percentile(99.0, "channel")[c]
            assert abs(got - np.percentile(row, 99.0)) <= width
    summary = stats.summary()
    assert summary["samples"] == len(images)
    assert summary["nodes"]["act1"]["max"] == pytest.approx(recorded["act1"].max())


def test_calibrate_on_residual_graph_tracks_every_activation(images):
    stats = nh.calibrate(residual(), images[:, :, :6, :6])
    assert set(stats.nodes) == {"h", "b1_act", "block_out", "side_act", "fc"}


def test_memory_is_independent_of_the_number_of_samples():
    graph = lenet_like()
    rng = np.random.default_rng(3)
    small, large = rng.random((50, 1, 8, 8)), rng.random((2000, 1, 8, 8))
    peaks, sizes = [], []
    for data in (small, large):
        tracemalloc.start()
        stats = nh.calibrate(graph, data, batch_size=50)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        sizes.append(stats.nbytes)
    assert sizes[0] == sizes[1]
    # 40x the data must not cost more working memory: activations are never all held
    assert peaks[1] < 1.5 * peaks[0]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros((4, 1, 9, 9)), r"shape \(4, 1, 9, 9\).*needs \(N, \*\(1, 8, 8\)\)"),
        (np.zeros((0, 1, 8, 8)), "empty"),
        (np.full((2, 1, 8, 8), np.nan), "NaN"),
        ([[0.0]], "numeric numpy array"),
    ],
)
def test_bad_calibration_data(data, match):
    with pytest.raises(ConversionError, match=match):
        nh.calibrate(lenet_like(), data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bins": 1000}, "power of two"), ({"batch_size": 0}, "batch_size"),
     ({"percentiles": (101.0,)}, "percentiles")],
)  # fmt: skip
def test_bad_calibration_options(kwargs, match, images):
    with pytest.raises(ConversionError, match=match):
        nh.calibrate(lenet_like(), images, **kwargs)
