"""The compile options of cpu_sim, checked once and stored in the artifact."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from neurohal.errors import DeviceUnavailableError, InputError

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


def _check_int(name: str, value: object, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"cpu_sim option {name} must be an integer >= {minimum}, got {value!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """How cpu_sim runs a graph.

    ``device``: ``cpu`` or ``cuda``. ``dtype``: ``float32`` (fast; within the device tolerance
    of the reference) or ``float64`` (spike trains identical to the reference).
    ``batch_size``: samples per streamed batch (bounds memory for large test sets).
    ``time_chunk``: timesteps computed together per layer; ``None`` picks the largest chunk
    whose stored per-step tensors stay under `STEP_ELEMENT_BUDGET` elements (bounds memory for
    long T; `Program.stored_per_step`). ``warmup`` and ``repeats``: untimed and timed
    passes of `measure`.
    """

    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 256
    time_chunk: int | None = None
    warmup: int = 1
    repeats: int = 3

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Settings:
        """Check options by name and value; raises InputError naming the bad one."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"cpu_sim has no option(s) {unknown}; options: {sorted(known)}")
        merged = {**attrs.asdict(cls()), **options}
        if merged["device"] not in DEVICES:
            raise InputError(
                f"cpu_sim option device must be one of {DEVICES}, got {merged['device']!r}"
            )
        if merged["dtype"] not in DTYPES:
            raise InputError(
                f"cpu_sim option dtype must be one of {DTYPES}, got {merged['dtype']!r}"
            )
        _check_int("batch_size", merged["batch_size"], 1)
        _check_int("repeats", merged["repeats"], 1)
        _check_int("warmup", merged["warmup"], 0)
        _check_int("time_chunk", merged["time_chunk"], 1, allow_none=True)
        return cls(**merged)

    def torch_device(self) -> object:
        """The torch device; raises DeviceUnavailableError when CUDA is asked for but absent."""
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "cpu_sim option device='cuda' but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}); use device='cpu' or install a CUDA build of torch"
            )
        return torch.device(self.device)

    def torch_dtype(self) -> object:
        import torch

        return torch.float64 if self.dtype == "float64" else torch.float32
