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

from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.machine import Machine

__all__ = ["link_cycles", "noc_link_edges"]


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

    Args:
        route: a :class:`~spinnaker2_backend.mapping.routing.SliceRoute`.
    """
    root = tuple(route.source.qpe)
    edges: set = set()
    for t in route.targets:
        path = Machine.xy_route(root, tuple(t.qpe))
        edges.update((t.chip, a, b) for a, b in zip(path, path[1:]))
    return tuple(sorted(edges))


def link_cycles(routing, pes, costs: CycleCosts) -> tuple[list[tuple], np.ndarray]:
    """The links the multicast trees of ``pes`` use and ``(links, len(pes))`` cycles one
    event of each PE occupies each of them: ``chip_link_packet_cycles`` on a chip-to-chip
    link of its tree (:attr:`~spinnaker2_backend.mapping.routing.SliceRoute.link_edges`),
    ``noc_link_packet_cycles`` on an on-chip NoC link (:func:`noc_link_edges`), 0 where it
    does not cross. ``events @ matrix.T`` is each link's busy time in a step
    (:func:`~spinnaker2_backend.timing.noc_tail_cycles`).

    Args:
        routing: the mapping's :class:`~spinnaker2_backend.mapping.routing.RoutingResult`.
        pes: global PE indices (the columns, in this order).

    Returns:
        ``(links, matrix)``: chip links as ``(chip, direction)``, then NoC links as
        ``(chip, from QPE, to QPE)``.
    """
    trees = [routing.routes[int(pe)] for pe in pes]
    chip = sorted({e for r in trees for e in r.link_edges})
    # the sources of one layer on one QPE share their tree (their targets differ only in
    # themselves, on their own QPE, which no link leads to): one tree per QPE and layer
    shared: dict[tuple, tuple] = {}
    noc_trees = []
    for r in trees:
        key = (r.source.chip, tuple(r.source.qpe), r.source.layer)
        if key not in shared:
            shared[key] = noc_link_edges(r)
        noc_trees.append(shared[key])
    noc = sorted({e for edges in noc_trees for e in edges})
    index = {("chip", e): k for k, e in enumerate(chip)}
    index.update({("noc", e): len(chip) + k for k, e in enumerate(noc)})
    matrix = np.zeros((len(chip) + len(noc), len(trees)))
    for j, (r, edges) in enumerate(zip(trees, noc_trees)):
        for e in r.link_edges:
            matrix[index[("chip", e)], j] = costs.chip_link_packet_cycles
        for e in edges:
            matrix[index[("noc", e)], j] = costs.noc_link_packet_cycles
    return [*chip, *noc], matrix
