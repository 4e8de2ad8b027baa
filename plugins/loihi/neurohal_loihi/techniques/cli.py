"""``neurohal optimize``: search the deployment knobs of a model on Loihi under an accuracy
budget; save the chosen configuration as ``.nhir`` and a JSON record of how it was found.

Writes into ``--out``: ``search.jsonl`` (the resumable log: run again with the same arguments
to continue an interrupted search), ``search.json`` (every configuration, both Pareto sets,
the choice or why there is none) and ``MODEL.optimized.nhir`` (the chosen SNN, its deployment
knobs in the metadata under ``deployment``). Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import click

from neurohal.errors import NeurohalError


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _margins(text: str) -> tuple[float | None, ...]:
    parts = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return tuple(None if t == "none" else float(t) for t in parts)
    except ValueError:
        raise click.BadParameter(f"expected 'none' or numbers, got {text!r}") from None


def _model_id(model: str) -> str:
    path = Path(model)
    if path.is_file():
        return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    return model


@click.command("optimize")
@click.argument("model")
@click.option("--device", type=click.Choice(["loihi"]), default="loihi", show_default=True)
@click.option(
    "--chip", type=click.Choice(["loihi1", "loihi2"]), default="loihi2", show_default=True
)
@click.option(
    "--accuracy-budget",
    type=float,
    default=0.5,
    show_default=True,
    help="accuracy the SNN may lose against the ANN, in percentage points",
)
@click.option("--samples", type=int, default=500, show_default=True, help="MNIST test images")
@click.option("--timesteps", default="4,8,16,32", show_default=True)
@click.option("--threshold-scales", default="1,1.5,2", show_default=True)
@click.option(
    "--exit-margins",
    default="none,1",
    show_default=True,
    help="early-exit margins in output units ('none' = fixed T)",
)
@click.option("--out", type=click.Path(file_okay=False), default="optimize_out", show_default=True)
def command(
    model: str,
    device: str,
    chip: str,
    accuracy_budget: float,
    samples: int,
    timesteps: str,
    threshold_scales: str,
    exit_margins: str,
    out: str,
) -> None:
    """Search threshold scale, T, early exit, core packing and classifier placement of MODEL
    (.onnx, .nhir ANN or zoo name) on DEVICE; report the Pareto sets and the choice."""
    from neurohal import datasets, reference, save
    from neurohal.modelio import load_model
    from neurohal.techniques.outcome import accuracy
    from neurohal.techniques.search import Space, run_search
    from neurohal_loihi.techniques.evaluate import loihi_evaluator, snn_for

    if samples < 1:
        raise NeurohalError(f"--samples must be >= 1, got {samples}")
    space = Space(
        _floats(threshold_scales),
        tuple(int(t) for t in _floats(timesteps)),
        _margins(exit_margins),
    )
    ann = load_model(model)
    if ann.kind != "ann":
        raise NeurohalError(f"{model}: optimize takes the ANN (found a {ann.kind} graph)")
    x, y = datasets.mnist("test", limit=samples)

    def say(text: str) -> None:
        click.echo(text, err=True)

    say(f"ANN accuracy on {len(x)} MNIST test images (reference interpreter)...")
    (scores,) = reference.run(ann, x).outputs.values()
    ann_accuracy = accuracy(scores, y)
    header = {
        "model": _model_id(model),
        "device": device,
        "chip": chip,
        "data": f"mnist:test:{len(x)}",
        "ann_accuracy": ann_accuracy,
    }
    out_dir = Path(out)
    evaluate = loihi_evaluator(ann, x, y, chip)
    result = run_search(space, evaluate, header, out_dir / "search.jsonl", accuracy_budget, say)
    record = {
        "header": result.header,
        "accuracy_budget_points": accuracy_budget,
        "target_accuracy": result.target,
        "space": {
            "threshold_scales": list(space.threshold_scales),
            "timesteps": list(space.timesteps),
            "exit_margins": list(space.exit_margins),
        },
        "met": result.met,
        "message": result.message(),
        "chosen": None if result.chosen is None else result.chosen.to_dict(),
        "best": result.best.to_dict(),
        "pareto_accuracy_energy": [c.to_dict() for c in result.pareto_energy],
        "pareto_accuracy_latency": [c.to_dict() for c in result.pareto_latency],
        "configurations": [c.to_dict() for c in result.configs],
        "runs_evaluated_now": result.evaluated_now,
        "runs_reused_from_log": result.reused,
    }
    (out_dir / "search.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    click.echo(f"ANN accuracy {ann_accuracy:.4f}; target {result.target:.4f}")
    for title, front in (("energy", result.pareto_energy), ("latency", result.pareto_latency)):
        click.echo(f"Pareto set, accuracy vs {title} per inference:")
        for c in front:
            click.echo(f"  {c.knob_dict()}: {c.outcome.summary()}")
    click.echo(result.message())
    if result.chosen is None:
        say(f"record written to {out_dir / 'search.json'}; no .nhir saved")
        sys.exit(2)
    chosen = result.chosen
    snn = snn_for(ann, chosen.knobs).with_metadata(
        deployment={**chosen.knob_dict(), "found_by": "neurohal optimize", **header}
    )
    name = Path(model).stem if Path(model).suffix else model
    target = save(snn, out_dir / f"{name}.optimized.nhir")
    say(f"saved {target} and {out_dir / 'search.json'}")
