"""Run the lava backend in another interpreter (lava-nc 0.10 needs Python 3.10 and numpy < 2).

The host writes the artifact (``artifact.nhart``), the inputs (``inputs.npz``) and the job
(``job.json``) into a temporary directory and starts ``<python> -m neurohal_loihi.worker DIR``
in its own process group; the worker writes ``result.npz``. No pickle crosses: numpy files
are read with ``allow_pickle=False``. On a timeout the whole process group (Lava spawns its
own processes) is killed; on a failure the worker's stderr tail is in the error.

The interpreter is ``NEUROHAL_LAVA_PYTHON`` when set, else ``.venv-lava/bin/python`` in the
project root (found by walking up from this file and from the working directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from neurohal.device import Artifact
from neurohal.errors import DeviceUnavailableError, NeurohalError

ENV_VAR = "NEUROHAL_LAVA_PYTHON"
DEFAULT_TIMEOUT_S = 600.0
STDERR_TAIL = 3000


class LavaWorkerError(NeurohalError):
    """The Lava worker interpreter crashed, hung or returned nothing; carries its stderr."""


@attrs.frozen
class WorkerResult:
    outputs: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray]
    final_v: dict[str, np.ndarray]
    run_steps: int


def _candidate_roots() -> list[Path]:
    roots = []
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        roots.extend([start, *start.parents])
    return roots


def lava_python() -> tuple[Path | None, str]:
    """(interpreter, how it was found) or (None, why none was found and how to get one)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path, f"{ENV_VAR}={configured}"
        return None, (
            f"{ENV_VAR}={configured} is not an executable file; point it at a Python "
            "3.10 interpreter with lava-nc 0.10, neurohal and neurohal-loihi installed"
        )
    for root in _candidate_roots():
        candidate = root / ".venv-lava" / "bin" / "python"
        if candidate.is_file() and (root / "plugins" / "loihi").is_dir():
            return candidate, f"project Lava environment {candidate}"
    return None, (
        "no Lava interpreter: run the project's set-up (scripts/setup.sh creates "
        f".venv-lava with lava-nc 0.10 on Python 3.10) or set {ENV_VAR}"
    )


def run_in_worker(
    artifact: Artifact,
    inputs: Mapping[str, np.ndarray],
    timesteps: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> WorkerResult:
    """Run ``artifact`` on ``inputs`` with the lava backend in the Lava interpreter."""
    python, how = lava_python()
    if python is None:
        raise DeviceUnavailableError(f"device 'loihi', backend 'lava': {how}")
    with tempfile.TemporaryDirectory(prefix="neurohal-lava-") as tmp:
        work = Path(tmp)
        artifact.save(work / "artifact.nhart")
        np.savez(work / "inputs.npz", **{k: np.asarray(v) for k, v in inputs.items()})
        (work / "job.json").write_text(json.dumps({"timesteps": int(timesteps)}))
        stderr_path = work / "stderr.txt"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [str(python), "-m", "neurohal_loihi.worker", str(work)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise LavaWorkerError(
                    f"Lava worker ({how}) did not finish within {timeout_s:g} s and was killed; "
                    f"stderr tail:\n{_tail(stderr_path)}"
                ) from None
            finally:
                _kill_group(proc)
        result = work / "result.npz"
        if code != 0 or not result.is_file():
            raise LavaWorkerError(
                f"Lava worker ({how}) failed with exit code {code}; stderr tail:\n"
                f"{_tail(stderr_path)}"
            )
        return _read_result(result)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker's process group (Lava's own processes included) if any is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return text[-STDERR_TAIL:] or "(empty)"


def _read_result(path: Path) -> WorkerResult:
    with np.load(path, allow_pickle=False) as data:
        groups: dict[str, dict[str, np.ndarray]] = {"out": {}, "spikes": {}, "v": {}}
        for key in data.files:
            if key == "run_steps":
                continue
            group, name = key.split("/", 1)
            groups[group][name] = data[key]
        return WorkerResult(groups["out"], groups["spikes"], groups["v"], int(data["run_steps"]))


def main(argv: list[str]) -> int:
    """Worker entry point: read the job from the directory, run Lava, write result.npz."""
    from neurohal_loihi import lava_backend
    from neurohal_loihi.hostside import encoder_inputs
    from neurohal_loihi.network import Network

    work = Path(argv[0])
    artifact = Artifact.load(work / "artifact.nhart")
    job = json.loads((work / "job.json").read_text())
    with np.load(work / "inputs.npz", allow_pickle=False) as data:
        inputs = {k: data[k].astype(np.float64) for k in data.files}
    batch = len(next(iter(inputs.values())))
    net = Network.from_artifact(artifact)
    outputs, spikes, final_v, steps = lava_backend.run(
        net, encoder_inputs(artifact.graph, inputs), int(job["timesteps"]), batch
    )
    arrays = {f"out/{k}": v for k, v in outputs.items()}
    arrays.update({f"spikes/{k}": v for k, v in spikes.items()})
    arrays.update({f"v/{k}": v for k, v in final_v.items()})
    np.savez(work / "result.npz", run_steps=np.int64(steps), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
