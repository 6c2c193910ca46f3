"""Stage 3 of the mapping: routing keys, multicast targets and router entries.

:func:`route_slices` gives every PE's packets their keys (``key = offset + local unit
index``), builds the multicast targets (one per destination QPE, with a 4-bit PE mask) and
counts router entries per chip against the router capacity (:class:`RoutingResult`).
"""

from __future__ import annotations

from dataclasses import dataclass

from spinnaker2_backend.mapping.base import MappingError, PESlice
from spinnaker2_backend.mapping.placement import Placement

__all__ = [
    "MulticastTarget",
    "RoutingResult",
    "SliceRoute",
    "route_slices",
]


@dataclass(frozen=True)
class MulticastTarget:
    """One multicast packet destination: a QPE and the PEs in it (4-bit mask).

    Attributes:
        chip: destination chip.
        qpe: destination ``(qx, qy)``.
        pe_mask: bit ``p`` set when PE ``p`` of the QPE receives.
        pes: the receiving PEs (global indices).
        noc_hops: XY hops from the source QPE.
        chip_hops: chip-to-chip hops (0 on the same chip).
    """

    chip: int
    qpe: tuple[int, int]
    pe_mask: int
    pes: tuple[int, ...]
    noc_hops: int
    chip_hops: int

    @property
    def chip_to_chip(self) -> bool:
        return self.chip_hops > 0


@dataclass(frozen=True)
class SliceRoute:
    """Where one PE's events go.

    Attributes:
        source: the sending slice.
        key: routing key of its first unit (``source.key_offset``).
        key_mask: mask that matches all its units' keys (``key & key_mask == key``).
        targets: one :class:`MulticastTarget` per destination QPE.
    """

    source: PESlice
    key: int
    key_mask: int
    targets: tuple[MulticastTarget, ...]

    @property
    def destinations(self) -> tuple[int, ...]:
        """All receiving PEs (global indices), sorted."""
        return tuple(sorted(p for t in self.targets for p in t.pes))

    @property
    def packets_per_event(self) -> int:
        """Multicast packets one event of one unit costs (one per destination QPE)."""
        return len(self.targets)

    @property
    def noc_hops_per_event(self) -> int:
        return sum(t.noc_hops for t in self.targets)

    @property
    def chip_hops_per_event(self) -> int:
        return sum(t.chip_hops for t in self.targets)

    @property
    def chip_to_chip(self) -> bool:
        return any(t.chip_to_chip for t in self.targets)


@dataclass(frozen=True)
class RoutingResult:
    """Result of :func:`route_slices`.

    Attributes:
        routes: per source PE (global index), its :class:`SliceRoute`.
        router_entries: per chip, multicast entries used.
        router_capacity: entries per chip (16,384).
        key_shift: ``key_offset = pe << key_shift``.

    Router entries (model [C]): a chip holds one entry per (source PE, destination QPE on
    that chip) (key/mask -> QPE and PE mask), plus on a source chip one entry per (source
    PE, other destination chip) for the outgoing link. Chips a packet only passes through
    use default routing (no entry), as on SpiNNaker1.
    """

    routes: dict[int, SliceRoute]
    router_entries: dict[int, int]
    router_capacity: int
    key_shift: int

    def __getitem__(self, pe: int) -> SliceRoute:
        return self.routes[pe]

    def __iter__(self):
        return iter(self.routes.values())

    def __len__(self) -> int:
        return len(self.routes)

    def sources_of(self, pe: int) -> list[PESlice]:
        """Slices whose events PE ``pe`` receives (itself excluded)."""
        return [r.source for r in self.routes.values() if pe in r.destinations]

    @property
    def max_router_entries(self) -> int:
        return max(self.router_entries.values()) if self.router_entries else 0

    @property
    def max_noc_hops(self) -> int:
        return max((t.noc_hops for r in self.routes.values() for t in r.targets), default=0)

    def table(self) -> str:
        lines = ["routing: source PE -> destination QPEs (mask), hops"]
        for pe, r in self.routes.items():
            dests = ", ".join(
                f"{t.chip}:({t.qpe[0]},{t.qpe[1]})/{t.pe_mask:04b}+{t.noc_hops}"
                + (f"+{t.chip_hops}c" if t.chip_hops else "")
                for t in r.targets
            )
            lines.append(f"  PE {pe} key {r.key:#010x}: {dests}")
        entries = ", ".join(f"chip {c}: {n}" for c, n in sorted(self.router_entries.items()))
        lines.append(f"router entries ({self.router_capacity} per chip): {entries}")
        return "\n".join(lines)


def route_slices(placement: Placement) -> RoutingResult:
    """Build the multicast routes of every slice and count router entries per chip.

    A PE's events go to every other PE of its layer (recurrence: each PE assembles the full
    ``y_{t-1}``; its own units it keeps locally) and to every PE of the next layer. The last
    layer's events go to its own layer only (the host reads them out).

    Raises:
        MappingError: a chip needs more router entries than it has.
    """
    machine = placement.machine
    spec = machine.spec
    mask_all = (2**spec.packet_key_bits - 1) ^ ((1 << placement.key_shift) - 1)
    routes: dict[int, SliceRoute] = {}
    entries = dict.fromkeys(range(machine.num_chips), 0)
    layers = placement.layers
    for li, layer in enumerate(layers):
        receivers = list(layer) + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        for s in layer:
            groups: dict[tuple[int, tuple[int, int]], list[PESlice]] = {}
            for d in receivers:
                if d.pe != s.pe:
                    groups.setdefault((d.chip, d.qpe), []).append(d)
            targets = []
            for (chip, qpe), ds in sorted(groups.items()):
                mask = 0
                for d in ds:
                    mask |= 1 << d.pe_in_qpe
                targets.append(
                    MulticastTarget(
                        chip=chip,
                        qpe=qpe,
                        pe_mask=mask,
                        pes=tuple(sorted(d.pe for d in ds)),
                        noc_hops=machine.qpe_hops(s.qpe, qpe),
                        chip_hops=machine.chip_hops(s.chip, chip),
                    )
                )
                entries[chip] += 1
            entries[s.chip] += len({t.chip for t in targets} - {s.chip})
            routes[s.pe] = SliceRoute(
                source=s, key=s.key_offset, key_mask=mask_all, targets=tuple(targets)
            )
    result = RoutingResult(
        routes=routes,
        router_entries=entries,
        router_capacity=spec.router_entries_per_chip,
        key_shift=placement.key_shift,
    )
    for chip, n in entries.items():
        if n > spec.router_entries_per_chip:
            raise MappingError(
                f"chip {chip} needs {n:,} router entries but has {spec.router_entries_per_chip:,}: "
                f"use fewer, larger slices (a larger max_units_per_pe) or more chips"
            )
    return result


# ============================================================================= memory
