"""``neurohal devices``: every registered device, where it came from, and what it can do."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from neurohal import plugins
from neurohal.device import QUANTITY_NAMES


def device_rows() -> tuple[list[dict], list[dict]]:
    """One JSON-able row per device (probe never raises) plus one per broken plugin."""
    reg = plugins.registry()
    rows = []
    for name, device in sorted(reg.devices.items()):
        avail = device.probe()
        origin = reg.origins[name]
        rows.append(
            {
                "device": name,
                "plugin": origin.name,
                "package": origin.distribution,
                "version": origin.version,
                "available": avail.ok,
                "reason": avail.reason,
                "details": dict(avail.details),
                "quantities": {q: device.quantities.get(q, "unavailable") for q in QUANTITY_NAMES},
            }
        )
    broken = [{"plugin": b.name, "error": b.error} for b in reg.broken]
    return rows, broken


@click.command(name="devices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List devices: package, availability (or why not), measured vs estimated quantities."""
    rows, broken = device_rows()
    if as_json:
        click.echo(json.dumps({"devices": rows, "broken_plugins": broken}, indent=2))
        return
    short = {
        "measured": "[green]measured[/]",
        "estimated": "[yellow]estimated[/]",
        "unavailable": "[red]n/a[/]",
    }
    table = Table(title="neurohal devices")
    for col in ("device", "package", "available", *QUANTITY_NAMES):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["device"],
            f"{r['package']} {r['version']}",
            "[green]yes[/]" if r["available"] else "[red]no[/]",
            *(short.get(r["quantities"][q], r["quantities"][q]) for q in QUANTITY_NAMES),
        )
    out = Console()
    out.print(table)
    for r in rows:
        out.print(f"[bold]{r['device']}[/]: {r['reason']}")
    err = Console(stderr=True)
    for b in broken:
        err.print(f"[red]broken plugin[/] {b['plugin']}: {b['error']}")
