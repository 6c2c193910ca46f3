"""The mapping report: what went where, and how full every PE is.

:func:`build_mapping_report` turns a :class:`~spinnaker2_backend.mapping.Mapping` into a
:class:`MappingReport` (plain dataclasses) with one row per PE (layer, units, stored
weights, bytes per memory region, utilisation), one row per layer, a summary of the fullest
PE, the router and the NoC traffic, and the DRAM use. It serialises to a dict / JSON and
prints as a readable text table (``.table()``), which ``python -m spinnaker2_backend map``
shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from spinnaker2_backend.mapping import DATA_REGIONS

if TYPE_CHECKING:  # pragma: no cover
    from spinnaker2_backend.mapping import Mapping

__all__ = ["LayerReportRow", "MappingReport", "PEReportRow", "build_mapping_report"]


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
            f"sending off chip",
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
            + " ".join(f"{name[:8]:>8}" for name in DATA_REGIONS)
            + f" {'total':>7} {'free':>7} {'util%':>6}"
        )
        lines.append(header)
        rows = self.pes if max_pe_rows is None else self.pes[:max_pe_rows]
        for r in rows:
            regions = " ".join(f"{getattr(r, name):>8}" for name in DATA_REGIONS)
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


def build_mapping_report(mapping: Mapping) -> MappingReport:
    """Collect the :class:`MappingReport` of a mapping."""
    rows = []
    for s in mapping.slices:
        mem = mapping.memory[s.pe]
        model = mapping.memory_models[s.layer]
        rows.append(
            PEReportRow(
                pe=s.pe,
                chip=s.chip,
                pe_id=s.pe_id,
                qx=s.qpe[0],
                qy=s.qpe[1],
                pe_in_qpe=s.pe_in_qpe,
                layer=s.layer,
                unit_start=s.unit_start,
                unit_stop=s.unit_stop,
                units=s.num_units,
                nnz=sum(model.nnz(s.unit_start, s.unit_stop)),
                static_data=mem.static_data,
                weights=mem.weights,
                variables=mem.variables,
                receive_buffers=mem.receive_buffers,
                recordings=mem.recordings,
                stack_heap=mem.stack_heap,
                total=mem.total,
                free=mem.free,
                utilisation=mem.utilisation,
                code=mem.code,
                packets_per_event=mapping.routes[s.pe].packets_per_event,
            )
        )
    layers = []
    for lp in mapping.layers:
        mine = [r for r in rows if r.layer == lp.layer]
        layers.append(
            LayerReportRow(
                layer=lp.layer,
                units=lp.hidden_size,
                input_size=lp.input_size,
                pes=len(mine),
                units_per_pe_min=min(r.units for r in mine),
                units_per_pe_max=max(r.units for r in mine),
                nnz=sum(r.nnz for r in mine),
                weight_bytes=sum(r.weights for r in mine),
                utilisation_min=min(r.utilisation for r in mine),
                utilisation_max=max(r.utilisation for r in mine),
            )
        )
    routes = mapping.routes
    packets = sum(r.source.num_units * r.packets_per_event for r in routes)
    hops = sum(r.source.num_units * r.noc_hops_per_event for r in routes)
    fullest = max(rows, key=lambda r: r.utilisation)
    return MappingReport(
        layer_sizes=list(mapping.artifact.layer_sizes),
        input_size=mapping.artifact.input_size,
        weight_format=mapping.weight_format,
        record_steps=mapping.record_steps,
        input_source=mapping.input_source,
        clock_mhz=mapping.spec.pe_clock_mhz,
        chips=mapping.machine.num_chips,
        pes_available=mapping.machine.num_pes,
        pes_used=len(rows),
        data_capacity=mapping.spec.data_memory_bytes,
        code_capacity=mapping.spec.instruction_memory_bytes,
        layers=layers,
        pes=rows,
        fullest=fullest,
        mean_utilisation=sum(r.utilisation for r in rows) / len(rows),
        total_weight_bytes=sum(r.weights for r in rows),
        router_entries=dict(routes.router_entries),
        router_capacity=routes.router_capacity,
        max_noc_hops=routes.max_noc_hops,
        packets_per_step_all_fire=packets,
        noc_hops_per_step_all_fire=hops,
        chip_to_chip_routes=sum(1 for r in routes if r.chip_to_chip),
        dram_table_bytes=mapping.dram_table_bytes,
        dram_bytes_per_step=mapping.dram_bytes_per_step,
        placement_path=mapping.placement.path,
        fits=mapping.fit.ok,
        problems=list(mapping.fit.problems),
    )
