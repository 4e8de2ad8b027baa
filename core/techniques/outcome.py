"""What one deployment configuration achieved: accuracy and per-inference costs.

Device plugins' techniques (e.g. the loihi plugin's packing, offload and early exit) produce
`Outcome`s; the search (`neurohal.techniques.search`) ranks them. Every cost is a `Quantity`
whose method names the model behind it, so a table built from outcomes shows where each number
came from.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from neurohal.device import Quantity


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


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of (N, classes) scores against (N,) labels."""
    return float(np.mean(np.argmax(scores, axis=1) == labels))
