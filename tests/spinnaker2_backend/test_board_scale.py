"""A full board on one machine (issue 21, item 5): the vectorised routing, the receive
tables per layer and the streamed synthetic generator equal the paths they replace.

The routing and the byte-balanced split are checked against digests recorded from
``main``'s previous implementations (the per-pair routing, the numpy-per-slice split)
before those copies were deleted, and against properties that do not repeat their code
(:mod:`.routing_checks`): packets walked through the router tables reach exactly the layer
rule's PEs over exactly the route's tree, hops counted on the grid, slices within budget
and as few or as balanced as possible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping.partition import _balanced_split, _greedy_split
from spinnaker2_backend.mapping.routing import route_slices
from spinnaker2_backend.synthetic import (
    magnitude_prune,
    pruned_xavier_normal,
    synthetic_network,
    xavier_normal,
)

from .routing_checks import (
    grid_chip_hops,
    optimal_max_cost,
    routing_digest,
    split_digest,
    walk_packets,
)
from .strategies import FLOAT_DTYPES, layer_sizes


def _placement(layer_sizes, units_per_pe, chips, qx, qy, input_size=3):
    spec = ChipSpec(qpe_x_range=(1, qx), qpe_y_range=(1, qy), qpe_holes=())
    net = synthetic_network(layer_sizes=layer_sizes, input_size=input_size, sparsity=0.0, seed=0)
    need = sum(-(-h // units_per_pe) for h in layer_sizes)
    chips = max(chips, -(-need // (qx * qy * 4)))
    mapping = map_network(
        net, machine=Machine(chips=chips, spec=spec), max_units_per_pe=units_per_pe, check=False
    )
    return mapping.placement


def _full_chips(chips, sizes):
    """Real chips (the default spec: 38 QPEs), several layers, chips partly filled."""
    net = synthetic_network(layer_sizes=sizes, input_size=20, sparsity=0.0, seed=0)
    mapping = map_network(net, machine=Machine(chips=chips), max_units_per_pe=8, check=False)
    return mapping.placement


def assert_routes_reach_their_layers(placement) -> None:
    """Every source's packets, walked through the router tables, reach exactly the other PEs
    of its layer and the PEs of the next one, crossing exactly its tree's links; its
    targets, sums and hops agree with that (hops counted on the QPE and chip grids)."""
    machine, layers = placement.machine, placement.layers
    routing = route_slices(placement)
    assert list(routing.routes) == [s.pe for layer in layers for s in layer]
    receivers_of = {}
    for li, layer in enumerate(layers):
        nxt = layers[li + 1] if li + 1 < len(layers) else ()
        receivers = {s.pe for s in layer} | {s.pe for s in nxt}
        for s in layer:
            receivers_of[s.pe] = receivers - {s.pe}
    for pe, r in routing.routes.items():
        s = r.source
        assert s.pe == pe and r.key == s.key_offset == pe << placement.key_shift
        expected = receivers_of[pe]
        for key in (r.key, r.key + s.num_units - 1):
            assert key & r.key_mask == r.key
            reached, crossed = walk_packets(routing, machine, s.chip, key)
            assert reached == expected, (pe, key)
            assert crossed == set(r.link_edges), (pe, key)
        assert r.destinations == tuple(sorted(expected))
        targets = r.targets
        for t in targets:
            assert t.pe_mask == sum(1 << machine.pe(p).pe_in_qpe for p in t.pes)
            assert {(machine.pe(p).chip, machine.pe(p).qpe) for p in t.pes} == {(t.chip, t.qpe)}
            assert t.noc_hops == abs(t.qpe[0] - s.qpe[0]) + abs(t.qpe[1] - s.qpe[1])
            assert t.chip_hops == grid_chip_hops(machine, s.chip, t.chip)
        assert r.packets_per_event == len(targets) == len({(t.chip, t.qpe) for t in targets})
        assert r.noc_hops_per_event == sum(t.noc_hops for t in targets)
        assert r.path_chip_hops_per_event == sum(t.chip_hops for t in targets)
        assert r.chip_packets_per_event == sum(t.chip_hops > 0 for t in targets)
        assert r.max_noc_hops == max((t.noc_hops for t in targets), default=0)
        assert r.max_chip_hops == max((t.chip_hops for t in targets), default=0)
    for pe in list(routing.routes)[:: max(1, len(routing.routes) // 5)]:
        senders = [q for q, receivers in receivers_of.items() if pe in receivers]
        assert [s.pe for s in routing.sources_of(pe)] == senders
    for chip, table in routing.tables.items():
        assert routing.router_entries[chip] == len(table) <= routing.router_capacity
        for entry in table:  # each entry covers exactly its sources' keys
            covered = sorted(q for q in routing.routes if entry.matches(q << placement.key_shift))
            assert covered == list(entry.sources)


# Recorded from main's per-pair reference routing (tests/.../routing_reference.py, deleted):
# (layer sizes, units per PE, chips, QPE x, QPE y) -> routing_digest.
ROUTING_DIGESTS = [
    (((4, 4, 7, 13), 1, 4, 2, 1), "c19a8a65fe1798fc"),
    (((5, 2), 1, 1, 2, 2), "b4d5ea2cd49d28fc"),
    (((10, 13, 7, 8), 2, 3, 1, 2), "308fb590757fd438"),
    (((8, 2), 1, 1, 2, 2), "3480ad08ec3381e3"),
    (((12, 13, 1, 11), 1, 10, 1, 1), "ec31754919db9203"),
    (((4, 9), 3, 4, 3, 1), "234258e1a8e9a971"),
    (((10, 3), 2, 3, 2, 2), "9c569b23b420db94"),
    (((10, 13), 1, 6, 1, 1), "7ed3d922a2d01dbe"),
    (((6, 4), 1, 3, 2, 2), "0d7a798742ed4e3a"),
    (((2, 10, 10), 3, 3, 1, 1), "7a3a579058361ac5"),
    (((6, 4, 10), 2, 4, 1, 1), "a3e10f548b06c91a"),
    (((5, 2, 13, 7), 2, 5, 2, 2), "56e6e8edd2b55109"),
    (((2, 5, 14, 13), 1, 3, 2, 2), "bf5b461278c72f35"),
    (((1, 1), 1, 2, 3, 1), "ae62bcc1bdfedd04"),
    (((9, 1, 1, 12), 3, 2, 1, 2), "00564df6b9ff88e7"),
    (((7, 5, 3), 2, 4, 3, 2), "3a83b2804a8aa3b2"),
    (((14, 9, 8, 4), 3, 2, 2, 1), "a82866e6c61161fb"),
    (((3, 8), 2, 4, 1, 1), "c7c26fdbefd11456"),
    (((4,), 2, 5, 2, 1), "24a7dba00759a5fa"),
    (((11, 6, 13, 8), 3, 3, 3, 2), "0498db4d0c45c629"),
    (((6, 2, 4), 3, 4, 3, 2), "c9b1cb0a560bcd66"),
    (((8,), 2, 5, 1, 2), "97cc88d81c9afc4d"),
    (((4, 1), 2, 5, 2, 2), "514212adba256b72"),
    (((9, 4, 6, 12), 1, 4, 2, 1), "1c1e2542c01123ce"),
]
FULL_CHIP_DIGESTS = [
    (1, (400, 400, 200), "dcc6fbf8d79c6639"),
    (4, (1200, 1200, 600), "af73e69d22cdc950"),
    (5, (2000, 1500, 1000), "a754b446659df713"),
]


def test_routing_equals_the_recorded_per_pair_routing():
    for case, digest in ROUTING_DIGESTS:
        assert routing_digest(route_slices(_placement(*case))) == digest, case


@pytest.mark.parametrize("chips, sizes, digest", FULL_CHIP_DIGESTS)
def test_routing_on_full_chips(chips, sizes, digest):
    placement = _full_chips(chips, sizes)
    assert routing_digest(route_slices(placement)) == digest
    if chips == 1:  # the walk is per source and per chip: the larger boards take seconds
        assert_routes_reach_their_layers(placement)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=layer_sizes(14, most_layers=4),
    units_per_pe=st.integers(1, 3),
    chips=st.integers(1, 7),
    qx=st.integers(1, 3),
    qy=st.integers(1, 2),
)
def test_routes_reach_exactly_their_layers(layers, units_per_pe, chips, qx, qy):
    assert_routes_reach_their_layers(_placement(tuple(layers), units_per_pe, chips, qx, qy))


def test_routes_by_hand_on_a_row_of_three_chips():
    """Chips 0, 1, 2 in a row (one QPE of 4 PEs each), layers of 3, 4 and 4 units, one per
    PE: PEs 0-2 | 3-6 | 7-10."""
    routing = route_slices(_placement((3, 4, 4), 1, 3, 1, 1))
    r = routing[3]  # layer 1 on chip 0: its layer and layer 2, 1 and 2 chips away
    assert [(t.chip, t.pes, t.pe_mask, t.noc_hops, t.chip_hops) for t in r.targets] == [
        (1, (4, 5, 6, 7), 0b1111, 0, 1),
        (2, (8, 9, 10), 0b0111, 0, 2),
    ]
    assert r.link_edges == ((0, "E"), (1, "E"))
    assert (r.path_chip_hops_per_event, r.chip_hops_per_event) == (3, 2)  # the tree saves 1
    r = routing[4]  # layer 1 on chip 1: both ways
    assert [(t.chip, t.pes, t.chip_hops) for t in r.targets] == [
        (0, (3,), 1),
        (1, (5, 6, 7), 0),
        (2, (8, 9, 10), 1),
    ]
    assert r.link_edges == ((1, "E"), (1, "W"))
    # chip 1 passes PE 3's packets on with an entry (it also delivers), chip 2 has no
    # entry of its own for PE 10's layer-2 packets beyond chip 1
    assert routing.lookup(1, 3 << routing.key_shift).links == ("E",)
    assert routing.lookup(0, 10 << routing.key_shift) is None


def test_noc_hops_by_hand_on_one_chip():
    """One chip of 2 x 2 QPEs, layers of 2 and 10 units: PE 0 at QPE (1, 1) reaches its
    layer's PE 1 there, and layer 1 at (1, 1), (2, 1) and (2, 2)."""
    r = route_slices(_placement((2, 10), 1, 1, 2, 2))[0]
    assert [(t.qpe, t.pes, t.noc_hops) for t in r.targets] == [
        ((1, 1), (1, 2, 3), 0),
        ((2, 1), (4, 5, 6, 7), 1),
        ((2, 2), (12, 13, 14, 15), 2),
    ]
    assert (r.noc_hops_per_event, r.max_noc_hops, r.link_edges) == (3, 2, ())


# ---------------------------------------------------------------- the streamed generator
def _same_csr(a, b) -> bool:
    return (
        all(
            x.dtype == y.dtype and x.tobytes() == y.tobytes()
            for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.data, b.data))
        )
        and a.shape == b.shape
    )


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 90),
    cols=st.integers(1, 90),
    sparsity=st.sampled_from([0.0001, 0.3, 0.5, 0.9, 0.95, 0.99, 0.999]),
    seed=st.integers(0, 2**32 - 1),
    chunk=st.integers(1, 5000),
    dtype=FLOAT_DTYPES,
)
def test_streamed_pruning_equals_dense_then_prune(rows, cols, sparsity, seed, chunk, dtype):
    dense_rng, stream_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    want = magnitude_prune(xavier_normal(dense_rng, rows, cols, dtype=dtype), sparsity)
    got = pruned_xavier_normal(
        stream_rng, rows, cols, sparsity, dtype=dtype, dense_limit=0, chunk=chunk
    )
    assert _same_csr(got, want)
    # the generator is left where the dense draw leaves it: later draws are unchanged
    assert stream_rng.bit_generator.state == dense_rng.bit_generator.state


def test_streamed_pruning_with_ties_at_the_threshold():
    """float16 weights tie often: up to ``tie_limit`` the dense path decides (equal); beyond
    it the lowest tied positions are kept, still the largest ``keep`` magnitudes."""
    rows, cols = 200, 150

    def draw():
        return xavier_normal(np.random.default_rng(1), rows, cols, dtype=np.float16)

    magnitude = np.sort(np.abs(draw().reshape(-1)).astype(np.float64))[::-1]
    # a number to keep that splits a run of equal magnitudes: kept and dropped weights tie
    keep = next(k for k in range(200, 6000) if magnitude[k - 1] == magnitude[k])
    sparsity = 1.0 - keep / (rows * cols)
    want = magnitude_prune(draw(), sparsity)
    kw = {"dtype": np.float16, "dense_limit": 0, "chunk": 999}
    rng = np.random.default_rng(1)
    assert _same_csr(pruned_xavier_normal(rng, rows, cols, sparsity, **kw), want)
    rng2 = np.random.default_rng(1)
    ruled = pruned_xavier_normal(rng2, rows, cols, sparsity, tie_limit=0, **kw)
    assert rng2.bit_generator.state == rng.bit_generator.state
    assert ruled.nnz == want.nnz == keep
    got = np.sort(np.abs(ruled.data.astype(np.float64)))
    assert np.array_equal(got, np.sort(np.abs(want.data.astype(np.float64))))
    threshold = magnitude[keep - 1]
    tied = np.flatnonzero(np.abs(draw().reshape(-1)) == threshold)
    row_of = np.repeat(np.arange(rows), np.diff(ruled.indptr))
    positions = ruled.indices.astype(np.int64) + cols * row_of
    chosen = positions[np.abs(ruled.data) == threshold]
    assert 0 < len(chosen) < len(tied)
    assert np.array_equal(chosen, tied[: len(chosen)])


@pytest.mark.parametrize("preset, sizes", [("paper-lm", (300, 200, 120)), ("paper-dvs", None)])
def test_synthetic_network_is_unchanged_by_streaming(monkeypatch, preset, sizes):
    """Every matrix streamed (limit 0) gives the network the dense path gives."""
    import spinnaker2_backend.synthetic as synthetic

    kw = {"seed": 5, "sparsity": 0.9}
    if sizes:
        kw.update(layer_sizes=sizes, input_size=120, activity=None)
    monkeypatch.setattr(synthetic, "DENSE_PRUNE_ELEMENTS", 0)
    streamed = synthetic.synthetic_network(preset, **kw)
    monkeypatch.setattr(synthetic, "DENSE_PRUNE_ELEMENTS", 1 << 40)
    dense = synthetic.synthetic_network(preset, **kw)
    for a, b in zip(streamed.layers, dense.layers):
        assert _same_csr(a.weight_ih, b.weight_ih) and _same_csr(a.weight_hh, b.weight_hh)
        assert np.array_equal(a.threshold, b.threshold)
    if dense.embedding is not None:
        assert np.array_equal(streamed.embedding, dense.embedding)


# ------------------------------------------------------------------- receive tables
def _dense_tables(ref, mapping, layer):
    """``main``'s dense receive tables and per-event figures, from the routes."""
    slices = mapping.layers[layer].slices
    index = {s.pe: i for i, s in enumerate(slices)}

    def table(sources):
        out = np.zeros((len(sources), len(slices)))
        for i, s in enumerate(sources):
            for t in ref.routes[s.pe].targets:
                for pe in t.pes:
                    if pe in index:
                        out[i, index[pe]] += 1
        return out

    per_event = np.zeros((4, len(slices)))
    for i, s in enumerate(slices):
        r = ref.routes[s.pe]
        per_event[:, i] = (
            len(r.targets),
            sum(t.chip_hops > 0 for t in r.targets),
            sum(t.noc_hops for t in r.targets),
            len(r.link_edges),
        )
    prev = mapping.layers[layer - 1].slices if layer else None
    return table(slices), (table(prev) if prev else None), per_event


@pytest.mark.parametrize(
    "chips, sizes, units", [(1, (9, 7), 1), (4, (40, 30, 20), 1), (3, (50, 30, 20), 2)]
)
def test_receive_tables_equal_the_dense_tables(chips, sizes, units):
    from spinnaker2_backend.layer_setup import layer_routes

    net = synthetic_network(layer_sizes=sizes, input_size=5, sparsity=0.0, seed=0)
    spec = ChipSpec(qpe_x_range=(1, 3), qpe_y_range=(1, 2), qpe_holes=())
    mapping = map_network(
        net, machine=Machine(chips=chips, spec=spec), max_units_per_pe=units, check=False
    )
    ref = route_slices(mapping.placement)
    rng = np.random.default_rng(0)
    for layer in range(len(sizes)):
        slices = mapping.layers[layer].slices
        got = layer_routes(mapping, layer, slices)
        own, into, per_event = _dense_tables(ref, mapping, layer)
        assert np.array_equal(got.receive_own.dense(), own)
        assert np.array_equal(got.per_event, per_event)
        fired = rng.integers(0, 4, len(slices)).astype(np.float64)
        assert np.array_equal(got.receive_own.received(fired), fired @ own)
        if layer:
            assert np.array_equal(got.receive_in.dense(), into)
            before = rng.integers(0, 4, len(into)).astype(np.float64)
            assert np.array_equal(got.receive_in.received(before), before @ into)
        else:
            assert got.receive_in is None
        # the dense table's entries are 0/1 (one copy per receiving PE) and PE^2 in size;
        # the table stores one row and one correction per source
        assert got.receive_own.data.size <= len(slices)


# ------------------------------------------------------------------------- partition
def _split_cases(n: int = 200, seed: int = 21):
    """``(unit bytes, slices, budget)``: costs 0-5000 for 1-300 units, integers or sevenths."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        costs = rng.integers(0, 5001, rng.integers(1, 301))
        fraction, floats = float(rng.random()), bool(rng.integers(0, 2))
        unit_bytes = costs.astype(np.float64) / 7.0 if floats else costs.astype(np.int64)
        k = 1 + int(fraction * (len(costs) - 1))
        yield unit_bytes, k, int(unit_bytes.max()) + 1 + int(fraction * 3000)


def test_splits_equal_the_recorded_previous_splits():
    """Digests of main's numpy-per-slice split (partition_reference.py, deleted) on 200
    seeded cases."""
    cases = list(_split_cases())
    assert split_digest([_balanced_split(u, k) for u, k, _ in cases]) == "56ab5ea3d9fa4e17"
    assert split_digest([_greedy_split(u, b) for u, _, b in cases]) == "5ade5747046cd2ec"


@pytest.mark.parametrize(
    "costs, k, budget, balanced, greedy",
    [
        ([5, 5, 5, 5], 2, 10, [(0, 2), (2, 4)], [(0, 2), (2, 4)]),
        ([9, 1, 1, 1, 1, 1], 2, 9, [(0, 1), (1, 6)], [(0, 1), (1, 6)]),
        ([1, 2, 3, 4, 5], 3, 6, [(0, 3), (3, 4), (4, 5)], [(0, 3), (3, 4), (4, 5)]),
        ([0, 0, 7, 0], 3, 7, [(0, 2), (2, 3), (3, 4)], [(0, 4)]),
        ([3, 8, 3], 1, 20, [(0, 3)], [(0, 3)]),
    ],
)
def test_splits_by_hand(costs, k, budget, balanced, greedy):
    unit_bytes = np.array(costs, dtype=np.int64)
    assert _balanced_split(unit_bytes, k) == balanced
    assert _greedy_split(unit_bytes, budget) == greedy


def _assert_contiguous_cover(bounds, n: int) -> None:
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds)
    assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))


@settings(max_examples=100, deadline=None)
@given(costs=st.lists(st.integers(0, 5000), min_size=1, max_size=24), fraction=st.floats(0.0, 1.0))
def test_splits_are_within_budget_and_as_few_or_as_balanced_as_can_be(costs, fraction):
    """On integer byte counts (what :meth:`LayerMemoryModel.unit_bytes` gives): the balanced
    split has ``k`` slices and the smallest largest slice there is; every greedy slice fits
    its budget and is as long as fits (so no split has fewer slices)."""
    unit_bytes = np.array(costs, dtype=np.int64)
    k = 1 + int(fraction * (len(costs) - 1))
    balanced = _balanced_split(unit_bytes, k)
    _assert_contiguous_cover(balanced, len(costs))
    assert len(balanced) == k
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    assert max(prefix[b] - prefix[a] for a, b in balanced) == optimal_max_cost(costs, k)
    budget = int(unit_bytes.max()) + 1 + int(fraction * 3000)
    greedy = _greedy_split(unit_bytes, budget)
    _assert_contiguous_cover(greedy, len(costs))
    for a, b in greedy:
        assert prefix[b] - prefix[a] <= budget
        assert b == len(costs) or prefix[b + 1] - prefix[a] > budget
