"""NoC counted along the multicast trees the router tables hold (issue 22, item 6)."""

from __future__ import annotations

import numpy as np
import pytest

from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping.routing import link_incidence, link_loads
from spinnaker2_backend.synthetic import synthetic_network
from spinnaker2_backend.timing import LayerTimingInfo, noc_tail_cycles


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
    info = LayerTimingInfo(
        layer=1,
        weight_format="dense",
        num_pes=len(pes),
        dram_readers=0,
        readout_readers=0,
        max_noc_hops=np.ones(len(pes)),
        max_chip_hops=np.ones(len(pes)),
        link_incidence=incidence,
    )
    costs = CycleCosts(noc_hop_cycles=8.0, chip_link_cycles=300.0, chip_link_packet_cycles=5.0)
    few = np.zeros(len(pes))
    few[0] = 1  # one event: the latency, 8 + 300
    assert noc_tail_cycles(few, info, costs=costs) == pytest.approx(308.0)
    many = np.zeros(len(pes))
    many[:6] = 20  # 120 events of chip 0 queue on its east link: 120 x 5 cycles
    assert noc_tail_cycles(many, info, costs=costs) == pytest.approx(600.0)
