"""Activation statistics in bounded memory: streaming per-channel histograms.

Each channel keeps a fixed number of bins over ``[0, 2**k)``, where ``k`` grows with the
largest value seen; when the range doubles, adjacent bin pairs merge exactly. Memory is
``channels x bins`` counters whatever the number of samples, and a percentile read from the
histogram is within one bin width (at most ``2 * max / bins``) of the exact one.

Percentiles are taken over the *positive* values of an activation, as in the reference
implementation of Rueckauer et al. 2017 (SNN toolbox: percentiles of the nonzero activations),
so that the many exact zeros of a ReLU layer do not drag the threshold down.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

_EMPTY = -(2**31)  # exponent of a channel that has seen no positive value yet
_ARRAY_EQ = attrs.cmp_using(eq=np.array_equal)


class HistogramAccumulator:
    """Mutable per-channel histograms of positive values, updated batch by batch."""

    def __init__(self, channels: int, bins: int) -> None:
        if bins < 2 or bins & (bins - 1):
            raise ValueError(f"bins must be a power of two >= 2, got {bins}")
        self.bins = bins
        self.counts = np.zeros((channels, bins), dtype=np.int64)
        self.exponents = np.full(channels, _EMPTY, dtype=np.int64)
        self.maxima = np.zeros(channels)
        self.nonpositive = np.zeros(channels, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        """Add ``values`` of shape (channels, n)."""
        positive = values > 0
        self.nonpositive += values.shape[1] - positive.sum(axis=1)
        batch_max = np.where(positive, values, 0.0).max(axis=1, initial=0.0)
        self.maxima = np.maximum(self.maxima, batch_max)
        needed = np.where(
            batch_max > 0, np.floor(np.log2(np.maximum(batch_max, 1e-300))) + 1, _EMPTY
        ).astype(np.int64)
        for c in np.flatnonzero(needed > self.exponents):
            self._grow(c, int(needed[c]))
        rows, cols = np.nonzero(positive)
        upper = np.exp2(self.exponents.astype(np.float64))
        idx = np.minimum(
            (values[rows, cols] / upper[rows] * self.bins).astype(np.int64), self.bins - 1
        )
        flat = np.bincount(rows * self.bins + idx, minlength=self.counts.size)
        self.counts += flat.reshape(self.counts.shape)

    def _grow(self, channel: int, exponent: int) -> None:
        old = self.exponents[channel]
        self.exponents[channel] = exponent
        if old == _EMPTY:
            return
        factor = 2 ** min(exponent - old, int(math.log2(self.bins)))
        merged = self.counts[channel].reshape(self.bins // factor, factor).sum(axis=1)
        self.counts[channel] = 0
        self.counts[channel, : merged.size] = merged

    def freeze(self) -> Histograms:
        return Histograms(
            counts=self.counts.copy(),
            exponents=self.exponents.copy(),
            maxima=self.maxima.copy(),
            nonpositive=self.nonpositive.copy(),
        )


@attrs.frozen(kw_only=True)
class Histograms:
    """Frozen per-channel histograms: ``counts`` (channels, bins) over ``[0, 2**exponent)``."""

    counts: np.ndarray = attrs.field(eq=_ARRAY_EQ)
    exponents: np.ndarray = attrs.field(eq=_ARRAY_EQ)
    maxima: np.ndarray = attrs.field(eq=_ARRAY_EQ)
    nonpositive: np.ndarray = attrs.field(eq=_ARRAY_EQ)

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(type(self)):
            getattr(self, field.name).setflags(write=False)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in attrs.fields(type(self)))

    def _order_statistic(self, channel: int, cumulative: np.ndarray, k: int, width: float) -> float:
        """The ``k``-th smallest positive value (0-based), placed within its bin as if the
        bin's values were spread evenly."""
        b = int(np.searchsorted(cumulative, k, side="right"))
        before = cumulative[b - 1] if b else 0
        return (b + (k - before + 0.5) / self.counts[channel, b]) * width

    def percentile(self, p: float) -> np.ndarray:
        """Per channel, the ``p``-th percentile of the positive values (numpy's linear rule
        between order statistics, each located within its bin, so the error is at most one
        bin width); 0 for a channel that never saw a positive value."""
        channels, bins = self.counts.shape
        result = np.zeros(channels)
        for c in range(channels):
            total = int(self.counts[c].sum())
            if total == 0:
                continue
            if p >= 100.0:
                result[c] = self.maxima[c]
                continue
            rank = p / 100.0 * (total - 1)
            below = int(np.floor(rank))
            cumulative = np.cumsum(self.counts[c])
            width = 2.0 ** int(self.exponents[c]) / bins
            low = self._order_statistic(c, cumulative, below, width)
            high = self._order_statistic(c, cumulative, min(below + 1, total - 1), width)
            result[c] = min(low + (rank - below) * (high - low), self.maxima[c])
        return result


@attrs.frozen(kw_only=True)
class ActivationStats:
    """Statistics of one node's output: per channel (axis 0 of the per-sample shape) and for
    the whole layer."""

    node: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    channels: Histograms
    layer: Histograms

    def max(self, granularity: str) -> np.ndarray:
        """Largest positive value seen (0 if none): per channel (C,) or for the layer (1,)."""
        return (self.channels if granularity == "channel" else self.layer).maxima.copy()

    def percentile(self, p: float, granularity: str) -> np.ndarray:
        """``p``-th percentile of the positive values: per channel (C,) or for the layer (1,)."""
        return (self.channels if granularity == "channel" else self.layer).percentile(p)


@attrs.frozen(kw_only=True)
class CalibrationStats:
    """What `calibrate` learnt about an ANN's activations; input to `convert`.

    ``nodes`` maps each tracked node (every ReLU/Clip and each output's pre-readout value) to
    its `ActivationStats`; ``percentiles`` lists those reported by `summary`.
    """

    input_shape: tuple[int, ...] = attrs.field(converter=tuple)
    samples: int
    bins: int
    percentiles: tuple[float, ...] = attrs.field(converter=tuple)
    nodes: dict[str, ActivationStats]

    @property
    def nbytes(self) -> int:
        """Memory held by the histograms: independent of the number of samples."""
        return sum(s.channels.nbytes + s.layer.nbytes for s in self.nodes.values())

    def summary(self) -> dict:
        """Layer-wise max and percentiles per tracked node, as JSON-able data."""
        return {
            "samples": self.samples,
            "bins": self.bins,
            "nodes": {
                name: {
                    "max": float(s.max("layer")[0]),
                    **{f"p{p:g}": float(s.percentile(p, "layer")[0]) for p in self.percentiles},
                }
                for name, s in self.nodes.items()
            },
        }
