"""The routing of ``main`` before it was vectorised (one target list per source, a Python
loop per pair of PEs): the reference the vectorised :func:`route_slices` must equal
exactly (tests only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from spinnaker2_backend.mapping.base import FitAdvice, MappingError, PESlice
from spinnaker2_backend.mapping.placement import Placement
from spinnaker2_backend.mapping.routing import (
    MulticastTarget,
    RouterEntry,
    aligned_blocks,
    chip_path,
)


@dataclass(frozen=True)
class SliceRoute:
    """A route as ``main`` stored it: its target list built eagerly."""

    source: PESlice
    key: int
    key_mask: int
    targets: tuple[MulticastTarget, ...]
    link_edges: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class RoutingResult:
    routes: dict
    router_entries: dict
    router_capacity: int
    key_shift: int
    tables: dict = field(default_factory=dict)


def reference_route_slices(placement: Placement) -> RoutingResult:
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
