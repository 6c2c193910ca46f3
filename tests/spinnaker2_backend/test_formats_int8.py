"""int8 PE weight formats: hand-computed byte counts, round trips, products bit-equal to the
quantised reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.reference import QuantizedWeight, quantize_weight, quantized_matvec
from spinnaker2_backend.formats_int8 import (
    QUANTIZED_WEIGHT_FORMATS,
    CSRInt8Weights,
    EventInt8Weights,
    MACInt8Weights,
    encode_quantized,
    index_dtype,
    padded_bytes,
)

CODES = np.array(
    [
        [0, 5, 0, 0, -3],
        [0, 0, 0, 0, 0],
        [7, 0, 0, 127, 0],
    ],
    dtype=np.int8,
)
SCALES = np.array([0.5, 1.0, 0.25], dtype=np.float32)


def test_index_widths_and_padding():
    assert index_dtype(0) == np.uint8 and index_dtype(255) == np.uint8
    assert index_dtype(256) == np.uint16 and index_dtype(65_535) == np.uint16
    assert index_dtype(65_536) == np.uint32
    assert padded_bytes(5, 1) == 8 and padded_bytes(3, 2) == 8 and padded_bytes(0, 4) == 0


def test_csr_int8_bytes_by_hand():
    w = CSRInt8Weights.encode(CODES, SCALES)
    # NZ = 4: codes 4 B -> 4; column indices uint8 (C-1 = 4) 4 B -> 4;
    # row starts (R+1 = 4) uint8 (max NZ = 4) 4 B -> 4; scales 3 float32 = 12.  Total 24.
    assert w.nnz == 4
    assert w.column_indices.dtype == np.uint8 and w.row_starts.dtype == np.uint8
    assert w.bytes == 24 and w.words == 6
    assert np.array_equal(w.decode(), CODES)


def test_event_int8_bytes_by_hand():
    w = EventInt8Weights.encode(CODES, SCALES)
    # codes 4 -> 4; target rows uint8 4 -> 4; column starts (C+1 = 6) uint8 6 -> 8; scales 12
    assert w.bytes == 28
    assert np.array_equal(w.decode(), CODES)
    assert w.weights_touched(np.array([0, 1, 0, 1, 0], np.float32)) == 2


def test_mac_int8_tiles_by_hand():
    w = MACInt8Weights.encode(CODES, SCALES)
    # padded to 16 x 8: two tile columns (cols 0-3, 4-7); both hold a non-zero -> 2 tiles
    assert w.num_tiles == 2
    # tiles 2 x 64 B = 128; tile columns uint8 2 -> 4; tile row starts 2 x uint8 -> 4; scales 12
    assert w.bytes == 148
    assert np.array_equal(w.decode(), CODES)
    assert w.tiles_issued(np.array([0, 0, 0, 0, 1], np.float32)) == 1
    assert w.tiles_issued(np.zeros(5, np.float32)) == 0


def test_float_codes_and_bad_scales_are_refused():
    with pytest.raises(ValueError, match="quantise the weights first"):
        CSRInt8Weights.encode(CODES.astype(np.float32), SCALES)
    with pytest.raises(ValueError, match="one per row"):
        EventInt8Weights.encode(CODES, SCALES[:2])
    with pytest.raises(ValueError, match="unknown int8 weight format"):
        encode_quantized(CODES, SCALES, "csr")


def _random_qw(seed, rows, cols, density):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(rows, cols)).astype(np.float32)
    w[rng.random(w.shape) > density] = 0
    return quantize_weight(sp.csr_matrix(w)), rng


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    density=st.floats(0.0, 1.0),
    fmt=st.sampled_from(QUANTIZED_WEIGHT_FORMATS),
)
def test_products_equal_the_quantised_reference_bit_for_bit(seed, rows, cols, density, fmt):
    qw, rng = _random_qw(seed, rows, cols, density)
    x = rng.uniform(-1, 1, size=cols).astype(np.float32)
    x[rng.random(cols) < 0.6] = 0  # most sources silent
    block = encode_quantized(qw.values, qw.scale, fmt)
    assert np.array_equal(block.decode(), qw.values.toarray())
    if fmt == "mac-int8":
        got, want = block.matvec(x, x_scale=1 / 100), quantized_matvec(qw, x, x_scale=1 / 100)
    else:
        got, want = block.matvec(x), quantized_matvec(qw, x)
    assert got.dtype == np.float32
    assert np.array_equal(got, want)  # bit for bit, not approximately


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 30), cols=st.integers(1, 30))
def test_int8_formats_store_about_a_quarter_of_float_csr(seed, rows, cols):
    qw, _ = _random_qw(seed, rows, cols, 0.5)
    nnz = qw.values.nnz
    csr = CSRInt8Weights.encode(qw.values, qw.scale)
    float_csr_bytes = 4 * (2 * nnz + rows + 1)
    # codes: 1 B instead of 4; indices at most 2 B here instead of 4; plus 4 B per row scale
    assert csr.bytes <= float_csr_bytes + 4 * rows + 12


def test_row_slices_equal_the_whole_matrix_product():
    qw, rng = _random_qw(3, 12, 9, 0.4)
    x = rng.uniform(0, 1, size=9).astype(np.float32)
    whole = quantized_matvec(qw, x)
    rows = np.array([0, 4, 8, 1, 5, 9])
    part = QuantizedWeight(values=qw.values[rows], scale=qw.scale[rows])
    block = encode_quantized(part.values, part.scale, "event-int8")
    assert np.array_equal(block.matvec(x), whole[rows])
