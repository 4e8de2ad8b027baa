"""The search over deployment knobs: Pareto sets, the cheapest configuration within an
accuracy budget, and a resumable JSONL log.

A *run* is the unit of work: one threshold scale, one T and one early-exit margin (or none),
converted and run on Loihi. Each run is re-costed under every packing mode and classifier
placement for free (the loihi plugin's `neurohal_loihi.techniques.recost`), giving several
*configurations*. The log
holds a header (what is searched: model, data, chip, the ANN's accuracy) and one line per
finished run with all its configurations; a search started again on the same log skips the
runs already there, so an interrupted search resumes without repeating them (a half-written
last line is dropped). The accuracy budget is the largest accuracy loss allowed relative to
the ANN on the same data, in percentage points; the chosen configuration is the one with the
least energy per inference among those within it (then the least latency). When none is
within it, the result says so and names the most accurate configuration found.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from neurohal.errors import InputError
from neurohal.techniques.outcome import Outcome


@attrs.frozen
class RunKnobs:
    """The knobs that need a run of their own."""

    threshold_scale: float = attrs.field(converter=float)
    timesteps: int = attrs.field(converter=int)
    exit_margin: float | None = attrs.field(
        default=None, converter=lambda v: None if v is None else float(v)
    )

    @property
    def key(self) -> str:
        exit_text = "none" if self.exit_margin is None else f"{self.exit_margin:g}"
        return f"scale={self.threshold_scale:g},T={self.timesteps},exit={exit_text}"


@attrs.frozen
class Config:
    """One configuration: its run's knobs plus packing and classifier placement."""

    knobs: RunKnobs
    packing: str | None
    classifier: str | None
    outcome: Outcome

    def knob_dict(self) -> dict:
        return {**attrs.asdict(self.knobs), "packing": self.packing, "classifier": self.classifier}

    def to_dict(self) -> dict:
        return {"knobs": self.knob_dict(), "outcome": self.outcome.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping) -> Config:
        k = dict(data["knobs"])
        pack, classifier = k.pop("packing"), k.pop("classifier")
        return cls(RunKnobs(**k), pack, classifier, Outcome.from_dict(data["outcome"]))


@attrs.frozen
class Space:
    """The grid searched: every combination of the run knobs."""

    threshold_scales: tuple[float, ...] = (1.0, 1.5, 2.0)
    timesteps: tuple[int, ...] = (4, 8, 16, 32)
    exit_margins: tuple[float | None, ...] = (None,)

    def runs(self) -> list[RunKnobs]:
        grid = itertools.product(self.threshold_scales, self.timesteps, self.exit_margins)
        return [RunKnobs(k, t, m) for k, t, m in grid]


@attrs.frozen
class SearchResult:
    """All configurations, the Pareto sets, the choice (or None) and the best found."""

    header: dict
    configs: tuple[Config, ...]
    target: float
    chosen: Config | None
    best: Config
    pareto_energy: tuple[Config, ...]
    pareto_latency: tuple[Config, ...]
    evaluated_now: int
    reused: int

    @property
    def met(self) -> bool:
        return self.chosen is not None

    def message(self) -> str:
        """What the search found, for a person."""
        if self.chosen is not None:
            return (
                f"chosen (least energy with accuracy >= {self.target:.4f}): "
                f"{self.chosen.knob_dict()} -> {self.chosen.outcome.summary()}"
            )
        return (
            f"no configuration meets the accuracy budget (accuracy >= {self.target:.4f}); "
            f"best found: {self.best.knob_dict()} -> {self.best.outcome.summary()}"
        )


def pareto(configs: Iterable[Config], cost: Callable[[Outcome], float]) -> tuple[Config, ...]:
    """The configurations no other beats on both accuracy (higher) and ``cost`` (lower),
    sorted by cost."""
    items = sorted(configs, key=lambda c: (cost(c.outcome), -c.outcome.accuracy))
    front: list[Config] = []
    for c in items:
        if not front or c.outcome.accuracy > front[-1].outcome.accuracy:
            front.append(c)
    return tuple(front)


def read_log(path: Path) -> tuple[dict | None, dict[str, list[Config]]]:
    """The header and the finished runs of a log (a half-written last line dropped)."""
    if not path.exists():
        return None, {}
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    header, runs = None, {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
            if record["kind"] == "header":
                header = record["header"]
            else:
                runs[record["key"]] = [Config.from_dict(c) for c in record["configs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{number}: not a search log line ({exc}); remove the file to start over"
            ) from exc
    return header, runs


def run_search(
    space: Space,
    evaluate: Callable[[RunKnobs], list[Config]],
    header: Mapping,
    log: str | Path,
    budget: float,
    progress: Callable[[str], None] = lambda _: None,
) -> SearchResult:
    """Evaluate every run of ``space`` not already in ``log`` and choose.

    ``header`` identifies the search (it must hold ``ann_accuracy``); a log written for a
    different header is refused. ``budget``: percentage points of accuracy the SNN may lose.
    """
    if budget < 0:
        raise InputError(f"accuracy budget must be >= 0 percentage points, got {budget}")
    path = Path(log)
    header = json.loads(json.dumps(dict(header)))
    found, done = read_log(path)
    if found is not None and found != header:
        raise InputError(
            f"{path} is the log of another search ({found}); use another --out or remove it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if found is None:
        with path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "header", "header": header}) + "\n")
    todo = [r for r in space.runs() if r.key not in done]
    reused = len(space.runs()) - len(todo)
    if reused:
        progress(f"resuming: {reused} finished runs read from {path}")
    for i, knobs in enumerate(todo, 1):
        progress(f"[{i}/{len(todo)}] {knobs.key}")
        configs = evaluate(knobs)
        with path.open("a", encoding="utf-8") as f:
            line = {"kind": "run", "key": knobs.key, "configs": [c.to_dict() for c in configs]}
            f.write(json.dumps(line) + "\n")
        done[knobs.key] = configs
        best = max(configs, key=lambda c: c.outcome.accuracy)
        progress(f"    best of run: {best.outcome.summary()}")
    wanted = {r.key for r in space.runs()}
    configs = tuple(c for key, cs in done.items() if key in wanted for c in cs)
    return choose(configs, header, budget, len(todo), reused)


def choose(
    configs: Sequence[Config], header: Mapping, budget: float, evaluated: int = 0, reused: int = 0
) -> SearchResult:
    """The least-energy configuration within ``budget`` points of the ANN's accuracy."""
    if not configs:
        raise InputError("the search evaluated no configuration")
    target = float(header["ann_accuracy"]) - budget / 100.0
    within = [c for c in configs if c.outcome.accuracy >= target - 1e-12]
    chosen = (
        min(within, key=lambda c: (c.outcome.energy.value, c.outcome.latency.value))
        if within
        else None
    )
    best = max(configs, key=lambda c: (c.outcome.accuracy, -c.outcome.energy.value))
    return SearchResult(
        dict(header),
        tuple(configs),
        target,
        chosen,
        best,
        pareto(configs, lambda o: o.energy.value),
        pareto(configs, lambda o: o.latency.value),
        evaluated,
        reused,
    )
