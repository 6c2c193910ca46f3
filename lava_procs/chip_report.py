"""The simulated chip's report of a Lava run: one ``spinnaker2_backend`` Run for all layers.

Each ``spinnaker2`` layer process reports, per step, its ``LayerStepResult`` and its
cumulative ``LayerCounters`` (:class:`ChipStepRecord`). The
host keeps a :class:`ChipStepSummary` per step and layer (what the report needs; per-PE
detail only on request) and the latest counters, and :func:`assemble_chip_run` composes
them the way the backend composes a direct run of the whole network
(``mapping.run(inputs)``): layers one after another per token, readout on the host, so time
per token = sum over layers of each layer's slowest PE (plus the NoC tail of its last
packet). It uses the backend's public pieces (``build_profile``, ``step_offsets``,
``estimate_energy``, ``Run``); the tests check the result against ``mapping.run`` counter by
counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from snn_egru.reference import EGRUState

__all__ = ["ChipStepRecord", "ChipStepSummary", "assemble_chip_run", "summarize_step"]


class ChipStepRecord(NamedTuple):
    """What a ``spinnaker2`` layer model reports to the host after each step of its layer.

    Attributes:
        result: the backend's ``LayerStepResult`` of the step (all PEs of the layer).
        counters: a copy of the layer simulator's cumulative ``LayerCounters`` after it.
    """

    result: Any
    counters: Any


class ChipStepSummary(NamedTuple):
    """One layer's step, as much as the chip report needs.

    Attributes:
        layer_cycles: cycles of the layer's slowest PE.
        noc_tail_cycles: latency of its last packet after that.
        critical_phase_cycles: ``(len(PHASES),)`` phases of the slowest PE.
        op_totals: ``(len(OPS),)`` operation counts summed over the layer's PEs.
        busy_cycles: ``(P,)`` cycles per PE (kept when a tick is set: deadline checks).
        phase_cycles: ``(len(PHASES), P)`` per PE, or None (per-step PE detail not kept).
        ops: ``(len(OPS), P)`` per PE, or None.
    """

    layer_cycles: float
    noc_tail_cycles: float
    critical_phase_cycles: np.ndarray
    op_totals: np.ndarray
    busy_cycles: np.ndarray | None
    phase_cycles: np.ndarray | None
    ops: np.ndarray | None


def summarize_step(result: Any, *, keep_pe_steps: bool, keep_busy: bool) -> ChipStepSummary:
    """A :class:`ChipStepSummary` of a backend ``LayerStepResult``."""
    slowest = int(np.argmax(result.busy_cycles))
    return ChipStepSummary(
        layer_cycles=float(result.layer_cycles),
        noc_tail_cycles=float(result.noc_tail_cycles),
        critical_phase_cycles=result.phase_cycles[:, slowest].copy(),
        op_totals=result.ops.sum(axis=1),
        busy_cycles=result.busy_cycles if keep_busy else None,
        phase_cycles=result.phase_cycles if keep_pe_steps else None,
        ops=result.ops if keep_pe_steps else None,
    )


def assemble_chip_run(
    mapping: Any,
    layer_steps: Sequence[Sequence[ChipStepSummary]],
    layer_counters: Sequence[Any],
    *,
    tick_us: float | None = None,
    layer_events: list[np.ndarray] | None = None,
    logits: np.ndarray | None = None,
    states: list[EGRUState] | None = None,
    dtype: str = "float32",
) -> Any:
    """A ``spinnaker2_backend.results.Run`` from the layer processes' per-step summaries.

    Args:
        mapping: the network's mapping (the one the layer processes ran).
        layer_steps: per layer, the :class:`ChipStepSummary` of every step, in step order
            (all layers the same number of steps; per-PE detail in all or none).
        layer_counters: per layer, the cumulative ``LayerCounters`` after the last step.
        tick_us: the tick the layers ran with (deadline checks; needs ``busy_cycles``).
        layer_events, logits, states: the run's outputs, as the Lava graph computed them.
        dtype: the float type the layers ran in.

    Returns:
        ``spinnaker2_backend.results.Run``: ``.report()`` gives time per token, profile, energy.
    """
    from spinnaker2_backend.constants import CycleCosts, EnergyCosts
    from spinnaker2_backend.energy import estimate_energy
    from spinnaker2_backend.results import NetworkCounters, Run
    from spinnaker2_backend.timing import build_profile, step_offsets

    num_layers = len(mapping.layers)
    if len(layer_steps) != num_layers or len(layer_counters) != num_layers:
        raise ValueError(
            f"got {len(layer_steps)} layers of steps and {len(layer_counters)} of counters, "
            f"the mapping has {num_layers} layers"
        )
    steps = len(layer_steps[0])
    if any(len(summaries) != steps for summaries in layer_steps):
        counts = [len(summaries) for summaries in layer_steps]
        raise ValueError(f"layers reported different numbers of steps: {counts}")
    if steps == 0:
        raise ValueError("no steps were recorded")

    spec = mapping.spec
    clock_hz = spec.pe_clock_hz
    by_step = list(zip(*layer_steps))  # [step][layer]
    layer_cycles = np.array([[s.layer_cycles for s in row] for row in by_step])
    tails = np.array([[s.noc_tail_cycles for s in row] for row in by_step])
    critical = np.array([[s.critical_phase_cycles for s in row] for row in by_step])
    step_totals = np.array([[s.op_totals for s in row] for row in by_step])

    counters = NetworkCounters(layers=[c.copy() for c in layer_counters])
    missed = [np.zeros(len(c.pes), dtype=np.int64) for c in counters.layers]
    if tick_us is not None:
        # deadline misses measured from each step's start, layers one after another
        us_per_cycle = 1e6 / clock_hz
        for t, row in enumerate(by_step):
            offsets = step_offsets(layer_cycles[t], tails[t], pipelined=False)
            for i, summary in enumerate(row):
                if summary.busy_cycles is None:
                    raise ValueError("a tick was set but the steps kept no per-PE busy cycles")
                done = summary.busy_cycles * us_per_cycle + offsets[i] * us_per_cycle
                missed[i] += done > tick_us

    keep_pe_steps = all(s.phase_cycles is not None for s in layer_steps[0])
    step_cycles = step_ops = None
    if keep_pe_steps:
        step_cycles = [np.stack([s.phase_cycles for s in layer]) for layer in layer_steps]
        step_ops = [np.stack([s.ops for s in layer]) for layer in layer_steps]
    profile = build_profile(
        layer_cycles=layer_cycles,
        layer_tails=tails,
        critical_phase_cycles=critical,
        pe_phase_cycles=[c.phase_cycles for c in counters.layers],
        clock_hz=clock_hz,
        timer_hz=spec.timer_hz,
        pipelined=False,
        tick_us=tick_us,
        step_phase_cycles=step_cycles,
        deadline_missed_count=missed,
    )
    chips = max(len({s.chip for layer in mapping.layers for s in layer.slices}), 1)
    energy_costs = EnergyCosts()
    energy = estimate_energy(
        wall_seconds=profile.wall_seconds,
        busy_cycles=float(sum(c.phase_cycles.sum() for c in counters.layers)),
        packets=counters.total("packets_sent"),
        packet_hops=counters.total("packet_hops"),
        chip_link_hops=counters.total("chip_link_hops"),
        dram_bytes=counters.total("dram_bytes") + counters.total("readout_dram_bytes"),
        clock_hz=clock_hz,
        chips=chips,
        costs=energy_costs,
    )
    return Run(
        layer_sizes=[layer.hidden_size for layer in mapping.layers],
        weight_format=mapping.weight_format,
        num_pes=int(sum(len(layer.slices) for layer in mapping.layers)),
        num_chips=chips,
        clock_hz=float(clock_hz),
        dtype=dtype,
        readout="host",
        steps=steps,
        layer_events=layer_events,
        logits=logits,
        states=list(states) if states is not None else [],
        counters=counters,
        step_totals=step_totals,
        step_ops=step_ops,
        profile=profile,
        energy=energy,
        cycle_costs=CycleCosts(),
        energy_costs=energy_costs,
        layer_pes=[c.pes.copy() for c in counters.layers],
    )
