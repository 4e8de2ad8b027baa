"""Fewer timesteps: the smallest T meeting an accuracy target, and confidence-based early exit.

A rate-coded SNN's latency and most of its energy grow linearly with the steps it runs, so
the cheapest deployment runs as few as the accuracy allows.

- `smallest_timesteps` searches a list of candidate T by bisection, assuming accuracy does not
  fall as T grows (true on average for rate coding; each evaluated T is kept, so a violation
  shows in the record).
- Early exit stops each inference on its own once the readout is settled. The rule
  (`ExitRule`): at step t (counting from 1), stop when t >= ``min_steps``, the top-1 class of
  the readout's running mean has been the same for the last ``patience`` steps, and its lead
  over the second class is at least ``margin`` (in the output's units, the ANN's logits for a
  membrane readout); otherwise run to the last step. The prediction is the top-1 class at the
  exit step. Easy inputs exit early, hard ones run longer, so the average steps per inference
  falls while the accuracy stays close to the fixed-T run.

On Loihi the decision needs the readout each step; the loihi plugin's
`neurohal_loihi.techniques.runs.early_exit_runs` takes the exit steps (decided on the float
SNN's readout trace from cpu_sim, `readout_trace` there) and runs every group
of samples with the same exit step on the loihi emulator for exactly that many steps, so the
accuracy, latency and energy per inference come from runs of the steps actually taken rather
than from scaling a fixed-T estimate (scaling would miss that the samples exiting early are the
easy ones, with their own spike counts). Reading the readout every step costs host-link
traffic that this accounting leaves out; the decision is taken on the float SNN, whose readout
matches the chip's up to quantization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import numpy as np

from neurohal.errors import InputError


@attrs.frozen
class TimestepSearch:
    """The smallest candidate T meeting ``target`` (None if none did) and every T evaluated."""

    target: float
    timesteps: int | None
    evaluated: dict[int, float]

    @property
    def best(self) -> tuple[int, float]:
        """The evaluated (T, accuracy) with the highest accuracy (smallest T on ties)."""
        return max(self.evaluated.items(), key=lambda kv: (kv[1], -kv[0]))


def smallest_timesteps(
    accuracy_at: Callable[[int], float], target: float, candidates: Sequence[int]
) -> TimestepSearch:
    """The smallest T in ``candidates`` whose ``accuracy_at(T) >= target``, by bisection.

    Evaluates the largest candidate first: if it misses the target, no smaller one is tried
    and the result's ``timesteps`` is None (``best`` shows what was reached).
    """
    ts = sorted(set(int(t) for t in candidates))
    if not ts or ts[0] < 1:
        raise InputError(f"candidate timesteps must be positive integers, got {list(candidates)}")
    evaluated: dict[int, float] = {}

    def meets(t: int) -> bool:
        if t not in evaluated:
            evaluated[t] = float(accuracy_at(t))
        return evaluated[t] >= target

    if not meets(ts[-1]):
        return TimestepSearch(target, None, evaluated)
    lo, hi = 0, len(ts) - 1  # ts[hi] meets the target
    while lo < hi:
        mid = (lo + hi) // 2
        if meets(ts[mid]):
            hi = mid
        else:
            lo = mid + 1
    return TimestepSearch(target, ts[hi], evaluated)


@attrs.frozen
class ExitRule:
    """When an inference stops early (see the module docstring)."""

    margin: float = attrs.field(converter=float)
    patience: int = attrs.field(default=2, converter=int)
    min_steps: int = attrs.field(default=1, converter=int)

    def __attrs_post_init__(self) -> None:
        if self.margin < 0 or self.patience < 1 or self.min_steps < 1:
            raise InputError(
                f"exit rule needs margin >= 0, patience >= 1, min_steps >= 1; got {self}"
            )


def exit_steps(trace: np.ndarray, rule: ExitRule) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the step count at which ``rule`` stops it and its prediction then.

    ``trace`` holds the readout's running mean at every step, (T, B, classes). Returns
    (steps (B,) in 1..T, predictions (B,)).
    """
    trace = np.asarray(trace)
    if trace.ndim != 3 or trace.shape[2] < 2:
        raise InputError(f"trace must be (steps, batch, classes >= 2), got {trace.shape}")
    steps_total, batch, _ = trace.shape
    top = np.argmax(trace, axis=2)
    two = np.sort(trace, axis=2)[:, :, -2:]
    margin = two[:, :, 1] - two[:, :, 0]
    run = np.ones(batch, dtype=np.int64)
    steps = np.full(batch, steps_total, dtype=np.int64)
    done = np.zeros(batch, dtype=bool)
    for t in range(steps_total):
        if t:
            run = np.where(top[t] == top[t - 1], run + 1, 1)
        settled = (
            ~done & (t + 1 >= rule.min_steps) & (run >= rule.patience) & (margin[t] >= rule.margin)
        )
        steps[settled] = t + 1
        done |= settled
    predictions = top[steps - 1, np.arange(batch)]
    return steps, predictions
