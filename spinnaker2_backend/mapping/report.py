"""The mapping report: what went where, and how full every PE is.

:func:`~spinnaker2_backend.mapping.pipeline.build_mapping_report` (``Mapping.report()``)
turns a :class:`~spinnaker2_backend.mapping.Mapping` into a :class:`MappingReport` (plain
dataclasses) with one row per PE (layer, units, stored
weights, bytes per memory region, utilisation), one row per layer, a summary of the fullest
PE, the router and the NoC traffic, and the DRAM use. It serialises to a dict / JSON and
prints as a readable text table (``.table()``), which ``python -m spinnaker2_backend map``
shows. This module holds the types only, so that it imports nothing of the mapping but
:data:`~spinnaker2_backend.mapping.memory.DATA_REGIONS`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from spinnaker2_backend.mapping.memory import DATA_REGIONS

__all__ = ["LayerReportRow", "MappingReport", "PEReportRow"]


@dataclass(frozen=True)
class PEReportRow:
    """One PE of the mapping (bytes of data memory by region; code in instruction memory)."""

    pe: int
    chip: int
    pe_id: int
    qx: int
    qy: int
    pe_in_qpe: int
    layer: int
    unit_start: int
    unit_stop: int
    units: int
    nnz: int
    static_data: int
    weights: int
    variables: int
    receive_buffers: int
    recordings: int
    debug: int
    stack_heap: int
    total: int
    free: int
    utilisation: float
    code: int
    packets_per_event: int


@dataclass(frozen=True)
class LayerReportRow:
    """One layer: its PEs, units per PE, stored weights, bytes and utilisation."""

    layer: int
    units: int
    input_size: int
    pes: int
    units_per_pe_min: int
    units_per_pe_max: int
    nnz: int
    weight_bytes: int
    utilisation_min: float
    utilisation_max: float


@dataclass
class MappingReport:
    """Report of a mapping (see the module docstring).

    Attributes:
        layer_sizes: units per layer; input_size: layer-0 input size.
        weight_format, record_steps, input_source: mapping options.
        clock_mhz: PE clock; chips: chips on the machine.
        pes_available, pes_used: application PEs on the machine / used.
        data_capacity, code_capacity: bytes of data / instruction memory per PE.
        layers: per-layer rows; pes: per-PE rows (placement order).
        fullest: the PE with the highest utilisation.
        mean_utilisation: mean over used PEs.
        total_weight_bytes: weights over all PEs.
        router_entries: per chip; router_capacity: per chip.
        max_noc_hops: longest XY route of a packet.
        packets_per_step_all_fire: multicast packets in a step where every unit fires.
        noc_hops_per_step_all_fire: QPE hops of those packets.
        chip_to_chip_routes: source PEs with a destination on another chip.
        dram_table_bytes: DRAM holding precomputed inputs (embedding vectors).
        dram_bytes_per_step: DRAM bytes streamed per step.
        placement_path: serpentine path the placement chose.
        fits: every PE fits; problems: messages for those that do not.
        receive_policy, receive_capacity: how PEs keep received events (entries of the
            event list per layer). batch_size: samples per PE.
        chip_to_chip_packets_all_fire: packets crossing a chip-to-chip link in a step where
            every unit fires once.
    """

    layer_sizes: list[int]
    input_size: int
    weight_format: str
    record_steps: int
    input_source: str
    clock_mhz: float
    chips: int
    pes_available: int
    pes_used: int
    data_capacity: int
    code_capacity: int
    layers: list[LayerReportRow]
    pes: list[PEReportRow]
    fullest: PEReportRow
    mean_utilisation: float
    total_weight_bytes: int
    router_entries: dict[int, int]
    router_capacity: int
    max_noc_hops: int
    packets_per_step_all_fire: int
    noc_hops_per_step_all_fire: int
    chip_to_chip_routes: int
    dram_table_bytes: int
    dram_bytes_per_step: int
    placement_path: str
    fits: bool
    problems: list[str]
    receive_policy: str = "dense"
    receive_capacity: list[int] = field(default_factory=list)
    batch_size: int = 1
    chip_to_chip_packets_all_fire: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        out = asdict(self)
        out["router_entries"] = {str(k): v for k, v in self.router_entries.items()}
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """A few lines: the network, the PEs used, the fullest PE, router and traffic."""
        f = self.fullest
        per_layer = " + ".join(str(lr.pes) for lr in self.layers)
        lines = [
            f"network: input {self.input_size} -> layers {'/'.join(map(str, self.layer_sizes))}",
            f"machine: {self.chips} chip(s), {self.pes_available} PEs, PE clock "
            f"{self.clock_mhz:g} MHz",
            f"weights: {self.weight_format}, {self.total_weight_bytes:,} bytes in all; "
            f"recorded steps: {self.record_steps}; inputs from {self.input_source}",
            f"receive policy: {self.receive_policy}"
            + (
                f" (capacity {'/'.join(map(str, self.receive_capacity))} events per layer)"
                if self.receive_policy == "event-list"
                else ""
            )
            + f"; batch size {self.batch_size}",
            f"PEs used: {self.pes_used} ({per_layer} per layer), placed along the "
            f"{self.placement_path} serpentine",
            f"fullest PE: {f.pe} (chip {f.chip}, QPE ({f.qx},{f.qy}) core {f.pe_in_qpe}, layer "
            f"{f.layer}, {f.units} units, {f.nnz:,} weights): {f.total:,} of "
            f"{self.data_capacity:,} bytes = {100 * f.utilisation:.1f} % "
            f"(mean over PEs {100 * self.mean_utilisation:.1f} %)",
            f"router entries: max {max(self.router_entries.values()):,} of "
            f"{self.router_capacity:,} per chip; longest route {self.max_noc_hops} QPE hops; "
            f"all units firing once: {self.packets_per_step_all_fire:,} packets, "
            f"{self.noc_hops_per_step_all_fire:,} QPE hops, {self.chip_to_chip_routes} PEs "
            f"sending off chip, {self.chip_to_chip_packets_all_fire:,} packets chip-to-chip",
            f"DRAM: {self.dram_table_bytes:,} bytes of precomputed inputs, "
            f"{self.dram_bytes_per_step:,} bytes streamed per step",
            "fits: yes" if self.fits else f"fits: NO ({len(self.problems)} PE problems)",
        ]
        return "\n".join(lines)

    def table(self, *, max_pe_rows: int | None = None) -> str:
        """The summary, one line per layer and one line per PE (readable text).

        Args:
            max_pe_rows: show at most this many PE lines (``None``: all; ``0``: none).
        """
        lines = [self.summary(), ""]
        lines.append("layer  units  input  PEs  units/PE   weights     weight bytes  util/PE %")
        for lr in self.layers:
            lines.append(
                f"{lr.layer:>5}  {lr.units:>5}  {lr.input_size:>5}  {lr.pes:>3}  "
                f"{lr.units_per_pe_min:>3}..{lr.units_per_pe_max:<4} {lr.nnz:>10,}  "
                f"{lr.weight_bytes:>12,}  {100 * lr.utilisation_min:5.1f}.."
                f"{100 * lr.utilisation_max:5.1f}"
            )
        if max_pe_rows == 0:
            lines.extend(f"problem: {problem}" for problem in self.problems)
            return "\n".join(lines)
        lines.append("")
        header = (
            f"{'PE':>5} {'chip':>4} {'QPE':>6} {'c':>1} {'layer':>5} {'units':>11} "
            f"{'weights':>7} "
            + " ".join(f"{name:>{max(8, len(name))}}" for name in DATA_REGIONS)
            + f" {'total':>7} {'free':>7} {'util%':>6}"
        )
        lines.append(header)
        rows = self.pes if max_pe_rows is None else self.pes[:max_pe_rows]
        for r in rows:
            regions = " ".join(f"{getattr(r, name):>{max(8, len(name))}}" for name in DATA_REGIONS)
            lines.append(
                f"{r.pe:>5} {r.chip:>4} {f'({r.qx},{r.qy})':>6} {r.pe_in_qpe:>1} {r.layer:>5} "
                f"{f'{r.unit_start}..{r.unit_stop - 1}':>11} {r.nnz:>7} {regions} "
                f"{r.total:>7} {r.free:>7} {100 * r.utilisation:>6.1f}"
            )
        if max_pe_rows is not None and len(self.pes) > max_pe_rows:
            lines.append(f"... {len(self.pes) - max_pe_rows} more PEs")
        for problem in self.problems:
            lines.append(f"problem: {problem}")
        return "\n".join(lines)
