"""Oracles for the mapping's routing and partition that are not a copy of them (tests only).

- :func:`routing_digest` / :func:`split_digest`: a canonical hash of everything a routing or
  a list of splits holds; the tests compare it with digests recorded from ``main``'s
  reference implementations (the per-pair routing and the numpy-per-slice split) before
  those copies were deleted.
- :func:`walk_packets`: where one source's packets go when the chip router tables are
  followed hop by hop (key/mask lookup, default routing straight on): the PEs reached and
  the links crossed, to compare with the layer rule (own layer less itself, plus the next
  layer) and with the route's multicast tree.
- :func:`grid_chip_hops`: chip hops by breadth-first search over the chips that exist on
  the grid (the 6 links of the triangular mesh), not by the closed formula.
- :func:`optimal_max_cost`: the smallest largest-slice cost over all splits into ``k``
  contiguous non-empty slices, by dynamic programming.
"""

from __future__ import annotations

import hashlib
from collections import deque

from spinnaker2_backend.mapping.routing import LINK_DIRECTIONS


def _canonical(value):
    """Python ints, strings and nested tuples only (numpy scalars and lists folded)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_canonical(v) for v in value)
    return int(value)


def routing_digest(result) -> str:
    """sha256 (first 16 hex digits) of a routing's routes (source, key, mask, tree links,
    targets with their hops), router entry counts, tables and key shift."""
    h = hashlib.sha256()
    for pe, r in result.routes.items():
        targets = [(t.chip, t.qpe, t.pe_mask, t.pes, t.noc_hops, t.chip_hops) for t in r.targets]
        row = (pe, r.source.pe, r.key, r.key_mask, r.link_edges, targets)
        h.update(repr(_canonical(row)).encode())
    h.update(repr(_canonical(sorted(result.router_entries.items()))).encode())
    for chip in sorted(result.tables):
        entries = [(e.chip, e.key, e.mask, e.qpes, e.links, e.sources) for e in result.tables[chip]]
        h.update(repr((int(chip), _canonical(entries))).encode())
    h.update(repr(int(result.key_shift)).encode())
    return h.hexdigest()[:16]


def split_digest(splits) -> str:
    """sha256 (first 16 hex digits) of a sequence of ``[(start, stop), ...]`` splits."""
    return hashlib.sha256(repr(_canonical(splits)).encode()).hexdigest()[:16]


def _neighbour(machine, chip: int, link: str) -> int:
    (x, y), (dx, dy) = machine.chip_position(chip), LINK_DIRECTIONS[link]
    width, height = machine.chip_grid
    x, y = x + dx, y + dy
    assert 0 <= x < width and 0 <= y < height, f"link {link} of chip {chip} leaves the grid"
    index = y * width + x
    assert index < machine.num_chips, f"link {link} of chip {chip} leads to no chip"
    return index


def walk_packets(routing, machine, source_chip: int, key: int) -> tuple[set[int], set]:
    """Follow the packet of ``key`` from ``source_chip`` through the router tables.

    On each chip the first matching entry delivers to its QPEs' PEs (4-bit masks) and
    copies the packet onto its links; a chip without a matching entry passes a packet on
    along the link it came in by (the source chip drops it). Every chip is visited at most
    once (a tree). Returns the PEs reached (global indices) and the ``(chip, link)`` edges
    crossed.
    """
    reached: set[int] = set()
    crossed: set[tuple[int, str]] = set()
    visited: set[int] = set()
    queue = deque([(source_chip, None)])
    while queue:
        chip, came_by = queue.popleft()
        assert chip not in visited, f"key {key:#x} reaches chip {chip} twice"
        visited.add(chip)
        entry = routing.lookup(chip, key)
        if entry is None:
            links = () if came_by is None else (came_by,)
        else:
            links = entry.links
            for qpe, mask in entry.qpes:
                reached.update(
                    machine.index_of_qpe(chip, qpe, p) for p in range(4) if mask >> p & 1
                )
        for link in links:
            crossed.add((chip, link))
            queue.append((_neighbour(machine, chip, link), link))
    return reached, crossed


def grid_chip_hops(machine, chip_a: int, chip_b: int) -> int:
    """Fewest chip-to-chip links from ``chip_a`` to ``chip_b`` over the chips that exist."""
    width, _ = machine.chip_grid
    dist = {chip_a: 0}
    queue = deque([chip_a])
    while queue:
        chip = queue.popleft()
        x, y = machine.chip_position(chip)
        for dx, dy in LINK_DIRECTIONS.values():
            nx, ny = x + dx, y + dy
            nxt = ny * width + nx
            if 0 <= nx < width and ny >= 0 and nxt < machine.num_chips and nxt not in dist:
                dist[nxt] = dist[chip] + 1
                queue.append(nxt)
    return dist[chip_b]


def optimal_max_cost(costs, k: int) -> float:
    """Smallest possible largest slice cost when ``costs`` is cut into ``k`` contiguous
    non-empty slices (dynamic programming over cut positions, ``O(k n^2)``)."""
    n = len(costs)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    best = [0.0] + [inf] * n  # best[j]: first j units in the slices so far
    for _ in range(k):
        nxt = [inf] * (n + 1)
        for j in range(1, n + 1):
            nxt[j] = min(max(best[i], prefix[j] - prefix[i]) for i in range(j))
        best = nxt
    return best[n]
