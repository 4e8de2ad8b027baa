"""``neurohal inspect``: the nodes of a model, with shapes, parameters and domains."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from neurohal.modelio import load_model


@click.command(name="inspect")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(model: str, as_json: bool) -> None:
    """Show MODEL (.nhir, .onnx, .nir or zoo name): nodes, shapes, parameters, domain."""
    graph = load_model(model).validate()
    shapes = graph.shapes()
    rows = [
        {
            "name": n.name,
            "type": n.type_name,
            "domain": n.domain,
            "shape": list(shapes[n.name]),
            "parameters": n.parameter_count(),
            "inputs": [f"{e.src}->{e.port}" for e in graph.edges if e.dst == n.name],
        }
        for n in graph.topological_order()
    ]
    summary = {
        "model": model,
        "kind": graph.kind,
        "nodes": len(graph.nodes),
        "parameters": graph.parameter_count(),
        "metadata": dict(graph.metadata),
    }
    if as_json:
        click.echo(json.dumps({**summary, "layers": rows}, indent=2))
        return
    table = Table(title=f"{model}: {graph.kind.upper()}, {summary['parameters']:,} parameters")
    for col in ("node", "type", "domain", "output shape", "parameters", "from"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["type"],
            r["domain"],
            "x".join(map(str, r["shape"])),
            f"{r['parameters']:,}",
            ", ".join(r["inputs"]),
        )
    Console().print(table)
