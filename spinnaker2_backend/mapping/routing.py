"""Stage 3 of the mapping: routing keys, multicast targets and router entries.

:func:`route_slices` gives every PE's packets their keys (``key = offset + local unit
index``), builds the multicast targets (one per destination QPE, with a 4-bit PE mask) and
counts router entries per chip against the router capacity (:class:`RoutingResult`). A
source's chip-to-chip traffic follows the multicast tree its router entries describe
(:attr:`SliceRoute.link_edges`): an event crosses each link of the tree once, however many
destination QPEs lie beyond it (:func:`link_loads` counts the packets per link).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from spinnaker2_backend.mapping.base import FitAdvice, MappingError, PESlice
from spinnaker2_backend.mapping.placement import Placement

__all__ = [
    "LINK_DIRECTIONS",
    "MulticastTarget",
    "RouterEntry",
    "RoutingResult",
    "SliceRoute",
    "aligned_blocks",
    "chip_path",
    "link_incidence",
    "link_loads",
    "route_slices",
]

#: The 6 chip-to-chip links of a chip on the triangular mesh, as ``(dx, dy)`` steps.
LINK_DIRECTIONS: dict[str, tuple[int, int]] = {
    "E": (1, 0),
    "NE": (1, 1),
    "N": (0, 1),
    "W": (-1, 0),
    "SW": (-1, -1),
    "S": (0, -1),
}
_DIRECTION_NAME = {v: k for k, v in LINK_DIRECTIONS.items()}


def _sign(v: int) -> int:
    return (v > 0) - (v < 0)


def chip_path(machine, chip_a: int, chip_b: int) -> list[tuple[int, str]]:
    """``[(chip, outgoing link), ...]`` of the chips a packet leaves on its way from
    ``chip_a`` to ``chip_b`` (``chip_b`` itself excluded): diagonal steps while both offsets
    have the same sign, then straight steps. Its length is ``machine.chip_hops``."""
    (ax, ay), (bx, by) = machine.chip_position(chip_a), machine.chip_position(chip_b)
    width = machine.chip_grid[0]
    out = []
    x, y = ax, ay
    while (x, y) != (bx, by):
        dx, dy = _sign(bx - x), _sign(by - y)
        steps = ([(dx, dy)] if dx * dy > 0 else []) + [(dx, 0), (0, dy)]
        # the first step toward the target that lands on a chip (a partly filled last row of
        # the grid has positions without chips)
        step = next(
            (sx, sy)
            for sx, sy in steps
            if (sx or sy) and (y + sy) * width + (x + sx) < machine.num_chips
        )
        out.append((y * width + x, _DIRECTION_NAME[step]))
        x, y = x + step[0], y + step[1]
    return out


def aligned_blocks(values: Iterable[int]) -> list[tuple[int, int]]:
    """The fewest ``(start, size)`` binary-aligned power-of-two blocks covering exactly the
    integers ``values`` (each run of consecutive integers split greedily)."""
    ordered = sorted(set(int(v) for v in values))
    out = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        start, stop = ordered[i], ordered[j] + 1
        while start < stop:
            size = start & -start if start else 1 << (stop - start).bit_length()
            while size > stop - start:
                size >>= 1
            out.append((start, size))
            start += size
        i = j + 1
    return out


@dataclass(frozen=True)
class RouterEntry:
    """One key/mask entry of a chip's router table.

    Attributes:
        chip: the chip.
        key, mask: a packet matches when ``packet_key & mask == key``.
        qpes: destination QPEs on this chip with their 4-bit PE masks, sorted.
        links: outgoing chip-to-chip links (names of :data:`LINK_DIRECTIONS`), sorted.
        sources: the source PEs (global indices) whose key ranges the entry covers.
    """

    chip: int
    key: int
    mask: int
    qpes: tuple[tuple[tuple[int, int], int], ...]
    links: tuple[str, ...]
    sources: tuple[int, ...] = field(default=())

    def matches(self, key: int) -> bool:
        return key & self.mask == self.key


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
        link_edges: the chip-to-chip links of the multicast tree the router tables hold for
            this source, ``(chip the packet leaves, link)``, sorted: the union of the chip
            paths to every destination chip. One event crosses each of them once (the
            routers duplicate the packet where the tree branches).
    """

    source: PESlice
    key: int
    key_mask: int
    targets: tuple[MulticastTarget, ...]
    link_edges: tuple[tuple[int, str], ...] = ()

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
        """Chip-to-chip link traversals of one event along the multicast tree."""
        return len(self.link_edges)

    @property
    def path_chip_hops_per_event(self) -> int:
        """Link traversals if every destination QPE got its own packet along its own path
        (what a tree saves: ``path_chip_hops_per_event - chip_hops_per_event``)."""
        return sum(t.chip_hops for t in self.targets)

    @property
    def chip_to_chip(self) -> bool:
        return any(t.chip_to_chip for t in self.targets)


@dataclass(frozen=True)
class RoutingResult:
    """Result of :func:`route_slices`.

    Attributes:
        routes: per source PE (global index), its :class:`SliceRoute`.
        router_entries: per chip, key/mask entries used (``len(tables[chip])``).
        router_capacity: entries per chip (16,384).
        key_shift: ``key_offset = pe << key_shift``.
        tables: per chip, its :class:`RouterEntry` list (module docstring).
    """

    routes: dict[int, SliceRoute]
    router_entries: dict[int, int]
    router_capacity: int
    key_shift: int
    tables: dict[int, list[RouterEntry]] = field(default_factory=dict)

    def lookup(self, chip: int, key: int) -> RouterEntry | None:
        """The entry of ``chip`` that routes ``key`` (None: default routing)."""
        for entry in self.tables.get(chip, ()):
            if entry.matches(key):
                return entry
        return None

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
    low_bits = (1 << placement.key_shift) - 1
    mask_all = (2**spec.packet_key_bits - 1) ^ low_bits
    routes: dict[int, SliceRoute] = {}
    paths: dict[tuple[int, int], list[tuple[int, str]]] = {}
    # chip -> route signature -> source PEs with that route on that chip
    signatures: dict[int, dict[tuple, list[int]]] = {c: {} for c in range(machine.num_chips)}
    layers = placement.layers
    chip_hops: dict[tuple[int, int], int] = {}
    for li, layer in enumerate(layers):
        receivers = list(layer) + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        # receivers grouped by destination QPE once per layer; a source leaves itself out
        grouped: dict[tuple[int, tuple[int, int]], list[PESlice]] = {}
        for d in receivers:
            grouped.setdefault((d.chip, d.qpe), []).append(d)
        groups = [
            (chip, qpe, ds, sum(1 << d.pe_in_qpe for d in ds), tuple(sorted(d.pe for d in ds)))
            for (chip, qpe), ds in sorted(grouped.items())
        ]
        for s in layer:
            targets = _targets(machine, s, groups, chip_hops)
            routes[s.pe] = SliceRoute(
                source=s,
                key=s.key_offset,
                key_mask=mask_all,
                targets=tuple(targets),
                link_edges=_tree_edges(machine, s.chip, targets, paths),
            )
            for chip, route in _chip_routes(machine, s.chip, targets, paths).items():
                signatures[chip].setdefault(route, []).append(s.pe)
    tables: dict[int, list[RouterEntry]] = {}
    for chip, by_route in signatures.items():
        entries = []
        for (qpes, links), pes in by_route.items():
            for start, size in aligned_blocks(pes):
                block_mask = mask_all & ~((size - 1) << placement.key_shift)
                entries.append(
                    RouterEntry(
                        chip=chip,
                        key=start << placement.key_shift,
                        mask=block_mask,
                        qpes=qpes,
                        links=links,
                        sources=tuple(range(start, start + size)),
                    )
                )
        tables[chip] = sorted(entries, key=lambda e: e.key)
    counts = {chip: len(t) for chip, t in tables.items()}
    result = RoutingResult(
        routes=routes,
        router_entries=counts,
        router_capacity=spec.router_entries_per_chip,
        key_shift=placement.key_shift,
        tables=tables,
    )
    for chip, n in counts.items():
        if n > spec.router_entries_per_chip:
            # entries grow with the sources a chip routes: fewer, larger slices shrink them
            largest = max(sl.num_units for sl in placement.slices)
            units = -(-largest * n // spec.router_entries_per_chip)
            raise MappingError(
                f"chip {chip} needs {n:,} router entries (key/mask, merged across sources with "
                f"identical routes) but has {spec.router_entries_per_chip:,}: use fewer, "
                f"larger slices (max_units_per_pe={units})",
                advice=[
                    FitAdvice(
                        "max_units_per_pe",
                        {"max_units_per_pe": units, "pes_per_layer": None},
                        f"max_units_per_pe={units}",
                    )
                ],
            )
    return result


def _targets(machine, s: PESlice, groups, chip_hops: dict) -> list[MulticastTarget]:
    """One :class:`MulticastTarget` per destination QPE of ``s`` (itself left out)."""
    targets = []
    for chip, qpe, ds, mask, pes in groups:
        if chip == s.chip and qpe == s.qpe and any(d.pe == s.pe for d in ds):
            mask ^= 1 << s.pe_in_qpe
            pes = tuple(p for p in pes if p != s.pe)
            if not pes:
                continue
        pair = (s.chip, chip)
        if pair not in chip_hops:
            chip_hops[pair] = machine.chip_hops(*pair)
        targets.append(
            MulticastTarget(
                chip=chip,
                qpe=qpe,
                pe_mask=mask,
                pes=pes,
                noc_hops=machine.qpe_hops(s.qpe, qpe),
                chip_hops=chip_hops[pair],
            )
        )
    return targets


def _tree_edges(machine, source_chip: int, targets, paths: dict) -> tuple[tuple[int, str], ...]:
    """The chip links of one source's multicast tree: the union of its chip paths."""
    edges: set[tuple[int, str]] = set()
    for chip in {t.chip for t in targets} - {source_chip}:
        pair = (source_chip, chip)
        if pair not in paths:
            paths[pair] = chip_path(machine, *pair)
        edges.update(paths[pair])
    return tuple(sorted(edges))


def link_loads(routing: RoutingResult, events: dict[int, float]) -> dict[tuple[int, str], float]:
    """Packets over each chip-to-chip link when PE ``pe`` emits ``events[pe]`` events: each
    event crosses every link of its source's multicast tree once."""
    loads: dict[tuple[int, str], float] = {}
    for pe, count in events.items():
        if count:
            for edge in routing.routes[pe].link_edges:
                loads[edge] = loads.get(edge, 0.0) + float(count)
    return loads


def link_incidence(routing: RoutingResult, pes) -> tuple[list[tuple[int, str]], np.ndarray]:
    """The chip links the trees of ``pes`` use, and ``(links, len(pes))`` with 1 where an
    event of that PE crosses that link (:func:`link_loads` as a matrix, for the time
    model's link serialisation)."""
    edges = sorted({e for pe in pes for e in routing.routes[int(pe)].link_edges})
    index = {e: k for k, e in enumerate(edges)}
    matrix = np.zeros((len(edges), len(pes)))
    for j, pe in enumerate(pes):
        for e in routing.routes[int(pe)].link_edges:
            matrix[index[e], j] = 1.0
    return edges, matrix


def _chip_routes(machine, source_chip: int, targets, paths: dict) -> dict[int, tuple]:
    """Per chip that needs an entry for one source: ``(qpes, links)`` of its route
    (``paths`` caches :func:`chip_path` per pair of chips)."""
    if not targets:
        return {}
    local: dict[int, set] = {}
    out_links: dict[int, set] = {}
    arrived: dict[int, str] = {}
    for t in targets:
        local.setdefault(t.chip, set()).add((t.qpe, t.pe_mask))
        pair = (source_chip, t.chip)
        if pair not in paths:
            paths[pair] = chip_path(machine, *pair)
        path = paths[pair]
        for chip, link in path:
            out_links.setdefault(chip, set()).add(link)
        for (_, link), nxt in zip(path, [c for c, _ in path[1:]] + [t.chip]):
            arrived[nxt] = link
    chips = {source_chip} | set(local) | set(out_links)
    routes = {}
    for chip in chips:
        qpes = tuple(sorted(local.get(chip, ())))
        links = tuple(sorted(out_links.get(chip, ())))
        straight = (
            chip != source_chip and not qpes and len(links) == 1 and arrived.get(chip) == links[0]
        )
        if not straight and (qpes or links or chip == source_chip):
            routes[chip] = (qpes, links)
    return routes
