"""`ConversionConfig`: every choice the ANN-to-SNN converter makes, as one frozen record.

The defaults are the recipe that keeps the zoo's QCFS-trained MLP, LeNet-5 and CNN within
0.2 points of their ANNs from T = 4 on (``benchmarks/results/conversion_accuracy.json``): clip
bounds as thresholds (Bu et al., ICLR 2022), else channel-wise 99.99-percentile normalization
(Rueckauer et al. 2017, Front. Neurosci. 11:682), reset by subtraction, membrane at half
threshold at t = 0, and a membrane-potential readout. The residual network converts much worse
at T <= 8 with these defaults; `RESIDUAL` plus bias calibration for the run's T
(``bias_calibration_timesteps``, Li et al., ICML 2021) is the recipe for it. Diagnosis on
resnet_small (SNN rate x threshold vs the ANN's activation): every node's threshold, v_init
and skip Scale match QCFS theory (threshold = lam, v_init = lam/2, skip scaled by
lam_in/lam_out), and the first layer's rates equal the QCFS quantization exactly; the error
starts at the first layer fed by spikes as unevenness error (Bu et al. 2022, Sec. 4: neurons
whose mean input is negative fire on early positive input; about +0.03 of lam per layer at
T = 4 and 8) and is amplified about 2x per layer by the BatchNorm-folded weights. Lower,
data-based thresholds (channel-wise percentile, capped at the clip bound) put more spikes on
the small activations that carry the information, and bias calibration removes each layer's
mean error in turn. At T = 4 the quantization itself also costs, unless the ANN was trained
for it: the zoo's resnet_small is trained with QCFS levels drawn from {4, 8, 16, unquantized}
(scripts/train_zoo.py). `NAIVE` is the textbook baseline the benchmark compares against:
layer-wise max normalization (Diehl et al., IJCNN 2015), reset to zero, spike-count readout.
"""

from __future__ import annotations

import attrs

NORMALIZATIONS = ("max", "percentile", "threshold_balancing")
GRANULARITIES = ("layer", "channel")
RESETS = ("subtract", "zero")
READOUTS = ("membrane", "spike_count")
ENCODINGS = ("analog", "poisson")
MAXPOOL_STRATEGIES = ("spike_or", "avg")
"""``spike_or``: MaxPool2d stays on the spiking path; on binary spikes the window max is the
logical OR of the window's spikes (a mixed graph; its rate over-estimates the max rate when
the window's neurons fire at different steps). ``avg``: MaxPool2d becomes AvgPool2d with the
same window (a fully spiking graph that computes a different function than the ANN)."""


def _in(choices: tuple[str, ...]) -> object:
    return attrs.validators.in_(choices)


def _percentile(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {value}")


def _fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value}")


def _positive_int(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


def _non_negative(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class ConversionConfig:
    """How `convert` turns an ANN into an SNN; recorded in the SNN's metadata.

    - ``normalization``: where thresholds come from for activations without a usable clip
      bound: the activation's ``max`` or ``percentile`` on calibration data (Rueckauer 2017),
      or ``threshold_balancing`` (Sengupta et al. 2019, Front. Neurosci. 13:95): layer by
      layer, the maximum input current of the partly converted SNN over
      ``balancing_timesteps`` steps.
    - ``granularity``: one threshold scale per ``layer`` or per ``channel``.
    - ``percentile``: the percentile used by ``normalization="percentile"``.
    - ``reset``: ``subtract`` keeps the residual charge above threshold; ``zero`` drops it.
    - ``v_init``: initial membrane as a fraction of the threshold (0.5 = half threshold).
    - ``readout``: ``membrane`` averages the last layer's input current (ANN units);
      ``spike_count`` puts IF neurons on the last layer and reads their rate.
    - ``encoding``: ``analog`` feeds the input as a constant current; ``poisson`` as Bernoulli
      spikes (inputs must lie in [0, 1]), drawn from ``seed``.
    - ``maxpool``: see `MAXPOOL_STRATEGIES`.
    - ``use_clip_bound``: a ``Clip(0, lam)`` activation gets threshold ``lam`` exactly, with no
      data needed for it.
    - ``bias_calibration_timesteps``: when > 0, the SNN is tuned for that many timesteps by
      bias calibration (Li et al., ICML 2021; see `neurohal.conversion.bias_calibration`) on
      the first ``bias_calibration_samples`` calibration samples (needs the data itself).
    """

    normalization: str = attrs.field(default="percentile", validator=_in(NORMALIZATIONS))
    granularity: str = attrs.field(default="channel", validator=_in(GRANULARITIES))
    percentile: float = attrs.field(default=99.99, converter=float, validator=_percentile)
    reset: str = attrs.field(default="subtract", validator=_in(RESETS))
    v_init: float = attrs.field(default=0.5, converter=float, validator=_fraction)
    readout: str = attrs.field(default="membrane", validator=_in(READOUTS))
    encoding: str = attrs.field(default="analog", validator=_in(ENCODINGS))
    seed: int = attrs.field(default=0, converter=int)
    maxpool: str = attrs.field(default="spike_or", validator=_in(MAXPOOL_STRATEGIES))
    use_clip_bound: bool = attrs.field(default=True, converter=bool)
    balancing_timesteps: int = attrs.field(default=32, converter=int, validator=_positive_int)
    bias_calibration_timesteps: int = attrs.field(default=0, converter=int, validator=_non_negative)
    bias_calibration_samples: int = attrs.field(default=512, converter=int, validator=_positive_int)

    def to_dict(self) -> dict:
        """The configuration as JSON-able data (for graph metadata)."""
        return attrs.asdict(self)


NAIVE = ConversionConfig(
    normalization="max",
    granularity="layer",
    reset="zero",
    v_init=0.0,
    readout="spike_count",
    use_clip_bound=False,
)
"""The naive baseline: layer-wise max normalization, reset to zero, no initial charge,
spike-count readout, clip bounds ignored."""


RESIDUAL = ConversionConfig(use_clip_bound=False, percentile=99.0)
"""For QCFS-trained residual networks with BatchNorm (the zoo's resnet_small): channel-wise
99th-percentile thresholds from calibration data (Rueckauer et al. 2017), each capped at its
Clip bound, instead of the bounds themselves. It needs calibration data; at T <= 8 add bias
calibration (``attrs.evolve(RESIDUAL, bias_calibration_timesteps=T)``). The MLP, LeNet-5 and
CNN keep the defaults (``benchmarks/results/conversion_accuracy.json``)."""
