"""Stage 2 of the mapping: put the slices on PEs.

:func:`place_slices` places layers contiguously along a serpentine path over the QPE grid
(chip after chip), choosing the path that minimises NoC hops of the traffic (every PE sends
to every PE of its own layer and of the next layer), and gives every slice its routing-key
offset. It returns a :class:`Placement` (a table that saves as CSV or JSON).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.machine import Machine, triangular_mesh_hops
from spinnaker2_backend.mapping.base import FitAdvice, MappingError, PESlice
from spinnaker2_backend.mapping.partition import PartitionResult

__all__ = [
    "CHIP_HOP_PLACEMENT_WEIGHT",
    "LayerPlacement",
    "Placement",
    "place_slices",
]


#: Placement heuristic only (not a hardware figure): one chip-to-chip hop costs as much as
#: this many NoC hops when comparing candidate placements.
CHIP_HOP_PLACEMENT_WEIGHT = 16


@dataclass
class LayerPlacement:
    """The slices of one layer.

    Attributes:
        layer: layer number.
        hidden_size: units of the layer ``H``.
        input_size: size of the layer's input vector ``I``.
        slices: the PE slices in unit order.
    """

    layer: int
    hidden_size: int
    input_size: int
    slices: list[PESlice]

    @property
    def pes(self) -> list[int]:
        return [s.pe for s in self.slices]

    @property
    def num_pes(self) -> int:
        return len(self.slices)

    def slice_of_unit(self, unit: int) -> PESlice:
        """The slice that computes ``unit``."""
        for s in self.slices:
            if s.unit_start <= unit < s.unit_stop:
                return s
        raise ValueError(f"layer {self.layer} has no unit {unit} (H={self.hidden_size})")


# ======================================================================= memory model


@dataclass(frozen=True)
class Placement:
    """Result of :func:`place_slices`: every slice on a PE.

    Attributes:
        machine: the machine.
        layers: per layer, its :class:`PESlice` objects in unit order.
        path: name of the PE ordering used (``"rows"`` or ``"columns"`` serpentine).
        key_shift: key offsets are ``pe << key_shift`` (room for the largest slice).
        traffic_hops: NoC hops (+ weighted chip hops) of one step in which every unit
            fires, the quantity the placement minimises.
        chip_boundaries: layers after which the next layer starts on a fresh chip.
    """

    machine: Machine
    layers: tuple[tuple[PESlice, ...], ...]
    path: str
    key_shift: int
    traffic_hops: int
    chip_boundaries: tuple[int, ...] = ()

    def chips_of(self, layer: int) -> tuple[int, ...]:
        """The chips that hold PEs of ``layer``, sorted."""
        return tuple(sorted({s.chip for s in self.layers[layer]}))

    @property
    def slices(self) -> list[PESlice]:
        return [s for layer in self.layers for s in layer]

    @property
    def num_pes_used(self) -> int:
        return sum(len(layer) for layer in self.layers)

    def rows(self) -> list[dict[str, Any]]:
        """The placement table: one dict per slice."""
        return [
            {
                "layer": s.layer,
                "index_in_layer": s.index_in_layer,
                "pe": s.pe,
                "chip": s.chip,
                "pe_id": s.pe_id,
                "qx": s.qpe[0],
                "qy": s.qpe[1],
                "pe_in_qpe": s.pe_in_qpe,
                "unit_start": s.unit_start,
                "unit_stop": s.unit_stop,
                "units": s.num_units,
                "key_offset": s.key_offset,
            }
            for s in self.slices
        ]

    def to_csv(self) -> str:
        """The placement table as CSV text."""
        buf = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def to_json(self) -> str:
        """The placement table as JSON text (with the machine and path)."""
        return json.dumps(
            {
                "chips": self.machine.num_chips,
                "path": self.path,
                "key_shift": self.key_shift,
                "slices": self.rows(),
            },
            indent=2,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as ``.csv`` or ``.json`` (by the file's suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".json"):
            raise MappingError(
                f"cannot save a placement as {path.name!r}: use a .csv or .json file name"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        from snn_egru.cliargs import write_text_atomic

        write_text_atomic(path, self.to_csv() if suffix == ".csv" else self.to_json())
        return path


def _serpentine(spec: ChipSpec, by: str) -> list[tuple[int, int]]:
    """QPEs of a chip along a serpentine path over rows (``by="rows"``) or columns."""
    present = set(spec.qpe_coordinates)
    (x0, x1), (y0, y1) = spec.qpe_x_range, spec.qpe_y_range
    path = []
    outer, inner = (range(y0, y1 + 1), range(x0, x1 + 1))
    if by == "columns":
        outer, inner = inner, outer
    for i, o in enumerate(outer):
        seq = inner if i % 2 == 0 else reversed(inner)
        for v in seq:
            qpe = (v, o) if by == "rows" else (o, v)
            if qpe in present:
                path.append(qpe)
    return path


def _chip_order(machine: Machine) -> list[int]:
    """Chips along a serpentine over the chip grid (consecutive chips are neighbours)."""
    width = machine.chip_grid[0]
    order = []
    for row in range(machine.chip_grid[1]):
        cols = range(width) if row % 2 == 0 else range(width - 1, -1, -1)
        order.extend(row * width + c for c in cols if row * width + c < machine.num_chips)
    return order


def _pe_order(machine: Machine, by: str) -> list[int]:
    spec = machine.spec
    order = []
    for chip in _chip_order(machine):
        for qpe in _serpentine(spec, by):
            for p in range(spec.pes_per_qpe):
                order.append(machine.index_of_qpe(chip, qpe, p))
    return order


def _traffic_cost(machine: Machine, layers: Sequence[Sequence[PESlice]]) -> int:
    """NoC hops (+ weighted chip hops) when every unit fires once: the placement objective.

    Every unit of a slice sends one packet per destination QPE (own layer and next layer),
    which travels the XY distance to it (and the chip hops to its chip).
    """
    total = 0
    for li, layer in enumerate(layers):
        dests = list(layer) + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        dest_qpes = sorted({(d.chip, d.qpe) for d in dests})
        dq = np.array([q for _, q in dest_qpes])
        dc = np.array([machine.chip_position(c) for c, _ in dest_qpes])
        # sources on one QPE are equally far from every destination: one row per QPE
        by_qpe: dict[tuple[int, tuple[int, int]], int] = {}
        for s in layer:
            by_qpe[(s.chip, s.qpe)] = by_qpe.get((s.chip, s.qpe), 0) + s.num_units
        src_q = np.array([q for _, q in by_qpe])
        src_c = np.array([machine.chip_position(c) for c, _ in by_qpe])
        units = np.array(list(by_qpe.values()))
        noc = np.abs(src_q[:, None, :] - dq[None, :, :]).sum(axis=2)
        delta = dc[None, :, :] - src_c[:, None, :]
        chip_hops = triangular_mesh_hops(delta[..., 0], delta[..., 1])
        per_source = (noc + CHIP_HOP_PLACEMENT_WEIGHT * chip_hops).sum(axis=1)
        total += int((units * per_source).sum())
    return total


def place_slices(
    partition: PartitionResult, machine: Machine, *, chip_boundaries: Sequence[int] = ()
) -> Placement:
    """Put the slices on PEs, layers contiguous, minimising the NoC hops of the traffic.

    The slices (layer 0 first, in unit order) follow a serpentine path over the QPE grid,
    4 PEs per QPE, chip after chip. Two paths are tried (row-wise and column-wise
    serpentine); the one with fewer hops (:func:`_traffic_cost`) is kept.

    ``chip_boundaries``: layers after which a chip boundary goes: the next layer starts on
    a fresh chip, so no chip holds layers on both sides (the PEs left on the chip stay
    unused).

    Raises:
        MappingError: more slices than PEs on the machine (with the chip boundaries), or a
            boundary after a layer the network does not have / after its last layer.
    """
    boundaries = _check_boundaries(partition, chip_boundaries)
    needed = _pes_needed(partition, machine, boundaries)
    if needed > machine.num_pes:
        per_layer = "/".join(str(lp.num_slices) for lp in partition.layers)
        sizes = "/".join(str(lp.hidden_size) for lp in partition.layers)
        chips_needed = -(-needed // machine.pes_per_chip)
        padded = f", chip boundaries after layers {list(boundaries)}" if boundaries else ""
        raise MappingError(
            f"the network needs {needed} PEs (layers of {sizes} units -> {per_layer} PEs, "
            f"format {partition.weight_format!r}, {partition.record_steps} recorded steps"
            f"{padded}) but "
            f"the machine has {machine.num_pes} PEs on {machine.num_chips} chip(s): use "
            f"chips={chips_needed} (--chips {chips_needed}), prune more, use another weight "
            f"format, or record fewer steps",
            advice=[
                FitAdvice("chips", {"chips": chips_needed}, f"chips={chips_needed}"),
                FitAdvice("sparsity", {}, "prune more"),
            ],
        )
    largest = max(max(lp.units) for lp in partition.layers)
    key_shift = max(1, (largest - 1).bit_length())
    if (machine.num_pes << key_shift) > 2**machine.spec.packet_key_bits:
        raise MappingError(
            f"routing keys do not fit {machine.spec.packet_key_bits} bits: "
            f"{machine.num_pes} PEs x 2^{key_shift} keys; use smaller slices"
        )
    best: Placement | None = None
    for path in ("rows", "columns"):
        order = _pe_order(machine, path)
        k = 0
        layers = []
        for lp in partition.layers:
            if lp.layer - 1 in boundaries and k % machine.pes_per_chip:
                k += machine.pes_per_chip - k % machine.pes_per_chip
            slices = []
            for i, (a, b) in enumerate(lp.bounds):
                where = machine.pe(order[k])
                k += 1
                slices.append(
                    PESlice(
                        layer=lp.layer,
                        index_in_layer=i,
                        pe=where.index,
                        chip=where.chip,
                        pe_id=where.pe_id,
                        qpe=where.qpe,
                        unit_start=a,
                        unit_stop=b,
                        key_offset=where.index << key_shift,
                    )
                )
            layers.append(tuple(slices))
        cost = _traffic_cost(machine, layers)
        if best is None or cost < best.traffic_hops:
            best = Placement(
                machine=machine,
                layers=tuple(layers),
                path=path,
                key_shift=key_shift,
                traffic_hops=cost,
                chip_boundaries=boundaries,
            )
    assert best is not None
    return best


def _check_boundaries(
    partition: PartitionResult, chip_boundaries: Sequence[int]
) -> tuple[int, ...]:
    """The chip boundaries as sorted layer indices; ``MappingError`` for a layer the network
    does not have or its last layer (nothing follows it)."""
    out = sorted({int(b) for b in chip_boundaries})
    last = len(partition.layers) - 1
    for b in out:
        if not 0 <= b < last:
            raise MappingError(
                f"no layer boundary after layer {b}: the network has layers 0..{last}, so a "
                f"chip boundary can follow layers 0..{last - 1}"
                if last > 0
                else f"a 1-layer network has no layer boundary (got a chip boundary after {b})"
            )
    return tuple(out)


def _pes_needed(partition: PartitionResult, machine: Machine, boundaries: tuple[int, ...]) -> int:
    """PE positions used along the path: the slices, plus each chip's unused rest before
    a chip boundary."""
    per_chip = machine.pes_per_chip
    k = 0
    for lp in partition.layers:
        if lp.layer - 1 in boundaries and k % per_chip:
            k += per_chip - k % per_chip
        k += lp.num_slices
    return k


# ============================================================================== route
