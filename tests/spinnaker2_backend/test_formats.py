"""Weight formats: exact word counts on hand-computed matrices, encode -> decode round trips."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snn_egru.reference import gate_matvec
from spinnaker2_backend.formats import (
    WEIGHT_FORMATS,
    CSRWeights,
    DenseWeights,
    EventWeights,
    encode,
    encode_pe_weights,
    slice_rows,
    word_count,
)

# 4 x 3 block with 4 non-zeros:
#   row 0: [0, 1.5, 0]
#   row 1: [2, 0,   0]
#   row 2: [0, 0,   0]
#   row 3: [0, -1,  3]
W = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 0], [0, -1, 3]], dtype=np.float32)


def test_csr_hand_computed():
    enc = CSRWeights.encode(W)
    np.testing.assert_array_equal(enc.values, [1.5, 2, -1, 3])
    np.testing.assert_array_equal(enc.column_indices, [1, 0, 1, 2])
    np.testing.assert_array_equal(enc.row_starts, [0, 1, 2, 2, 4])
    assert enc.nnz == 4
    assert enc.words == 2 * 4 + 4 + 1 == 13  # values + column indices + row extents
    assert enc.bytes == 52


def test_event_hand_computed():
    enc = EventWeights.encode(W)
    # column 0 -> row 1 (2); column 1 -> rows 0 (1.5), 3 (-1); column 2 -> row 3 (3)
    np.testing.assert_array_equal(enc.values, [2, 1.5, -1, 3])
    np.testing.assert_array_equal(enc.target_rows, [1, 0, 3, 3])
    np.testing.assert_array_equal(enc.column_starts, [0, 1, 3, 4])
    np.testing.assert_array_equal(enc.column_lengths(), [1, 2, 1])
    assert enc.words == 2 * 4 + 3 + 1 == 12  # values + target rows + column extents
    assert enc.bytes == 48


def test_dense_hand_computed():
    enc = DenseWeights.encode(W)
    assert enc.nnz == 4
    assert enc.words == 12
    assert enc.bytes == 48


def test_weights_touched_show_what_each_format_reads():
    x = np.array([0.0, 0.5, 0.0], dtype=np.float32)  # only source 1 fired
    assert CSRWeights.encode(W).weights_touched(x) == 4  # every stored weight
    assert EventWeights.encode(W).weights_touched(x) == 2  # column 1 only
    assert DenseWeights.encode(W).weights_touched(x) == 12  # the whole block
    expected = W @ x
    for name in WEIGHT_FORMATS:
        np.testing.assert_array_equal(encode(W, name).matvec(x), expected)


def test_word_count_closed_forms():
    assert word_count("csr", 6, 10, 7) == 2 * 7 + 6 + 1
    assert word_count("event", 6, 10, 7) == 2 * 7 + 10 + 1
    assert word_count("dense", 6, 10, 7) == 60
    with pytest.raises(ValueError, match="unknown weight format"):
        word_count("coo", 1, 1, 1)


def test_explicitly_stored_zeros_occupy_memory():
    csr = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert CSRWeights.encode(csr).nnz == 2
    assert DenseWeights.encode(csr).nnz == 1


def test_pe_weights_take_the_three_gate_rows_of_their_units():
    rng = np.random.default_rng(0)
    hidden, inputs = 4, 3
    w_ih = rng.standard_normal((3 * hidden, inputs)).astype(np.float32)
    w_hh = rng.standard_normal((3 * hidden, hidden)).astype(np.float32)
    w_hh[w_hh < 0] = 0
    np.testing.assert_array_equal(slice_rows(hidden, 1, 3), [1, 2, 5, 6, 9, 10])
    for name in WEIGHT_FORMATS:
        pw = encode_pe_weights(
            sp.csr_matrix(w_ih), w_hh, unit_start=1, unit_stop=3, format_name=name
        )
        rows = pw.global_rows
        np.testing.assert_array_equal(pw.weight_ih.decode(), w_ih[rows])
        np.testing.assert_array_equal(pw.weight_hh.decode(), w_hh[rows])
        assert pw.num_units == 2
        assert pw.words == pw.weight_ih.words + pw.weight_hh.words
        assert pw.bytes == 4 * pw.words
    csr = encode_pe_weights(w_ih, w_hh, unit_start=1, unit_stop=3, format_name="csr")
    nnz_hh = int(np.count_nonzero(w_hh[slice_rows(hidden, 1, 3)]))
    assert csr.weight_hh.words == 2 * nnz_hh + 6 + 1
    assert csr.weight_ih.words == 2 * 18 + 6 + 1
    with pytest.raises(ValueError, match="not inside a layer"):
        slice_rows(4, 3, 5)


def test_csr_product_is_bit_exact_with_the_reference():
    rng = np.random.default_rng(1)
    w = sp.random(30, 50, density=0.2, random_state=2, format="csr", dtype=np.float32)
    x = rng.standard_normal(50).astype(np.float32)
    x[rng.random(50) < 0.7] = 0
    full = gate_matvec(w, x)
    hidden = 10
    pw = encode_pe_weights(w, w[:, :hidden], unit_start=2, unit_stop=7, format_name="csr")
    np.testing.assert_array_equal(pw.weight_ih.matvec(x), full[pw.global_rows])


matrices = st.integers(1, 9).flatmap(
    lambda r: st.integers(1, 9).flatmap(
        lambda c: arrays(
            np.float32,
            (r, c),
            elements=st.one_of(st.just(0.0), st.floats(-4, 4, width=32)),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(w=matrices, name=st.sampled_from(WEIGHT_FORMATS), as_sparse=st.booleans())
def test_encode_decode_round_trip(w, name, as_sparse):
    source = sp.csr_matrix(w) if as_sparse else w
    enc = encode(source, name)
    np.testing.assert_array_equal(enc.decode(), w)
    nnz = int(np.count_nonzero(w))
    assert enc.nnz == nnz
    assert enc.words == word_count(name, w.shape[0], w.shape[1], nnz)
    x = np.linspace(-1, 1, w.shape[1], dtype=np.float32)
    np.testing.assert_allclose(enc.matvec(x), w @ x, rtol=1e-5, atol=1e-5)
