"""Figures of a comparison (matplotlib, PNG and SVG). Hollow markers mean estimated figures."""

from __future__ import annotations

from pathlib import Path

from neurohal.comparison.table import ComparisonTable, Row

FIGURES = ("accuracy_vs_t", "energy_vs_accuracy", "power_latency", "spikes_per_layer")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(r: Row) -> str:
    return f"{r.device} {r.graph}" + (f" T={r.timesteps}" if r.timesteps else "")


def _marker_face(r: Row, quantity: str, color: str) -> str:
    q = r.quantities.get(quantity)
    return color if q is not None and q.provenance == "measured" else "none"


def accuracy_vs_t(table: ComparisonTable, ax) -> None:
    rows = table.available_rows()
    for i, device in enumerate(sorted({r.device for r in rows})):
        color = f"C{i}"
        snn = sorted(
            (r for r in rows if r.device == device and r.graph == "snn"), key=lambda r: r.timesteps
        )
        if snn:
            ax.plot(
                [r.timesteps for r in snn],
                [100 * r.accuracy for r in snn],
                "o-",
                color=color,
                label=f"{device} (SNN)",
            )
        for r in rows:
            if r.device == device and r.graph == "ann":
                ax.axhline(100 * r.accuracy, color=color, ls="--", label=f"{device} (ANN)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs timesteps")
    ax.legend(fontsize=8)


def energy_vs_accuracy(table: ComparisonTable, ax) -> None:
    for i, r in enumerate(table.available_rows()):
        energy = r.quantities.get("energy")
        if energy is None or energy.value is None or r.accuracy is None:
            continue
        color = f"C{sorted({x.device for x in table.rows}).index(r.device)}"
        ax.plot(
            energy.value * 1e3,
            100 * r.accuracy,
            "o",
            ms=8,
            color=color,
            markerfacecolor=_marker_face(r, "energy", color),
        )
        ax.annotate(
            _label(r),
            (energy.value * 1e3, 100 * r.accuracy),
            fontsize=7,
            xytext=(4, 2 + (i % 3) * 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (mJ, log)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Energy vs accuracy (filled = measured, hollow = estimated)")


def power_latency(table: ComparisonTable, axes) -> None:
    rows = [
        r
        for r in table.available_rows()
        if r.power_total() is not None or r.quantities.get("latency")
    ]
    labels = [_label(r) for r in rows]
    power = [(r.power_total().value if r.power_total() else 0.0) for r in rows]
    latency = [(r.quantities["latency"].value or 0.0) * 1e3 for r in rows]
    for ax, values, title, unit, qname in (
        (axes[0], power, "Power per device", "W", "power_dynamic"),
        (axes[1], latency, "Latency per inference", "ms", "latency"),
    ):
        bars = ax.barh(labels, values, color=[f"C{i % 10}" for i in range(len(rows))])
        for bar, r, value in zip(bars, rows, values, strict=True):
            q = r.quantities.get(qname)
            if not value:
                ax.annotate(
                    "n/a",
                    (0, bar.get_y() + bar.get_height() / 2),
                    fontsize=7,
                    xycoords=("axes fraction", "data"),
                    xytext=(3, -3),
                    textcoords="offset points",
                )
            elif q is None or q.provenance != "measured":
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        ax.set_xscale("log")
        ax.set_xlabel(unit + " (log; hatched = estimated)")
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=7)


def spikes_per_layer(table: ComparisonTable, ax) -> None:
    rows = [r for r in table.available_rows() if r.layer_spikes]
    if not rows:
        ax.text(0.5, 0.5, "no spiking run", ha="center")
        return
    longest = max(r.timesteps or 0 for r in rows)
    chosen = [r for r in rows if r.timesteps == longest]
    width = 0.8 / len(chosen)
    layers = list(chosen[0].layer_spikes)
    for i, r in enumerate(chosen):
        xs = [j + i * width for j in range(len(layers))]
        ax.bar(xs, [r.layer_spikes.get(name, 0.0) for name in layers], width, label=_label(r))
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(layers))],
        layers,
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("spikes per inference")
    ax.set_title(f"Spikes per layer (T={longest})")
    ax.legend(fontsize=7)


def save_figures(table: ComparisonTable, folder: str | Path) -> dict[str, list[Path]]:
    """Write every figure as PNG and SVG into ``folder``; returns the paths by figure."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name in FIGURES:
        if name == "power_latency":
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
            power_latency(table, axes)
        else:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            {
                "accuracy_vs_t": accuracy_vs_t,
                "energy_vs_accuracy": energy_vs_accuracy,
                "spikes_per_layer": spikes_per_layer,
            }[name](table, ax)
        fig.tight_layout()
        written[name] = []
        for ext in ("png", "svg"):
            path = folder / f"{name}.{ext}"
            fig.savefig(path, dpi=120)
            written[name].append(path)
        plt.close(fig)
    return written
