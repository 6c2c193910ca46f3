"""A full board on one machine (issue 21, item 5): the vectorised routing, the receive
tables per layer and the streamed synthetic generator equal the paths they replace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinnaker2_backend import ChipSpec, map_network
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping.routing import route_slices
from spinnaker2_backend.synthetic import (
    magnitude_prune,
    pruned_xavier_normal,
    synthetic_network,
    xavier_normal,
)

from .routing_reference import reference_route_slices


def _placement(layer_sizes, units_per_pe, chips, qx, qy, input_size=3):
    spec = ChipSpec(qpe_x_range=(1, qx), qpe_y_range=(1, qy), qpe_holes=())
    net = synthetic_network(layer_sizes=layer_sizes, input_size=input_size, sparsity=0.0, seed=0)
    mapping = map_network(
        net, machine=Machine(chips=chips, spec=spec), max_units_per_pe=units_per_pe, check=False
    )
    return mapping.placement


def assert_same_routing(placement) -> None:
    new, ref = route_slices(placement), reference_route_slices(placement)
    assert list(new.routes) == list(ref.routes)
    for pe, r in ref.routes.items():
        n = new.routes[pe]
        assert (n.source, n.key, n.key_mask, n.link_edges) == (
            r.source,
            r.key,
            r.key_mask,
            r.link_edges,
        )
        assert n.targets == r.targets
        assert n.packets_per_event == len(r.targets)
        assert n.noc_hops_per_event == sum(t.noc_hops for t in r.targets)
        assert n.path_chip_hops_per_event == sum(t.chip_hops for t in r.targets)
        assert n.chip_packets_per_event == sum(t.chip_hops > 0 for t in r.targets)
        assert n.max_noc_hops == max((t.noc_hops for t in r.targets), default=0)
        assert n.max_chip_hops == max((t.chip_hops for t in r.targets), default=0)
        assert n.chip_to_chip == any(t.chip_hops > 0 for t in r.targets)
        assert n.destinations == tuple(sorted(p for t in r.targets for p in t.pes))
    assert new.router_entries == ref.router_entries
    assert new.tables == ref.tables
    assert new.key_shift == ref.key_shift
    some = list(ref.routes)[:: max(1, len(ref.routes) // 5)]
    for pe in some:
        expected = [
            r.source for r in ref.routes.values() if pe in {p for t in r.targets for p in t.pes}
        ]
        assert new.sources_of(pe) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(st.integers(1, 14), min_size=1, max_size=4),
    units_per_pe=st.integers(1, 3),
    chips=st.integers(1, 7),
    qx=st.integers(1, 3),
    qy=st.integers(1, 2),
)
def test_vectorised_routing_equals_the_per_pair_routing(layers, units_per_pe, chips, qx, qy):
    spec_pes = qx * qy * 4 * chips
    need = sum(-(-h // units_per_pe) for h in layers)
    if need > spec_pes:
        chips = -(-need // (qx * qy * 4))
    assert_same_routing(_placement(tuple(layers), units_per_pe, chips, qx, qy))


@pytest.mark.parametrize(
    "chips, sizes",
    [(1, (400, 400, 200)), (4, (1200, 1200, 600)), (5, (2000, 1500, 1000))],
)
def test_vectorised_routing_on_full_chips(chips, sizes):
    """Real chips (the default spec: 38 QPEs), several layers, chips partly filled."""
    net = synthetic_network(layer_sizes=sizes, input_size=20, sparsity=0.0, seed=0)
    mapping = map_network(net, machine=Machine(chips=chips), max_units_per_pe=8, check=False)
    assert_same_routing(mapping.placement)


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
    dtype=st.sampled_from([np.float32, np.float64]),
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
    """``main``'s dense receive tables and per-event figures, from the reference routes."""
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
    ref = reference_route_slices(mapping.placement)
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
@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(st.integers(0, 5000), min_size=1, max_size=300),
    fraction=st.floats(0.0, 1.0),
    floats=st.booleans(),
)
def test_faster_balanced_split_equals_the_previous_one(costs, fraction, floats):
    from spinnaker2_backend.mapping.partition import _balanced_split, _greedy_split

    from .partition_reference import reference_balanced_split, reference_greedy_split

    unit_bytes = np.array(costs, dtype=np.float64 if floats else np.int64)
    if floats:
        unit_bytes = unit_bytes / 7.0
    k = 1 + int(fraction * (len(costs) - 1))
    assert _balanced_split(unit_bytes, k) == reference_balanced_split(unit_bytes, k)
    budget = int(unit_bytes.max()) + 1 + int(fraction * 3000)
    assert _greedy_split(unit_bytes, budget) == reference_greedy_split(unit_bytes, budget)
