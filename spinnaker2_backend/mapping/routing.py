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

from spinnaker2_backend.machine import triangular_mesh_hops
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
class _Groups:
    """The destination QPEs of one layer's sources: every source of a layer sends to the
    same QPEs and only leaves itself out, so the routes of a layer share one table of
    ``(chip, qpe)`` groups (sorted) instead of a target list per source (``P^2`` objects).

    Attributes:
        chip, qpe, mask, pes: per group its chip, ``(qx, qy)``, 4-bit PE mask and the
            receiving PEs (global indices, sorted).
        index: ``(chip, qpe) -> group``.
        machine: the machine (hops of a target are computed when asked for).
    """

    chip: tuple[int, ...]
    qpe: tuple[tuple[int, int], ...]
    mask: tuple[int, ...]
    pes: tuple[tuple[int, ...], ...]
    index: dict = field(compare=False, repr=False)
    machine: object = field(compare=False, repr=False, default=None)

    @staticmethod
    def of(machine, receivers: Iterable[PESlice]) -> _Groups:
        grouped: dict[tuple[int, tuple[int, int]], list[PESlice]] = {}
        for d in receivers:
            grouped.setdefault((d.chip, d.qpe), []).append(d)
        keys = sorted(grouped)
        return _Groups(
            chip=tuple(int(c) for c, _ in keys),
            qpe=tuple((int(q[0]), int(q[1])) for _, q in keys),
            mask=tuple(sum(1 << d.pe_in_qpe for d in grouped[k]) for k in keys),
            pes=tuple(tuple(sorted(int(d.pe) for d in grouped[k])) for k in keys),
            index={k: g for g, k in enumerate(keys)},
            machine=machine,
        )

    def __len__(self) -> int:
        return len(self.chip)

    def own(self, s: PESlice) -> int:
        """The group of ``s`` itself (-1 when ``s`` does not receive its own layer)."""
        g = self.index.get((s.chip, s.qpe), -1)
        return g if g >= 0 and s.pe in self.pes[g] else -1

    def targets(self, s: PESlice) -> tuple[MulticastTarget, ...]:
        """The :class:`MulticastTarget` of every group for source ``s`` (itself left out)."""
        own = self.own(s)
        out = []
        for g, (chip, qpe, mask, pes) in enumerate(zip(self.chip, self.qpe, self.mask, self.pes)):
            if g == own:
                mask ^= 1 << s.pe_in_qpe
                pes = tuple(p for p in pes if p != s.pe)
                if not pes:
                    continue
            out.append(
                MulticastTarget(
                    chip=chip,
                    qpe=qpe,
                    pe_mask=mask,
                    pes=pes,
                    noc_hops=self.machine.qpe_hops(s.qpe, qpe),
                    chip_hops=self.machine.chip_hops(s.chip, chip),
                )
            )
        return tuple(out)


@dataclass(frozen=True)
class SliceRoute:
    """Where one PE's events go.

    Attributes:
        source: the sending slice.
        key: routing key of its first unit (``source.key_offset``).
        key_mask: mask that matches all its units' keys (``key & key_mask == key``).
        link_edges: the chip-to-chip links of the multicast tree the router tables hold for
            this source, ``(chip the packet leaves, link)``, sorted: the union of the chip
            paths to every destination chip. One event crosses each of them once (the
            routers duplicate the packet where the tree branches).
        packets_per_event: multicast packets one event of one unit costs (one per
            destination QPE).
        noc_hops_per_event: XY hops summed over the destination QPEs.
        chip_packets_per_event: destination QPEs on another chip.
        path_chip_hops_per_event: link traversals if every destination QPE got its own
            packet along its own path (what a tree saves: ``path_chip_hops_per_event -
            chip_hops_per_event``).
        max_noc_hops, max_chip_hops: hops to the farthest destination QPE (0 for none).

    :attr:`targets` (one :class:`MulticastTarget` per destination QPE) is built when asked
    for, from the table its layer's routes share: a layer's routes hold ``O(P)`` objects,
    not one target per pair of PEs.
    """

    source: PESlice
    key: int
    key_mask: int
    link_edges: tuple[tuple[int, str], ...] = ()
    packets_per_event: int = 0
    noc_hops_per_event: int = 0
    chip_packets_per_event: int = 0
    path_chip_hops_per_event: int = 0
    max_noc_hops: int = 0
    max_chip_hops: int = 0
    groups: _Groups | None = field(default=None, compare=False, repr=False)

    @property
    def targets(self) -> tuple[MulticastTarget, ...]:
        """One :class:`MulticastTarget` per destination QPE (computed on each call)."""
        return () if self.groups is None else self.groups.targets(self.source)

    @property
    def destinations(self) -> tuple[int, ...]:
        """All receiving PEs (global indices), sorted."""
        return tuple(sorted(p for t in self.targets for p in t.pes))

    @property
    def chip_hops_per_event(self) -> int:
        """Chip-to-chip link traversals of one event along the multicast tree."""
        return len(self.link_edges)

    @property
    def chip_to_chip(self) -> bool:
        return self.chip_packets_per_event > 0


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
        return [
            r.source
            for r in self.routes.values()
            if r.groups is not None and r.source.pe != pe and any(pe in pes for pes in r.groups.pes)
        ]

    @property
    def max_router_entries(self) -> int:
        return max(self.router_entries.values()) if self.router_entries else 0

    @property
    def max_noc_hops(self) -> int:
        return max((r.max_noc_hops for r in self.routes.values()), default=0)

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


def route_slices(placement: Placement, without_recurrence: Iterable[int] = ()) -> RoutingResult:
    """Build the multicast routes of every slice and count router entries per chip.

    A PE's events go to every other PE of its layer (recurrence: each PE assembles the full
    ``y_{t-1}``; its own units it keeps locally) and to every PE of the next layer. The last
    layer's events go to its own layer only (the host reads them out). An inner layer listed
    in ``without_recurrence`` (no recurrent weight: the ``ff`` / ``dense`` bottlenecks of
    :mod:`snn_egru.bottleneck_layers`) sends to the next layer only.

    Every source of a layer sends to the same destination QPEs (only leaving itself out),
    so the work is done per layer and per source chip (hops, trees, router entries of the
    other chips) and per source only what its own QPE changes: no structure grows with
    the PEs squared.

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
    positions = np.array([machine.chip_position(c) for c in range(machine.num_chips)])
    delta = positions[None, :, :] - positions[:, None, :]
    chip_hops = np.asarray(triangular_mesh_hops(delta[..., 0], delta[..., 1]), dtype=np.int64)
    feedforward = {int(i) for i in without_recurrence if int(i) < len(layers) - 1}
    for li, layer in enumerate(layers):
        own = [] if li in feedforward else list(layer)
        receivers = own + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        groups = _Groups.of(machine, receivers)
        g_chip = np.array(groups.chip, dtype=np.int64)
        g_qpe = np.array(groups.qpe, dtype=np.int64).reshape(-1, 2)
        # per source QPE position: XY hops to every group (the chip does not change them)
        noc: dict[tuple[int, int], tuple[int, int]] = {}
        per_chip: dict[int, tuple] = {}
        for s in layer:
            if s.qpe not in noc:
                d = np.abs(g_qpe - np.array(s.qpe)).sum(axis=1)
                noc[s.qpe] = (int(d.sum()), int(d.max(initial=0)))
            if s.chip not in per_chip:
                per_chip[s.chip] = _chip_summary(machine, s.chip, groups, g_chip, chip_hops, paths)
            hops, edges, by_chip, own_local = per_chip[s.chip]
            own = groups.own(s)
            dropped = own >= 0 and len(groups.pes[own]) == 1
            packets = len(groups) - int(dropped)
            # the own group is 0 hops away: leaving it out changes no sum and no maximum
            routes[s.pe] = SliceRoute(
                source=s,
                key=s.key_offset,
                key_mask=mask_all,
                link_edges=edges,
                packets_per_event=packets,
                noc_hops_per_event=noc[s.qpe][0] if packets else 0,
                chip_packets_per_event=hops[0],
                path_chip_hops_per_event=hops[1],
                max_noc_hops=noc[s.qpe][1] if packets else 0,
                max_chip_hops=hops[2],
                groups=groups,
            )
            if not packets:
                continue
            for chip, route in by_chip.items():
                if chip == s.chip:
                    route = (_own_qpes(own_local, s, groups, own), route[1])
                signatures[chip].setdefault(route, []).append(s.pe)
    tables = _router_tables(signatures, mask_all, placement.key_shift)
    counts = {chip: len(t) for chip, t in tables.items()}
    result = RoutingResult(
        routes=routes,
        router_entries=counts,
        router_capacity=spec.router_entries_per_chip,
        key_shift=placement.key_shift,
        tables=tables,
    )
    _check_router_entries(counts, placement, spec)
    return result


def _router_tables(signatures: dict, mask_all: int, key_shift: int) -> dict[int, list[RouterEntry]]:
    """Each chip's router table: per route signature (``(qpes, links)``) on that chip, one
    key/mask entry per aligned block of the source PEs sharing it, sorted by key."""
    tables: dict[int, list[RouterEntry]] = {}
    for chip, by_route in signatures.items():
        entries = []
        for (qpes, links), pes in by_route.items():
            for start, size in aligned_blocks(pes):
                block_mask = mask_all & ~((size - 1) << key_shift)
                entries.append(
                    RouterEntry(
                        chip=chip,
                        key=start << key_shift,
                        mask=block_mask,
                        qpes=qpes,
                        links=links,
                        sources=tuple(range(start, start + size)),
                    )
                )
        tables[chip] = sorted(entries, key=lambda e: e.key)
    return tables


def _check_router_entries(counts: dict[int, int], placement: Placement, spec) -> None:
    """Raise :class:`MappingError` (with the slice size that would fit) when a chip needs
    more router entries than it has."""
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


def _chip_summary(machine, source_chip: int, groups: _Groups, g_chip, chip_hops, paths) -> tuple:
    """What every source of a layer on ``source_chip`` shares: ``(off-chip packets, path
    chip hops, farthest chip hops)`` per event, the multicast tree's links, the route of
    each chip that needs an entry (the source chip's QPEs as if no source left itself
    out) and the source chip's ``(qpe, mask)`` list (:func:`_own_qpes` patches it)."""
    hops = chip_hops[source_chip, g_chip] if len(g_chip) else np.zeros(0, dtype=np.int64)
    summary = (int(np.count_nonzero(hops)), int(hops.sum()), int(hops.max(initial=0)))
    edges: set[tuple[int, str]] = set()
    for chip in set(groups.chip) - {source_chip}:
        edges.update(_path(machine, source_chip, chip, paths))
    local: dict[int, set] = {}
    out_links: dict[int, set] = {}
    arrived: dict[int, str] = {}
    for chip, qpe, mask in zip(groups.chip, groups.qpe, groups.mask):
        local.setdefault(chip, set()).add((qpe, mask))
    for chip in set(groups.chip):
        path = _path(machine, source_chip, chip, paths)
        for c, link in path:
            out_links.setdefault(c, set()).add(link)
        for (_, link), nxt in zip(path, [c for c, _ in path[1:]] + [chip]):
            arrived[nxt] = link
    by_chip = {}
    for chip in {source_chip} | set(local) | set(out_links):
        qpes = tuple(sorted(local.get(chip, ())))
        links = tuple(sorted(out_links.get(chip, ())))
        straight = (
            chip != source_chip and not qpes and len(links) == 1 and arrived.get(chip) == links[0]
        )
        if not straight and (qpes or links or chip == source_chip):
            by_chip[chip] = (qpes, links)
    own_local = tuple(sorted(local.get(source_chip, ())))
    return summary, tuple(sorted(edges)), by_chip, own_local


def _own_qpes(own_local: tuple, s: PESlice, groups: _Groups, own: int) -> tuple:
    """The source chip's ``(qpe, mask)`` entries for source ``s``: its own QPE's mask
    without its own bit (the QPE left out when no other PE of it receives)."""
    if own < 0:
        return own_local
    out = []
    for qpe, mask in own_local:
        if qpe == s.qpe:
            mask ^= 1 << s.pe_in_qpe
            if not mask:
                continue
        out.append((qpe, mask))
    return tuple(out)


def _path(machine, chip_a: int, chip_b: int, paths: dict) -> list[tuple[int, str]]:
    """:func:`chip_path`, cached per pair of chips in ``paths``."""
    pair = (chip_a, chip_b)
    if pair not in paths:
        paths[pair] = chip_path(machine, chip_a, chip_b)
    return paths[pair]


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
