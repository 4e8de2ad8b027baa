"""ANN-to-SNN conversion: calibration statistics, normalization and the spiking graph.

``convert(ann, calibration, config)`` turns an analog IR graph (as the frontends return it)
into a spiking one that `neurohal.reference.run` executes; ``calibrate`` collects the
activation statistics it needs in bounded memory; ``ConversionConfig`` holds every choice.
"""

from neurohal.conversion.calibrate import calibrate
from neurohal.conversion.config import NAIVE, RESIDUAL, ConversionConfig
from neurohal.conversion.convert import convert
from neurohal.conversion.simulator import evaluate, simulate
from neurohal.conversion.stats import ActivationStats, CalibrationStats
from neurohal.conversion.support import SUPPORTED_OPS, check_convertible, unsupported_nodes

__all__ = [
    "NAIVE",
    "RESIDUAL",
    "SUPPORTED_OPS",
    "ActivationStats",
    "CalibrationStats",
    "ConversionConfig",
    "calibrate",
    "check_convertible",
    "convert",
    "evaluate",
    "simulate",
    "unsupported_nodes",
]
