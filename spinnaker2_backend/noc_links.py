"""The links a layer's events cross: chip-to-chip links and the on-chip NoC's QPE-to-QPE
links of every source's multicast tree, and the cycles one event occupies each of them.

Part of the time model (:mod:`spinnaker2_backend.timing`, which re-exports both names): every
event crosses each link of its source's multicast tree once, chip-to-chip links
(``chip_link_packet_cycles`` per packet) and the on-chip NoC's links along the XY routes of
the tree (``noc_link_packet_cycles`` per packet); a layer whose events queue on a link ends
its step no earlier than the busiest link's serialisation
(:func:`~spinnaker2_backend.timing.noc_tail_cycles`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from spinnaker2_backend.constants import CycleCosts

__all__ = ["link_busy", "link_cycles", "noc_link_edges", "xy_tree_edges"]


def noc_link_edges(route) -> tuple[tuple[int, tuple[int, int], tuple[int, int]], ...]:
    """The on-chip NoC links of one source's multicast tree, ``(chip, from QPE, to QPE)``,
    sorted: on every chip the tree reaches, the union of the XY routes
    (:meth:`~spinnaker2_backend.machine.Machine.xy_route`) from the source's QPE position to
    the destination QPEs there. One event crosses each of them once (the routers duplicate
    the packet where the routes part).

    On a remote chip the packet is taken to enter at the source's QPE position, the same
    assumption as the hop counts of the targets (``MulticastTarget.noc_hops``) [C]: where a
    chip link attaches to the NoC is not published; the path from the source QPE to the
    chip's link port is not counted either.

    Computed from the destination QPEs of the route's layer (its shared groups), without a
    path per target: an XY route runs along the source's row to the destination's column,
    then along that column, so the union is the source's row out to the farthest column
    either way plus, per destination column, that column out to its farthest QPE either
    way (the same set of links; ``test_noc_trees`` checks it against the routes' union).
    A source's own QPE, which it leaves out of its targets, adds no link either way.

    Args:
        route: a :class:`~spinnaker2_backend.mapping.routing.SliceRoute`.
    """
    groups = route.groups
    if groups is None:
        return ()
    return xy_tree_edges(tuple(route.source.qpe), groups.chip, groups.qpe)


def xy_tree_edges(root, chips, qpes) -> tuple[tuple[int, tuple[int, int], tuple[int, int]], ...]:
    """The union of the XY routes from ``root`` (a QPE position, on every chip) to every
    destination QPE ``qpes[i]`` on chip ``chips[i]``, as sorted ``(chip, from, to)``
    links (see :func:`noc_link_edges`)."""
    rx, ry = root
    columns: dict[int, dict[int, list[int]]] = {}  # chip -> column -> rows
    for chip, (x, y) in zip(chips, qpes):
        columns.setdefault(chip, {}).setdefault(x, []).append(y)
    edges = []
    for chip, by_column in columns.items():
        east, west = max(by_column), min(by_column)
        edges += [(chip, (x, ry), (x + 1, ry)) for x in range(rx, east)]
        edges += [(chip, (x, ry), (x - 1, ry)) for x in range(rx, west, -1)]
        for x, ys in by_column.items():
            edges += [(chip, (x, y), (x, y + 1)) for y in range(ry, max(ys))]
            edges += [(chip, (x, y), (x, y - 1)) for y in range(ry, min(ys), -1)]
    return tuple(sorted(edges))


def link_cycles(routing, pes, costs: CycleCosts) -> tuple[list[tuple], sp.csc_array]:
    """The links the multicast trees of ``pes`` use and the ``(links, len(pes))`` cycles one
    event of each PE occupies each of them, sparse: ``chip_link_packet_cycles`` on a
    chip-to-chip link of its tree
    (:attr:`~spinnaker2_backend.mapping.routing.SliceRoute.link_edges`),
    ``noc_link_packet_cycles`` on an on-chip NoC link (:func:`noc_link_edges`), nothing
    where it does not cross (nor where a cost is 0). :func:`link_busy` turns events into each
    link's busy time in a step (:func:`~spinnaker2_backend.timing.noc_tail_cycles`).

    Built column by column (a PE's links, ascending), never as the dense matrix: a layer of
    ``P`` PEs crosses ``O(P)`` links, so the dense ``(links, P)`` matrix grows with ``P``
    squared (the 48-chip board's build spent about half its time filling it).

    Args:
        routing: the mapping's :class:`~spinnaker2_backend.mapping.routing.RoutingResult`.
        pes: global PE indices (the columns, in this order).

    Returns:
        ``(links, matrix)``: chip links as ``(chip, direction)``, then NoC links as
        ``(chip, from QPE, to QPE)``; ``matrix`` a float64 ``scipy.sparse.csc_array`` with
        sorted indices and no stored zeros (its ``indptr``, ``indices``, ``data`` are
        :func:`~spinnaker2_backend.kernels.link_columns`'s arrays).
    """
    trees = [routing.routes[int(pe)] for pe in pes]
    chip = sorted({e for r in trees for e in r.link_edges})
    # the sources of one layer at one QPE position share their tree (their targets differ
    # only in themselves, on their own QPE, which no link leads to; a remote chip is entered
    # at the source's QPE position): one tree per destination table and QPE position
    shared: dict[tuple, tuple] = {}
    keys = []
    for r in trees:
        key = (id(r.groups), tuple(r.source.qpe))
        if key not in shared:
            shared[key] = noc_link_edges(r)
        keys.append(key)
    noc = sorted({e for edges in shared.values() for e in edges})
    chip_index = {e: k for k, e in enumerate(chip)}
    noc_index = {e: len(chip) + k for k, e in enumerate(noc)}
    # a column's rows: its chip links (rows < len(chip)), then its NoC links, each ascending
    noc_rows = {key: np.array(sorted(noc_index[e] for e in edges), dtype=np.int64)
                for key, edges in shared.items()}  # fmt: skip
    chip_rows: dict[tuple, np.ndarray] = {}
    columns, values = [], []
    chip_cost, noc_cost = float(costs.chip_link_packet_cycles), float(costs.noc_link_packet_cycles)
    for r, key in zip(trees, keys):
        edges = r.link_edges
        if edges not in chip_rows:
            chip_rows[edges] = np.array(sorted({chip_index[e] for e in edges}), dtype=np.int64)
        a = chip_rows[edges] if chip_cost else np.zeros(0, np.int64)
        b = noc_rows[key]
        b = b if noc_cost else b[:0]
        columns.append(np.concatenate([a, b]))
        values.append(np.repeat([chip_cost, noc_cost], [len(a), len(b)]))
    indptr = np.zeros(len(trees) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in columns], out=indptr[1:])
    empty = np.zeros(0, np.int64)
    matrix = sp.csc_array(
        (np.concatenate([*values, empty.astype(np.float64)]), np.concatenate([*columns, empty]),
         indptr),
        shape=(len(chip) + len(noc), len(trees)),
    )  # fmt: skip
    matrix.has_sorted_indices = True
    return [*chip, *noc], matrix


def link_busy(events: np.ndarray, incidence) -> np.ndarray:
    """``(..., links)`` cycles each link is busy for ``events`` ``(..., P)`` per PE and the
    ``(links, P)`` cycles per event of :func:`link_cycles` (sparse, or a dense array)."""
    events = np.asarray(events, dtype=np.float64)
    flat = events.reshape(-1, events.shape[-1])
    if sp.issparse(incidence):
        load = np.asarray(incidence @ flat.T).T
    else:
        load = flat @ np.asarray(incidence, dtype=np.float64).T
    return load.reshape(*events.shape[:-1], incidence.shape[0])
