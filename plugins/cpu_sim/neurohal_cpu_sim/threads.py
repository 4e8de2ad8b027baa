"""cpu_sim's own threads: work split over ranges, run side by side with the GIL released.

torch parallelises inside each op on its OpenMP workers; batch slices (`engine.run_batch`)
are parallelised here instead, over a kept pool of Python threads, the first range in the
calling thread. libgomp's workers spin for several milliseconds after every parallel torch op
before they sleep, so they are let go first (`park_openmp`), else each of our threads would
share a core with a spinning one.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch

T = TypeVar("T")


@functools.cache
def _helpers(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="cpu_sim")


@functools.cache
def _openmp_pause() -> Callable[[int], int] | None:
    """``omp_pause_resource_all`` of the OpenMP runtime torch ships (libgomp or libiomp)."""
    folder = Path(torch.__file__).parent / "lib"
    for lib in sorted(folder.glob("libgomp*.so*")) + sorted(folder.glob("libiomp*.so*")):
        try:
            pause = ctypes.CDLL(str(lib)).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        return pause
    return None


def park_openmp() -> None:
    """Let torch's idle OpenMP workers go (OpenMP 5.0 ``omp_pause_resource_all``, soft).

    Measured, a 2-thread numba loop right after a torch matmul: 18.5-24 ms, 12.5-13.2 ms with
    the workers let go first (11.8 ms on one thread alone). The next parallel torch op starts
    them anew (tens of microseconds)."""
    pause = _openmp_pause()
    if pause is not None:
        pause(1)  # omp_pause_soft


def spread(work: Callable[[int, int], T], items: int, parts: int) -> list[T]:
    """``work(lo, hi)`` over ``parts`` balanced ranges covering ``0 .. items``, side by side
    (``work`` must release the GIL to gain); results in range order."""
    parts = max(1, min(parts, items))
    bounds = [round(i * items / parts) for i in range(parts + 1)]
    if parts == 1:
        return [work(0, items)]
    park_openmp()
    helpers = _helpers(parts - 1)
    pending = [helpers.submit(work, lo, hi) for lo, hi in itertools.pairwise(bounds[1:])]
    first = work(bounds[0], bounds[1])
    return [first] + [p.result() for p in pending]
