"""The int8 reference step: codes, scales, both product modes against hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.reference import (
    INT8_MAX,
    EGRUParams,
    QuantizedWeight,
    egru_step,
    quantize_codes,
    quantize_params,
    quantize_weight,
    quantized_egru_step,
    quantized_matvec,
    validate_quantized_params,
    validate_quantized_weight,
    weight_scales,
)


def test_codes_by_hand():
    w = np.array([[0.5, -1.0, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    qw = quantize_weight(w)
    # row 0: s = 1/127; 0.5*127 = 63.5 -> 64 (half to even), -127, 31.75 -> 32; zero not stored
    assert qw.scale[0] == np.float32(np.float32(1.0) / 127)
    assert qw.values.toarray()[0].tolist() == [64, -127, 32, 0]
    assert qw.values.dtype == np.int8
    # an all-zero row keeps scale 1 and stores nothing
    assert qw.scale[1] == 1.0 and qw.values[1].nnz == 0
    assert qw.values.nnz == 3


def test_half_to_even_and_saturation():
    assert quantize_codes(np.array([0.5, 1.5, 2.5, -0.5]), 1.0).tolist() == [0, 2, 2, 0]
    assert quantize_codes(np.array([500.0, -500.0]), 1.0).tolist() == [127, -127]


def test_gate_granularity_shares_one_scale_per_block():
    w = np.arange(1, 13, dtype=np.float32).reshape(6, 2)  # H = 2, rows r0 r1 z0 z1 n0 n1
    s = weight_scales(w, granularity="gate", hidden_size=2)
    assert s.tolist() == pytest.approx([4 / 127] * 2 + [8 / 127] * 2 + [12 / 127] * 2)
    with pytest.raises(ValueError, match="granularity"):
        weight_scales(w, granularity="tensor")


def test_pruned_zero_pattern_is_kept():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(12, 9)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0
    qw = quantize_weight(sp.csr_matrix(w))
    stored = qw.values.toarray() != 0
    assert not np.any(stored & (w == 0))
    deq = qw.dequantize().toarray()
    assert np.all(np.abs(deq - w) <= qw.scale[:, None] / 2 + 1e-7)


def test_int8_mode_is_exact_integer_arithmetic():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 5)).astype(np.float32)
    qw = quantize_weight(w)
    x = rng.normal(size=5).astype(np.float32)
    xs = np.float32(0.02)
    out = quantized_matvec(qw, x, x_scale=float(xs))
    q = qw.values.toarray().astype(int)
    e = [int(v) for v in quantize_codes(x, xs)]
    for i in range(6):
        acc = sum(int(q[i, j]) * e[j] for j in range(5))  # exact python integers
        expected = np.float32(acc) * np.float32(qw.scale[i] * xs)
        assert out[i] == expected


def test_float_mode_accumulates_rows_in_column_order():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 7)).astype(np.float32)
    w[:, 3] = 0
    qw = quantize_weight(w)
    x = rng.random(7).astype(np.float32)
    out = quantized_matvec(qw, x)
    q = qw.values.toarray()
    for i in range(6):
        acc = np.float32(0)
        for j in range(7):
            if q[i, j]:
                acc = np.float32(acc + np.float32(q[i, j]) * x[j])
        assert out[i] == np.float32(acc * qw.scale[i])


def test_accumulator_overflow_is_refused():
    qw = QuantizedWeight(
        values=sp.csr_matrix((1, 140_000), dtype=np.int8), scale=np.ones(1, np.float32)
    )
    with pytest.raises(ValueError, match="int32"):
        quantized_matvec(qw, np.zeros(140_000, np.float32), x_scale=1.0)


def test_bad_scales_and_codes_name_the_problem():
    w = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="one scale per output row"):
        quantize_weight(w, scale=np.ones(2, np.float32))
    bad = QuantizedWeight(
        values=sp.csr_matrix(np.array([[-128, 1]], dtype=np.int8)), scale=np.ones(1, np.float32)
    )
    with pytest.raises(ValueError, match=r"\[-127, 127\]"):
        validate_quantized_weight(bad)


def _layer(rng, i, h, sparsity=0.5):
    def mat(r, c):
        m = rng.normal(scale=0.6, size=(r, c)).astype(np.float32)
        m[rng.random(m.shape) < sparsity] = 0
        return sp.csr_matrix(m)

    return EGRUParams(
        weight_ih=mat(3 * h, i),
        weight_hh=mat(3 * h, h),
        bias_ih=rng.normal(scale=0.1, size=3 * h).astype(np.float32),
        bias_hh=rng.normal(scale=0.1, size=3 * h).astype(np.float32),
        threshold=rng.uniform(0.0, 0.3, size=h).astype(np.float32),
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    i=st.integers(1, 9),
    h=st.integers(1, 9),
    mode=st.sampled_from(["float", "int8"]),
)
def test_quantized_step_tracks_the_float_step(seed, i, h, mode):
    rng = np.random.default_rng(seed)
    params = _layer(rng, i, h)
    scales = {} if mode == "float" else {"input_scale": 1 / 64, "event_scale": 1 / 127}
    qp = quantize_params(params, **scales)
    validate_quantized_params(qp)
    assert qp.product_mode == mode
    x = rng.uniform(-1, 1, size=(4, i)).astype(np.float32)
    sq = sf = None
    for t in range(4):
        yq, sq = quantized_egru_step(x[t], sq, qp)
        yf, sf = egru_step(x[t], sf, qp.dequantize())
        assert yq.dtype == np.float32
        assert np.all(np.abs(yq) <= 1.0 + 1e-6)
    # the same network up to quantisation error of the products (bounded, not exact)
    assert np.max(np.abs(sq.c - sf.c)) < 0.2 + (0 if mode == "float" else 0.3)


def test_int8_max_is_symmetric():
    assert INT8_MAX == 127
