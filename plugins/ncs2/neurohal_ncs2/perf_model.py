"""A latency and power model of the NCS2 (Intel Movidius Myriad X) for one synchronous, batch-1
inference, calibrated on published NCS2 measurements. Every number here is an *estimate* for a
stick that is not present.

Latency = T_OVERHEAD + dense MACs / R_DENSE + conv-like MACs / R_CONV. The constant term is the
per-request cost that a small network cannot hide: the USB round trip of input and output, the
request scheduling and the firmware dispatch. Matrix-vector (Dense) layers are bandwidth bound
and run at a much lower rate than convolutions on the Neural Compute Engine, hence two rates.
The three parameters are solved exactly from three published batch-1 NCS2 latencies (two MLPs and
a CNN, [QTB]); the five other batch-1 networks of the same data set are held out and reported,
with the error, in the plugin README (``CALIBRATION`` holds all eight).

Sources (read for this work; see the README calibration table):

- [QTB] QuTiBench measured data set (M. Blott, L. Halder, M. Leeser, L. Doyle, "QuTiBench:
  Benchmarking Neural Networks on Heterogeneous Hardware", ACM JETC 15(4), 2019), published as
  the CSV files of github.com/RCL-lab/QutibenchWeb: ``_notebooks/data/cleaned_csv/
  experimental_data_mnist.csv`` and ``experimental_data_cifar.csv``, rows ``HWType=NCS``
  (``hardware_platforms.csv``: "NCS (MyriadX)", i.e. the NCS2), ``FP16``, batch 1. Columns
  used: ``lat-comp`` (ms per inference), ``Idle_Pwr_W`` (1.2 W) and ``Full_Pwr_W`` (W while
  inferring). Networks: the MNIST MLP 784-h-h-h-10 (h = 2048, 1024, 512, 256) and the CIFAR-10
  CNV (FINN's 6-conv + 3-FC network at channel scale 2, 1, 0.5, 0.25). Their MACs below are
  derived from the topologies and agree with the CSV's operation counts to 1e-5.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.device import Quantity


@attrs.frozen
class PublishedPoint:
    """A published batch-1 NCS2 measurement of a named network, with its MACs by layer kind."""

    network: str
    dense_macs: int
    conv_macs: int
    latency_s: float
    power_w: float
    source: str
    fitted: bool


def _mlp_macs(hidden: int) -> int:
    """MACs of the QuTiBench MNIST MLP 784-h-h-h-10."""
    return 784 * hidden + 2 * hidden * hidden + hidden * 10


def _cnv_macs(scale: float) -> tuple[int, int]:
    """(dense, conv) MACs of FINN's CIFAR-10 CNV (3x3 valid convs 64-64-pool-128-128-pool-256-256,
    FC 512-512-10) with every width multiplied by ``scale``."""
    c1, c2, c3, c4, c5, c6 = (int(w * scale) for w in (64, 64, 128, 128, 256, 256))
    fc = int(512 * scale)
    conv = 9 * (
        30 * 30 * c1 * 3
        + 28 * 28 * c2 * c1
        + 12 * 12 * c3 * c2
        + 10 * 10 * c4 * c3
        + 3 * 3 * c5 * c4
        + c6 * c5
    )
    return c6 * fc + fc * fc + fc * 10, conv


_QTB = "QuTiBench (Blott et al., ACM JETC 2019; RCL-lab/QutibenchWeb CSV), NCS FP16 batch 1"


def _mlp(hidden: int, latency_ms: float, power_w: float, fitted: bool) -> PublishedPoint:
    return PublishedPoint(
        f"MNIST MLP 784-{hidden}x3-10",
        _mlp_macs(hidden),
        0,
        latency_ms * 1e-3,
        power_w,
        _QTB,
        fitted,
    )


def _cnv(scale: float, latency_ms: float, power_w: float, fitted: bool) -> PublishedPoint:
    dense, conv = _cnv_macs(scale)
    return PublishedPoint(
        f"CIFAR-10 CNV x{scale:g}", dense, conv, latency_ms * 1e-3, power_w, _QTB, fitted
    )


# [QTB] lat-comp (ms) and Full_Pwr_W at batch 1; three rows are fitted, five are held out
CALIBRATION = (
    _mlp(2048, 2.89257, 1.794, fitted=True),
    _mlp(1024, 1.93663, 1.809, fitted=False),
    _mlp(512, 1.66639, 1.62, fitted=False),
    _mlp(256, 1.6157, 1.548, fitted=True),
    _cnv(2, 4.97914, 1.728796, fitted=True),
    _cnv(1, 2.38549, 1.65540087, fitted=False),
    _cnv(0.5, 1.95433, 1.59, fitted=False),
    _cnv(0.25, 1.90004, 1.56, fitted=False),
)


def _solve(points: tuple[PublishedPoint, ...]) -> tuple[float, float, float]:
    """(overhead s, dense MAC/s, conv MAC/s) that reproduce the fitted points exactly."""
    fitted = [p for p in points if p.fitted]
    a = np.array([[1.0, p.dense_macs, p.conv_macs] for p in fitted])
    overhead, per_dense, per_conv = np.linalg.solve(a, [p.latency_s for p in fitted])
    return float(overhead), 1.0 / float(per_dense), 1.0 / float(per_conv)


T_OVERHEAD_S, DENSE_MACS_PER_S, CONV_MACS_PER_S = _solve(CALIBRATION)
IDLE_POWER_W = 1.2  # [QTB] Idle_Pwr_W of every NCS row: stick powered, network loaded, no request
ACTIVE_POWER_W = float(np.mean([p.power_w for p in CALIBRATION]))  # [QTB] Full_Pwr_W, batch 1
DYNAMIC_POWER_W = ACTIVE_POWER_W - IDLE_POWER_W

MODEL_NAME = "neurohal NCS2 batch-1 model (USB/dispatch overhead + two MAC rates)"
_SOURCES = (
    "fitted to NCS2 batch-1 latencies of QuTiBench (Blott et al., ACM JETC 2019; "
    "RCL-lab/QutibenchWeb experimental_data_mnist/cifar.csv, lat-comp): MLP 784-2048x3-10 "
    "2.89 ms, MLP 784-256x3-10 1.62 ms, CIFAR-10 CNV x2 4.98 ms"
)


def seconds_per_inference(dense_macs: float, conv_macs: float) -> float:
    """Latency of one synchronous batch-1 inference with these MAC counts."""
    return T_OVERHEAD_S + dense_macs / DENSE_MACS_PER_S + conv_macs / CONV_MACS_PER_S


def split_macs(layers: Mapping[str, Mapping]) -> tuple[int, int]:
    """(dense, conv-like) MACs per inference from a compile report's ``layers``."""
    dense = sum(v["macs"] for v in layers.values() if v["type"] == "Dense")
    return dense, sum(v["macs"] for v in layers.values()) - dense


@attrs.frozen
class Estimate:
    """The NCS2 figures for one network, each an `estimated` Quantity."""

    latency: Quantity
    power_static: Quantity
    power_dynamic: Quantity
    energy: Quantity
    energy_dynamic: Quantity


def power_static() -> Quantity:
    return Quantity(
        IDLE_POWER_W,
        "W",
        "estimated",
        f"{MODEL_NAME}: NCS2 idle power with a network loaded, Idle_Pwr_W of QuTiBench "
        "(Blott et al., ACM JETC 2019; RCL-lab/QutibenchWeb experimental_data CSV, NCS rows)",
    )


def power_dynamic() -> Quantity:
    return Quantity(
        DYNAMIC_POWER_W,
        "W",
        "estimated",
        f"{MODEL_NAME}: mean NCS2 power while inferring at batch 1, {ACTIVE_POWER_W:.3f} W "
        "(Full_Pwr_W of the 8 QuTiBench MLP/CNV rows, 1.55-1.81 W; Blott et al., ACM JETC "
        f"2019), minus the {IDLE_POWER_W} W idle power",
    )


def energy_for(latency: Quantity) -> tuple[Quantity, Quantity]:
    """(total, dynamic) energy per inference: power times ``latency``."""
    how = (
        f"{MODEL_NAME}: NCS2 power measured by QuTiBench (Blott et al., ACM JETC 2019) "
        f"x latency ({latency.provenance})"
    )
    return (
        Quantity(ACTIVE_POWER_W * latency.value, "J", "estimated", how),
        Quantity(DYNAMIC_POWER_W * latency.value, "J", "estimated", "dynamic part: " + how),
    )


def estimate(layers: Mapping[str, Mapping]) -> Estimate:
    """NCS2 latency, power and energy of one batch-1 inference from per-layer MACs and types."""
    dense, conv = split_macs(layers)
    latency = Quantity(
        seconds_per_inference(dense, conv),
        "s",
        "estimated",
        f"{MODEL_NAME}: {T_OVERHEAD_S * 1e3:.3f} ms per request + {dense} dense MACs at "
        f"{DENSE_MACS_PER_S / 1e9:.2f} GMAC/s + {conv} conv-like MACs at "
        f"{CONV_MACS_PER_S / 1e9:.1f} GMAC/s; {_SOURCES}; synchronous single-sample latency",
    )
    energy, energy_dynamic = energy_for(latency)
    return Estimate(latency, power_static(), power_dynamic(), energy, energy_dynamic)
