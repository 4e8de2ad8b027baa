"""A performance and power model of the NCS2 (Intel Movidius Myriad X), calibrated on
published measurements. Every number here is an *estimate* for a stick that is not present.

Time per inference is the sum over layers of ``macs / rate``, with one rate for matrix-vector
layers (Dense: weight-bandwidth bound, run on the SHAVE vector cores) and one for
convolution-like layers (run on the Neural Compute Engine). Each rate is fitted to one published
NCS2 throughput measured with OpenVINO's ``benchmark_app`` (FP16, throughput mode, 4 requests
in flight), so the estimate is the device-bound time per inference: a single synchronous
request also pays the USB round trip, which the sources do not quantify, so a measured sync
latency will be higher, most for small networks.

Sources (verified; see the plugin README for the calibration table):

- [OV9784] openvinotoolkit/openvino issue #9784 (2022-01-20): an NCS2 running the MNIST MLP
  784-512-200-10 at batch 128: ``Throughput: 5525.09 FPS``, ``Latency: 92.60 ms`` per request.
- [OVN1141] openvinotoolkit/openvino_notebooks issue #1141 (2023-07-04, Intel's reply):
  yolov8s-pose 640x640, FP16, one NCS2, ``benchmark_app -hint throughput``: 6.13 FPS
  (two sticks with the MULTI plugin: 12.22 FPS).
- [ULTRA] Ultralytics docs, tasks/pose.md model table: YOLOv8s-pose at 640 has 11.6 M
  parameters and 30.2 GFLOPs (= 15.1 G multiply-accumulates).
- [INTEL17] Intel AI blog "Myriad X: Evolving low power VPUs for Deep Neural Networks" (2017):
  power consumption "hovering around 1 Watt"; Tom's Hardware, "Intel Unveils Movidius Myriad X
  Vision Processing Unit" (2017): up to 4 TOPS in a 1.5 W envelope, NCE > 1 TOPS.
- [BLOUW19] Blouw, Choo, Hunsberger, Eliasmith, "Benchmarking Keyword Spotting Efficiency on
  Neuromorphic Hardware", NICE 2019 (arXiv:1812.01739), Table 1: Movidius NCS idle 0.210 W,
  running 0.647 W. That stick is the first generation (Myriad 2): no NCS2 idle figure was found,
  so the idle (static) power is taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from neurohal.device import Quantity


@attrs.frozen
class PublishedPoint:
    """A published NCS2 throughput of a named network, with its MAC count by layer kind."""

    network: str
    dense_macs: int
    conv_macs: int
    throughput_fps: float
    source: str


MNIST_MLP = PublishedPoint(
    "MNIST MLP 784-512-200-10 (batch 128)",
    dense_macs=784 * 512 + 512 * 200 + 200 * 10,
    conv_macs=0,
    throughput_fps=5525.09,
    source="openvinotoolkit/openvino#9784",
)
YOLOV8S_POSE = PublishedPoint(
    "YOLOv8s-pose 640x640",
    dense_macs=0,
    conv_macs=15_100_000_000,  # 30.2 GFLOPs / 2 [ULTRA]
    throughput_fps=6.13,
    source="openvinotoolkit/openvino_notebooks#1141; MACs from Ultralytics docs",
)
CALIBRATION = (MNIST_MLP, YOLOV8S_POSE)

DENSE_MACS_PER_S = MNIST_MLP.dense_macs * MNIST_MLP.throughput_fps  # [OV9784]
CONV_MACS_PER_S = YOLOV8S_POSE.conv_macs * YOLOV8S_POSE.throughput_fps  # [OVN1141], [ULTRA]
ACTIVE_POWER_W = 1.0  # [INTEL17] Myriad X typical power (the envelope is 1.5 W)
IDLE_POWER_W = 0.210  # [BLOUW19] Table 1, first-generation NCS idle
DYNAMIC_POWER_W = ACTIVE_POWER_W - IDLE_POWER_W

MODEL_NAME = "neurohal Myriad X model (two MAC rates + idle/active power)"
_SOURCES = (
    "rates fitted to NCS2 benchmark_app throughputs: MNIST MLP 5525 FPS "
    "(openvinotoolkit/openvino#9784) and YOLOv8s-pose 6.13 FPS "
    "(openvinotoolkit/openvino_notebooks#1141, MACs from Ultralytics docs)"
)


def seconds_per_inference(dense_macs: float, conv_macs: float) -> float:
    """Device-bound time of one inference with these MAC counts."""
    return dense_macs / DENSE_MACS_PER_S + conv_macs / CONV_MACS_PER_S


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
        f"{MODEL_NAME}: idle power of the first-generation Movidius NCS measured by Blouw et "
        "al., NICE 2019 (arXiv:1812.01739), Table 1; no NCS2 idle figure was found",
    )


def power_dynamic() -> Quantity:
    return Quantity(
        DYNAMIC_POWER_W,
        "W",
        "estimated",
        f"{MODEL_NAME}: Myriad X typical power ~1 W (Intel AI blog on the Myriad X launch, "
        "2017; 1.5 W envelope per Tom's Hardware 2017) minus the idle power",
    )


def energy_for(latency: Quantity) -> tuple[Quantity, Quantity]:
    """(total, dynamic) energy per inference: power times ``latency``."""
    how = f"{MODEL_NAME}: power (Intel 2017; Blouw et al. 2019) x latency ({latency.provenance})"
    return (
        Quantity(ACTIVE_POWER_W * latency.value, "J", "estimated", how),
        Quantity(DYNAMIC_POWER_W * latency.value, "J", "estimated", "dynamic part: " + how),
    )


def estimate(layers: Mapping[str, Mapping]) -> Estimate:
    """NCS2 latency, power and energy per inference from per-layer MACs and layer types."""
    dense, conv = split_macs(layers)
    latency = Quantity(
        seconds_per_inference(dense, conv),
        "s",
        "estimated",
        f"{MODEL_NAME}: {dense} dense MACs at {DENSE_MACS_PER_S / 1e9:.2f} GMAC/s + {conv} "
        f"conv-like MACs at {CONV_MACS_PER_S / 1e9:.1f} GMAC/s; {_SOURCES}; throughput-mode "
        "time per inference (a synchronous request adds the USB round trip)",
    )
    energy, energy_dynamic = energy_for(latency)
    return Estimate(latency, power_static(), power_dynamic(), energy, energy_dynamic)
