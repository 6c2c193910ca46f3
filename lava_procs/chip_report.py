"""The simulated chip's report of a Lava run: one ``spinnaker2_backend`` Run for all layers.

Each ``spinnaker2`` layer process reports, per step, a :class:`ChipStepSummary` of its
``LayerStepResult`` (what the report needs; per-PE detail only on request), and its
cumulative ``LayerCounters`` once at the end of every run. The host keeps the summaries in a
:class:`ChipStepTable` per layer (compact arrays) and the latest counters, and
:func:`assemble_chip_run` composes
them the way the backend composes a direct run of the whole network
(``run_mapping(mapping, inputs)``): layers one after another per token, readout on the host, so time
per token = sum over layers of each layer's slowest PE (plus the NoC tail of its last
packet). It uses the backend's public pieces (``build_profile``, ``step_offsets``,
``estimate_energy``, ``Run``); the tests check the result against ``run_mapping`` counter by
counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from snn_egru.reference import EGRUState

__all__ = [
    "ChipStepSummary",
    "ChipStepTable",
    "assemble_chip_run",
    "summarize_step",
]


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


class ChipStepTable:
    """One layer's :class:`ChipStepSummary` s of a session, stored as compact arrays.

    Per step it keeps what the chip report's profile needs (about 260 bytes: the slowest
    PE's cycles and phases, the NoC tail, the operation totals) and, only when kept, the
    per-PE busy cycles and the per-PE phase cycles and operation counts. Arrays grow by
    doubling, so appending is amortised O(1) and no Python object is kept per step.
    """

    def __init__(self) -> None:
        self.steps = 0
        self._columns: dict[str, np.ndarray] = {}
        self._pe_columns: dict[str, list[np.ndarray]] = {"busy": [], "phase": [], "ops": []}

    def _column(self, name: str, row: np.ndarray) -> np.ndarray:
        column = self._columns.get(name)
        if column is None:
            column = np.empty((64, *row.shape), dtype=row.dtype)
            self._columns[name] = column
        elif self.steps == column.shape[0]:
            grown = np.empty((2 * column.shape[0], *column.shape[1:]), dtype=column.dtype)
            grown[: self.steps] = column[: self.steps]
            self._columns[name] = column = grown
        return column

    def append(self, summary: ChipStepSummary) -> None:
        """Keep one step."""
        rows = {
            "layer_cycles": np.asarray(summary.layer_cycles, dtype=np.float64),
            "noc_tail_cycles": np.asarray(summary.noc_tail_cycles, dtype=np.float64),
            "critical_phase_cycles": np.asarray(summary.critical_phase_cycles),
            "op_totals": np.asarray(summary.op_totals),
        }
        for name, row in rows.items():
            self._column(name, row)[self.steps] = row
        for name, value in (
            ("busy", summary.busy_cycles),
            ("phase", summary.phase_cycles),
            ("ops", summary.ops),
        ):
            if value is not None:
                self._pe_columns[name].append(value)
        self.steps += 1

    def column(self, name: str) -> np.ndarray:
        """``(steps, ...)`` of ``layer_cycles``, ``noc_tail_cycles``,
        ``critical_phase_cycles`` or ``op_totals``."""
        return self._columns[name][: self.steps]

    def pe_steps(self, name: str) -> list[np.ndarray] | None:
        """Per-PE detail per step (``busy``, ``phase`` or ``ops``), or ``None`` when any
        step did not keep it."""
        kept = self._pe_columns[name]
        return kept if len(kept) == self.steps and self.steps else None

    @property
    def bytes_per_step(self) -> int:
        """Bytes kept per step (the per-step columns and any per-PE detail of one step)."""
        if not self.steps:
            return 0
        row = sum(c[0].nbytes for c in self._columns.values())
        return row + sum(kept[0].nbytes for kept in self._pe_columns.values() if kept)

    @property
    def nbytes(self) -> int:
        """Bytes allocated (columns grow by doubling: at most twice the bytes kept)."""
        total = sum(c.nbytes for c in self._columns.values())
        return total + sum(a.nbytes for kept in self._pe_columns.values() for a in kept)


def assemble_chip_run(
    mapping: Any,
    layer_steps: Sequence[ChipStepTable | Sequence[ChipStepSummary]],
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
        layer_steps: per layer, a :class:`ChipStepTable` or the :class:`ChipStepSummary`
            of every step, in step order (all layers the same number of steps; per-PE
            detail in all or none).
        layer_counters: per layer, the cumulative ``LayerCounters`` after the last step.
        tick_us: the tick the layers ran with (deadline checks; needs ``busy_cycles``).
        layer_events, logits, states: the run's outputs, as the Lava graph computed them.
        dtype: the float type the layers ran in.

    Returns:
        ``spinnaker2_backend.results.Run``: ``.report()`` gives time per token, profile, energy.
    """
    from spinnaker2_backend.constants import CycleCosts, EnergyCosts
    from spinnaker2_backend.results import NetworkCounters, Run
    from spinnaker2_backend.timing import build_profile

    num_layers = len(mapping.layers)
    if len(layer_steps) != num_layers or len(layer_counters) != num_layers:
        raise ValueError(
            f"got {len(layer_steps)} layers of steps and {len(layer_counters)} of counters, "
            f"the mapping has {num_layers} layers"
        )
    tables = _as_tables(layer_steps)
    steps = tables[0].steps

    spec = mapping.spec
    clock_hz = spec.pe_clock_hz
    layer_cycles = np.stack([t.column("layer_cycles") for t in tables], axis=1)
    tails = np.stack([t.column("noc_tail_cycles") for t in tables], axis=1)
    critical = np.stack([t.column("critical_phase_cycles") for t in tables], axis=1)
    step_totals = np.stack([t.column("op_totals") for t in tables], axis=1)

    counters = NetworkCounters(layers=[c.copy() for c in layer_counters])
    missed = _deadline_misses(tables, counters, layer_cycles, tails, tick_us, clock_hz)

    phase_steps = [t.pe_steps("phase") for t in tables]
    ops_steps = [t.pe_steps("ops") for t in tables]
    keep_pe_steps = all(p is not None for p in phase_steps + ops_steps)
    step_cycles = step_ops = None
    if keep_pe_steps:
        step_cycles = [np.stack(p) for p in phase_steps]
        step_ops = [np.stack(o) for o in ops_steps]
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
    energy = _energy(profile, counters, clock_hz, chips, energy_costs)
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
        input_kind=mapping.artifact.input_kind,  # issue 14: per-sample reports
        receive_policy=mapping.receive_policy,
    )


def _as_tables(
    layer_steps: Sequence[ChipStepTable | Sequence[ChipStepSummary]],
) -> list[ChipStepTable]:
    """Per layer a :class:`ChipStepTable`; all with the same, non-zero number of steps."""
    tables = []
    for steps_of_layer in layer_steps:
        if isinstance(steps_of_layer, ChipStepTable):
            tables.append(steps_of_layer)
            continue
        table = ChipStepTable()
        for summary in steps_of_layer:
            table.append(summary)
        tables.append(table)
    steps = tables[0].steps
    if any(table.steps != steps for table in tables):
        counts = [table.steps for table in tables]
        raise ValueError(f"layers reported different numbers of steps: {counts}")
    if steps == 0:
        raise ValueError("no steps were recorded")
    return tables


def _deadline_misses(
    tables: list[ChipStepTable],
    counters: Any,
    layer_cycles: np.ndarray,
    tails: np.ndarray,
    tick_us: float | None,
    clock_hz: float,
) -> list[np.ndarray]:
    """Per layer and PE, the steps that ended after the tick (``tick_us``; zeros without
    one), measured from each step's start, layers one after another."""
    from spinnaker2_backend.timing import step_offsets

    missed = [np.zeros(len(c.pes), dtype=np.int64) for c in counters.layers]
    if tick_us is None:
        return missed
    us_per_cycle = 1e6 / clock_hz
    busy = [t.pe_steps("busy") for t in tables]
    if any(b is None for b in busy):
        raise ValueError("a tick was set but the steps kept no per-PE busy cycles")
    for t in range(tables[0].steps):
        offsets = step_offsets(layer_cycles[t], tails[t], pipelined=False)
        for i in range(len(tables)):
            done = busy[i][t] * us_per_cycle + offsets[i] * us_per_cycle
            missed[i] += done > tick_us
    return missed


def _energy(profile: Any, counters: Any, clock_hz: float, chips: int, costs: Any) -> Any:
    """The run's energy estimate from its profile and the layers' counters."""
    from spinnaker2_backend.energy import estimate_energy

    return estimate_energy(
        wall_seconds=profile.wall_seconds,
        busy_cycles=float(sum(c.phase_cycles.sum() for c in counters.layers)),
        packets=counters.total("packets_sent"),
        packet_hops=counters.total("packet_hops"),
        chip_link_hops=counters.total("chip_link_hops"),
        dram_bytes=counters.total("dram_bytes") + counters.total("readout_dram_bytes"),
        clock_hz=clock_hz,
        chips=chips,
        costs=costs,
    )
