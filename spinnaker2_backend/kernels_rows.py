"""The row-by-row product in groups of eight rows (numba, ``cache=True``): :func:`row_gates`.

A layer's product whose input is mostly non-zero (layer 0's dense embedding row: about
150 k stored weights of the paper LM walked every token) is summed row by row, each row a
chain of dependent additions in stored order (the order scipy's CSR product adds in, which
fixes the bits). :func:`row_gates` keeps eight such chains in flight, one per row of a group
of eight, and reads the group's weights and indices as one contiguous stream: the rows of
the matrix are ranked by length (longest first) and the ranks taken eight at a time; the
first ``m`` terms of the eight rows of a group (``m`` the shortest row's length) are stored
interleaved (term ``k`` of lane ``l`` at ``8 k + l``), the rest of each row after them, lane
after lane. Each row is still summed from ``+0`` over its own terms in stored order, then its
bias added: the bits of :func:`~spinnaker2_backend.kernels.csr_gates` (and scipy's), for
any input (no padding terms are added). It replaces the CSR walk of four rows a quarter of
the matrix apart, which read eight separate streams.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

__all__ = ["LANES", "row_arrays", "row_gates"]

#: Rows summed side by side (and interleaved in memory) by :func:`row_gates`.
LANES = 8


def row_arrays(csr) -> tuple:
    """``(starts, common, lengths, order, indices, data)`` of :func:`row_gates` for a scipy
    CSR matrix with sorted indices: per group of :data:`LANES` ranks its start and the
    interleaved length ``common`` (0 for a last group of fewer rows), per rank the row's
    length and the row itself, and the weights and their columns in the group layout
    (columns as 16-bit integers when they fit)."""
    rows, cols = csr.shape
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    lengths_of_row = np.diff(indptr)
    order = np.argsort(-lengths_of_row, kind="stable").astype(np.int64)
    lengths = np.ascontiguousarray(lengths_of_row[order])
    first = np.arange(0, rows, LANES, dtype=np.int64)
    full = rows - first >= LANES
    common = np.zeros(first.size, dtype=np.int64)
    common[full] = lengths[first[full] + LANES - 1]  # the shortest of a full group
    starts = np.zeros(first.size, dtype=np.int64)
    if first.size:
        np.cumsum(np.add.reduceat(lengths, first)[:-1], out=starts[1:])
    index_type = np.uint16 if cols <= 1 << 16 else np.int32
    indices = np.empty(int(indptr[-1]) if rows else 0, dtype=index_type)
    data = np.empty(indices.size, dtype=csr.data.dtype)
    _fill_groups(indptr, csr.indices, csr.data, order, lengths, starts, common, indices, data)
    return starts, common, lengths, order, indices, data


@njit(cache=True, nogil=True)
def _fill_groups(
    indptr, src_indices, src_data, order, lengths, starts, common, indices, data
):  # pragma: no cover - compiled
    """Copy each row's terms to their places in the group layout (:func:`row_arrays`),
    in one pass and without temporaries the size of the matrix."""
    for group in range(starts.shape[0]):
        m = common[group]
        tail = starts[group] + LANES * m  # where the rest of the group's rows go
        for lane in range(min(LANES, order.shape[0] - group * LANES)):
            rank = group * LANES + lane
            src = indptr[order[rank]]
            for k in range(lengths[rank]):
                if k < m:
                    pos = starts[group] + LANES * k + lane
                else:
                    pos = tail
                    tail += 1
                indices[pos] = src_indices[src + k]
                data[pos] = src_data[src + k]


@njit(cache=True, nogil=True)
def row_gates(rows_arrays, bias, x, out):  # pragma: no cover - compiled
    """``out[b] = W @ x[b] + bias`` for ``W`` in :func:`row_arrays`'s layout.

    Args:
        rows_arrays: :func:`row_arrays`. bias: ``(R,)``. x: ``(B, C)``.
        out: ``(B, R)`` written (the dtype of the weights).
    """
    starts, common, lengths, order, indices, data = rows_arrays
    one, eight = uint64(1), uint64(LANES)
    rows = out.shape[1]
    acc = np.empty(LANES, out.dtype)
    for b in range(x.shape[0]):
        xb = x[b]
        ob = out[b]
        for group in range(starts.shape[0]):
            first = group * LANES
            k = uint64(starts[group])
            stop = k + uint64(common[group]) * eight
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = out.dtype.type(0)
            while k < stop:  # the common length of the eight rows, in lock step
                a0 += data[k] * xb[uint64(indices[k])]
                a1 += data[k + one] * xb[uint64(indices[k + one])]
                a2 += data[k + uint64(2)] * xb[uint64(indices[k + uint64(2)])]
                a3 += data[k + uint64(3)] * xb[uint64(indices[k + uint64(3)])]
                a4 += data[k + uint64(4)] * xb[uint64(indices[k + uint64(4)])]
                a5 += data[k + uint64(5)] * xb[uint64(indices[k + uint64(5)])]
                a6 += data[k + uint64(6)] * xb[uint64(indices[k + uint64(6)])]
                a7 += data[k + uint64(7)] * xb[uint64(indices[k + uint64(7)])]
                k += eight
            acc[0], acc[1], acc[2], acc[3] = a0, a1, a2, a3
            acc[4], acc[5], acc[6], acc[7] = a4, a5, a6, a7
            for lane in range(min(LANES, rows - first)):  # the rest of each row, in order
                s = acc[lane]
                rest = k + uint64(lengths[first + lane] - common[group])
                while k < rest:
                    s += data[k] * xb[uint64(indices[k])]
                    k += one
                r = uint64(order[first + lane])
                ob[r] = s + bias[r]
