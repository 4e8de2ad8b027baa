"""The checks behind the conformance kit; each failure says which case and what differs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from neurohal import reference
from neurohal.device import QUANTITY_NAMES, Artifact, Availability, Device, Quantity, SupportReport
from neurohal.errors import NeurohalError
from neurohal.testing.cases import Case, conformance_cases

UNITS = {"latency": "s", "power_static": "W", "power_dynamic": "W", "energy": "J"}


class ConformanceFailure(AssertionError):
    """A device broke the contract on a conformance case."""


def _fail(case: Case, device: Device, what: str) -> ConformanceFailure:
    return ConformanceFailure(f"device {device.name!r}, case {case.name!r}: {what}")


def check_case(device: Device, case: Case) -> str:
    """Check one case; returns ``"passed"`` or ``"skipped: <reason>"``, raises on failure."""
    availability = device.probe()
    if not isinstance(availability, Availability):
        raise _fail(case, device, f"probe() returned {availability!r}, not an Availability")
    if not availability.ok:
        return f"skipped: device unavailable ({availability.reason})"
    report = device.supports(case.graph)
    if not isinstance(report, SupportReport):
        raise _fail(case, device, f"supports() returned {report!r}, not a SupportReport")
    if {n.node for n in report.nodes} != {n.name for n in case.graph.nodes}:
        raise _fail(case, device, "supports() must report on every node of the graph")
    if not report.ok:
        with_reason = [n for n in report.unsupported if n.reason]
        if len(with_reason) != len(report.unsupported):
            raise _fail(case, device, "every unsupported node needs a reason")
        try:
            device.compile(case.graph)
        except NeurohalError:
            return "skipped: " + "; ".join(f"{n.node}: {n.reason}" for n in with_reason)
        raise _fail(case, device, "compile() accepted a graph supports() refused")
    artifact = device.compile(case.graph)
    if not isinstance(artifact, Artifact):
        raise _fail(case, device, f"compile() returned {artifact!r}, not an Artifact")
    _check_outputs(device, case, artifact)
    _check_saved_artifact(device, case, artifact)
    _check_measurement(device, case, artifact)
    _check_bad_inputs(device, case, artifact)
    return "passed"


def _check_outputs(device: Device, case: Case, artifact: Artifact) -> None:
    expected = reference.run(case.graph, case.inputs, case.timesteps)
    result = device.run(artifact, case.inputs, case.timesteps)
    if set(result.outputs) != set(expected.outputs):
        raise _fail(case, device, f"outputs {sorted(result.outputs)} != {sorted(expected.outputs)}")
    for name, want in expected.outputs.items():
        got = np.asarray(result.outputs[name])
        if got.shape != want.shape:
            raise _fail(case, device, f"output {name!r} shape {got.shape} != {want.shape}")
        if not device.tolerance.close(got, want):
            err = float(np.max(np.abs(got - want)))
            raise _fail(
                case,
                device,
                f"output {name!r} differs from the reference by up to "
                f"{err:.3g} (tolerance {device.tolerance})",
            )
    if result.samples != len(case.inputs):
        raise _fail(case, device, f"RunResult.samples {result.samples} != {len(case.inputs)}")
    for layer, counts in result.counters.items():
        if not isinstance(layer, str) or not all(
            isinstance(k, str) and isinstance(v, (int, np.integer)) and v >= 0
            for k, v in counts.items()
        ):
            raise _fail(case, device, f"counters[{layer!r}] must map names to counts >= 0")


def _check_saved_artifact(device: Device, case: Case, artifact: Artifact) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = artifact.save(Path(tmp) / "artifact.nhart")
        loaded = Artifact.load(path)
    first = device.run(artifact, case.inputs, case.timesteps).outputs
    again = device.run(loaded, case.inputs, case.timesteps).outputs
    for name in first:
        if not np.array_equal(np.asarray(first[name]), np.asarray(again[name])):
            raise _fail(case, device, "a saved and reloaded artifact gives different outputs")


def _check_measurement(device: Device, case: Case, artifact: Artifact) -> None:
    measurement = device.measure(artifact, case.inputs, case.timesteps)
    for name in QUANTITY_NAMES:
        q = getattr(measurement, name, None)
        if not isinstance(q, Quantity):
            raise _fail(case, device, f"measurement.{name} is {q!r}, not a Quantity")
        if q.unit != UNITS[name]:
            raise _fail(case, device, f"measurement.{name} unit {q.unit!r} != {UNITS[name]!r}")
        if q.provenance == "measured" and not q.samples and not q.method:
            raise _fail(case, device, f"measured {name} must keep samples or say its method")
        if q.value is not None and not (np.isfinite(q.value) and q.value >= 0):
            raise _fail(case, device, f"measurement.{name} = {q.value} is not a finite >= 0")


def _bad_inputs(case: Case) -> list[tuple[str, np.ndarray, int | None]]:
    x = case.inputs
    nan = x.astype(np.float32).copy()
    nan.flat[0] = np.nan
    bad = [
        ("wrong shape", x[..., :-1], case.timesteps),
        ("NaN input", nan, case.timesteps),
        ("non-numeric dtype", x.astype(str), case.timesteps),
    ]
    if case.timesteps is not None:
        bad.append(("timesteps=0", x, 0))
    return bad


def _check_bad_inputs(device: Device, case: Case, artifact: Artifact) -> None:
    for what, inputs, timesteps in _bad_inputs(case):
        try:
            device.run(artifact, inputs, timesteps)
        except NeurohalError:
            continue
        except Exception as exc:
            raise _fail(
                case,
                device,
                f"{what}: raised {type(exc).__name__} ({exc}), expected a NeurohalError subclass",
            ) from exc
        raise _fail(case, device, f"{what}: run() accepted it without an error")


def check_device(device: Device, cases: tuple[Case, ...] | None = None) -> dict[str, str]:
    """Run every case; returns {case: passed | skipped: reason}; raises on any failure."""
    results = {case.name: check_case(device, case) for case in cases or conformance_cases()}
    if not any(r == "passed" for r in results.values()):
        raise ConformanceFailure(f"device {device.name!r} passed no case: {results}")
    return results
