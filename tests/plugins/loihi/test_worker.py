"""The Lava worker interpreter: missing, crashing and hanging workers give clean errors."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from neurohal.errors import DeviceUnavailableError
from neurohal.testing.cases import conformance_cases
from neurohal_loihi import device as device_module
from neurohal_loihi.worker import ENV_VAR, LavaWorkerError

CASE = next(c for c in conformance_cases("spiking") if c.name == "spiking_dense")


@pytest.fixture(autouse=True)
def _no_in_process_lava(monkeypatch) -> None:
    """Force the worker path even where lava imports in-process."""
    monkeypatch.setattr(device_module, "lava_in_process", lambda: False)


def _fake_python(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


def test_missing_interpreter(monkeypatch, loihi1) -> None:
    monkeypatch.setenv(ENV_VAR, "/nonexistent/python")
    availability = loihi1.probe()
    assert availability.ok  # the emulator still runs
    assert availability.details["lava"] is False
    assert "/nonexistent/python is not an executable file" in availability.reason
    art = loihi1.compile(CASE.graph)
    with pytest.raises(DeviceUnavailableError, match=f"{ENV_VAR}=/nonexistent/python"):
        loihi1.run(art, CASE.inputs, 4, backend="lava")


def test_crashing_worker_shows_stderr(monkeypatch, tmp_path, loihi1) -> None:
    fake = _fake_python(tmp_path, 'echo "Traceback: lava exploded on purpose" >&2\nexit 3\n')
    monkeypatch.setenv(ENV_VAR, str(fake))
    art = loihi1.compile(CASE.graph)
    with pytest.raises(LavaWorkerError, match=r"exit code 3(.|\n)*lava exploded on purpose"):
        loihi1.run(art, CASE.inputs, 4, backend="lava")


def test_hanging_worker_is_killed_with_its_children(monkeypatch, tmp_path, loihi1) -> None:
    pid_file = tmp_path / "child.pid"
    fake = _fake_python(
        tmp_path,
        f'sleep 300 &\necho $! > {pid_file}\necho "worker stuck in Lava" >&2\nsleep 300\n',
    )
    monkeypatch.setenv(ENV_VAR, str(fake))
    art = loihi1.compile(CASE.graph)
    start = time.monotonic()
    with pytest.raises(LavaWorkerError, match=r"within 2 s(.|\n)*worker stuck in Lava"):
        loihi1.run(art, CASE.inputs, 4, backend="lava", lava_timeout_s=2)
    assert time.monotonic() - start < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the worker's child process was orphaned"
