"""Result types of a simulated run: counters, the :class:`Run`, and the :class:`RunReport`.

The simulator (:mod:`spinnaker2_backend.simulator`) imports this module and fills these
types; this module never imports the simulator, the mapping or the command line.

A :class:`Run` (returned by :func:`spinnaker2_backend.simulator.run_mapping`) holds the
outputs (per-step events of every layer, logits when the network has a readout), the
counters (per PE and, when recorded, per step), the time profile
(:class:`~spinnaker2_backend.timing.Profile`) and the energy estimate
(:class:`~spinnaker2_backend.energy.EnergyEstimate`). :meth:`Run.report` condenses it into a
:class:`RunReport`: time per token and per 70-token sequence, the profile breakdown, energy,
packets and events, and a comparison with a GPU figure (default: the published A100 row).

Which figures are measured: only the published anchors (:data:`MEASURED_ANCHORS`, tag [A],
``docs/spinnaker2.md``, kept in :mod:`spinnaker2_backend.published` and re-exported here);
every simulated figure is an estimate of the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from snn_egru.reference import EGRUState
from spinnaker2_backend import published
from spinnaker2_backend.constants import CycleCosts, EnergyCosts
from spinnaker2_backend.energy import EnergyEstimate
from spinnaker2_backend.layer_result import OpTotals
from spinnaker2_backend.published import *  # noqa: F403 (re-exported: their old import path)
from spinnaker2_backend.published import (
    MEASURED_ANCHORS,
    PUBLISHED_A100,
    PUBLISHED_DVS_A100,
    PUBLISHED_DVS_SPINNAKER2,
    PUBLISHED_SPINNAKER2,
    SEQUENCE_TOKENS,
    GpuFigure,
)
from spinnaker2_backend.timing import OP_INDEX, OPS, PHASES, LayerTimingInfo, Profile

__all__ = [
    *published.__all__,
    "LayerCounters",
    "NetworkCounters",
    "Run",
    "RunReport",
    "format_seconds",
]

# ================================================================================ counters


@dataclass
class LayerCounters(OpTotals):
    """Cumulative counts of one layer's PEs over the steps run so far.

    Attributes:
        layer: layer index.
        pes: ``(P,)`` global PE indices of the layer's slices.
        steps: steps counted.
        ops: ``(len(OPS), P)`` operation counts summed over steps (see
            :data:`spinnaker2_backend.timing.OPS`).
        phase_cycles: ``(len(PHASES), P)`` cycles summed over steps.
        layer_cycles: sum over steps of the slowest PE's cycles.
        tail_cycles: sum over steps of the NoC tail latency.
        deadline_missed: ``(P,)`` steps in which each PE missed the tick deadline (measured
            from the layer's own start; a network run also keeps its composed count in its
            profile).
    """

    layer: int
    pes: np.ndarray
    steps: int
    ops: np.ndarray
    phase_cycles: np.ndarray
    layer_cycles: float
    tail_cycles: float
    deadline_missed: np.ndarray

    @classmethod
    def zeros(cls, layer: int, pes: np.ndarray) -> LayerCounters:
        n = len(pes)
        return cls(
            layer=layer,
            pes=np.asarray(pes, dtype=np.int64),
            steps=0,
            ops=np.zeros((len(OPS), n)),
            phase_cycles=np.zeros((len(PHASES), n)),
            layer_cycles=0.0,
            tail_cycles=0.0,
            deadline_missed=np.zeros(n, dtype=np.int64),
        )

    def copy(self) -> LayerCounters:
        return LayerCounters(
            layer=self.layer,
            pes=self.pes.copy(),
            steps=self.steps,
            ops=self.ops.copy(),
            phase_cycles=self.phase_cycles.copy(),
            layer_cycles=self.layer_cycles,
            tail_cycles=self.tail_cycles,
            deadline_missed=self.deadline_missed.copy(),
        )

    def per_pe(self, name: str) -> np.ndarray:
        """``(P,)`` counts of operation ``name`` (one of :data:`OPS`) per PE."""
        if name not in OP_INDEX:
            raise KeyError(f"unknown counter {name!r}; counters: {', '.join(OPS)}")
        return self.ops[OP_INDEX[name]]

    def total(self, name: str) -> int:
        """Count of operation ``name`` summed over the layer's PEs."""
        return int(round(float(self.per_pe(name).sum())))

    @property
    def weight_bytes_read(self) -> int:
        return self.total("weight_bytes_read")

    @property
    def busy_cycles(self) -> np.ndarray:
        """``(P,)`` cycles each PE computed, summed over steps."""
        return self.phase_cycles.sum(axis=0)

    def summary(self) -> dict[str, int]:
        """The headline counts of the layer."""
        names = (
            "steps events packets_on_chip packets_chip_to_chip packets_received macs "
            "nonzeros_walked dram_bytes weight_bytes_read"
        ).split()
        return {name: getattr(self, name) for name in names}


@dataclass
class NetworkCounters:
    """The counters of every layer; totals are sums over the layers."""

    layers: list[LayerCounters]

    def total(self, name: str) -> int:
        return sum(layer.total(name) for layer in self.layers)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            for key, value in layer.summary().items():
                out[key] = value if key == "steps" else out.get(key, 0) + value
        return out

    def per_layer(self) -> list[dict[str, int]]:
        return [layer.summary() for layer in self.layers]


# ===================================================================================== run


@dataclass
class Run:
    """A simulated run of a mapped network.

    Attributes:
        layer_sizes: units per layer. weight_format: the mapping's weight format.
        num_pes: PEs used. num_chips: chips used. clock_hz: PE clock.
        dtype: float type of the run. readout: ``"host"`` or ``"chip"``.
        steps: steps (tokens) run.
        layer_events: per layer ``(T, H_l)`` graded events ``y``, or None (``record=False``).
        logits: ``(T, O)`` readout per step, or None (no readout, or not recorded).
        states: per layer final :class:`EGRUState` (pass back in to continue a stream).
        counters: cumulative :class:`NetworkCounters`.
        step_totals: ``(T, L, len(OPS))`` counts per step and layer, summed over PEs (the
            steps ``recorded_steps`` only when a window kept only those).
        step_ops: per layer ``(T, len(OPS), P)`` counts per step and PE, or None.
        recorded_steps: the step indices ``layer_events``, ``logits`` and ``step_ops`` (and
            the profile's per-step arrays) belong to when a recording window kept only
            the last steps (``(N,)``), or None when they cover every step.
        profile: the time profile. energy: the energy estimate.
        cycle_costs, energy_costs: the constants used.
        layer_pes: per layer ``(P,)`` global PE indices.
        timing_infos: per layer the static facts of the time model (to re-cost a run with
            other constants: :func:`spinnaker2_backend.timing.profile_from_ops`).
        pipelined, tick_us: the schedule the run used.
        batch_size: samples processed per step (``layer_events`` then ``(B, T, H)``,
            ``logits`` ``(B, T, O)``). input_kind: ``"embedding"`` (an LM: reported per
            70-token sequence) or ``"features"`` (reported per sample of ``steps`` frames).
        receive_policy: how the PEs kept received events.
    """

    layer_sizes: list[int]
    weight_format: str
    num_pes: int
    num_chips: int
    clock_hz: float
    dtype: str
    readout: str
    steps: int
    layer_events: list[np.ndarray] | None
    logits: np.ndarray | None
    states: list[EGRUState]
    counters: NetworkCounters
    step_totals: np.ndarray
    step_ops: list[np.ndarray] | None
    profile: Profile
    energy: EnergyEstimate
    cycle_costs: CycleCosts
    energy_costs: EnergyCosts
    layer_pes: list[np.ndarray] = field(default_factory=list)
    timing_infos: list[LayerTimingInfo] = field(default_factory=list)
    pipelined: bool = False
    tick_us: float | None = None
    batch_size: int = 1
    input_kind: str = "embedding"
    receive_policy: str = "dense"
    recorded_steps: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        """Simulated wall time of the run."""
        return self.profile.wall_seconds

    @property
    def seconds_per_token(self) -> float:
        return self.profile.seconds_per_step

    def step_counts(self, name: str) -> np.ndarray:
        """``(T, L)`` counts of operation ``name`` per step and layer (summed over PEs)."""
        if name not in OP_INDEX:
            raise KeyError(f"unknown counter {name!r}; counters: {', '.join(OPS)}")
        return self.step_totals[:, :, OP_INDEX[name]]

    def activity(self) -> list[float]:
        """Per layer: fraction of units that fired, averaged over the steps."""
        if self.steps == 0:
            return [0.0 for _ in self.layer_sizes]
        events = [layer.total("events") for layer in self.counters.layers]  # every step
        per = self.steps * self.batch_size
        return [float(e) / (per * h) for e, h in zip(events, self.layer_sizes)]

    def report(
        self, *, gpu: GpuFigure | None = None, sequence_tokens: int = SEQUENCE_TOKENS
    ) -> RunReport:
        """A :class:`RunReport` of this run, compared with ``gpu`` (default: the published
        A100 row)."""
        return RunReport.from_run(self, gpu=gpu, sequence_tokens=sequence_tokens)


# ================================================================================== report


def format_seconds(seconds: float) -> str:
    """``seconds`` in s, ms or us, whichever reads best (``"1.250 ms"``)."""
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


#: The counters a report gives per step too (table rows, in this order).
_PER_STEP_COUNTS = (
    "events",
    "packets_on_chip",
    "packets_chip_to_chip",
    "packets_received",
    "macs",
    "nonzeros_walked",
    "dram_bytes",
)


def _profiles_per_token(profile, steps: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The critical path's seconds per token by phase group, for the network and per layer
    (a layer's without the NoC latency)."""
    per_token_critical = {k: v / steps for k, v in profile.critical_phase_seconds().items()}
    layer_profiles = [
        profile.grouped({k: v / steps for k, v in layer.items()})
        for layer in profile.layer_critical_phase_seconds()
    ]
    for layer_profile in layer_profiles:
        layer_profile.pop("NoC latency", None)
    return profile.grouped(per_token_critical), layer_profiles


def _comparison_rows(
    simulated: dict[str, Any], references, sequence_tokens: int, key: str
) -> list[dict[str, Any]]:
    """The simulated row and the reference rows (scaled to ``sequence_tokens`` where given
    per sequence), each with its time and energy against the simulated row's."""
    rows = [simulated]
    for ref in references:
        scale = sequence_tokens / ref.sequence_tokens if ref.unit == "sequence" else 1.0
        rows.append(
            {
                "name": ref.name,
                "power_w": ref.power_w,
                "seconds": ref.seconds_per_sequence * scale,
                "energy_j": ref.energy_j_per_sequence * scale,
                "kind": "measured" if ref.measured else "supplied",
                "source": ref.source,
                "unit": ref.unit,
            }
        )
    unit_seconds, unit_energy = simulated["seconds"], simulated["energy_j"]
    for row in rows:
        row["time_vs_simulated"] = row["seconds"] / unit_seconds if unit_seconds else 0.0
        row["energy_vs_simulated"] = row["energy_j"] / unit_energy if unit_energy else 0.0
        row[f"seconds_per_{key}"] = row["seconds"]
        row[f"energy_j_per_{key}"] = row["energy_j"]
    return rows


@dataclass
class RunReport:
    """What a run cost: time, profile, energy, packets, events, and a GPU comparison.

    Every simulated figure is a model estimate; :attr:`anchors` lists the measured figures
    the model is calibrated to, with their tags.

    Attributes:
        layer_sizes, weight_format, num_pes, num_chips, clock_mhz, dtype, readout, steps,
            pipelined, tick_us: what was run.
        seconds_total: simulated wall time. seconds_per_token: per step.
        sequence_tokens: tokens per sequence (70). seconds_per_sequence: per sequence.
        profile_per_token: seconds per token per profile group along the critical path.
        layer_profile_per_token: the same per layer.
        energy_j: energy components of the whole run (J). energy_per_sequence_j: per sequence.
        average_power_w: energy / wall time.
        counters: headline counts of the run (totals). counters_per_layer: per layer.
        per_step: mean counts per step (events, packets on chip / chip-to-chip, MACs, ...).
        activity: per layer, fraction of units firing per step.
        deadline_missed: any PE missed its tick. deadlines_missed: PE-ticks missed.
        comparison: rows (simulated run, published SpiNNaker2, GPU) per unit (LM: per
            70-token sequence, Table II rows; DVS / features: per sample, Table III rows).
        anchors: the measured figures and their tags.
        workload: ``"lm"`` (token inputs) or ``"features"`` (e.g. DVS frames).
        unit: what ``seconds_per_unit`` / ``energy_per_unit_j`` are per, in words.
        batch_size: samples processed per step.
        frames_per_sample: steps of one sample (features workloads; the run's steps).
        seconds_per_sample, energy_per_sample_j: the run's time and energy per sample
            (one sample = the run's ``steps`` inputs; with a batch, wall time / batch).
        seconds_per_unit, energy_per_unit_j: per 70-token sequence (LM) or per sample.
        events_dropped: received events that did not fit an event list (0 unless the run
            was asked to drop them).
        receive_policy: how the PEs kept received events.
    """

    layer_sizes: list[int]
    weight_format: str
    num_pes: int
    num_chips: int
    clock_mhz: float
    dtype: str
    readout: str
    steps: int
    pipelined: bool
    tick_us: float | None
    seconds_total: float
    seconds_per_token: float
    sequence_tokens: int
    seconds_per_sequence: float
    profile_per_token: dict[str, float]
    layer_profile_per_token: list[dict[str, float]]
    energy_j: dict[str, float]
    energy_per_sequence_j: float
    average_power_w: float
    counters: dict[str, int]
    counters_per_layer: list[dict[str, int]]
    per_step: dict[str, float]
    activity: list[float]
    deadline_missed: bool
    deadlines_missed: int
    comparison: list[dict[str, Any]]
    anchors: dict[str, str] = field(default_factory=lambda: dict(MEASURED_ANCHORS))
    workload: str = "lm"
    unit: str = "70-token sequence"
    batch_size: int = 1
    frames_per_sample: int | None = None
    seconds_per_sample: float = 0.0
    energy_per_sample_j: float = 0.0
    seconds_per_unit: float = 0.0
    energy_per_unit_j: float = 0.0
    events_dropped: int = 0
    receive_policy: str = "dense"

    @classmethod
    def from_run(
        cls, run: Run, *, gpu: GpuFigure | None = None, sequence_tokens: int = SEQUENCE_TOKENS
    ) -> RunReport:
        if sequence_tokens < 1:
            raise ValueError(f"sequence_tokens must be >= 1, got {sequence_tokens}")
        profile = run.profile
        steps = max(run.steps, 1)
        profile_groups, layer_profiles = _profiles_per_token(profile, steps)
        seconds_per_token = profile.seconds_per_step
        seconds_per_sequence = seconds_per_token * sequence_tokens
        energy = run.energy
        energy_per_sequence = energy.total_j / steps * sequence_tokens if run.steps else 0.0
        totals = run.counters.summary()
        per_step = {key: totals[key] / steps for key in _PER_STEP_COUNTS}
        batch = max(int(getattr(run, "batch_size", 1)), 1)
        lm = getattr(run, "input_kind", "embedding") == "embedding"
        seconds_per_sample = profile.wall_seconds / batch
        energy_per_sample = energy.total_j / batch
        if lm:
            unit, unit_seconds, unit_energy = (
                f"{sequence_tokens}-token sequence",
                seconds_per_sequence / batch,
                energy_per_sequence / batch,
            )
            references = (PUBLISHED_SPINNAKER2, gpu if gpu is not None else PUBLISHED_A100)
        else:
            unit = f"sample of {run.steps} frames"
            unit_seconds, unit_energy = seconds_per_sample, energy_per_sample
            references = (
                PUBLISHED_DVS_SPINNAKER2,
                gpu if gpu is not None else PUBLISHED_DVS_A100,
            )
        simulated_row = {
            "name": f"simulated SpiNNaker2 ({run.weight_format}, {run.clock_hz / 1e6:g} MHz)",
            "power_w": energy.average_power_w,
            "seconds": unit_seconds,
            "energy_j": unit_energy,
            "kind": "simulated estimate",
        }
        rows = _comparison_rows(
            simulated_row, references, sequence_tokens, "sequence" if lm else "sample"
        )
        return cls(
            layer_sizes=list(run.layer_sizes),
            weight_format=run.weight_format,
            num_pes=run.num_pes,
            num_chips=run.num_chips,
            clock_mhz=run.clock_hz / 1e6,
            dtype=run.dtype,
            readout=run.readout,
            steps=run.steps,
            pipelined=profile.pipelined,
            tick_us=profile.tick_us,
            seconds_total=profile.wall_seconds,
            seconds_per_token=seconds_per_token,
            sequence_tokens=sequence_tokens,
            seconds_per_sequence=seconds_per_sequence,
            profile_per_token=profile_groups,
            layer_profile_per_token=layer_profiles,
            energy_j={k: v for k, v in energy.to_dict().items() if k.endswith("_j")},
            energy_per_sequence_j=energy_per_sequence,
            average_power_w=energy.average_power_w,
            counters=totals,
            counters_per_layer=run.counters.per_layer(),
            per_step=per_step,
            activity=run.activity(),
            deadline_missed=profile.deadline_missed,
            deadlines_missed=profile.deadlines_missed_total,
            comparison=rows,
            workload="lm" if lm else "features",
            unit=unit,
            batch_size=batch,
            frames_per_sample=None if lm else run.steps,
            seconds_per_sample=seconds_per_sample,
            energy_per_sample_j=energy_per_sample,
            seconds_per_unit=unit_seconds,
            energy_per_unit_j=unit_energy,
            events_dropped=run.counters.total("events_dropped"),
            receive_policy=getattr(run, "receive_policy", "dense"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary."""
        return json.loads(json.dumps(asdict(self), default=_json_default))

    def to_json(self, *, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A readable multi-line summary."""
        sizes = "/".join(map(str, self.layer_sizes))
        mode = "pipelined" if self.pipelined else "layers one after another"
        tick = f", tick {self.tick_us:g} us" if self.tick_us is not None else ""
        lines = [
            f"Simulated SpiNNaker2 run: EGRU {sizes}, {self.weight_format} weights, "
            f"{self.num_pes} PEs on {self.num_chips} chip(s), {self.clock_mhz:g} MHz, "
            f"{self.dtype}, readout on {self.readout}, {mode}{tick}",
            f"steps: {self.steps}"
            + (f" (frames per sample: {self.frames_per_sample})" if self.frames_per_sample else "")
            + f"; batch size {self.batch_size}; receive policy {self.receive_policy}",
            "",
            "time (simulated estimate)",
            f"  {'per step' if self.workload == 'features' else 'per token':<22} "
            f"{format_seconds(self.seconds_per_token):>12}",
        ]
        if self.workload == "lm":
            lines.append(
                f"  {f'per {self.sequence_tokens}-token sequence':<22} "
                f"{format_seconds(self.seconds_per_unit):>12}"
                + ("  (per sample of the batch)" if self.batch_size > 1 else "")
            )
        else:
            lines.append(
                f"  {'per sample':<22} {format_seconds(self.seconds_per_sample):>12}"
                f"  ({self.frames_per_sample} frames)"
            )
        lines.append(f"  {'whole run':<22} {format_seconds(self.seconds_total):>12}")
        if self.events_dropped:
            lines.append(
                f"  WARNING: {self.events_dropped:,} received events did not fit the event "
                f"lists and were dropped: outputs differ from the reference"
            )
        if self.tick_us is not None:
            status = f"MISSED ({self.deadlines_missed} PE-ticks)" if self.deadline_missed else "met"
            lines.append(f"  {'tick deadline':<22} {status:>12}")
        lines += ["", "profile per token, critical path (slowest PE of each layer)"]
        total = sum(self.profile_per_token.values()) or 1.0
        for name, seconds in self.profile_per_token.items():
            if seconds > 0:
                lines.append(
                    f"  {name:<22} {format_seconds(seconds):>12}  {100 * seconds / total:5.1f} %"
                )
        for i, layer in enumerate(self.layer_profile_per_token):
            parts = ", ".join(
                f"{name} {format_seconds(seconds)}"
                for name, seconds in layer.items()
                if seconds > 0
            )
            lines.append(f"  layer {i}: {parts}")
        lines += [
            "",
            "energy (estimate; static power calibrated to the measured 0.39 W / 0.0653 J)",
            f"  {f'per {self.unit}':<22} {self.energy_per_unit_j:>12.4g} J",
            f"  {'average power':<22} {self.average_power_w:>12.4g} W",
            "  components of the whole run:",
        ]
        for name, joules in self.energy_j.items():
            lines.append(f"    {name:<20} {joules:>12.4g} J")
        lines += ["", "counts (total / per step)"]
        for name in _PER_STEP_COUNTS:
            lines.append(
                f"  {name:<22} {_fmt_count(self.counters[name]):>16} "
                f"{_fmt_count(self.per_step[name]):>14}"
            )
        activity = ", ".join(f"{100 * a:.1f} %" for a in self.activity)
        lines.append(f"  units firing per step  {activity}")
        lines += [
            "",
            f"comparison per {self.unit}"
            + (" (Table II rows)" if self.workload == "lm" else " (Table III rows, batch 1)"),
            f"  {'':<44} {'power':>9} {'time':>11} {'energy':>10} {'time x':>8} {'energy x':>9}",
        ]
        for row in self.comparison:
            lines.append(
                f"  {row['name'][:44]:<44} {row['power_w']:>7.3g} W "
                f"{format_seconds(row['seconds']):>11} "
                f"{row['energy_j']:>8.4g} J "
                f"{row['time_vs_simulated']:>8.3g} {row['energy_vs_simulated']:>9.3g}"
                f"  ({row['kind']})"
            )
        lines += ["", "measured anchors (everything else above is a model estimate):"]
        lines += [f"  {name}: {tag}" for name, tag in self.anchors.items()]
        return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
