"""What one deployment configuration achieved: accuracy and per-inference costs on Loihi.

`run_loihi` compiles and measures a converted SNN with the loihi plugin's emulator; the
techniques (packing, offload, early exit) derive new `Outcome`s from such runs. Every cost is a
`Quantity` whose method names the model behind it, so a table built from outcomes shows where
each number came from.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.device import Artifact, Measurement, Quantity
from neurohal.errors import InputError
from neurohal.ir import Graph


@attrs.frozen(kw_only=True)
class Outcome:
    """Accuracy and costs per inference of one configuration on the evaluation data.

    ``timesteps`` is the average number of effective steps run per inference (fractional under
    early exit); ``spikes`` and ``synops`` are per inference; ``cores`` and ``chips`` are those
    powered.
    """

    accuracy: float
    samples: int
    timesteps: float
    latency: Quantity
    power_static: Quantity
    power_dynamic: Quantity
    energy: Quantity
    spikes: float
    synops: float
    cores: int
    chips: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-able form (Quantities as dicts)."""
        return attrs.asdict(self, value_serializer=_serialize)

    @classmethod
    def from_dict(cls, data: Mapping) -> Outcome:
        quantities = ("latency", "power_static", "power_dynamic", "energy")
        fields = {k: v for k, v in data.items() if k not in quantities}
        fields["notes"] = tuple(fields.get("notes", ()))
        return cls(**fields, **{k: Quantity(**data[k]) for k in quantities})

    def summary(self) -> str:
        """One line for progress output."""
        return (
            f"accuracy {self.accuracy:.4f}, energy {self.energy.value:.3e} J, "
            f"latency {self.latency.value:.3e} s, T {self.timesteps:.2f}, cores {self.cores}"
        )


def _serialize(instance: object, attribute: object, value: object) -> object:
    if isinstance(value, Quantity):
        return value.to_dict()
    return value


@attrs.frozen
class LoihiRun:
    """A measured loihi run kept for the techniques that re-cost it (packing, offload)."""

    artifact: Artifact
    measurement: Measurement
    predictions: np.ndarray
    accuracy: float

    @property
    def outcome(self) -> Outcome:
        m = self.measurement
        return Outcome(
            accuracy=self.accuracy,
            samples=m.run.samples,
            timesteps=float(m.run.timesteps),
            latency=m.latency,
            power_static=m.power_static,
            power_dynamic=m.power_dynamic,
            energy=m.energy,
            spikes=m.run.per_inference("spikes"),
            synops=m.run.per_inference("synops"),
            cores=int(self.artifact.report["cores"]),
            chips=int(self.artifact.report["chips"]),
            notes=tuple(m.run.notes),
        )


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of (N, classes) scores against (N,) labels."""
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def run_loihi(
    snn: Graph,
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int,
    chip: str = "loihi2",
    artifact: Artifact | None = None,
) -> LoihiRun:
    """Compile ``snn`` for ``chip`` (unless ``artifact`` is given) and measure it on the
    emulator over ``x`` for ``timesteps`` steps: the loihi plugin's estimated latency, power
    and energy (its Davies et al. 2018 / Blouw et al. 2019 model) and the accuracy on ``y``."""
    import neurohal

    if len(x) != len(y) or len(x) == 0:
        raise InputError(f"need as many labels as inputs (> 0), got {len(x)} and {len(y)}")
    device = neurohal.device("loihi")
    if artifact is None:
        artifact = device.compile(snn, chip=chip, max_timesteps=max(64, int(timesteps)))
    measurement = device.measure(artifact, x, timesteps=int(timesteps))
    scores = measurement.run.output()
    return LoihiRun(artifact, measurement, np.argmax(scores, axis=1), accuracy(scores, y))
