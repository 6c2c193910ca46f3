"""The compiled kernels against scipy, bit for bit, with and without a batch axis."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from spinnaker2_backend.kernels import (
    account_step,
    csr_gates,
    egru_gates,
    egru_update,
    event_gates,
    kernel_arrays,
    layer_counts,
    layer_gates,
    layer_ops,
    link_columns,
    noc_tail,
    nonzero_and_bad,
    pe_sums,
    source_counts,
)
from spinnaker2_backend.kernels_rows import LANES, row_arrays, row_gates
from spinnaker2_backend.layer_setup import ReceiveTable
from tests.networks import synthetic_lm
from tests.spinnaker2_backend.strategies import FLOAT_DTYPES, SEEDS


def _problem(seed, rows, cols, density, activity, batch, dtype):
    rng = np.random.default_rng(seed)
    w = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    w = w.astype(dtype)
    w.sort_indices()
    x = rng.standard_normal((batch, cols)).astype(dtype)
    x[rng.random((batch, cols)) > activity] = 0
    bias = rng.standard_normal(rows).astype(dtype)
    return w, x, bias


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    rows=st.integers(0, 3 * LANES + 5),
    cols=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    activity=st.floats(0.0, 1.0),
    batch=st.integers(1, 3),
    dtype=FLOAT_DTYPES,
    special=st.sampled_from([None, np.inf, -np.inf, np.nan, -0.0]),
)
def test_row_gates_equal_the_csr_walk_bit_for_bit(
    seed, rows, cols, density, activity, batch, dtype, special
):
    """The rows in groups of eight give csr_gates' bits (every byte, NaN and -0 included),
    whatever the rows' lengths, a last group of fewer rows, empty rows or odd inputs."""
    w, x, bias = _problem(seed, rows, cols, density, activity, batch, dtype)
    if special is not None:
        x[0, seed % cols] = special
    want = np.full((batch, rows), np.nan, dtype=dtype)
    csr_gates(w.indptr, w.indices, w.data, bias, x, want)
    arrays = row_arrays(w)
    got = np.full((batch, rows), np.nan, dtype=dtype)
    row_gates(arrays, bias, x, got)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))
    starts, common, lengths, order, indices, data = arrays
    assert np.array_equal(np.sort(order), np.arange(rows)) and indices.size == w.nnz
    assert np.all(np.diff(lengths) <= 0)  # longest rows first


@settings(max_examples=30, deadline=None)
@given(
    seed=SEEDS,
    rows=st.integers(1, 40),
    cols=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    activity=st.floats(0.0, 1.0),
    batch=st.integers(1, 3),
    dtype=FLOAT_DTYPES,
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
    own, into = (ReceiveTable.from_dense(t).arrays for t in (receive_own, receive_in))
    layer_ops(static, fired, np.vstack([prev, prev]), into, host, own,
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
    from spinnaker2_backend import map_network
    from spinnaker2_backend.simulator import run_mapping

    art = synthetic_lm([40, 20], 20, sparsity=0.8, seed=3)
    mapping = map_network(art, weight_format=fmt)
    tokens = np.random.default_rng(0).integers(0, art.embedding.shape[0], 12)
    run = run_mapping(mapping, tokens)
    ref = art.run_reference(tokens)
    for got, want in zip(run.layer_events, ref.layer_events):
        assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    hidden=st.integers(1, 50),
    scale=st.floats(0.01, 30.0),
    trace=st.booleans(),
    dtype=FLOAT_DTYPES,
)
def test_split_pointwise_equals_the_reference_bit_for_bit(seed, hidden, scale, trace, dtype):
    from snn_egru.reference import TRACE_DECAY, egru_pointwise

    rng = np.random.default_rng(seed)
    gi = (scale * rng.standard_normal(3 * hidden)).astype(dtype)
    gh = (scale * rng.standard_normal(3 * hidden)).astype(dtype)
    gh[rng.random(3 * hidden) < 0.2] = 0  # silent inputs: exact zeros and -0 products
    c = (scale * rng.standard_normal(hidden)).astype(dtype)
    threshold = np.abs(rng.standard_normal(hidden)).astype(dtype)
    threshold[rng.random(hidden) < 0.3] = 0
    tr = rng.standard_normal(hidden).astype(dtype) if trace else np.zeros(0, dtype)
    y_want, c_want, o_want = egru_pointwise(gi, gh, c, threshold)
    tr_want = TRACE_DECAY * tr + (1 - TRACE_DECAY) * y_want if trace else tr

    z, pre = np.empty(hidden, dtype), np.empty(hidden, dtype)
    egru_gates(gi, gh, z, pre)
    n = np.tanh(pre)
    pes = 4
    owner = np.arange(hidden, dtype=np.int64) % pes
    fired = np.full(pes, -1.0)
    y, c_got, tr_got = np.empty(hidden, dtype), c.copy(), tr.copy()
    decay = np.array([TRACE_DECAY, 1 - TRACE_DECAY], dtype=dtype)
    count = egru_update(z, n, c_got, threshold, y, tr_got, decay, owner, fired)
    same = lambda a, b: a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))  # noqa: E731
    assert same(y, y_want) and same(c_got, c_want)  # bits: -0 and +0 told apart
    assert same(tr_got, tr_want.astype(dtype))
    assert count == int(o_want.sum())
    assert np.array_equal(fired, np.bincount(owner, weights=o_want, minlength=pes))


def test_split_pointwise_on_every_float32_exponent():
    """``expit`` as ``1 / (1 + exp(-v))`` in float32 is scipy's on a sweep of every
    exponent and sign (the gates' inputs can be anything finite)."""
    from scipy.special import expit

    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    v = bits.view(np.float32)
    v = v[np.isfinite(v)]
    hidden = v.size
    gi = np.zeros(3 * hidden, np.float32)
    gi[:hidden] = v
    gi[hidden : 2 * hidden] = v
    z, pre = np.empty(hidden, np.float32), np.empty(hidden, np.float32)
    egru_gates(gi, np.zeros_like(gi), z, pre)
    assert np.array_equal(z.view(np.uint32), expit(v).view(np.uint32))


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    phases=st.integers(1, 9),
    pes=st.integers(0, 40),
)
def test_account_step_equals_numpy_bit_for_bit(seed, phases, pes):
    rng = np.random.default_rng(seed)
    cycles = rng.random((phases, pes)) * 10.0 ** rng.integers(-3, 9, (phases, pes))
    ops = rng.integers(0, 1000, (5, pes)).astype(np.float64)
    counted_ops, counted_cycles = rng.random((5, pes)), rng.random((phases, pes))
    want_ops, want_cycles = counted_ops + ops, counted_cycles + cycles
    busy = cycles.sum(axis=0)
    slowest = account_step(cycles, ops, busy, counted_ops, counted_cycles)
    assert slowest == (float(busy.max()) if pes else 0.0)
    assert np.array_equal(counted_ops, want_ops) and np.array_equal(counted_cycles, want_cycles)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([0.0, -0.0, 1.5, -2.0, 1e-45, np.inf, -np.inf, np.nan]), max_size=30
    ),
    dtype=FLOAT_DTYPES,
)
def test_nonzero_and_bad_count_as_numpy(values, dtype):
    x = np.array(values, dtype=dtype)
    assert nonzero_and_bad(x) == (np.count_nonzero(x), int(np.sum(~np.isfinite(x))))


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    hidden=st.integers(1, 30),
    inputs=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    activity=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    counted=st.booleans(),
    dtype=FLOAT_DTYPES,
)
def test_layer_gates_and_counts_equal_the_kernels_they_fuse(
    seed, hidden, inputs, density, activity, counted, dtype
):
    """One layer step through layer_gates / tanh / layer_counts is scipy's products and the
    reference's point-wise update bit for bit, with the counts of layer_ops and the event
    format's counts of the sources that fired (csr: none), gathered or scattered."""
    from snn_egru.reference import TRACE_DECAY, egru_pointwise

    rows, pes = 3 * hidden, 3
    w_ih, x, b_ih = _problem(seed, rows, inputs, density, activity[0], 1, dtype)
    w_hh, h, b_hh = _problem(seed + 1, rows, hidden, density, activity[1], 1, dtype)
    owner = np.arange(hidden, dtype=np.int64) % pes
    products = []
    for w in (w_ih, w_hh):
        csc = w.tocsc()
        csc.sort_indices()
        counts = np.zeros((w.shape[1] if counted else 0, pes if counted else 0), np.uint16)
        for j in range(counts.shape[0]):
            rows_j = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
            counts[j] = np.bincount(owner[rows_j % hidden], minlength=pes)
        totals = counts.sum(axis=0).astype(np.float64)
        products += [row_arrays(w), kernel_arrays(csc), counts, totals]
    gi, gh = np.empty((1, rows), dtype), np.empty((1, rows), dtype)
    z, pre = np.empty(hidden, dtype), np.empty(hidden, dtype)
    events, walked = np.full((2, 1), -1.0), np.full((2, 1, pes if counted else 0), -1.0)
    n_in, n_rec = int(np.count_nonzero(x)), int(np.count_nonzero(h))
    layer_gates(tuple(products), b_ih, b_hh, x, n_in, h, n_rec, 0.5, gi, gh, events, walked, z, pre)
    assert np.array_equal(gi[0], w_ih @ x[0] + b_ih) and np.array_equal(gh[0], w_hh @ h[0] + b_hh)

    c = np.random.default_rng(seed).standard_normal(hidden).astype(dtype)
    threshold = np.full(hidden, 0.1, dtype)
    y_want, c_want, o_want = egru_pointwise(gi[0], gh[0], c, threshold)
    y, c_got, trace = np.empty(hidden, dtype), c.copy(), np.zeros(hidden, dtype)
    decay = np.array([TRACE_DECAY, 1 - TRACE_DECAY], dtype=dtype)
    fired = np.full((1, pes), -1.0)
    update = (z, np.tanh(pre), c_got, threshold, y, trace, decay, owner, fired)
    prev_owner = np.arange(inputs, dtype=np.int64) % 2
    fired_before = np.full((1, 2), -1.0)
    static = np.arange(16 * pes, dtype=np.float64).reshape(16, pes)
    rng = np.random.default_rng(seed + 2)
    tables = [ReceiveTable.from_dense(rng.integers(0, 3, shape).astype(np.float64)).arrays
              for shape in ((2, pes), (pes, pes))]  # fmt: skip
    routes = (static, tables[0], np.zeros(1), tables[1], rng.random((4, pes)))
    event_rows = (10, 11, 12, 13, 14, 15) if counted else (-1,) * 6
    ops = np.full((1, 16, pes), np.nan)
    got = layer_counts(update, x, prev_owner, fired_before, False, n_in, routes,
                       (0, 1, 2, 3, 4, 5, *event_rows), events, walked, 4, ops,
                       (-1, -1, -1, -1, -1, 0.0))  # fmt: skip
    same = lambda a, b: np.array_equal(a.view(np.uint8), b.view(np.uint8))  # noqa: E731
    assert same(y, y_want) and same(c_got, c_want) and got == int(o_want.sum())
    want_fired = np.bincount(owner, weights=o_want, minlength=pes)[None]
    assert np.array_equal(fired, want_fired)
    assert np.array_equal(fired_before[0], np.bincount(prev_owner, x[0] != 0, minlength=2))
    want = np.empty((1, 16, pes))
    layer_ops(static, want_fired, fired_before, routes[1], np.zeros(1), routes[3], routes[4],
              0, 1, 2, 3, 4, 5, want)  # fmt: skip
    if counted:
        for k, (v, cnt) in enumerate(((x[0], products[2]), (h[0], products[6]))):
            active = np.flatnonzero(v)
            assert events[k, 0] == active.size
            assert np.array_equal(walked[k, 0], cnt[active].sum(axis=0))
        w_in, w_rec = walked[0, 0], walked[1, 0]
        n_events = events[0, 0] + events[1, 0]
        rows = (events[0, 0], events[1, 0], w_in, w_rec, w_in + w_rec)
        for k, row in enumerate((*rows, 4 * (2 * (w_in + w_rec) + 2 * n_events))):
            want[0, 10 + k] = row
    assert np.array_equal(ops, want)


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    pes=st.integers(0, 30),
    links=st.integers(0, 5),
    silent=st.floats(0.0, 1.0),
)
def test_noc_tail_equals_numpy(seed, pes, links, silent):
    rng = np.random.default_rng(seed)
    events = rng.integers(0, 20, pes).astype(np.float64)
    events[rng.random(pes) < silent] = 0
    latency = rng.integers(0, 5, pes) * 8.0 + rng.integers(0, 3, pes) * 300.0
    incidence = (rng.random((links, pes)) < 0.4).astype(np.float64)
    packet = 37.5
    want = float(np.max(np.where(events > 0, latency, 0.0), initial=0.0))
    if links and pes:
        want = max(want, float((events @ incidence.T).max()) * packet)
    assert noc_tail(events, latency, *link_columns(incidence), links, packet) == want
    assert noc_tail(events, latency, *link_columns(incidence[:0]), 0, packet) == float(
        np.max(latency * (events > 0), initial=0.0)
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=SEEDS,
    rows=st.integers(1, 40),
    pes=st.integers(1, 400),
    scale=st.sampled_from([1.0, 1e-3, 1e9]),
)
def test_row_and_column_sums_equal_numpy_bit_for_bit(seed, rows, pes, scale):
    """numpy's reductions (first element, then pairwise blocks of 8 and halves above 128)
    reproduced: ``np.sum(a, axis=1)`` and ``a.sum(axis=0)``, one column included."""
    from spinnaker2_backend.kernels_account import column_sums, row_sums

    rng = np.random.default_rng(seed)
    a = rng.random((rows, pes)) * scale * rng.integers(1, 1000, (rows, pes))
    got = np.full(rows, np.nan)
    row_sums(a, got)
    assert np.array_equal(got, np.sum(a, axis=1))
    got = np.full(pes, np.nan)
    column_sums(a, got)
    assert np.array_equal(got, a.sum(axis=0))
    column = np.ascontiguousarray(a[:, :1])
    got = np.full(1, np.nan)
    column_sums(column, got)
    assert np.array_equal(got, column.sum(axis=0))


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    pes=st.integers(1, 60),
    tick=st.sampled_from([None, 1.0, 5.0, 50.0]),
    chained=st.booleans(),
)
def test_account_layer_equals_the_numpy_accounting(seed, pes, tick, chained):
    """The fused accounting: busy, slowest PE, counters, NoC tail, the layer's start (the
    cumsum of the layers before), done times, deadlines and the history rows, as numpy."""
    from spinnaker2_backend.kernels_account import account_layer
    from spinnaker2_backend.timing import step_offsets

    rng = np.random.default_rng(seed)
    phases, n_ops = 8, 12
    cost = rng.random((phases, n_ops)) * 3.7
    ops = np.ascontiguousarray(rng.integers(0, 50, (n_ops, pes)).astype(np.float64))
    phase_cycles = cost @ ops
    counted = [rng.random((n_ops, pes)), rng.random((phases, pes)), np.zeros(pes, np.int64)]
    want_counted = [c.copy() for c in counted]
    latency = rng.integers(0, 5, pes) * 8.0
    incidence = (rng.random((2, pes)) < 0.5).astype(np.float64)
    us = 1e6 / 150e6
    earlier = rng.random(2) * 3000  # the layers before: cycles + tail each
    before = float(np.cumsum(earlier)[-1]) if chained else 0.0
    busy, done = np.empty(pes), np.empty(pes)
    missed, deadline = np.empty(pes, bool), np.zeros(pes, np.int64)
    critical, totals = np.empty(phases), np.empty(n_ops)
    times = (us, -1.0 if tick is None else tick, int(chained))
    slowest, tail, running = account_layer(
        phase_cycles, ops, tuple(counted), (3, latency, *link_columns(incidence), 2, 37.5),
        times, before,
        busy, done, missed, deadline, (critical, totals),
    )  # fmt: skip
    want_busy = phase_cycles.sum(axis=0)
    assert np.array_equal(busy, want_busy) and slowest == want_busy.max()
    want_tail = noc_tail(ops[3].copy(), latency, *link_columns(incidence), 2, 37.5)
    assert tail == want_tail
    layer_cycles = np.array([*earlier, slowest]) if chained else np.array([slowest])
    tails = np.array([0.0, 0.0, tail]) if chained else np.array([tail])
    offset = step_offsets(layer_cycles, tails, pipelined=not chained)[-1]
    assert running == (before + (slowest + tail))
    want_done = want_busy * us + offset * us
    assert np.array_equal(done, want_done)
    if tick is None:
        assert not missed.any() and not deadline.any()
    else:
        assert np.array_equal(missed, want_done > tick) and np.array_equal(deadline, missed)
        want_counted[2] += want_busy * us > tick
    want_counted[0] += ops
    want_counted[1] += phase_cycles
    for got, want in zip(counted, want_counted):
        assert np.array_equal(got, want)
    assert np.array_equal(critical, phase_cycles[:, int(np.argmax(want_busy))])
    assert np.array_equal(totals, np.sum(ops, axis=1))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 1.5, -2.0, np.inf, np.nan]), max_size=40))
def test_step_inputs_count_as_numpy(values):
    from spinnaker2_backend.kernels import step_inputs

    x = np.array(values, dtype=np.float32)
    y = x[::-1].copy()
    nonzero, bad, fired = step_inputs(x, y)
    assert nonzero == np.count_nonzero(x) and bad == np.count_nonzero(~np.isfinite(x))
    assert fired == np.count_nonzero(y)


def test_numba_tanh_differs_from_numpys_so_the_step_keeps_numpys():
    """Why the layer step calls numpy's ``tanh`` (``np.tanh``, or numpy's own loop from the
    compiled step: ``kernels_tanh``) and not numba's: numba's float32
    ``tanh`` (libm) rounds differently from numpy's SIMD loop for a large share of inputs
    (36.9 % of 2 M normal inputs with numpy 1.26 / numba 0.68 here), so moving it into the
    kernels would change the outputs. If this fails, the two agree and it may move."""
    from numba import njit

    @njit
    def tanh_into(x, out):  # pragma: no cover - compiled
        for i in range(x.shape[0]):
            out[i] = np.tanh(x[i])

    x = (np.random.default_rng(0).standard_normal(200_000) * 3).astype(np.float32)
    out = np.empty_like(x)
    tanh_into(x, out)
    assert np.count_nonzero(out != np.tanh(x)) > 0


def _numpy_blas_kernel() -> str:
    """``api:architecture`` of numpy's own BLAS (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in str(info.get("filepath", "")):
            return f"{info.get('internal_api')}:{info.get('architecture')}"
    return "none"


#: numpy BLAS kernels whose dgemm adds as :func:`cost_product` does (an FMA chain per
#: element, in order): OpenBLAS's x86-64 Haswell kernel, which its Zen target uses too.
FMA_CHAIN_KERNELS = ("openblas:Haswell", "openblas:Zen")


@settings(max_examples=60, deadline=None)
@given(
    seed=SEEDS,
    pes=st.integers(2, 400),
    scale=st.sampled_from([1.0, 37.0, 1e-3, 1e6]),
    real_costs=st.booleans(),
    zeros=st.floats(0.0, 1.0),
)
def test_cost_product_equals_numpys_blas_product(seed, pes, scale, real_costs, zeros):
    """The compiled cost product is numpy's ``cost @ ops`` bit for bit for the simulator's
    shape (every phase, every count, two or more PEs), with the project's cycle costs or
    random ones, integer counts as a step makes them (zeros in any share)."""
    from spinnaker2_backend.kernels_account import cost_product
    from spinnaker2_backend.timing import OPS, PHASES

    kernel = _numpy_blas_kernel()
    if kernel not in FMA_CHAIN_KERNELS:
        pytest.skip(f"numpy's BLAS here is {kernel}, not one of {FMA_CHAIN_KERNELS}")
    rng = np.random.default_rng(seed)
    shape = (len(PHASES), len(OPS))
    if real_costs:
        values = [0.0, 0.25, 1.0, 1.171875, 3.0, 7.9, 12.9, 17.0, 150.0, 400.0]
        cost = rng.choice(values, size=shape)
    else:
        cost = rng.random(shape) * scale
    ops = rng.integers(0, 1 << 24, (len(OPS), pes)).astype(np.float64)
    ops[rng.random(ops.shape) < zeros] = 0.0
    got = np.full((len(PHASES), pes), np.nan)
    cost_product(cost, ops, got)
    assert np.array_equal(got.view(np.uint64), (cost @ ops).view(np.uint64))


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, rows=st.integers(1, 9), inner=st.integers(0, 12), cols=st.integers(1, 9))
def test_cost_product_is_an_fma_chain_in_order(seed, rows, inner, cols):
    """On any shape and machine, every element is ``+0`` then one correctly rounded
    ``a * b + acc`` per term in order (exact rationals, rounded once per term)."""
    from fractions import Fraction

    from spinnaker2_backend.kernels_account import cost_product

    rng = np.random.default_rng(seed)
    cost = rng.standard_normal((rows, inner)) * 10.0 ** rng.integers(-3, 4, (rows, inner))
    ops = rng.integers(-1000, 1000, (inner, cols)).astype(np.float64)
    got = np.empty((rows, cols))
    cost_product(cost, ops, got)
    for i in range(rows):
        for j in range(cols):
            acc = 0.0
            for k in range(inner):
                acc = float(Fraction(cost[i, k]) * Fraction(ops[k, j]) + Fraction(acc))
            assert got[i, j] == acc and np.signbit(got[i, j]) == np.signbit(acc)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("fmt", ["csr", "event"])
def test_fused_layer_back_equals_the_separate_calls_and_numpys_product(fmt, whole, monkeypatch):
    """A step in one compiled call (layer_step, numpy's tanh loop inside) or through
    layer_back (counts, cost product and accounting in one call) equals the same step
    through layer_front, ``np.tanh``, layer_counts, numpy's ``cost @ ops`` and
    account_layer: outputs, per-PE counts, cycles, times, running counters and reports."""
    from spinnaker2_backend import layer_simulator
    from spinnaker2_backend.mapping import map_network
    from spinnaker2_backend.simulator import NetworkSimulator

    kernel = _numpy_blas_kernel()
    if kernel not in FMA_CHAIN_KERNELS:
        pytest.skip(f"numpy's BLAS here is {kernel}, not one of {FMA_CHAIN_KERNELS}")
    artifact = synthetic_lm([24, 16], 16, seed=3)
    policy = "event-list" if fmt == "event" else "bitmap16"
    mapping = map_network(artifact, pes_per_layer=4, weight_format=fmt, receive_policy=policy)
    xs = artifact.layer_inputs(np.arange(12) % artifact.embedding.shape[0])
    fused = NetworkSimulator(mapping, record=True, progress=False)
    assert all(layer._fused and layer._tanh_loop for layer in fused.layers)
    for layer in fused.layers:
        layer._tanh_loop = layer._tanh_loop if whole else 0
    got = fused.run_layer_inputs(xs)
    monkeypatch.setattr(layer_simulator, "cost_cycles", lambda layer, ops: layer._cost @ ops)
    separate = NetworkSimulator(mapping, record=True, progress=False)
    for layer in separate.layers:
        layer._fused, layer._tanh_loop = False, 0
    want = separate.run_layer_inputs(xs)
    for a, b in zip(got.layer_events, want.layer_events):
        assert np.array_equal(a, b)
    for a, b in zip(fused.layers, separate.layers):
        for name in ("ops", "phase_cycles", "deadline_missed"):
            assert np.array_equal(getattr(a.counters, name), getattr(b.counters, name))
        assert (a.counters.steps, a.counters.layer_cycles, a.counters.tail_cycles) == (
            b.counters.steps, b.counters.layer_cycles, b.counters.tail_cycles)  # fmt: skip
    assert got.report().to_dict() == want.report().to_dict()


@settings(max_examples=60, deadline=None)
@given(
    seed=SEEDS,
    size=st.integers(0, 2000),
    scale=st.sampled_from([1e-30, 1e-3, 1.0, 3.0, 20.0, 1e30]),
    dtype=FLOAT_DTYPES,
    special=st.sampled_from([None, np.inf, -np.inf, np.nan, -0.0, 0.0]),
)
def test_numpys_tanh_loop_called_from_compiled_code_is_np_tanh(seed, size, scale, dtype, special):
    """The compiled step's ``tanh`` (numpy's own loop, found in the ufunc object) gives
    ``np.tanh``'s bits on any length, magnitude and special value, in both float widths."""
    from numba import njit

    from spinnaker2_backend.kernels_tanh import call_unary_loop, numpy_tanh_loop

    @njit
    def tanh_into(address, x, out):  # pragma: no cover - compiled
        call_unary_loop(address, x, out)

    address = numpy_tanh_loop(dtype)
    assert address  # numpy 1.x on 64 bits: the ufunc object reads as expected
    x = (np.random.default_rng(seed).standard_normal(size) * scale).astype(dtype)
    if special is not None and size:
        x[seed % size] = special
    out = np.full_like(x, 7.0)
    tanh_into(address, x, out)
    want = np.tanh(x)
    assert np.array_equal(out.view(f"u{x.itemsize}"), want.view(f"u{x.itemsize}"))


def test_numpys_tanh_loop_on_every_float32_exponent():
    """Every float32 exponent and sign, with random fractions: the compiled call of numpy's
    loop and ``np.tanh`` agree bit for bit (NaNs included, by their bits)."""
    from numba import njit

    from spinnaker2_backend.kernels_tanh import call_unary_loop, numpy_tanh_loop

    @njit
    def tanh_into(address, x, out):  # pragma: no cover - compiled
        call_unary_loop(address, x, out)

    rng = np.random.default_rng(0)
    exponent = np.repeat(np.arange(256, dtype=np.uint32), 4096)
    bits = (exponent << np.uint32(23)) | rng.integers(0, 1 << 23, exponent.size, np.uint32)
    bits = np.concatenate([bits, bits | np.uint32(1 << 31)])
    x = bits.view(np.float32)
    out = np.empty_like(x)
    tanh_into(numpy_tanh_loop(np.float32), x, out)
    assert np.array_equal(out.view(np.uint32), np.tanh(x).view(np.uint32))
