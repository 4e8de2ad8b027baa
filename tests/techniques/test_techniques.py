"""Techniques against hand-computed cases and the reference interpreter."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neurohal as nh
from neurohal.device import Quantity
from neurohal.errors import ConversionError, InputError
from neurohal.ir import Clip, Dense, Input, Output, ReLU, chain
from neurohal.techniques.activity import activity_aware_scales, scale_thresholds, unit_activity
from neurohal.techniques.outcome import Outcome
from neurohal.techniques.search import Config, RunKnobs, Space, choose, pareto, run_search
from neurohal.techniques.timesteps import ExitRule, exit_steps, smallest_timesteps


def _q(value: float, unit: str) -> Quantity:
    return Quantity(value, unit, "estimated", "hand-made")


def _outcome(acc: float, energy: float, latency: float = 1e-3, static: float = 0.01) -> Outcome:
    return Outcome(
        accuracy=acc,
        samples=10,
        timesteps=8.0,
        latency=_q(latency, "s"),
        power_static=_q(static, "W"),
        power_dynamic=_q((energy - static * latency) / latency, "W"),
        energy=_q(energy, "J"),
        spikes=100.0,
        synops=1000.0,
        cores=3,
        chips=1,
    )


# ---------------------------------------------------------------- timesteps


def test_smallest_timesteps_bisects_a_monotone_curve() -> None:
    curve = {1: 0.2, 2: 0.5, 4: 0.8, 8: 0.95, 16: 0.97, 32: 0.98}
    calls = []

    def acc(t: int) -> float:
        calls.append(t)
        return curve[t]

    found = smallest_timesteps(acc, 0.9, list(curve))
    assert found.timesteps == 8
    assert calls[0] == 32 and len(calls) <= 4  # largest first, then bisection


def test_smallest_timesteps_reports_unreachable_target() -> None:
    found = smallest_timesteps(lambda t: 0.1 * t, 0.99, [1, 2, 4])
    assert found.timesteps is None
    assert found.best == (4, pytest.approx(0.4))


def test_exit_rule_hand_computed() -> None:
    # sample 0: class 0 leads by 3 from step 1 -> settles at step 2 (patience 2)
    # sample 1: class flips at step 2, then class 1 leads by 0.5 (< margin 1) -> runs to T
    # sample 2: leads by 2 but only from step 3 on -> exits at step 4
    trace = np.array(
        [
            [[3.0, 0.0], [1.0, 0.0], [0.0, 0.5]],
            [[3.0, 0.0], [0.0, 0.5], [0.0, 0.5]],
            [[3.0, 0.0], [0.0, 0.5], [2.0, 0.0]],
            [[3.0, 0.0], [0.0, 0.5], [2.0, 0.0]],
            [[3.0, 0.0], [0.0, 0.5], [2.0, 0.0]],
        ]
    )
    steps, pred = exit_steps(trace, ExitRule(margin=1.0, patience=2))
    assert steps.tolist() == [2, 5, 4]
    assert pred.tolist() == [0, 1, 0]
    steps, _ = exit_steps(trace, ExitRule(margin=1.0, patience=1, min_steps=3))
    assert steps.tolist() == [3, 5, 3]


def test_exit_rule_refuses_bad_values() -> None:
    with pytest.raises(InputError):
        ExitRule(margin=-1.0)
    with pytest.raises(InputError):
        exit_steps(np.zeros((3, 2)), ExitRule(1.0))


# ---------------------------------------------------------------- activity


def _mlp(bound: float = 1.0):
    rng = np.random.default_rng(0)
    return chain(
        Input(name="x", shape=(6,)),
        Dense(name="d1", weight=rng.uniform(-0.2, 0.6, (8, 6)), bias=np.zeros(8)),
        Clip(name="a1", min=0.0, max=bound),
        Dense(name="d2", weight=rng.uniform(-0.5, 0.5, (3, 8)), bias=np.zeros(3)),
        Output(name="y"),
    )


def test_scaled_thresholds_convert_to_the_scaled_clip_and_fire_less() -> None:
    ann = _mlp()
    x = np.random.default_rng(1).uniform(0, 1, (64, 6))
    plain = nh.convert(ann, progress=False)
    scaled_ann = scale_thresholds(ann, 2.0)
    assert scaled_ann.node("a1").max == 2.0
    scaled = nh.convert(scaled_ann, progress=False)
    steps = 400
    ref_plain = nh.reference.run(plain, x, steps)
    ref_scaled = nh.reference.run(scaled, x, steps)
    # the scaled SNN approximates the ANN with Clip(0, 2): Clip(0, 1) where inputs stay below 1
    (ann_out,) = nh.reference.run(scaled_ann, x).outputs.values()
    (snn_out,) = ref_scaled.outputs.values()
    np.testing.assert_allclose(snn_out, ann_out, atol=0.05)
    # rate coding: a neuron with pre-activation z fires about T * clip(z, 0, k) / k times
    z = x @ ann.node("d1").weight.T
    for ref, k in ((ref_plain, 1.0), (ref_scaled, 2.0)):
        expected = steps * np.clip(z, 0, k).sum() / k
        assert ref.counters["a1"]["spikes"] == pytest.approx(expected, rel=0.01)
    assert ref_scaled.counters["a1"]["spikes"] < 0.6 * ref_plain.counters["a1"]["spikes"]


def test_scale_thresholds_refuses_relu_and_unknown_names() -> None:
    relu = chain(
        Input(name="x", shape=(2,)),
        Dense(name="d", weight=np.eye(2), bias=None),
        ReLU(name="r"),
        Output(name="y"),
    )
    with pytest.raises(ConversionError, match="percentile"):
        scale_thresholds(relu, 2.0)
    with pytest.raises(ConversionError, match="not Clip"):
        scale_thresholds(_mlp(), {"nope": 2.0})


def test_unit_activity_sums_synops_downstream_of_each_neuron() -> None:
    snn = nh.convert(_mlp(), progress=False)
    x = np.random.default_rng(2).uniform(0, 1, (16, 6))
    ref = nh.reference.run(snn, x, 10)
    # a1's spikes reach only d2: its synops are a1's spikes times d2's 3 outputs
    assert unit_activity(snn, ref.counters) == {"a1": ref.counters["a1"]["spikes"] * 3}


def test_activity_aware_scales_greedy_hand_computed() -> None:
    # accuracy falls by 0.1 per unit of scale above 1 on layer a, 0.02 on layer b
    def acc(scales: dict[str, float]) -> float:
        return 1.0 - 0.1 * (scales["a"] - 1) - 0.02 * (scales["b"] - 1)

    found = activity_aware_scales({"a": 10, "b": 100}, acc, 0.93, (1.5, 2.0, 3.0))
    assert found.order == ("b", "a")
    # b: 1.5 (0.99), 2 (0.98), 3 (0.96) all pass; then a: 1.5 gives 0.91 < 0.93
    assert found.scales == {"b": 3.0, "a": 1.0}
    assert len(found.trials) == 4


# ---------------------------------------------------------------- packing


def test_pareto_and_choice_hand_computed() -> None:
    k = RunKnobs(1.0, 8)
    points = [
        Config(k, None, None, _outcome(0.99, 5.0)),
        Config(k, "layer", None, _outcome(0.98, 3.0)),
        Config(k, "shared", None, _outcome(0.97, 4.0)),  # dominated by the 0.98 / 3.0 point
        Config(k, None, "host", _outcome(0.90, 1.0)),
    ]
    front = pareto(points, lambda o: o.energy.value)
    assert [c.outcome.energy.value for c in front] == [1.0, 3.0, 5.0]
    picked = choose(points, {"ann_accuracy": 0.99}, budget=1.5)
    assert picked.chosen.packing == "layer"  # least energy with accuracy >= 0.975
    none = choose(points, {"ann_accuracy": 1.0}, budget=0.5)
    assert not none.met and none.best.outcome.accuracy == 0.99
    assert "no configuration meets" in none.message()


def _fake_evaluator(calls: list[str]):
    def evaluate(knobs: RunKnobs) -> list[Config]:
        calls.append(knobs.key)
        acc = 0.9 + 0.002 * knobs.timesteps
        return [Config(knobs, None, None, _outcome(acc, 1e-5 * knobs.timesteps))]

    return evaluate


def test_interrupted_search_resumes_without_repeating(tmp_path) -> None:
    space = Space((1.0, 2.0), (4, 8, 16))
    log = tmp_path / "search.jsonl"
    header = {"model": "m", "ann_accuracy": 0.95}
    calls: list[str] = []
    evaluate = _fake_evaluator(calls)

    def interrupted(knobs: RunKnobs) -> list[Config]:
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(knobs)

    with pytest.raises(KeyboardInterrupt):
        run_search(space, interrupted, header, log, budget=1.0)
    assert len(calls) == 3
    with log.open("a") as f:  # a half-written line from the interruption
        f.write('{"kind": "run", "key": "scale=2,T=')
    calls.clear()
    result = run_search(space, evaluate, header, log, budget=1.0)
    assert len(calls) == 3 and result.reused == 3 and result.evaluated_now == 3
    assert sorted(json.loads(line)["kind"] for line in log.read_text().splitlines()) == [
        "header",
        *["run"] * 6,
    ]
    # target 0.95 - 0.01 = 0.94; accuracies are 0.908, 0.916 and 0.932: none meets it
    assert not result.met
    assert result.best.outcome.accuracy == pytest.approx(0.932)
    calls.clear()
    again = run_search(space, evaluate, header, log, budget=2.0)
    assert calls == [] and again.met and again.chosen.knobs.timesteps == 16


def test_search_refuses_another_searchs_log(tmp_path) -> None:
    log = tmp_path / "search.jsonl"
    run_search(Space((1.0,), (4,)), _fake_evaluator([]), {"ann_accuracy": 0.9}, log, 1.0)
    with pytest.raises(InputError, match="another search"):
        run_search(Space((1.0,), (4,)), _fake_evaluator([]), {"ann_accuracy": 0.8}, log, 1.0)
    with pytest.raises(InputError, match=">= 0"):
        run_search(Space((1.0,), (4,)), _fake_evaluator([]), {"ann_accuracy": 0.9}, log, -1)
