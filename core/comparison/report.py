"""A single self-contained HTML report: table, embedded figures, configuration, provenance."""

from __future__ import annotations

import base64
import html
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from neurohal.comparison.table import ComparisonTable, Row
from neurohal.device import QUANTITY_NAMES, Quantity

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
th { background: #f4f4f4; }
.m { background: #d9f2d9; color: #145214; } .e { background: #fff1c2; color: #6b5200; }
.u { background: #f6d5d5; color: #7a1c1c; }
.tag { border-radius: 3px; padding: 0 0.3rem; font-size: 0.7rem; font-weight: 600; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 560px; }
img.wide { max-width: 1140px; } code, pre { background: #f6f6f6; padding: 0.2rem; }
pre { overflow-x: auto; font-size: 0.8rem; } .notes li { margin-bottom: 0.3rem; }
"""

TAGS = {"measured": ("m", "measured"), "estimated": ("e", "estimated"), "unavailable": ("u", "n/a")}


def _cell(q: Quantity | None, factor: float, unit: str) -> str:
    if q is None or q.value is None:
        why = html.escape(q.method if q else "not reported")
        return f'<td title="{why}"><span class="tag u">n/a</span></td>'
    css, word = TAGS[q.provenance]
    return (
        f'<td title="{html.escape(q.method)}">{q.value * factor:.4g} {unit} '
        f'<span class="tag {css}">{word}</span></td>'
    )


def _row_html(r: Row) -> str:
    t = "-" if r.timesteps is None else str(r.timesteps)
    if not r.available:
        return (
            f"<tr><td>{html.escape(r.device)}</td><td>{r.graph}</td><td>{t}</td>"
            f'<td colspan="9" style="text-align:left"><span class="tag u">unavailable</span>'
            f" {html.escape(r.reason)}</td></tr>"
        )
    ratio = r.ratios or {}
    return (
        f"<tr><td>{html.escape(r.device)}</td><td>{r.graph}</td><td>{t}</td>"
        f"<td>{100 * r.accuracy:.2f}%</td>"
        + _cell(r.quantities.get("latency"), 1e3, "ms")
        + _cell(r.quantities.get("power_static"), 1.0, "W")
        + _cell(r.quantities.get("power_dynamic"), 1.0, "W")
        + _cell(r.quantities.get("energy"), 1e3, "mJ")
        + f"<td>{_n(r.per_inference.get('spikes'))}</td>"
        + f"<td>{_n(r.per_inference.get('synops'))}</td>"
        + f"<td>{_x(ratio.get('power'))}</td><td>{_x(ratio.get('energy'))}</td></tr>"
    )


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _versions() -> dict[str, str]:
    names = (
        "neurohal",
        "neurohal-cpu-sim",
        "neurohal-loihi",
        "neurohal-ncs2",
        "torch",
        "openvino",
        "onnx",
        "lava-nc",
        "matplotlib",
    )
    found = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
    }
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _methods(table: ComparisonTable) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for r in table.available_rows():
        for name in QUANTITY_NAMES:
            q = r.quantities.get(name)
            if q is not None:
                seen.setdefault((r.device, name), f"{q.provenance}: {q.method}")
    return [
        f"<li><b>{html.escape(d)}</b> {n}: {html.escape(m)}</li>"
        for (d, n), m in sorted(seen.items())
    ]


def _figure(path: Path, wide: bool) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure><img{cls} alt="{path.stem}" src="data:image/png;base64,{data}">'
        f"<figcaption>{path.stem.replace('_', ' ')}</figcaption></figure>"
    )


def write_report(table: ComparisonTable, figures: dict[str, list[Path]], path: Path) -> Path:
    """Write the report to ``path``; figures are embedded, so the file stands alone."""
    head = (
        "<tr><th>device</th><th>graph</th><th>T</th><th>accuracy</th><th>latency</th>"
        "<th>static power</th><th>dynamic power</th><th>energy</th><th>spikes</th>"
        "<th>synops</th><th>power ratio</th><th>energy ratio</th></tr>"
    )
    notes = sorted({n for r in table.rows for n in r.notes})
    cfg = table.config
    body = [
        f"<h1>neurohal comparison: {html.escape(str(cfg.get('model', '')))}</h1>",
        f'<p class="sub">{cfg.get("samples")} samples of {html.escape(str(cfg.get("data")))};'
        f" power and energy ratios are baseline ({html.escape(str(cfg.get('baseline')))}) "
        "divided by each device: how many times less it needs. All figures per inference.</p>",
        '<p><span class="tag m">measured</span> read from an instrument during this run '
        '&nbsp; <span class="tag e">estimated</span> from a named model with a published '
        'source (hover a cell for its method) &nbsp; <span class="tag u">n/a</span> '
        "unavailable, with the reason</p>",
        f"<table>{head}{''.join(_row_html(r) for r in table.rows)}</table>",
        "<h2>Figures</h2>",
        "".join(_figure(paths[0], name == "power_latency") for name, paths in figures.items()),
        "<h2>Where each figure comes from</h2>",
        f'<ul class="notes">{"".join(_methods(table))}</ul>',
    ]
    if notes:
        body += [
            "<h2>Run notes</h2>",
            "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
        ]
    body += [
        "<h2>Configuration</h2>",
        f"<pre>{html.escape(json.dumps(dict(cfg), indent=2, default=str))}</pre>",
        "<h2>Versions</h2>",
        f"<pre>{html.escape(json.dumps(_versions(), indent=2))}</pre>",
    ]
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>neurohal comparison</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path
