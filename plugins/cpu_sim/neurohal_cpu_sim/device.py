"""``cpu_sim``: the fast simulator of analog and spiking IR graphs, in torch on CPU or CUDA.

Outputs follow `neurohal.reference` exactly in semantics (float64: identical spike trains;
float32, the default: within `CpuSimDevice.tolerance`). Counters have the reference's
definitions. Latency is measured on the host clock; energy and power are measured from RAPL
where readable, else energy is estimated from op counts (Horowitz, ISSCC 2014) and static power
is unavailable, each saying why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator, Mapping

import attrs
import numpy as np

from neurohal import ir, reference
from neurohal.device import (
    Artifact,
    Availability,
    Device,
    Measurement,
    NodeSupport,
    Quantity,
    RunResult,
    SupportReport,
    Tolerance,
)
from neurohal.errors import InputError
from neurohal.ir import Graph
from neurohal_cpu_sim import energy
from neurohal_cpu_sim.settings import Settings

SUPPORTED = (
    ir.Input, ir.Output, ir.Flatten, ir.Reshape,
    ir.Dense, ir.Conv2d, ir.AvgPool2d, ir.SumPool2d, ir.Add, ir.Concat, ir.Scale,
    ir.ReLU, ir.Clip, ir.MaxPool2d, ir.Softmax,
    ir.IF, ir.LIF, ir.CubaLIF,
    ir.Encoder, ir.Readout,
)  # fmt: skip

IDLE_WINDOW_S = 0.25
"""How long `measure` samples the package's idle power (RAPL only)."""


@attrs.frozen
class Trace:
    """A run plus the per-step values of the recorded nodes, each (T, B, *shape)
    ((1, B, *shape) for analog graphs), as `neurohal.reference.run(record=...)` returns them."""

    result: RunResult
    records: dict[str, np.ndarray]


@attrs.frozen
class _Prepared:
    settings: Settings
    program: object
    inputs: dict[str, np.ndarray]
    steps: int | None
    samples: int

    def batches(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        size = self.settings.batch_size
        for offset in range(0, self.samples, size):
            yield offset, {k: v[offset : offset + size] for k, v in self.inputs.items()}


_PROGRAMS: dict[int, tuple[Graph, Settings, object]] = {}
PROGRAMS_KEPT = 8


def _program(graph: Graph, settings: Settings) -> object:
    """The engine's `Program` for ``graph`` (the same object) and ``settings``, kept for the
    last `PROGRAMS_KEPT` graphs: repeated runs of one artifact skip rebuilding its torch
    weights and fan-outs (about 1 ms a run for LeNet-5)."""
    from neurohal_cpu_sim.engine import Program

    kept = _PROGRAMS.get(id(graph))
    if kept is None or kept[0] is not graph or kept[1] != settings:
        while len(_PROGRAMS) >= PROGRAMS_KEPT:
            del _PROGRAMS[next(iter(_PROGRAMS))]
        kept = _PROGRAMS[id(graph)] = (graph, settings, Program(graph, settings))
    return kept[2]


class CpuSimDevice(Device):
    name = "cpu_sim"
    description = "batched, time-batched torch simulator of IR graphs (CPU, or CUDA if present)"
    quantities = {
        "latency": "measured",
        "power_static": "unavailable",
        "power_dynamic": "estimated",
        "energy": "estimated",
    }
    """Without RAPL access (the usual case: root-only, absent in VMs). With readable RAPL,
    `measure` returns all four as measured."""
    tolerance = Tolerance(
        atol=1e-4,
        rtol=1e-4,
        note=(
            "float32 (the default) rounds differently from the float64 reference (about 1e-6 "
            "relative); a spike can flip where a membrane lies within rounding of its "
            "threshold. compile(dtype='float64') gives the reference's spike trains exactly."
        ),
    )

    # -- availability -------------------------------------------------------------------

    def probe(self) -> Availability:
        try:
            import torch
        except Exception as exc:  # probe must never raise
            return Availability(False, f"torch is not importable ({exc}); pip install torch")
        try:
            import numba
        except Exception as exc:  # probe must never raise
            return Availability(
                False, f"numba (the fused CPU loops) is not importable ({exc}); pip install numba"
            )
        zones, why = energy.rapl_zones()
        details = {
            "torch": torch.__version__,
            "numba": numba.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "rapl": "readable: " + ", ".join(z.name for z in zones) if zones else why,
        }
        return Availability(True, "torch simulator on this host", details)

    def supports(self, graph: Graph) -> SupportReport:
        names = sorted(t.__name__ for t in SUPPORTED)
        return SupportReport(
            self.name,
            [
                NodeSupport(n.name, True)
                if isinstance(n, SUPPORTED)
                else NodeSupport(
                    n.name, False, f"cpu_sim has no kernel for {n.type_name}; supported: {names}"
                )
                for n in graph.nodes
            ],
        )

    # -- compile ------------------------------------------------------------------------

    def compile(self, graph: Graph, **options: object) -> Artifact:
        """Check the graph and options; the artifact is the graph plus the settings."""
        from neurohal_cpu_sim.engine import schedule

        settings = Settings.from_options(options)
        settings.torch_device()
        graph.validate()
        self.supports(graph).raise_if_unsupported()
        plan = schedule(graph)
        report = {
            "kind": graph.kind,
            "nodes": len(graph.nodes),
            "parameters": graph.parameter_count(),
            "schedule": plan,
        }
        return Artifact(self.name, graph, report=report, options=attrs.asdict(settings))

    # -- run ----------------------------------------------------------------------------

    def run(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> RunResult:
        return self.trace(artifact, inputs, timesteps).result

    def trace(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
        record: Iterable[str] = (),
    ) -> Trace:
        """`run`, also returning the per-step values of the nodes named in ``record``."""
        from neurohal_cpu_sim.engine import add_counters, run_batch

        prep = self._prepare(artifact, inputs, timesteps)
        record = tuple(record)
        for name in record:
            artifact.graph.node(name)
        outputs: dict[str, list[np.ndarray]] = {}
        records: dict[str, list[np.ndarray]] = {name: [] for name in record}
        counters: dict[str, dict[str, int]] = {}
        for offset, batch in prep.batches():
            res = run_batch(prep.program, batch, offset, prep.samples, prep.steps, record)
            add_counters(counters, res.counters)
            for name, value in res.outputs.items():
                outputs.setdefault(name, []).append(value)
            for name, value in res.records.items():
                records[name].append(value)
        result = RunResult(
            {k: np.concatenate(v) for k, v in outputs.items()},
            counters,
            prep.samples,
            prep.steps,
            (_note(prep.settings),),
        )
        return Trace(result, {k: np.concatenate(v, axis=1) for k, v in records.items()})

    def _prepare(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None,
    ) -> _Prepared:
        if artifact.device != self.name:
            raise InputError(
                f"artifact was compiled for device {artifact.device!r}, not {self.name!r}; "
                f"compile the graph with nh.device({self.name!r})"
            )
        settings = Settings.from_options(artifact.options)
        graph = artifact.graph.validate()
        self.supports(graph).raise_if_unsupported()
        steps = reference.check_timesteps(graph, timesteps)
        values = reference.normalize_inputs(graph, inputs)
        samples = len(next(iter(values.values())))
        if samples == 0:
            raise InputError("inputs hold no samples (batch size 0); pass at least one")
        return _Prepared(settings, _program(graph, settings), values, steps, samples)

    # -- measure ------------------------------------------------------------------------

    def measure(
        self,
        artifact: Artifact,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        timesteps: int | None = None,
    ) -> Measurement:
        """Time every streamed batch over ``repeats`` passes after ``warmup`` untimed ones;
        read RAPL around them when readable."""
        from neurohal_cpu_sim.engine import add_counters, run_batch

        prep = self._prepare(artifact, inputs, timesteps)
        settings = prep.settings
        batches = list(prep.batches())
        for _ in range(settings.warmup):
            run_batch(prep.program, batches[0][1], batches[0][0], prep.samples, prep.steps)
        meter = _Rapl()
        idle_watts = meter.idle_power()
        meter.start()
        per_batch: list[float] = []
        per_inference: list[float] = []
        joules: list[float] = []
        for _ in range(settings.repeats):
            outputs: dict[str, list[np.ndarray]] = {}
            counters: dict[str, dict[str, int]] = {}
            for offset, batch in batches:
                start = time.perf_counter()
                res = run_batch(prep.program, batch, offset, prep.samples, prep.steps)
                seconds = time.perf_counter() - start
                per_batch.append(seconds)
                per_inference.append(seconds / len(next(iter(batch.values()))))
                add_counters(counters, res.counters)
                for name, value in res.outputs.items():
                    outputs.setdefault(name, []).append(value)
            joules.append(meter.lap() / prep.samples if meter.ok else 0.0)
        run = RunResult(
            {k: np.concatenate(v) for k, v in outputs.items()},
            counters,
            prep.samples,
            prep.steps,
            (_note(settings),),
        )
        timing = (
            f"host time.perf_counter around each streamed batch (up to {settings.batch_size} "
            f"samples, {settings.device}, {settings.dtype}) after {settings.warmup} warm-up "
            f"batch(es), {settings.repeats} pass(es) over {prep.samples} samples"
        )
        latency = Quantity(
            statistics.median(per_inference),
            "s",
            "measured",
            f"{timing}; median over batches of batch time / samples in the batch",
            per_inference,
        )
        batch_latency = Quantity(
            statistics.median(per_batch), "s", "measured", f"{timing}; median", per_batch
        )
        power = self._power(
            meter, idle_watts, joules, sum(per_batch), artifact.graph, run, latency, settings.dtype
        )
        return Measurement(
            device=self.name,
            latency=latency,
            run=run,
            extra={"latency_per_batch": batch_latency},
            **power,
        )

    def _power(
        self,
        meter: _Rapl,
        idle_watts: float | None,
        joules: list[float],
        busy_s: float,
        graph: Graph,
        run: RunResult,
        latency: Quantity,
        dtype: str,
    ) -> dict[str, Quantity]:
        if meter.ok and idle_watts is not None:
            zones = ", ".join(z.name for z in meter.zones)
            total_j = sum(joules) * run.samples
            dynamic = max(total_j / busy_s - idle_watts, 0.0)
            return {
                "energy": Quantity(
                    statistics.median(joules),
                    "J",
                    "measured",
                    f"Linux RAPL energy_uj ({zones}) read around each timed pass, divided by "
                    "its samples; whole CPU package, so idle power and other processes count",
                    joules,
                ),
                "power_static": Quantity(
                    idle_watts,
                    "W",
                    "measured",
                    f"RAPL package power over {IDLE_WINDOW_S} s idle before the timed passes "
                    "(the host's idle power)",
                ),
                "power_dynamic": Quantity(
                    dynamic,
                    "W",
                    "measured",
                    "RAPL package energy over the timed passes / their busy time, minus the "
                    "idle power (floored at 0)",
                ),
            }
        why = f"RAPL not readable: {meter.reason}"
        joules_each = energy.arithmetic_joules(graph, run.counters) / run.samples
        method = energy.arithmetic_method(dtype)
        return {
            "energy": Quantity(joules_each, "J", "estimated", f"{method} ({why})"),
            "power_static": Quantity.unavailable(
                "W", f"{why}; a CPU's static power has no op-count model"
            ),
            "power_dynamic": Quantity(
                joules_each / latency.value,
                "W",
                "estimated",
                f"the estimated energy per inference / the measured latency per inference; "
                f"energy {method}",
            ),
        }


def _note(settings: Settings) -> str:
    return (
        f"cpu_sim: torch (and numba loops on cpu) on {settings.device} in {settings.dtype}, "
        f"batches of up to {settings.batch_size} samples"
    )


class _Rapl:
    """RAPL package counters read around the timed passes; ``ok`` turns False with a reason
    if they cannot be read (then energy is estimated instead)."""

    def __init__(self) -> None:
        self.zones, self.reason = energy.rapl_zones()
        self.ok = bool(self.zones)
        self._last: tuple[int, ...] = ()

    def _read(self) -> tuple[int, ...] | None:
        try:
            return energy.read_uj(self.zones)
        except (OSError, ValueError) as exc:
            self.ok, self.reason = False, f"reading energy_uj failed during the run ({exc})"
            return None

    def idle_power(self) -> float | None:
        if not self.ok:
            return None
        before = self._read()
        start = time.perf_counter()
        time.sleep(IDLE_WINDOW_S)
        after = self._read()
        if before is None or after is None:
            return None
        return energy.joules_between(self.zones, before, after) / (time.perf_counter() - start)

    def start(self) -> None:
        if self.ok:
            self._last = self._read() or ()

    def lap(self) -> float:
        """Joules since the last reading."""
        now = self._read()
        if now is None:
            return 0.0
        used = energy.joules_between(self.zones, self._last, now)
        self._last = now
        return used
