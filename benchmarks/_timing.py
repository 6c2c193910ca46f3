"""Timing every benchmark can trust: pinned BLAS threads, per-thread CPU time, the machine.

Why: ``time.process_time()`` counts the CPU time of *every* thread of the process. numpy's
OpenBLAS keeps worker threads that busy-wait for a while after a multi-threaded call (a
dense matrix product); that spin is charged to whatever row is timed next, so a
single-threaded row timed with ``process_time()`` can read twice its real cost. Rows that
are meant to be single-threaded are therefore timed

* with the BLAS pools (numpy / scipy OpenBLAS or MKL) pinned to one thread
  (:func:`single_threaded`, threadpoolctl), and
* with ``time.thread_time()``: the CPU time of the calling thread only (a background job or
  an idle BLAS worker cannot be charged to it).

Every benchmark's report carries :func:`environment` (threads of torch, of each BLAS pool, of
numba; the CPU count; the BLAS kernel threadpoolctl reports; ``OPENBLAS_*`` variables as
they were set) with the load average before and after (:class:`Session`). Ratios are taken
between rows measured in the same run, never against a figure from another run.

Import from a benchmark script (``benchmarks/`` is the script's own folder, so
``import _timing`` works), or as ``benchmarks._timing`` from the repository root.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = [
    "Session",
    "best_of",
    "blas_pools",
    "environment",
    "interleaved",
    "load_average",
    "single_threaded",
]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (``os.getloadavg``), rounded to 0.01."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def blas_pools() -> list[dict[str, Any]]:
    """The thread pools threadpoolctl sees (BLAS and OpenMP): library, threads, kernel."""
    pools = []
    for info in threadpool_info():
        pools.append(
            {
                "user_api": info.get("user_api"),
                "library": info.get("internal_api"),
                "version": info.get("version"),
                "threads": info.get("num_threads"),
                # OpenBLAS: the CPU kernel in use (OPENBLAS_CORETYPE may force one)
                "kernel": info.get("architecture"),
                "file": os.path.basename(str(info.get("filepath", ""))),
            }
        )
    return pools


def _torch_threads() -> int | None:
    import sys

    torch = sys.modules.get("torch")  # only when the benchmark uses torch: no import cost
    return None if torch is None else int(torch.get_num_threads())


def _numba_threads() -> int | None:
    import sys

    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover - numba without a threading layer
        return None


def environment() -> dict[str, Any]:
    """What a timing depends on: CPU count, threads per library, BLAS kernel, env vars."""
    blas = [p for p in blas_pools() if p["user_api"] == "blas"]
    return {
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": _torch_threads(),
        "blas_threads": max((p["threads"] or 0 for p in blas), default=None),
        "numba_threads": _numba_threads(),
        "blas": blas,
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "NUMBA_NUM_THREADS"))
        },
    }


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Pin every BLAS pool (numpy's and scipy's) to one thread for the block."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def best_of(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Best of ``repeats`` calls of a single-threaded ``fn``: ``{"cpu": s, "wall": s}``.

    ``cpu`` is ``time.thread_time()`` of the calling thread; the BLAS pools are pinned to one
    thread while ``fn`` runs, so no other thread of the process does its work."""
    cpu = wall = float("inf")
    with single_threaded():
        for _ in range(max(int(repeats), 1)):
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu = min(cpu, time.thread_time() - start_cpu)
            wall = min(wall, time.perf_counter() - start)
    return {"cpu": cpu, "wall": wall}


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    *,
    multi_threaded: tuple[str, ...] = (),
) -> tuple[dict[str, float], dict[str, float]]:
    """Best CPU and wall seconds per row, the rows interleaved (load drifts hit all alike).

    Rows named in ``multi_threaded`` run with the libraries' own thread counts and have no
    CPU figure (their ``cpu`` is their wall time: the CPU time of several threads is not the
    time a user waits); every other row runs with BLAS pinned to one thread and is timed
    with ``thread_time()``."""
    cpu = dict.fromkeys(fns, float("inf"))
    wall = dict.fromkeys(fns, float("inf"))
    for _ in range(max(int(repeats), 1)):
        for name, fn in fns.items():
            if name in multi_threaded:
                start = time.perf_counter()
                fn()
                wall[name] = min(wall[name], time.perf_counter() - start)
                cpu[name] = wall[name]
                continue
            t = best_of(fn, 1)
            cpu[name] = min(cpu[name], t["cpu"])
            wall[name] = min(wall[name], t["wall"])
    return cpu, wall


class Session:
    """The conditions of one benchmark run: call :meth:`finish` to get them for the report.

    ``Session()`` records the load average when the benchmark starts; :meth:`finish` records
    it again and returns ``{"machine": ..., "load_before": ..., "load_after": ...,
    "clock": ...}`` to put into the report (and its ``--json``)."""

    def __init__(self, clock: str = "thread_time (CPU of the timed thread, BLAS pinned to 1)"):
        self.clock = clock
        self.load_before = load_average()
        self.started = time.perf_counter()

    def finish(self) -> dict[str, Any]:
        return {
            "machine": environment(),
            "load_before": self.load_before,
            "load_after": load_average(),
            "clock": self.clock,
            "benchmark_seconds": time.perf_counter() - self.started,
        }

    def figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """``figures`` as a benchmark's ``--json`` reports them: with ``load_average`` (the
        1-minute load at the start and at the end) and ``conditions`` (:meth:`finish`)."""
        conditions = self.finish()
        load = [*conditions["load_before"][:1], *conditions["load_after"][:1]]
        return {**figures, "load_average": load, "conditions": conditions}

    @staticmethod
    def line(conditions: dict[str, Any]) -> str:
        """One line for a text report: threads, kernel and load."""
        m = conditions["machine"]
        kernel = ",".join(sorted({str(p["kernel"]) for p in m["blas"]})) or "-"
        return (
            f"machine: {m['cpu_count']} CPUs; threads: torch {m['torch_threads']}, BLAS "
            f"{m['blas_threads']} ({kernel}), numba {m['numba_threads']}; load "
            f"{conditions['load_before'][:1]} before, {conditions['load_after'][:1]} after; "
            f"clock: {conditions['clock']}"
        )
