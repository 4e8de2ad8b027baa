"""Energy for cpu_sim: measured from Linux RAPL where readable, else estimated from op counts.

RAPL (Running Average Power Limit) exposes cumulative package energy counters through the
powercap sysfs interface, ``/sys/class/powercap/intel-rapl:N/energy_uj`` (the AMD driver uses
the same names). The counters wrap at ``max_energy_range_uj``; since Linux 5.10 they are
readable by root only (CVE-2020-8694, "Platypus"), and most VMs expose none.

Without RAPL, energy is estimated from the run's operation counts with the per-operation
energies of Horowitz's 45 nm table. That counts arithmetic only (no memory traffic, no
instruction overhead, no idle power), so it is a lower bound for a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from neurohal import ir
from neurohal.ir import Graph

POWERCAP = Path("/sys/class/powercap")

HOROWITZ_SOURCE = (
    "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, "
    "pp. 10-14, energy table for 45 nm CMOS at 0.9 V"
)
FP32_ADD_PJ = 0.9  # Horowitz 2014: 32-bit float add
FP32_MULT_PJ = 3.7  # Horowitz 2014: 32-bit float multiply

# (multiplies, adds) per counted operation. Synapses: per weight use (the `macs` counter, since
# cpu_sim computes densely, not event-driven). Neurons: per neuron update, the threshold
# compare and the reset counted as adds.
SYNAPSE_OPS = {
    ir.Dense: (1, 1),
    ir.Conv2d: (1, 1),
    ir.Scale: (1, 0),
    ir.AvgPool2d: (0, 1),
    ir.SumPool2d: (0, 1),
    ir.Add: (0, 1),
    ir.Concat: (0, 0),
}
NEURON_OPS = {ir.IF: (0, 3), ir.LIF: (1, 3), ir.CubaLIF: (2, 4)}


@attrs.frozen
class RaplZone:
    """One package-level RAPL zone and the value at which its counter wraps."""

    name: str
    path: Path
    max_range_uj: int


def rapl_zones(root: Path | None = None) -> tuple[tuple[RaplZone, ...], str]:
    """The readable package zones under ``root`` (default `POWERCAP`), or ``()`` and the
    reason RAPL cannot be read here."""
    root = POWERCAP if root is None else root
    if not root.is_dir():
        return (), f"{root} does not exist (no powercap driver: not Linux, or a VM without RAPL)"
    dirs = sorted(d for d in root.glob("intel-rapl:*") if d.name.count(":") == 1)
    zones = []
    for d in dirs:
        try:
            name = (d / "name").read_text().strip()
            if not name.startswith("package"):
                continue  # e.g. psys, which already includes the packages
            max_range = int((d / "max_energy_range_uj").read_text())
            int((d / "energy_uj").read_text())
        except PermissionError:
            return (), (
                f"{d / 'energy_uj'} is not readable by this user (root only since Linux 5.10, "
                "CVE-2020-8694); run as root or grant read access to measure energy"
            )
        except (OSError, ValueError) as exc:
            return (), f"cannot read RAPL zone {d}: {exc}"
        zones.append(RaplZone(name, d, max_range))
    if not zones:
        return (), f"no RAPL package zones (intel-rapl:N) under {root}: this CPU or VM has none"
    return tuple(zones), ""


def read_uj(zones: tuple[RaplZone, ...]) -> tuple[int, ...]:
    """The energy counters now, in microjoules; raises OSError if one became unreadable."""
    return tuple(int((z.path / "energy_uj").read_text()) for z in zones)


def joules_between(
    zones: tuple[RaplZone, ...], before: tuple[int, ...], after: tuple[int, ...]
) -> float:
    """Energy used between two readings, across all packages, allowing one wrap per zone."""
    total = 0
    for zone, a, b in zip(zones, before, after, strict=True):
        total += b - a if b >= a else b + zone.max_range_uj - a
    return total / 1e6


def arithmetic_joules(graph: Graph, counters: Mapping[str, Mapping[str, int]]) -> float:
    """Energy of the run's arithmetic at Horowitz's fp32 figures (see `SYNAPSE_OPS`)."""
    picojoules = 0.0
    for node in graph.nodes:
        counts = counters.get(node.name, {})
        if type(node) in SYNAPSE_OPS:
            mults, adds = SYNAPSE_OPS[type(node)]
            uses = counts.get("macs", 0)
        elif type(node) in NEURON_OPS:
            mults, adds = NEURON_OPS[type(node)]
            uses = counts.get("neuron_updates", 0)
        else:
            continue
        picojoules += uses * (mults * FP32_MULT_PJ + adds * FP32_ADD_PJ)
    return picojoules * 1e-12


def arithmetic_method(dtype: str) -> str:
    """How `arithmetic_joules` estimates, for a Quantity's ``method``."""
    text = (
        "estimated from this run's op counts (weight uses of Dense/Conv2d as a multiply and an "
        "add, of Scale as a multiply, of pools and Add as an add; IF/LIF/CubaLIF updates as 3/4/6 "
        f"ops) at {FP32_MULT_PJ} pJ per fp32 multiply and {FP32_ADD_PJ} pJ per fp32 add "
        f"({HOROWITZ_SOURCE}); arithmetic only, no memory access, instruction overhead or idle "
        "power, so a lower bound for this CPU"
    )
    if dtype == "float64":
        text += "; the table has no 64-bit float figures, so float64 runs are underestimated more"
    return text
