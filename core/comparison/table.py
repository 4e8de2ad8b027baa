"""The comparison table: one tidy row per (device, model, graph, T), provenance on every figure."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from neurohal.device import QUANTITY_NAMES, Quantity

COUNTER_NAMES = ("spikes", "synops", "macs", "neuron_updates")


@attrs.frozen
class Row:
    """One device running one graph (the ANN, or the SNN at ``timesteps``) on the test set.

    ``quantities`` holds latency, power_static, power_dynamic and energy per inference from the
    device's own `measure`; ``per_inference`` the run's counters divided by the samples;
    ``layer_spikes`` spikes per inference per layer; ``ratios`` the baseline device's power and
    energy divided by this row's (how many times less this device needs).
    """

    device: str
    model: str
    graph: str
    timesteps: int | None
    available: bool
    reason: str = ""
    accuracy: float | None = None
    samples: int = 0
    quantities: Mapping[str, Quantity] = attrs.field(factory=dict)
    per_inference: Mapping[str, float] = attrs.field(factory=dict)
    layer_spikes: Mapping[str, float] = attrs.field(factory=dict)
    resources: Mapping = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    ratios: Mapping[str, float | None] = attrs.field(factory=dict)

    def power_total(self) -> Quantity | None:
        """Static plus dynamic power; the weaker provenance of the two wins."""
        parts = [self.quantities.get("power_static"), self.quantities.get("power_dynamic")]
        if any(p is None or p.value is None for p in parts):
            return None
        provenance = "measured" if all(p.provenance == "measured" for p in parts) else "estimated"
        method = "static + dynamic: " + " | ".join(p.method for p in parts)
        return Quantity(parts[0].value + parts[1].value, "W", provenance, method)

    def flat(self) -> dict[str, object]:
        """The row as flat columns for CSV and JSON."""
        out: dict[str, object] = {
            "device": self.device,
            "model": self.model,
            "graph": self.graph,
            "timesteps": self.timesteps,
            "available": self.available,
            "reason": self.reason,
            "accuracy": self.accuracy,
            "samples": self.samples,
        }
        for name in QUANTITY_NAMES:
            q = self.quantities.get(name)
            out[f"{name}_value"] = q.value if q else None
            out[f"{name}_unit"] = q.unit if q else None
            out[f"{name}_provenance"] = q.provenance if q else "unavailable"
            out[f"{name}_method"] = q.method if q else self.reason
        for name in COUNTER_NAMES:
            out[f"{name}_per_inference"] = self.per_inference.get(name)
        for key in ("power", "energy"):
            out[f"{key}_ratio_vs_baseline"] = self.ratios.get(key)
        out["cores"] = self.resources.get("cores")
        out["chips"] = self.resources.get("chips")
        out["notes"] = " | ".join(self.notes)
        return out


@attrs.frozen
class ComparisonTable:
    """All rows of a comparison plus the configuration that produced them."""

    rows: tuple[Row, ...]
    config: Mapping = attrs.field(factory=dict)

    def available_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.available)

    def to_records(self) -> list[dict[str, object]]:
        return [r.flat() for r in self.rows]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """CSV text, one row per (device, model, graph, T); written to ``path`` if given."""
        records = self.to_records()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]) if records else [])
        writer.writeheader()
        writer.writerows(records)
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        data = {
            "config": dict(self.config),
            "rows": [
                {
                    **r.flat(),
                    "quantities": {k: q.to_dict() for k, q in r.quantities.items()},
                    "layer_spikes": dict(r.layer_spikes),
                    "resources": dict(r.resources),
                }
                for r in self.rows
            ],
        }
        text = json.dumps(data, indent=2, default=float)
        if path is not None:
            Path(path).write_text(text)
        return text

    def plot(self, folder: str | os.PathLike) -> dict[str, list[Path]]:
        """Write the figures (PNG and SVG) into ``folder``; returns the paths by figure."""
        from neurohal.comparison.plots import save_figures

        return save_figures(self, folder)

    def to_html(self, path: str | os.PathLike) -> Path:
        """Write a self-contained HTML report (figures embedded) to ``path``."""
        import tempfile

        from neurohal.comparison.report import write_report

        with tempfile.TemporaryDirectory() as tmp:
            return write_report(self, self.plot(tmp), Path(path))

    def to_rich(self) -> object:
        """A rich Table for the terminal; measured figures in green, estimated in yellow."""
        from rich.table import Table

        table = Table(title="neurohal comparison (per inference)", show_lines=False)
        columns = (
            "device",
            "graph",
            "T",
            "accuracy",
            "latency",
            "power",
            "energy",
            "synops",
            "power x",
            "energy x",
        )
        for col in columns:
            table.add_column(col, justify="left" if col in ("device", "graph") else "right")
        for r in self.rows:
            if not r.available:
                table.add_row(r.device, r.graph, _t(r.timesteps), f"[red]unavailable: {r.reason}")
                continue
            table.add_row(
                r.device,
                r.graph,
                _t(r.timesteps),
                f"{100 * r.accuracy:.2f}%" if r.accuracy is not None else "-",
                _fmt(r.quantities.get("latency"), 1e3, "ms"),
                _fmt(r.power_total(), 1.0, "W"),
                _fmt(r.quantities.get("energy"), 1e3, "mJ"),
                _count(r.per_inference.get("synops")),
                _ratio(r.ratios.get("power")),
                _ratio(r.ratios.get("energy")),
            )
        table.caption = (
            "[green]M[/] measured in this run, [yellow]E[/] estimated from a named model "
            "(see the report for each method and source); x = baseline / this device"
        )
        return table


def _t(timesteps: int | None) -> str:
    return "-" if timesteps is None else str(timesteps)


def _fmt(q: Quantity | None, factor: float, unit: str) -> str:
    if q is None or q.value is None:
        return "n/a"
    tag = "[green]M[/]" if q.provenance == "measured" else "[yellow]E[/]"
    return f"{q.value * factor:.4g} {unit} {tag}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def with_ratios(rows: Sequence[Row], baseline: str | None) -> tuple[Row, ...]:
    """Fill each row's power and energy ratio against the first available baseline row.

    Rows whose static power is unavailable get no ratios: their power and energy are partial.
    """
    base = next((r for r in rows if r.device == baseline and r.available), None)
    if base is None:
        return tuple(rows)
    base_power, base_energy = base.power_total(), base.quantities.get("energy")

    def ratio(b: Quantity | None, x: Quantity | None) -> float | None:
        if b is None or x is None or b.value is None or x.value is None or x.value == 0:
            return None
        return b.value / x.value

    # An energy without the device's static power (e.g. cpu_sim's arithmetic-only estimate when
    # RAPL is unreadable) is a partial figure: it gets no ratio, which would overstate it.
    return tuple(
        attrs.evolve(
            r,
            ratios={
                "power": ratio(base_power, r.power_total()),
                "energy": ratio(base_energy, r.quantities.get("energy"))
                if r.power_total() is not None
                else None,
            },
        )
        if r.available
        else r
        for r in rows
    )
