"""Execution modes of the simulated chip: as fast as possible, or timer-driven.

**As fast as possible**: each step starts when the previous one ends; the wall time is the
work. **Timer-driven** (a tick period ``tick_us``, as py-spinnaker2 runs its apps on a
systick): each step starts on a tick and a PE idles until the next one; the wall time is the
ticks. A tick whose work runs past its period is a missed deadline: the PEs start the next
tick's work when they are done (the tick lasts as long as its work), and
:func:`deadline_report` counts the misses and names the shortest period that fits: never a
silent stretch. Both modes pay the fixed per-step costs
(:attr:`~spinnaker2_backend.constants.CycleCosts.fixed_step_cycles`). :func:`schedule` places
the layer steps of a free-running run in time, :func:`step_offsets` the layers inside one
step or tick (sequential or pipelined; :mod:`spinnaker2_backend.timing` re-exports both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DeadlineReport",
    "deadline_report",
    "schedule",
    "step_offsets",
    "tick_durations",
    "tick_work_seconds",
]


def step_offsets(
    layer_cycles: np.ndarray, layer_tails: np.ndarray, *, pipelined: bool
) -> np.ndarray:
    """Start of each layer inside one step (or tick), in cycles from the step's start.

    Args:
        layer_cycles: ``(..., L)`` slowest-PE cycles per layer.
        layer_tails: ``(..., L)`` NoC tail latency per layer.
        pipelined: every layer starts at the tick (pipelined) or after the layers before it.

    Returns:
        ``(..., L)`` start offsets.
    """
    layer_cycles = np.asarray(layer_cycles, dtype=np.float64)
    if pipelined:
        return np.zeros_like(layer_cycles)
    chained = layer_cycles + np.asarray(layer_tails, dtype=np.float64)
    return np.cumsum(chained, axis=-1) - chained


def schedule(
    layer_cycles: np.ndarray, layer_tails: np.ndarray, *, pipelined: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Start and finish of every layer step of a free-running (no tick) run.

    Args:
        layer_cycles: ``(T, L)`` slowest-PE cycles per step and layer.
        layer_tails: ``(T, L)`` NoC tail latency per step and layer.
        pipelined: see :mod:`spinnaker2_backend.timing`.

    Returns:
        ``(start, finish)``, both ``(T, L)`` cycles from the start of the run; the run ends at
        ``finish[-1, -1] + tail[-1, -1]`` (sequential) or ``max(finish + tail)`` (pipelined).
    """
    busy = np.asarray(layer_cycles, dtype=np.float64)
    tail = np.asarray(layer_tails, dtype=np.float64)
    if busy.shape != tail.shape or busy.ndim != 2:
        raise ValueError(
            f"layer_cycles and layer_tails must both be (T, L), got {busy.shape} / {tail.shape}"
        )
    steps, layers = busy.shape
    if not pipelined:
        chained = (busy + tail).reshape(-1)
        start = (np.cumsum(chained) - chained).reshape(steps, layers)
        return start, start + busy
    start = np.zeros_like(busy)
    finish = np.zeros_like(busy)
    ready = np.zeros(layers)  # when layer l may start its next step (own recurrence)
    for t in range(steps):
        upstream = 0.0  # when the input of layer l for token t has arrived
        for layer in range(layers):
            s = max(upstream, ready[layer])
            start[t, layer] = s
            finish[t, layer] = s + busy[t, layer]
            ready[layer] = finish[t, layer] + tail[t, layer]
            upstream = ready[layer]
    return start, finish


def tick_work_seconds(
    layer_cycles: np.ndarray,
    layer_tails: np.ndarray,
    *,
    clock_hz: float,
    pipelined: bool,
) -> np.ndarray:
    """Seconds of work each tick holds when the chip runs one step per tick.

    Sequential: tick ``t`` holds every layer of token ``t``, one after another. Pipelined:
    tick ``k`` holds layer ``l`` working on token ``k - l`` (``T + L - 1`` ticks in all).

    Args:
        layer_cycles, layer_tails: ``(T, L)`` slowest-PE cycles and NoC tails.

    Returns:
        ``(ticks,)`` seconds of work.
    """
    busy = np.asarray(layer_cycles, dtype=np.float64) + np.asarray(layer_tails, dtype=np.float64)
    steps, layers = busy.shape
    if steps == 0:
        return np.zeros(0)
    if pipelined:
        work = np.zeros(steps + layers - 1)
        for layer in range(layers):
            work[layer : layer + steps] = np.maximum(work[layer : layer + steps], busy[:, layer])
    else:
        work = busy.sum(axis=1)
    return work / clock_hz


def tick_durations(
    layer_cycles: np.ndarray,
    layer_tails: np.ndarray,
    *,
    tick_us: float,
    clock_hz: float,
    pipelined: bool,
) -> np.ndarray:
    """Seconds each tick lasts in the timer-driven mode: ``tick_us``, or the tick's work when
    it overruns (the PEs start the next tick's work when they are done; every overrun is a
    missed deadline, counted in the profile and reported by :func:`deadline_report`, never
    silent). See :func:`tick_work_seconds`.

    Returns:
        ``(ticks,)`` durations in seconds.
    """
    work = tick_work_seconds(layer_cycles, layer_tails, clock_hz=clock_hz, pipelined=pipelined)
    return np.maximum(work, tick_us * 1e-6)


@dataclass(frozen=True)
class DeadlineReport:
    """How a timer-driven run kept its ticks.

    Attributes:
        tick_us: the tick period. ticks: ticks run.
        missed_ticks: ticks whose work ran past the period.
        worst_work_us: the longest tick's work.
        shortest_tick_us: the shortest period every tick's work fits (the worst work rounded
            up to a whole microsecond, the resolution of the chip's timer).
    """

    tick_us: float
    ticks: int
    missed_ticks: int
    worst_work_us: float
    shortest_tick_us: float

    @property
    def ok(self) -> bool:
        return self.missed_ticks == 0

    def message(self) -> str:
        """One line: the misses and the tick that would fit."""
        return (
            f"a tick of {self.tick_us:g} us is shorter than a step's work: {self.missed_ticks} "
            f"of {self.ticks} ticks missed their deadline (the longest step takes "
            f"{self.worst_work_us:.1f} us); use a tick of at least {self.shortest_tick_us:g} us, "
            "or run as fast as possible (no tick)"
        )


def deadline_report(profile: Any) -> DeadlineReport:
    """The deadlines of a timer-driven run (a :class:`~spinnaker2_backend.timing.Profile`
    with ``tick_us`` set).

    Raises:
        ValueError: the run had no tick (as fast as possible: no deadlines).
    """
    if profile.tick_us is None:
        raise ValueError("a run without a tick (as fast as possible) has no deadlines")
    work = tick_work_seconds(
        profile.layer_cycles,
        profile.layer_tails,
        clock_hz=profile.clock_hz,
        pipelined=profile.pipelined,
    )
    worst = float(work.max(initial=0.0)) * 1e6
    return DeadlineReport(
        tick_us=float(profile.tick_us),
        ticks=int(work.size),
        missed_ticks=int(np.count_nonzero(work * 1e6 > profile.tick_us)),
        worst_work_us=worst,
        shortest_tick_us=float(np.ceil(worst - 1e-9)),
    )
