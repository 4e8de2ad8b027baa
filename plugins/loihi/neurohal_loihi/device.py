"""The loihi device: compile (quantize + map onto cores), run (emulator | lava | hardware),
measure (time/energy model on the run's counts).

Differences from the IR that the chip imposes, each visible in results and reports:
- Loihi 1 compartments reset to zero: on ``chip="loihi1"`` a graph's reset by subtraction
  runs as NxTF's two-compartment soft-reset neuron (two compartments and an inhibitory
  self-synapse per neuron, counted in the resource report and the energy model; see
  `network.reset_modes`), or, with ``loihi1_soft_reset=False``, as reset to zero in half the
  compartments (the RunResult notes it; compare with the reference to see the cost).
  ``chip="loihi2"`` keeps subtraction (in Lava: our ``LIFSubtract`` fixed-point model).
- A neuron spikes when ``v > threshold`` (IR: ``>=``); weights are 8-bit per projection.
- Every projection delivers one step later (Lava's Dense), so a readout behind L projections
  first hears from the input after L steps: ``run`` runs ``timesteps + L`` steps and the
  readout averages the last ``timesteps`` of them (biases are offset so that the wait does not
  shift the neurons' state). Residual branches of different depth arrive staggered, as on chip.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import numpy as np

from neurohal.device import (
    Artifact,
    Availability,
    Device,
    Measurement,
    NodeSupport,
    RunResult,
    SupportReport,
    Tolerance,
)
from neurohal.errors import DeviceUnavailableError, InputError
from neurohal.ir import Graph
from neurohal.reference import check_timesteps, normalize_inputs
from neurohal_loihi import emulator, energy, worker
from neurohal_loihi.chips import CHIPS
from neurohal_loihi.counters import count, fanout, spike_counts
from neurohal_loihi.hostside import encoder_inputs
from neurohal_loihi.lowering import lower, lower_max_pools, node_problems
from neurohal_loihi.mapping import resource_report
from neurohal_loihi.network import Network, reset_modes
from neurohal_loihi.quantize import quantize

BACKENDS = ("emulator", "lava", "hardware")
CHUNK_BYTES = 256 * 2**20


def lava_in_process() -> bool:
    """Whether lava-nc imports in this interpreter."""
    return importlib.util.find_spec("lava") is not None


def hardware_reason() -> str:
    if (
        importlib.util.find_spec("lava") is None
        or importlib.util.find_spec("lava.utils.loihi") is None
    ):
        return (
            "hardware needs Intel's lava-loihi extension (INRC members only) and a Loihi 2 "
            "board (Kapoho Point / Oheo Gulch); neither is present"
        )
    return "lava-loihi is importable but no Loihi board was detected by this plugin"


class LoihiDevice(Device):
    """Intel Loihi 1 / Loihi 2 through a bit-exact emulator or Lava's fixed-point simulator."""

    name = "loihi"
    description = "Intel Loihi 1/2: 8-bit fixed point, bit-exact emulator or Lava fixed_pt"
    quantities = {
        "latency": "estimated",
        "power_static": "estimated",
        "power_dynamic": "estimated",
        "energy": "estimated",
    }
    tolerance = Tolerance(
        atol=0.15,
        rtol=0.05,
        note="8-bit weights, v > threshold, Loihi 1 reset to zero instead of subtraction and "
        "one step of delay per projection: outputs differ from the float SNN; the "
        "emulator is judged bit-exact against Lava instead",
    )

    def __init__(self, chip: str = "loihi1") -> None:
        if chip not in CHIPS:
            raise InputError(f"chip must be one of {sorted(CHIPS)}, got {chip!r}")
        self.chip = chip
        """The chip ``compile`` targets when not told otherwise."""

    def probe(self) -> Availability:
        python, how = worker.lava_python()
        if lava_in_process():
            lava = "lava backend: in-process (lava-nc imports here)"
        elif python is not None:
            lava = f"lava backend: worker interpreter ({how})"
        else:
            lava = f"lava backend unavailable: {how}"
        return Availability(
            True,
            f"emulator available; {lava}; {hardware_reason()}",
            {
                "emulator": True,
                "lava": lava_in_process() or python is not None,
                "lava_how": lava,
                "hardware": False,
                "hardware_reason": hardware_reason(),
            },
        )

    def supports(self, graph: Graph) -> SupportReport:
        problems = node_problems(lower_max_pools(graph))
        return SupportReport(
            self.name,
            [
                NodeSupport(n.name, n.name not in problems, problems.get(n.name, ""))
                for n in graph.nodes
            ],
        )

    def compile(
        self,
        graph: Graph,
        chip: str | None = None,
        max_chips: int | None = None,
        max_timesteps: int = 64,
        loihi1_soft_reset: bool = True,
        **options: object,
    ) -> Artifact:
        """Quantize and map ``graph`` for ``chip`` (default: the device's).

        ``max_chips`` bounds the chips available; ``max_timesteps`` is the longest run the
        readouts are scaled for (longer runs may saturate, which the RunResult notes);
        ``loihi1_soft_reset`` keeps reset by subtraction on Loihi 1 with two-compartment
        neurons (False: reset to zero, one compartment per neuron).
        """
        if options:
            raise InputError(
                f"unknown compile option(s) {sorted(options)}; known: chip, "
                "max_chips, max_timesteps, loihi1_soft_reset"
            )
        if not isinstance(loihi1_soft_reset, bool):
            raise InputError(f"loihi1_soft_reset must be True or False, got {loihi1_soft_reset!r}")
        chip = self.chip if chip is None else chip
        if chip not in CHIPS:
            raise InputError(f"chip must be one of {sorted(CHIPS)}, got {chip!r}")
        if max_chips is not None and (not isinstance(max_chips, int) or max_chips < 1):
            raise InputError(f"max_chips must be a positive integer, got {max_chips!r}")
        graph = lower_max_pools(graph)
        plan = lower(graph)
        modes = reset_modes(graph, plan, chip, loihi1_soft_reset)
        two_compartment = frozenset(k for k, m in modes.items() if m == "two_compartment")
        report = resource_report(graph, plan, CHIPS[chip], max_chips, two_compartment)
        arrays, quant = quantize(graph, plan, int(max_timesteps))
        report["quantization"] = quant
        report["two_compartment_reset"] = sorted(two_compartment, key=list(modes).index)
        report["reset_lowered_to_zero"] = [
            la.name
            for la in plan.layers
            if la.kind == "neuron"
            and graph.node(la.name).reset == "subtract"
            and modes[la.name] == "zero"
        ]
        report["delay_steps"] = max(la.delay for la in plan.layers if la.kind == "readout")
        options = {
            "chip": chip,
            "max_chips": max_chips,
            "max_timesteps": max_timesteps,
            "loihi1_soft_reset": loihi1_soft_reset,
        }
        return Artifact(self.name, graph, arrays, report, options)

    def _prepare(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None,
    ) -> tuple[Network, dict[str, np.ndarray], int, int]:
        if artifact.device != self.name:
            raise InputError(f"artifact was compiled for {artifact.device!r}, not 'loihi'")
        steps = check_timesteps(artifact.graph, timesteps)
        values = normalize_inputs(artifact.graph, inputs)
        batch = len(next(iter(values.values())))
        return Network.from_artifact(artifact), values, steps, batch

    def run(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
        backend: str = "emulator",
        lava_timeout_s: float = worker.DEFAULT_TIMEOUT_S,
    ) -> RunResult:
        """Run on ``backend``: ``emulator`` (default), ``lava`` or ``hardware``."""
        return self._run(artifact, inputs, timesteps, backend, lava_timeout_s)[0]

    def run_detailed(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
        backend: str = "emulator",
        lava_timeout_s: float = worker.DEFAULT_TIMEOUT_S,
    ) -> tuple[RunResult, dict[str, np.ndarray]]:
        """As ``run``, also returning each layer's spike trains (steps, batch, neurons)."""
        return self._run(artifact, inputs, timesteps, backend, lava_timeout_s)[:2]

    def _run(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None,
        backend: str,
        lava_timeout_s: float,
    ) -> tuple[RunResult, dict[str, np.ndarray], dict[str, int]]:
        """(result, spike trains, synaptic operations per destination layer)."""
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
        net, values, steps, batch = self._prepare(artifact, inputs, timesteps)
        if backend == "hardware":
            raise DeviceUnavailableError(f"device 'loihi', backend 'hardware': {hardware_reason()}")
        if backend == "lava":
            outputs, spikes, saturated, run_steps = self._run_lava(
                artifact, net, values, steps, batch, lava_timeout_s
            )
        else:
            outputs, spikes, saturated, run_steps = _run_emulator(net, values, steps, batch)
        fanouts = {p.key: fanout(net.graph, p, net.weights(p)[0]) for p in net.plan.projections}
        per_neuron = {k: spike_counts(s) for k, s in spikes.items()}
        soft = frozenset(artifact.report["two_compartment_reset"])
        counters = count(net.graph, net.plan, spikes, per_neuron, fanouts, soft)
        notes = _notes(artifact, backend, steps, run_steps, saturated)
        synops = {
            la.name: sum(int(per_neuron[p.src] @ fanouts[p.key]) for p in la.projections)
            + counters[la.name].get("synops", 0)
            for la in net.plan.layers
        }
        return RunResult(outputs, counters, batch, steps, notes), spikes, synops

    def _run_lava(
        self,
        artifact: Artifact,
        net: Network,
        values: dict[str, np.ndarray],
        steps: int,
        batch: int,
        timeout_s: float,
    ) -> tuple:
        if lava_in_process():
            from neurohal_loihi import lava_backend

            outputs, spikes, _, run_steps = lava_backend.run(
                net, encoder_inputs(net.graph, values), steps, batch
            )
        else:
            res = worker.run_in_worker(artifact, values, steps, timeout_s)
            outputs, spikes, run_steps = res.outputs, res.spikes, res.run_steps
        saturated = {
            la.name: int(spikes[la.name].sum()) for la in net.plan.layers if la.kind == "readout"
        }
        return outputs, spikes, saturated, run_steps

    def measure(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
        backend: str = "emulator",
    ) -> Measurement:
        """Run, then estimate latency, dynamic power and energy per inference from the counts."""
        result, spikes, synops = self._run(
            artifact, inputs, timesteps, backend, worker.DEFAULT_TIMEOUT_S
        )
        chip = CHIPS[str(artifact.options["chip"])]
        run_steps = next(iter(spikes.values())).shape[0]
        per_neuron = {k: spike_counts(s) for k, s in spikes.items()}
        messages = {k: v["destination_cores"] for k, v in artifact.report["layers"].items()}
        est = energy.estimate(
            result.counters,
            synops,
            per_neuron,
            artifact.report,
            messages,
            chip,
            run_steps,
            result.samples,
        )
        q = energy.quantities(est, chip, run_steps)
        extra = {
            f"energy_{k}": energy.Quantity(v, "J", "estimated", q["latency"].method)
            for k, v in est.breakdown_j.items()
        }
        extra["energy_static"] = q["energy_static"]
        return Measurement(
            self.name,
            q["latency"],
            q["power_static"],
            q["power_dynamic"],
            q["energy"],
            result,
            extra,
        )


def _run_emulator(net: Network, values: dict[str, np.ndarray], steps: int, batch: int) -> tuple:
    """The emulator over the batch in chunks that keep its arrays within CHUNK_BYTES."""
    run_steps = net.run_steps(steps)
    widest = max(la.size for la in net.plan.layers)
    chunk = max(1, CHUNK_BYTES // (run_steps * widest * 12))
    ops = {p.key: emulator.prepare(net, p) for p in net.plan.projections}
    spikes = {la.name: np.empty((run_steps, batch, la.size), np.int8) for la in net.plan.layers}
    parts = []
    for start in range(0, batch, chunk):
        part = {k: v[start : start + chunk] for k, v in values.items()}
        n = len(next(iter(part.values())))
        into = {k: s[:, start : start + n] for k, s in spikes.items()}
        parts.append(emulator.run(net, encoder_inputs(net.graph, part), steps, n, ops, into))
    outputs = {k: np.concatenate([p.outputs[k] for p in parts]) for k in parts[0].outputs}
    saturated = {k: sum(p.saturated[k] for p in parts) for k in parts[0].saturated}
    return outputs, spikes, saturated, run_steps


def _notes(
    artifact: Artifact, backend: str, steps: int, run_steps: int, saturated: Mapping[str, int]
) -> tuple[str, ...]:
    chip = artifact.options["chip"]
    how = {
        "emulator": "bit-exact emulator of Lava's fixed-point models",
        "lava": "Lava 0.10 Loihi2SimCfg(select_tag='fixed_pt')",
    }[backend]
    notes = [
        f"{chip} on the {how}",
        f"ran {run_steps} steps: {steps} effective + {run_steps - steps} of projection "
        "delay; readouts average the last effective steps",
    ]
    lowered = artifact.report["reset_lowered_to_zero"]
    if lowered:
        notes.append(f"reset by subtraction ran as reset to zero (Loihi 1) in {lowered}")
    soft = artifact.report["two_compartment_reset"]
    if soft:
        notes.append(
            "reset by subtraction ran as two-compartment neurons with an inhibitory "
            f"self-synapse (Loihi 1, NxTF's soft reset) in {soft}"
        )
    hit = {k: v for k, v in saturated.items() if v}
    if hit:
        notes.append(
            f"readout membrane saturated (24-bit) in {hit}: compile with a larger max_timesteps"
        )
    return tuple(notes)
