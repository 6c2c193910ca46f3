"""Compiled kernels of the simulator's hot path (numba, ``cache=True``).

:class:`~spinnaker2_backend.layer_simulator.LayerSimulator` spends its step in three
places: the two gate products of every PE of the layer, the point-wise update (numpy,
:func:`snn_egru.reference.egru_pointwise`, the one definition of the cell) and the per-PE
operation counts. The products and the counts are compiled here, so a step makes a fixed,
small number of calls whatever the number of PEs, events or stored weights (no Python loop
over any of them).

Every kernel takes a leading batch axis: inputs and outputs are ``(B, ...)``, one row per
independent sample (the simulator passes ``B = 1``).

Exactness (the chip-model numbers and outputs stay bit-identical to the numpy/scipy path):

* :func:`csr_gates` sums row ``r`` exactly as scipy's CSR product does: ``0``, then
  ``+ data[k] * x[indices[k]]`` over the stored entries in stored order, each operation
  rounded to the array's dtype (float32 stays float32; numba emits no fused multiply-add
  without ``fastmath``), then ``+ bias[r]``, as ``gate_matvec(w, x) + b`` does;
  :func:`~spinnaker2_backend.kernels_rows.row_gates` (the product's row-by-row walk in a
  step) sums each row the same way, eight rows side by side.
* :func:`event_gates` walks only the columns of sources with ``x[b, j] != 0``, in column
  order, scattering into the rows: per row the same non-zero terms in the same order as
  the CSR sum (a skipped term ``w * 0`` is ``+-0`` and adding it changes nothing).
* :func:`layer_ops` only sums integer-valued counts (exact in float64 in any order).
* :func:`account_step` adds the step to the running counters element by element (as
  ``+=``); maxima are exact in any order.
* :func:`egru_gates` and :func:`egru_update` are :func:`snn_egru.reference.egru_pointwise`
  split around its one ``tanh``, which stays numpy's (its float32 SIMD loop differs from
  libm's ``tanhf`` in the last bit for about 7 % of inputs): every other operation is the
  reference's, in its order and dtype, with its constants cast as numpy casts a Python
  scalar (``1 - z`` in float32 is ``float32(1) - z``); ``expit`` is ``1 / (1 + exp(-v))`` in
  the dtype, as scipy computes it. ``c_tilde - threshold > 0`` is the reference's
  ``heaviside``, and ``y = o * c_tilde`` keeps its ``-0`` for silent units.

The first call of each kernel and dtype compiles it (about a second) and caches the
machine code next to this module (``__pycache__``), so later processes load it directly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import njit, types, uint64
from numba.extending import intrinsic

from spinnaker2_backend.kernels_rows import row_arrays, row_gates

__all__ = [
    "csr_gates",
    "egru_gates",
    "egru_update",
    "account_step",
    "nonzero_and_bad",
    "event_gates",
    "kernel_arrays",
    "layer_counts",
    "layer_gates",
    "layer_ops",
    "pe_sums",
    "product_arrays",
    "source_counts",
    "step_inputs",
]


@njit(cache=True, nogil=True)
def csr_gates(indptr, indices, data, bias, x, out):  # pragma: no cover - compiled
    """``out[b] = W @ x[b] + bias`` for a CSR ``W = (data, indices, indptr)``.

    Four rows are summed side by side, each in its own stored order (so the result is
    scipy's bit for bit): a row's sum is a chain of dependent additions, and four chains in
    flight keep the CPU busy where one would wait on each addition. The four rows are a
    quarter of the matrix apart, so that each is its own sequential stream in memory (four
    neighbouring rows would interleave within one page and defeat the hardware prefetcher
    once the matrix no longer fits in the caches).

    Args:
        indptr: ``(R + 1,)`` row starts. indices: ``(NZ,)`` columns. data: ``(NZ,)`` weights.
        bias: ``(R,)``. x: ``(B, C)``. out: ``(B, R)`` written (same dtype as ``data``).
    """
    rows = out.shape[1]
    quarter = rows // 4
    one = uint64(1)
    zero = uint64(0)
    for b in range(x.shape[0]):
        xb = x[b]
        ob = out[b]
        ob[0:rows] = 0
        for i in range(quarter):
            r0 = i
            r1 = i + quarter
            r2 = i + 2 * quarter
            r3 = i + 3 * quarter
            s0 = uint64(indptr[r0])
            s1 = uint64(indptr[r1])
            s2 = uint64(indptr[r2])
            s3 = uint64(indptr[r3])
            n = min(
                uint64(indptr[r0 + 1]) - s0,
                uint64(indptr[r1 + 1]) - s1,
                uint64(indptr[r2 + 1]) - s2,
                uint64(indptr[r3 + 1]) - s3,
            )
            a0 = ob[r0]  # +0 in the output's dtype
            a1 = a0
            a2 = a0
            a3 = a0
            k = zero
            while k < n:  # the common length of the four rows, in lock step
                a0 += data[s0 + k] * xb[uint64(indices[s0 + k])]
                a1 += data[s1 + k] * xb[uint64(indices[s1 + k])]
                a2 += data[s2 + k] * xb[uint64(indices[s2 + k])]
                a3 += data[s3 + k] * xb[uint64(indices[s3 + k])]
                k += one
            # the rest of each row, continuing its own chain
            ob[r0] = _tail(indptr, indices, data, xb, r0, n, a0) + bias[r0]
            ob[r1] = _tail(indptr, indices, data, xb, r1, n, a1) + bias[r1]
            ob[r2] = _tail(indptr, indices, data, xb, r2, n, a2) + bias[r2]
            ob[r3] = _tail(indptr, indices, data, xb, r3, n, a3) + bias[r3]
        for r in range(4 * quarter, rows):
            ob[r] = _tail(indptr, indices, data, xb, r, zero, ob[r]) + bias[r]


@njit(cache=True, nogil=True, inline="always")
def _tail(indptr, indices, data, xb, r, skip, acc):  # pragma: no cover - compiled
    one = uint64(1)
    k = uint64(indptr[r]) + skip
    stop = uint64(indptr[r + 1])
    while k < stop:
        acc += data[k] * xb[uint64(indices[k])]
        k += one
    return acc


#: :func:`event_gates` requests a column's memory this many fired sources ahead.
PREFETCH_AHEAD = 2


@intrinsic
def prefetch(typingctx, array, index):  # pragma: no cover - compiled
    """A hint that ``array[index]`` is read soon and once (LLVM's ``llvm.prefetch``, locality
    0: a non-temporal prefetch). It changes no value, only when the memory arrives and which
    cache lines it displaces: a step streams megabytes of weights it will not read again
    this step, and a temporal prefetch (locality 3) pushed the step's small arrays and the
    interpreter's own data out of the caches, which cost as much as the prefetch gained."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        bytes_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn_type = ir.FunctionType(ir.VoidType(), [bytes_ptr, i32, i32, i32])
        fn = builder.module.globals.get("llvm.prefetch.p0i8")
        if fn is None:
            fn = ir.Function(builder.module, fn_type, name="llvm.prefetch.p0i8")
        address = builder.bitcast(builder.gep(data, [args[1]]), bytes_ptr)
        builder.call(fn, [address, i32(0), i32(0), i32(1)])  # read, no reuse, data
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, nogil=True, inline="always")
def _prefetch_run(indptr, indices, data, j):  # pragma: no cover - compiled
    """Ask for the stored weights and their indices of row (CSR) or column (CSC) ``j``
    ahead of their use, one hint per 64-byte line."""
    start, stop = uint64(indptr[j]), uint64(indptr[j + 1])
    k = start
    while k < stop:
        prefetch(data, k)
        k += uint64(64 // data.itemsize)
    k = start
    while k < stop:
        prefetch(indices, k)
        k += uint64(64 // indices.itemsize)


@njit(cache=True, nogil=True, inline="always")
def _prefetch_column(indptr, indices, data, counts, j):  # pragma: no cover - compiled
    """Ask for the stored weights, rows and counts of source ``j`` ahead of their use: a
    step walks the columns of the sources that fired, each a short run somewhere in a matrix
    larger than the caches, which the hardware prefetcher alone only catches up with late."""
    _prefetch_run(indptr, indices, data, j)
    if counts.shape[1]:
        prefetch(counts[j], 0)


@njit(cache=True, nogil=True)
def event_gates(indptr, indices, data, bias, x, counts, out, events, walked):  # pragma: no cover
    """Event-driven ``out[b] = W @ x[b] + bias`` for a CSC ``W = (data, indices, indptr)``.

    Only the columns (sources) with ``x[b, j] != 0`` are walked. Also counts, per sample,
    the sources that fired and the stored weights each PE walked. While a column is
    walked, the memory of the one :data:`PREFETCH_AHEAD` further is requested
    (:func:`_prefetch_column`).

    Args:
        indptr: ``(C + 1,)`` column starts. indices: ``(NZ,)`` target rows. data: ``(NZ,)``.
        bias: ``(R,)``. x: ``(B, C)``.
        counts: ``(C, P)`` stored weights (uint16 or int32) of source ``j`` in PE ``p``.
        out: ``(B, R)`` written. events: ``(B,)`` float64 written: sources that fired.
        walked: ``(B, P)`` float64 written: weights each PE walked.
    """
    one, two, three, four = uint64(1), uint64(2), uint64(3), uint64(4)
    pes = counts.shape[1]
    sources = np.empty(x.shape[1], np.int64)
    for b in range(x.shape[0]):
        xb = x[b]
        ob = out[b]
        wb = walked[b]
        ob[:] = 0
        wb[:] = 0.0
        fired = 0
        for j in range(xb.shape[0]):  # the sources that fired, in column order
            if xb[j] != 0:
                sources[fired] = j
                fired += 1
        for a in range(min(PREFETCH_AHEAD, fired)):
            _prefetch_column(indptr, indices, data, counts, sources[a])
        for f in range(fired):
            if f + PREFETCH_AHEAD < fired:
                _prefetch_column(indptr, indices, data, counts, sources[f + PREFETCH_AHEAD])
            j = sources[f]
            v = xb[j]
            k = uint64(indptr[j])
            stop = uint64(indptr[j + 1])
            while k + four <= stop:  # four terms loaded ahead, added in stored order
                i0, i1 = uint64(indices[k]), uint64(indices[k + one])
                i2, i3 = uint64(indices[k + two]), uint64(indices[k + three])
                t0, t1 = data[k] * v, data[k + one] * v
                t2, t3 = data[k + two] * v, data[k + three] * v
                ob[i0] += t0
                ob[i1] += t1
                ob[i2] += t2
                ob[i3] += t3
                k += four
            while k < stop:
                ob[uint64(indices[k])] += data[k] * v
                k += one
            for p in range(pes):
                wb[p] += counts[j, p]
        events[b] = fired
        for r in range(ob.shape[0]):
            ob[r] = ob[r] + bias[r]


@njit(cache=True, nogil=True)
def source_counts(x, counts, totals, events, walked):  # pragma: no cover - compiled
    """What :func:`event_gates` counts, without the product: per sample, the sources that
    fired (``events``, ``(B,)``) and the stored weights each PE walks (``walked``, ``(B, P)``)
    for ``counts`` ``(C, P)`` stored weights of source ``j`` in PE ``p`` and ``totals``
    ``(P,)`` their column sums. When most sources fired, the silent ones are summed and
    taken from the totals (integers: the same result, fewer rows read)."""
    pes = counts.shape[1]
    cols = x.shape[1]
    for b in range(x.shape[0]):
        xb = x[b]
        wb = walked[b]
        fired = 0
        for j in range(cols):
            if xb[j] != 0:
                fired += 1
        events[b] = fired
        silent = fired * 2 > cols
        wb[:] = 0.0
        for j in range(cols):
            if (xb[j] == 0) == silent:
                for p in range(pes):
                    wb[p] += counts[j, p]
        if silent:
            for p in range(pes):
                wb[p] = totals[p] - wb[p]


@njit(cache=True, nogil=True)
def pe_sums(values, owner, out):  # pragma: no cover - compiled
    """``out[b, p] = sum of values[b, i] != 0 over the i with owner[i] == p`` (counts).

    Args:
        values: ``(B, N)``. owner: ``(N,)`` int64 PE (slice) of each entry.
        out: ``(B, P)`` float64 written.
    """
    for b in range(values.shape[0]):
        out[b, :] = 0.0
        for i in range(values.shape[1]):
            if values[b, i] != 0:
                out[b, uint64(owner[i])] += 1.0


@njit(cache=True, nogil=True)
def layer_ops(
    static,
    fired,
    received_from,
    receive_in,
    host_received,
    receive_own,
    per_event,
    op_events,
    op_received,
    op_sent,
    op_sent_chip,
    op_hops,
    op_chip_hops,
    ops,
):  # pragma: no cover - compiled
    """Per-PE operation counts of one step: the static counts plus events and packets.

    Args:
        static: ``(N_OPS, P)`` counts that do not depend on the step.
        fired: ``(B, P)`` events each PE emitted.
        received_from: ``(B, Q)`` events of the previous layer's PEs (``Q = 0`` for layer 0).
        receive_in: packets PE ``p`` receives per event of previous PE ``q``, as the
            ``(base, indptr, indices, data)`` of a ``layer_setup.ReceiveTable``
            (``base[p]`` plus the CSR corrections of row ``q``; ``Q`` rows).
        host_received: ``(B,)`` packets every PE receives from the host (layer 0), or zeros.
        receive_own: the same for an event of own-layer PE ``q`` (``P`` rows).
        per_event: ``(4, P)`` packets, off-chip packets, NoC hops, chip hops per event.
        op_*: row indices of the counts written.
        ops: ``(B, N_OPS, P)`` float64 written.
    """
    pes = fired.shape[1]
    base_own, ptr_own, idx_own, val_own = receive_own
    base_in, ptr_in, idx_in, val_in = receive_in
    for b in range(fired.shape[0]):
        ob = ops[b]
        ob[:, :] = static
        fb = fired[b]
        got = ob[op_received]
        got[:] = host_received[b]
        # integer counts: the shared row times the events, then each source's corrections
        # (the same float64 sums as a dense table, in any order)
        total = 0.0
        for q in range(pes):
            f = fb[q]
            ob[op_events, q] = f
            ob[op_sent, q] = f * per_event[0, q]
            ob[op_sent_chip, q] = f * per_event[1, q]
            ob[op_hops, q] = f * per_event[2, q]
            ob[op_chip_hops, q] = f * per_event[3, q]
            if f != 0:
                total += f
                for k in range(ptr_own[q], ptr_own[q + 1]):
                    got[idx_own[k]] += f * val_own[k]
        if total != 0:
            for p in range(pes):
                got[p] += total * base_own[p]
        rb = received_from[b]
        total = 0.0
        for q in range(rb.shape[0]):
            f = rb[q]
            if f != 0:
                total += f
                for k in range(ptr_in[q], ptr_in[q + 1]):
                    got[idx_in[k]] += f * val_in[k]
        if total != 0:
            for p in range(pes):
                got[p] += total * base_in[p]


@njit(cache=True, nogil=True)
def egru_gates(gi, gh, z, pre):  # pragma: no cover - compiled
    """The point-wise update up to its ``tanh``, for one sample.

    Writes ``z`` ``(H,)`` the update gate and ``pre`` ``(H,)`` the argument of ``tanh``
    (``gi_n + r * gh_n``), from ``gi``, ``gh`` ``(3H,)`` (biases included), in their dtype.
    """
    h = z.shape[0]
    one = z.dtype.type(1)
    for i in range(h):
        r = one / (one + np.exp(-(gi[i] + gh[i])))
        z[i] = one / (one + np.exp(-(gi[h + i] + gh[h + i])))
        pre[i] = gi[2 * h + i] + r * gh[2 * h + i]


@njit(cache=True, nogil=True)
def egru_update(z, n, c, threshold, y, trace, decay, owner, fired):  # pragma: no cover
    """The point-wise update after its ``tanh``, for one sample, in place.

    Args:
        z: ``(H,)`` update gate. n: ``(H,)`` ``tanh`` of :func:`egru_gates`'s ``pre``.
        c: ``(H,)`` cell state, replaced by the reset state. threshold: ``(H,)``.
        y: ``(H,)`` written: the graded events ``o * c_tilde``.
        trace: ``(H,)`` updated ``decay[0] * trace + decay[1] * y``, or ``(0,)`` for none.
        decay: ``(2,)`` the trace's constants in the dtype.
        owner: ``(H,)`` int64 PE of each unit. fired: ``(P,)`` float64 written: events per PE.

    Returns the number of units that fired.
    """
    one = z.dtype.type(1)
    zero = z.dtype.type(0)
    fired[:] = 0.0
    count = 0
    for i in range(z.shape[0]):
        c_tilde = z[i] * c[i] + (one - z[i]) * n[i]
        o = one if c_tilde - threshold[i] > zero else zero
        y[i] = o * c_tilde
        c[i] = c_tilde - o * threshold[i]
        if o != zero:
            count += 1
            fired[uint64(owner[i])] += 1.0
    if trace.shape[0]:
        for i in range(trace.shape[0]):
            trace[i] = decay[0] * trace[i] + decay[1] * y[i]
    return count


@njit(cache=True, nogil=True)
def noc_tail(events, latency, ptr, rows, cycles, links, packet_cycles):  # pragma: no cover
    """Latency of the last packet of a step after the slowest PE (``timing.noc_tail_cycles``
    for one step): the largest ``latency`` ``(P,)`` of the PEs with ``events`` ``(P,)`` > 0
    (0 when none sent), or, with ``links`` links, the busiest link's load times
    ``packet_cycles`` if that is longer. The link matrix (cycles per event of PE ``p`` on
    link ``l``) comes by PE (:func:`link_columns`), so a step costs the links the firing PEs
    use, not every (link, PE) pair; each link adds its non-zero terms in PE order (the
    dense walk's terms, less its +0.0 ones: the same bits)."""
    tail = 0.0
    pes = events.shape[0]
    for p in range(pes):
        if events[p] > 0 and latency[p] > tail:
            tail = latency[p]
    if links and pes:
        load = np.zeros(links)
        for p in range(pes):
            e = events[p]
            if e != 0:
                for j in range(ptr[p], ptr[p + 1]):
                    load[rows[j]] += e * cycles[j]
        busiest = load[0]
        for k in range(1, links):
            if load[k] > busiest:
                busiest = load[k]
        tail = max(tail, busiest * packet_cycles)
    return tail


def link_columns(incidence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, rows, cycles)``: the non-zero entries of ``incidence`` ``(links, P)`` by PE
    (column), links in ascending order, for :func:`noc_tail`; ``incidence`` is a dense
    array or a scipy sparse matrix (``noc_links.link_cycles``'s)."""
    if sp.issparse(incidence):
        csc = sp.csc_array(incidence, dtype=np.float64, copy=True)
        csc.eliminate_zeros()
        csc.sort_indices()
        return (csc.indptr.astype(np.int64), csc.indices.astype(np.int64),
                np.ascontiguousarray(csc.data, dtype=np.float64))  # fmt: skip
    incidence = np.asarray(incidence, dtype=np.float64)
    pe_of, link_of = np.nonzero(incidence.T)  # row-major over the transpose: by PE, then link
    ptr = np.zeros(incidence.shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(pe_of, minlength=incidence.shape[1]), out=ptr[1:])
    return ptr, link_of.astype(np.int64), incidence[link_of, pe_of]


@njit(cache=True, nogil=True)
def account_step(phase_cycles, ops, busy, counted_ops, counted_cycles):  # pragma: no cover
    """The slowest PE's cycles of one step (0 without PEs), and the running counters
    ``+=`` the step's (``(PH, P)`` phase cycles, ``(N_OPS, P)`` counts), in place.

    ``busy`` ``(P,)`` is numpy's ``phase_cycles.sum(axis=0)`` (its order of summation
    depends on the shape: pairwise along a contiguous axis, as with one PE)."""
    slowest = 0.0
    for p in range(busy.shape[0]):
        if p == 0 or busy[p] > slowest:
            slowest = busy[p]
    counted_ops += ops
    counted_cycles += phase_cycles
    return slowest


@njit(cache=True, nogil=True)
def nonzero_and_bad(x):  # pragma: no cover - compiled
    """``(non-zero entries, NaN or infinite entries)`` of a 1-D float array, in one pass."""
    nonzero = 0
    bad = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v != 0:  # NaN too
            nonzero += 1
            if not np.isfinite(v):
                bad += 1
    return nonzero, bad


@njit(cache=True, nogil=True, inline="always")
def _product(gather, scatter, counts, totals, bias, x, nonzero, gather_above, out, events, walked):
    """One product of :func:`layer_gates`: row by row when most sources fired, else over the
    columns of those that fired (the same sums; the counts those of the sources that fired)."""
    if nonzero > gather_above * x.size:
        row_gates(gather, bias, x, out)
        source_counts(x, counts, totals, events, walked)
    else:
        event_gates(scatter[0], scatter[1], scatter[2], bias, x, counts, out, events, walked)


@njit(cache=True, nogil=True)
def layer_gates(
    products, bias_ih, bias_hh, x, n_in, h, n_rec, gather_above, gi, gh, events, walked, z, pre
):  # pragma: no cover - compiled
    """Both products of a layer's step and the point-wise update up to its ``tanh``.

    Args:
        products: per product (input, recurrent) four entries: the rows in groups of eight
            (gather, :func:`~spinnaker2_backend.kernels_rows.row_arrays`), the CSC arrays
            (scatter) of :func:`kernel_arrays`, ``(C, P)`` stored weights per source and PE
            and their ``(P,)`` totals (``P = 0``: no counts).
        bias_ih, bias_hh: ``(3H,)``. x: ``(1, I)``, h: ``(1, H)`` the inputs, with ``n_in``,
            ``n_rec`` non-zero entries. gather_above: fraction of sources firing above
            which a product is summed row by row.
        gi, gh: ``(1, 3H)`` written. events: ``(2, 1)`` and walked: ``(2, 1, P)`` written
            (:func:`event_gates`). z, pre: ``(H,)`` written (:func:`egru_gates`).
    """
    g_ih, s_ih, c_ih, t_ih, g_hh, s_hh, c_hh, t_hh = products
    _product(g_ih, s_ih, c_ih, t_ih, bias_ih, x, n_in, gather_above, gi, events[0], walked[0])
    _product(g_hh, s_hh, c_hh, t_hh, bias_hh, h, n_rec, gather_above, gh, events[1], walked[1])
    egru_gates(gi[0], gh[0], z, pre)


@njit(cache=True, nogil=True)
def layer_counts(
    update,
    x,
    prev_owner,
    fired_before,
    host,
    n_in,
    routes,
    op_rows,
    events,
    walked,
    word,
    ops,
    policy,
):  # pragma: no cover - compiled
    """The point-wise update after its ``tanh`` and the per-PE counts of one step.

    Args:
        update: the arguments of :func:`egru_update` (``fired`` ``(1, P)``).
        x: ``(1, I)`` the layer's input; prev_owner: ``(I,)`` previous layer's PE of each of
            its units (``(0,)`` for layer 0); fired_before: ``(1, Q)`` written.
        host: 1 when the layer's input comes from the host as packets (``n_in`` of them).
        routes: ``(static, receive_in, host_received, receive_own, per_event)`` of
            :func:`layer_ops`; op_rows: its six rows, then the six rows of the event
            format's counts (input / recurrent events, input / recurrent weights, MACs,
            weight bytes) or ``-1`` for a format without them.
        events, walked: the counts of :func:`layer_gates`. word: bytes per word.
        ops: ``(1, N_OPS, P)`` written.
        policy: the receive policy's rows (``-1``: none): ``(dropped, list, hits_in,
            hits_rec, macs, list_value)``: ``dropped`` zeroed (every event kept), ``list``
            set to ``list_value`` (the events appended to the received-event list), and for
            ``bitmap16`` with ``csr`` the hits ``layer_gates`` counted in ``walked``
            (:meth:`~spinnaker2_backend.receive_bitmap.BitmapReceive.step_ops`'s figures).

    Returns the number of units that fired.
    """
    z, n, c, threshold, y, trace, decay, owner, fired = update
    count = egru_update(z, n, c, threshold, y, trace, decay, owner, fired[0])
    if prev_owner.shape[0]:
        pe_sums(x, prev_owner, fired_before)
    static, receive_in, host_received, receive_own, per_event = routes
    if host:
        host_received[0] = n_in
    r0, r1, r2, r3, r4, r5, e0, e1, e2, e3, e4, e5 = op_rows
    layer_ops(
        static, fired, fired_before, receive_in, host_received, receive_own, per_event,
        r0, r1, r2, r3, r4, r5, ops,
    )  # fmt: skip
    if e0 >= 0:  # the event format: events, weights walked, MACs, bytes
        ob = ops[0]
        ev_in, ev_rec = events[0, 0], events[1, 0]
        w_in, w_rec = walked[0, 0], walked[1, 0]
        for p in range(ob.shape[1]):
            ob[e0, p] = ev_in
            ob[e1, p] = ev_rec
            ob[e2, p] = w_in[p]
            ob[e3, p] = w_rec[p]
            ob[e4, p] = w_in[p] + w_rec[p]
            # values + target rows per weight, two column extents per event
            ob[e5, p] = word * (2 * (w_in[p] + w_rec[p]) + 2 * (ev_in + ev_rec))
    r_dropped, r_list, r_hits_in, r_hits_rec, r_macs, list_value = policy
    ob = ops[0]
    if r_dropped >= 0:
        ob[r_dropped, :] = 0.0
    if r_list >= 0:
        ob[r_list, :] = list_value
    if r_hits_in >= 0:
        h_in, h_rec = walked[0, 0], walked[1, 0]
        for p in range(ob.shape[1]):
            ob[r_hits_in, p] = h_in[p]
            ob[r_hits_rec, p] = h_rec[p]
            ob[r_macs, p] = h_in[p] + h_rec[p]
    return count


def kernel_arrays(w) -> tuple:
    """``(indptr, indices, data)`` of a scipy CSR/CSC matrix for the kernels. The indices go
    to 16 bits when they fit: the products read every stored weight each step, so bytes
    per weight (6 instead of 8) set their speed once the matrices outgrow the caches."""
    index_type = np.uint16 if w.shape[1 if w.format == "csr" else 0] <= 1 << 16 else np.int32
    return (
        np.ascontiguousarray(w.indptr, dtype=np.int32),
        np.ascontiguousarray(w.indices, dtype=index_type),
        np.ascontiguousarray(w.data),
    )


def product_arrays(w, counts=None) -> tuple:
    """The four entries of one product for :func:`layer_gates`: ``w`` (scipy) as rows in
    groups of eight (gather, :func:`~spinnaker2_backend.kernels_rows.row_arrays`) and as CSC
    (scatter, :func:`kernel_arrays`), ``counts`` ``(C, P)`` stored weights per source and PE
    (``None``: no counts) and their ``(P,)`` totals."""
    csr = w.tocsr()
    csr.sort_indices()
    csc = w.tocsc()
    csc.sort_indices()
    counts = np.zeros((0, 0), np.int32) if counts is None else np.asarray(counts)
    totals = counts.sum(axis=0).astype(np.float64)
    if counts.max(initial=0) < 1 << 16:  # fewer bytes to read per step
        counts = counts.astype(np.uint16)
    return row_arrays(csr), kernel_arrays(csc), counts, totals


@njit(cache=True, nogil=True)
def step_inputs(x, y):  # pragma: no cover - compiled
    """``(non-zero entries of x, NaN or infinite entries of x, non-zero entries of y)`` of
    two 1-D float arrays (a step's input and the layer's ``y_{t-1}``), in one call."""
    nonzero, bad = nonzero_and_bad(x)
    fired = 0
    for i in range(y.shape[0]):
        if y[i] != 0:
            fired += 1
    return nonzero, bad, fired
