"""NoC counted along the multicast trees the router tables hold (issue 22, item 6)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.kernels import link_columns
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping.routing import link_incidence, link_loads
from spinnaker2_backend.noc_links import link_busy
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.synthetic import synthetic_network
from spinnaker2_backend.timing import (
    OP_INDEX,
    link_cycles,
    noc_link_edges,
    noc_tail_cycles,
)
from tests.spinnaker2_backend.conftest import timing_info


def _two_chips():
    """Two chips of two QPEs each (8 PEs); layer 0 on PEs 0, 1 (chip 0, QPE (1,1)); layer 1
    on PEs 2..7 (chip 0) and 8..13 (chip 1: QPE (1,1) holds 8..11, QPE (2,1) 12, 13)."""
    spec = ChipSpec(qpe_x_range=(1, 2), qpe_y_range=(1, 1), qpe_holes=())
    net = synthetic_network(layer_sizes=(2, 12), input_size=3, sparsity=0.0, seed=0)
    return map_network(net, machine=Machine(chips=2, spec=spec), max_units_per_pe=1)


def test_tree_counts_by_hand_on_two_chips():
    m = _two_chips()
    assert [s.chip for s in m.slices] == [0] * 8 + [1] * 6
    r0 = m.routes[0]
    # PE 0 reaches PEs 1..13: two QPEs here, two on chip 1 behind the one east link
    assert [(t.chip, t.qpe) for t in r0.targets] == [
        (0, (1, 1)),
        (0, (2, 1)),
        (1, (1, 1)),
        (1, (2, 1)),
    ]
    assert r0.packets_per_event == 4  # one packet per destination QPE (4-bit PE mask)
    assert r0.link_edges == ((0, "E"),)
    assert r0.chip_hops_per_event == 1  # the tree crosses the link once ...
    assert r0.path_chip_hops_per_event == 2  # ... a packet per remote QPE would cross twice
    r8 = m.routes[8]  # layer 1 on chip 1: its own layer only, half of it on chip 0
    assert r8.link_edges == ((1, "W"),) and r8.chip_hops_per_event == 1
    # the router tables hold the same tree: chip 0 sends PE 0's keys east, chip 1 west
    assert "E" in m.routes.lookup(0, r0.key).links
    assert "W" in m.routes.lookup(1, r8.key).links


def test_link_loads_follow_the_trees():
    m = _two_chips()
    loads = link_loads(m.routes, {0: 3, 1: 2, 8: 1, 2: 4})
    # PEs 0 and 1 (layer 0) and PE 2 (layer 1, chip 0) all cross east once per event
    assert loads == {(0, "E"): 3 + 2 + 4, (1, "W"): 1}
    assert link_loads(m.routes, {}) == {}


def test_a_flooded_link_shows_in_the_tail():
    m = _two_chips()
    pes = [s.pe for s in m.layers[1].slices]  # layer 1: PEs 2..13
    edges, incidence = link_incidence(m.routes, pes)
    assert edges == [(0, "E"), (1, "W")]
    assert incidence.sum(axis=1).tolist() == [6, 6]  # six PEs on each side cross over
    costs = CycleCosts(
        noc_hop_cycles=8.0,
        chip_link_cycles=300.0,
        chip_link_packet_cycles=5.0,
        noc_link_packet_cycles=1.0,
    )
    links, cycles = link_cycles(m.routes, pes, costs)
    cycles = cycles.toarray()
    assert links[:2] == edges
    np.testing.assert_array_equal(cycles[:2], incidence * 5.0)  # chip rows: 5 cycles a packet
    info = timing_info(
        "dense",
        len(pes),
        layer=1,
        max_noc_hops=np.ones(len(pes)),
        max_chip_hops=np.ones(len(pes)),
        link_incidence=cycles,
    )
    few = np.zeros(len(pes))
    few[0] = 1  # one event: the latency, 8 + 300
    assert noc_tail_cycles(few, info, costs=costs) == pytest.approx(308.0)
    many = np.zeros(len(pes))
    many[:6] = 20  # 120 events of chip 0 queue on its east link: 120 x 5 cycles
    assert noc_tail_cycles(many, info, costs=costs) == pytest.approx(600.0)


def test_on_chip_tree_edges_by_hand():
    m = _two_chips()
    # PE 2 (layer 1, chip 0, QPE (1,1)): one east NoC link on each chip its tree reaches
    assert noc_link_edges(m.routes[2]) == ((0, (1, 1), (2, 1)), (1, (1, 1), (2, 1)))
    # PE 4 (chip 0, QPE (2,1)): the same links westward
    assert noc_link_edges(m.routes[4]) == ((0, (2, 1), (1, 1)), (1, (2, 1), (1, 1)))
    pes = [s.pe for s in m.layers[1].slices]
    links, cycles = link_cycles(m.routes, pes, CycleCosts(noc_link_packet_cycles=2.0))
    cycles = cycles.toarray()
    noc = {link: row for link, row in zip(links, cycles) if len(link) == 3}
    # PEs 2, 3 (QPE (1,1) of chip 0) and 8..11 (QPE (1,1) of chip 1, its entry position)
    # send east on both chips; PEs 4..7, 12, 13 west
    east0 = noc[(0, (1, 1), (2, 1))]
    assert [pes[j] for j in np.flatnonzero(east0)] == [2, 3, 8, 9, 10, 11]
    assert set(east0[east0 > 0]) == {2.0}
    # every column is its own source's tree (link_cycles shares a tree per QPE and layer)
    for j, pe in enumerate(pes):
        crossed = [link for link, row in zip(links, cycles) if len(link) == 3 and row[j] > 0]
        assert tuple(crossed) == noc_link_edges(m.routes[pe])


def _one_chip_three_qpes():
    """One chip of three QPEs in a row; layer 0 on PEs 0..3 (QPE (1,1)), layer 1 on PEs
    4..11 (QPEs (2,1), (3,1))."""
    spec = ChipSpec(qpe_x_range=(1, 3), qpe_y_range=(1, 1), qpe_holes=())
    net = synthetic_network(layer_sizes=(4, 8), input_size=3, sparsity=0.0, seed=0)
    return map_network(net, machine=Machine(chips=1, spec=spec), max_units_per_pe=1)


def test_a_flooded_on_chip_link_shows_in_the_tail():
    m = _one_chip_three_qpes()
    pes = [s.pe for s in m.layers[0].slices]
    assert pes == [0, 1, 2, 3] and {s.qpe for s in m.layers[0].slices} == {(1, 1)}
    costs = CycleCosts(noc_hop_cycles=8.0, noc_link_packet_cycles=1.0)
    links, cycles = link_cycles(m.routes, pes, costs)
    # no chip link; every layer-0 event crosses (1,1)->(2,1) and (2,1)->(3,1) once
    assert links == [(0, (1, 1), (2, 1)), (0, (2, 1), (3, 1))]
    np.testing.assert_array_equal(cycles.toarray(), np.ones((2, 4)))
    info = timing_info("dense", 4, max_noc_hops=np.full(4, 2.0), link_incidence=cycles)
    one = np.array([1.0, 0, 0, 0])
    assert noc_tail_cycles(one, info, costs=costs) == pytest.approx(16.0)  # 2 hops x 8
    flood = np.full(4, 30.0)  # 120 events queue on the first link: 120 x 1 cycle
    assert noc_tail_cycles(flood, info, costs=costs) == pytest.approx(120.0)
    slow = CycleCosts(noc_hop_cycles=8.0, noc_link_packet_cycles=3.0)
    info_slow = dataclasses.replace(info, link_incidence=link_cycles(m.routes, pes, slow)[1])
    assert noc_tail_cycles(flood, info_slow, costs=slow) == pytest.approx(360.0)


def test_the_simulated_layer_pays_a_flooded_on_chip_link():
    """The compiled step (kernels.noc_tail) and timing.noc_tail_cycles agree on a run."""
    m = _one_chip_three_qpes()
    costs = CycleCosts(noc_link_packet_cycles=50.0)  # slow links: a few events flood them
    xs = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32) * 4
    run = run_mapping(m, xs, costs=costs, record=True)
    tails = run.profile.layer_tails[:, 0]
    fired = np.asarray(run.step_ops[0])[:, OP_INDEX["events"], :]
    assert fired.sum() > 0
    want = fired.sum(axis=1) * 50.0  # every layer-0 event crosses the first link
    np.testing.assert_allclose(tails, np.maximum(want, np.where(fired.sum(1) > 0, 16.0, 0)))


def _dense_link_cycles(routing, pes, costs):
    """The oracle: the dense ``(links, P)`` matrix, filled link by link (as it was built)."""
    links, _ = link_cycles(routing, pes, costs)
    index = {link: k for k, link in enumerate(links)}
    dense = np.zeros((len(links), len(pes)))
    for j, pe in enumerate(pes):
        for e in routing.routes[int(pe)].link_edges:
            dense[index[e], j] = costs.chip_link_packet_cycles
        for e in noc_link_edges(routing.routes[int(pe)]):
            dense[index[e], j] = costs.noc_link_packet_cycles
    return dense


@pytest.mark.parametrize("chip_cost, noc_cost", [(5.0, 1.0), (0.0, 2.5), (3.0, 0.0)])
def test_sparse_link_cycles_equal_the_dense_matrix(chip_cost, noc_cost):
    """link_cycles builds the matrix sparse, column by column: the same entries as the
    dense fill, no stored zeros, sorted; link_busy, link_columns and noc_tail_cycles give
    the same numbers from it as from the dense matrix."""
    m = _two_chips()
    costs = CycleCosts(chip_link_packet_cycles=chip_cost, noc_link_packet_cycles=noc_cost)
    rng = np.random.default_rng(0)
    for layer in m.layers:
        pes = [s.pe for s in layer.slices]
        _, sparse = link_cycles(m.routes, pes, costs)
        dense = _dense_link_cycles(m.routes, pes, costs)
        np.testing.assert_array_equal(sparse.toarray(), dense)
        assert sparse.has_sorted_indices and np.all(sparse.data != 0)
        for got, want in zip(link_columns(sparse), link_columns(dense)):
            np.testing.assert_array_equal(got, want)
        events = rng.integers(0, 5, (7, len(pes))).astype(np.float64)
        np.testing.assert_array_equal(link_busy(events, sparse), events @ dense.T)
        info = timing_info("csr", len(pes), max_noc_hops=np.ones(len(pes)), link_incidence=sparse)
        dense_info = dataclasses.replace(info, link_incidence=dense)
        np.testing.assert_array_equal(
            noc_tail_cycles(events, info, costs=costs),
            noc_tail_cycles(events, dense_info, costs=costs),
        )


def _routes_union(route):
    """The oracle: the union of the XY routes to every target, path by path (as it was)."""
    root = tuple(route.source.qpe)
    edges = set()
    for t in route.targets:
        path = Machine.xy_route(root, tuple(t.qpe))
        edges.update((t.chip, a, b) for a, b in zip(path, path[1:]))
    return tuple(sorted(edges))


@pytest.mark.parametrize("chips, sizes", [(3, (150, 200, 100)), (1, (70, 50)), (2, None)])
def test_tree_edges_equal_the_union_of_the_xy_routes(chips, sizes):
    """noc_link_edges builds each tree from its layer's destination QPEs (row, then
    columns) without a path per target: the same links as the union of every target's XY
    route, for every source of multi-chip and one-chip mappings (QPE holes included)."""
    if sizes is None:
        m = _two_chips()
    else:
        net = synthetic_network(layer_sizes=sizes, input_size=5, sparsity=0.5, seed=3)
        m = map_network(net, machine=Machine(chips=4), max_units_per_pe=1, check=False)
    assert len({s.chip for s in m.slices}) == chips
    for route in m.routes:
        assert noc_link_edges(route) == _routes_union(route), route.source.pe
