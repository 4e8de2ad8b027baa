"""``neurohal optimize`` through click's CliRunner on the zoo MLP (small data)."""

from __future__ import annotations

import json

from click.testing import CliRunner

import neurohal as nh
from neurohal_loihi.techniques.cli import command

FAST = ["mlp", "--samples", "30", "--exit-margins", "none"]


def test_optimize_saves_choice_and_resumes(tmp_path) -> None:
    args = [*FAST, "--timesteps", "2,8", "--threshold-scales", "1", "--out", str(tmp_path)]
    first = CliRunner().invoke(command, [*args, "--accuracy-budget", "5"])
    assert first.exit_code == 0, first.output
    record = json.loads((tmp_path / "search.json").read_text())
    assert record["met"] and record["runs_evaluated_now"] == 2
    assert record["pareto_accuracy_energy"] and record["pareto_accuracy_latency"]
    snn = nh.load(tmp_path / "mlp.optimized.nhir")
    assert snn.is_spiking
    assert snn.metadata["deployment"]["timesteps"] == record["chosen"]["knobs"]["timesteps"]
    again = CliRunner().invoke(command, [*args, "--accuracy-budget", "5"])
    assert again.exit_code == 0
    assert "resuming: 2 finished runs" in again.output
    assert json.loads((tmp_path / "search.json").read_text())["runs_evaluated_now"] == 0


def test_optimize_says_when_no_configuration_meets_the_budget(tmp_path) -> None:
    # thresholds 8x the trained bounds and a single step: a coarse code that loses accuracy
    args = [*FAST, "--timesteps", "1", "--threshold-scales", "8", "--out", str(tmp_path)]
    result = CliRunner().invoke(command, [*args, "--accuracy-budget", "0"])
    assert result.exit_code == 2, result.output
    assert "no configuration meets the accuracy budget" in result.output
    assert "best found" in result.output
    record = json.loads((tmp_path / "search.json").read_text())
    assert not record["met"] and record["best"]["outcome"]["accuracy"] < record["target_accuracy"]
    assert not list(tmp_path.glob("*.nhir"))
