"""The compiled kernels against scipy, bit for bit, with and without a batch axis."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from spinnaker2_backend.kernels import csr_gates, event_gates, layer_ops, pe_sums, source_counts


def _problem(seed, rows, cols, density, activity, batch, dtype):
    rng = np.random.default_rng(seed)
    w = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    w = w.astype(dtype)
    w.sort_indices()
    x = rng.standard_normal((batch, cols)).astype(dtype)
    x[rng.random((batch, cols)) > activity] = 0
    bias = rng.standard_normal(rows).astype(dtype)
    return w, x, bias


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 40),
    cols=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    activity=st.floats(0.0, 1.0),
    batch=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_csr_and_event_products_equal_scipy_bit_for_bit(
    seed, rows, cols, density, activity, batch, dtype
):
    w, x, bias = _problem(seed, rows, cols, density, activity, batch, dtype)
    want = np.stack([w @ xb + bias for xb in x])  # scipy's CSR product, one sample at a time
    got = np.full((batch, rows), np.nan, dtype=dtype)
    csr_gates(w.indptr, w.indices, w.data, bias, x, got)
    assert got.dtype == want.dtype and np.array_equal(got, want)

    csc = w.tocsc()
    pes = 3
    owner = np.arange(rows) % pes
    counts = np.zeros((cols, pes), dtype=np.int64)
    for j in range(cols):
        rows_j = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
        counts[j] = np.bincount(owner[rows_j], minlength=pes)
    got_event = np.full((batch, rows), np.nan, dtype=dtype)
    events, walked = np.full(batch, -1.0), np.full((batch, pes), -1.0)
    event_gates(csc.indptr, csc.indices, csc.data, bias, x, counts, got_event, events, walked)
    assert np.array_equal(got_event, want)
    for b in range(batch):
        active = np.flatnonzero(x[b])
        assert events[b] == active.size
        assert np.array_equal(walked[b], counts[active].sum(axis=0))
    # the same counts without the product (sums the silent sources when most fired)
    for count_type in (np.uint16, np.int32):
        events2, walked2 = np.full(batch, -1.0), np.full((batch, pes), -1.0)
        totals = counts.sum(axis=0).astype(np.float64)
        source_counts(x, counts.astype(count_type), totals, events2, walked2)
        assert np.array_equal(events2, events) and np.array_equal(walked2, walked)


def test_pe_sums_and_layer_ops_count_per_sample():
    owner = np.array([0, 0, 1, 2, 2, 2], dtype=np.int64)
    values = np.array([[1.0, 0, 2, 0, 0, 3], [0, 0, 0, 1, 1, 1]])
    fired = np.zeros((2, 3))
    pe_sums(values, owner, fired)
    assert fired.tolist() == [[1, 1, 1], [0, 0, 3]]

    static = np.arange(4 * 3, dtype=np.float64).reshape(4, 3)
    static = np.vstack([static, np.zeros((6, 3))])  # rows 4.. are written by the kernel
    receive_own = np.array([[0, 1, 1], [1, 0, 0], [2, 0, 0]], dtype=np.float64)
    prev = np.array([[1.0, 2.0]])
    receive_in = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float64)
    per_event = np.array([[2, 1, 1], [1, 0, 0], [3, 1, 2], [1, 0, 0]], dtype=np.float64)
    ops = np.zeros((2, 10, 3))
    host = np.array([5.0, 0.0])
    layer_ops(static, fired, np.vstack([prev, prev]), receive_in, host, receive_own,
              per_event, 4, 5, 6, 7, 8, 9, ops)  # fmt: skip
    for b in range(2):
        assert np.array_equal(ops[b, :4], static[:4])
        assert np.array_equal(ops[b, 4], fired[b])
        received = fired[b] @ receive_own + prev[0] @ receive_in + host[b]
        assert np.array_equal(ops[b, 5], received)
        for k in range(4):
            assert np.array_equal(ops[b, 6 + k], fired[b] * per_event[k])


@pytest.mark.parametrize("fmt", ["csr", "event"])
def test_layer_simulator_uses_the_kernels_and_matches_the_reference(fmt):
    from spinnaker2_backend import map_network, synthetic_network
    from spinnaker2_backend.simulator import run_mapping

    art = synthetic_network(
        layer_sizes=[40, 20], input_size=20, vocab_size=50, sparsity=0.8, seed=3,
        input_kind="embedding", readout_kind="tied_decoder",
    )  # fmt: skip
    mapping = map_network(art, weight_format=fmt)
    tokens = np.random.default_rng(0).integers(0, art.embedding.shape[0], 12)
    run = run_mapping(mapping, tokens)
    ref = art.run_reference(tokens)
    for got, want in zip(run.layer_events, ref.layer_events):
        assert np.array_equal(got, want)
