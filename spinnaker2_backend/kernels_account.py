"""The compiled accounting of a layer step (numba, ``cache=True``): :func:`cost_product`
and :func:`account_layer`.

:func:`cost_product` is the cost product ``phase_cycles = cost @ ops`` of numpy (OpenBLAS's
``dgemm``) for the simulator's shape, ``(len(PHASES), len(OPS)) @ (len(OPS), P)`` with two
or more PEs: every element a chain of fused multiply-adds over the counts in order, from
``+0``, as OpenBLAS's x86-64 ``dgemm`` kernel (Haswell, Zen) accumulates it (numpy sends a
product with one column, ``P = 1``, to ``dgemv``, which adds in another order: the
simulator keeps numpy's product there). After it, everything a step's accounting computes
runs in one call (:func:`account_layer`): each PE's busy cycles, the slowest PE, the
running counters, the NoC tail, the layer's start in the step, when each PE finished, the
deadline counts and the step history's rows. Every figure is the numpy expression's it
replaces, bit for bit: numpy's reductions are reproduced (:func:`row_sums`,
:func:`column_sums`: ``np.add.reduce`` sums a contiguous run pairwise, in blocks of 8 and
halves above 128 terms, and adds the rows of a non-contiguous axis one after another); the
tests compare them with numpy.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from spinnaker2_backend.kernels import noc_tail

__all__ = ["account_layer", "column_sums", "cost_product", "fma", "row_sums"]


@intrinsic
def fma(typingctx, a, b, c):  # pragma: no cover - compiled
    """``a * b + c`` rounded once (LLVM's ``llvm.fma.f64``: the CPU's fused multiply-add,
    or a correctly rounded emulation where it has none), float64."""

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f64], ir.FunctionType(f64, [f64] * 3))
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, nogil=True)
def cost_product(cost, ops, out):  # pragma: no cover - compiled
    """``out = cost @ ops`` for float64 ``cost`` ``(M, K)``, C-contiguous ``ops`` ``(K, P)``:
    ``out[i, j]`` is ``+0`` then ``fma(cost[i, k], ops[k, j], .)`` for ``k = 0 .. K-1``, the
    order and rounding of OpenBLAS's x86-64 ``dgemm`` kernel, which numpy's product calls
    for the simulator's ``(8, 38) @ (38, P >= 2)`` (the tests compare them). Vectorised over
    the PEs (each element's chain unchanged). A zero cost is skipped: with finite counts
    its term is ``fma(0, b, acc) = acc + (+-0) = acc`` (the chain starts at ``+0`` and never
    holds ``-0``), and most of the matrix is zeros (each count costs cycles in one phase)."""
    rows, inner = cost.shape
    for i in range(rows):
        oi = out[i]
        oi[:] = 0.0
        for k in range(inner):
            a = cost[i, k]
            if a == 0.0:
                continue
            ok = ops[k]
            for j in range(oi.shape[0]):
                oi[j] = fma(a, ok[j], oi[j])


#: numpy's ``pairwise_sum`` block (``PW_BLOCKSIZE``): longer runs are split in two halves.
_PW_BLOCK = 128


@njit(cache=True, nogil=True)
def _pairwise_block(a, start, n, stride):  # pragma: no cover - compiled
    """numpy's ``pairwise_sum`` of ``n <= 128`` terms ``a[start + i * stride]``: below 8 a
    chain from 0.0, else eight partial sums combined as a tree, then the rest in a chain."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[start + i * stride]
        return res
    r0 = a[start]
    r1 = a[start + stride]
    r2 = a[start + 2 * stride]
    r3 = a[start + 3 * stride]
    r4 = a[start + 4 * stride]
    r5 = a[start + 5 * stride]
    r6 = a[start + 6 * stride]
    r7 = a[start + 7 * stride]
    i = 8
    stop = n - n % 8
    while i < stop:
        k = start + i * stride
        r0 += a[k]
        r1 += a[k + stride]
        r2 += a[k + 2 * stride]
        r3 += a[k + 3 * stride]
        r4 += a[k + 4 * stride]
        r5 += a[k + 5 * stride]
        r6 += a[k + 6 * stride]
        r7 += a[k + 7 * stride]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i * stride]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise(a, start, n, stride):  # pragma: no cover - compiled
    """numpy's ``pairwise_sum`` of ``a[start + i * stride]``, ``i < n`` (float64): blocks of
    up to 128 (:func:`_pairwise_block`); a longer run is split into two halves (the first a
    multiple of 8 long), each summed alike, then added. The recursion runs on an explicit
    stack (numba does not cache recursive functions)."""
    if n <= _PW_BLOCK:
        return _pairwise_block(a, start, n, stride)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)  # 0: split next, 1: left half running, 2: right half
    left = np.empty(64)
    depth = 0
    starts[0] = start
    sizes[0] = n
    while True:
        m = sizes[depth]
        if m > _PW_BLOCK:  # split: run the left half first
            half = m // 2
            half -= half % 8
            stage[depth] = 1
            starts[depth + 1] = starts[depth]
            sizes[depth + 1] = half
            stage[depth + 1] = 0
            depth += 1
            continue
        value = _pairwise_block(a, starts[depth], m, stride)
        while True:  # hand the value up until a right half is still to run
            if depth == 0:
                return value
            depth -= 1
            if stage[depth] == 1:
                left[depth] = value
                stage[depth] = 2
                half = sizes[depth] // 2
                half -= half % 8
                starts[depth + 1] = starts[depth] + half * stride
                sizes[depth + 1] = sizes[depth] - half
                stage[depth + 1] = 0
                depth += 1
                break
            value = left[depth] + value


@njit(cache=True, nogil=True, inline="always")
def _reduce(a, start, n, stride):  # pragma: no cover - compiled
    """``np.add.reduce`` of ``n >= 1`` terms along a contiguous run: numpy's pairwise sum
    of all of them."""
    return _pairwise(a, start, n, stride)


@njit(cache=True, nogil=True)
def row_sums(values, out):  # pragma: no cover - compiled
    """``np.sum(values, axis=1, out=out)`` for a C-contiguous float64 ``(R, P)``, bit for bit
    (each row as numpy reduces a contiguous run; ``P = 0``: zeros)."""
    rows, pes = values.shape
    flat = values.reshape(rows * pes)
    for r in range(rows):
        out[r] = _reduce(flat, r * pes, pes, 1) if pes else 0.0


@njit(cache=True, nogil=True)
def column_sums(values, out):  # pragma: no cover - compiled
    """``values.sum(axis=0)`` for a C-contiguous float64 ``(R >= 1, P)`` into ``out``, bit for
    bit: with several columns numpy adds the rows one after another; with one column the
    axis is a contiguous run, reduced pairwise (:func:`_reduce`)."""
    rows, pes = values.shape
    if pes == 1:
        out[0] = _reduce(values.reshape(rows), 0, rows, 1)
        return
    for p in range(pes):
        out[p] = values[0, p]
    for r in range(1, rows):
        for p in range(pes):
            out[p] += values[r, p]


@njit(cache=True, nogil=True)
def account_layer(
    phase_cycles, ops, counters, tail_args, times, before, busy, done, missed, deadline, rows
):  # pragma: no cover - compiled
    """A layer step's accounting after ``phase_cycles = cost @ ops`` (:func:`cost_product`
    or numpy's), in one call.

    Args:
        phase_cycles: ``(PH, P)``; ops: ``(N_OPS, P)`` the step's counts.
        counters: ``(counted_ops, counted_cycles, missed_count)`` the layer's running
            counters, ``+=`` the step's (``missed_count`` ``(P,)`` int64: PEs whose own step,
            from the layer's start, ran past the tick).
        tail_args: ``(events_row, latency, ptr, rows, cycles, links, packet_cycles)`` of
            :func:`~spinnaker2_backend.kernels.noc_tail`.
        times: ``(us_per_cycle, tick_us, chained)`` (``tick_us <= 0``: no deadline;
            ``chained`` 1: the layers run one after another in a step, 0: each starts at
            the step's start, as a layer stepped alone or pipelined).
        before: chained, the running sum of ``layer_cycles + noc_tail`` of the layers before
            (``np.cumsum``'s), else 0: the layer starts at ``cumsum - (its cycles + tail)``,
            as :func:`spinnaker2_backend.timing.step_offsets` computes it.
        busy: ``(P,)`` written: ``phase_cycles.sum(axis=0)``.
        done: ``(P,)`` written: ``busy * us + start * us``, when each PE finished.
        missed: ``(P,)`` bool written: ``done > tick_us`` (all False without a tick).
        deadline: ``(P,)`` int64 ``+= missed`` (the network's count).
        rows: ``(critical, totals)`` written: the slowest PE's phases ``(PH,)`` and
            ``np.sum(ops, axis=1)`` ``(N_OPS,)`` (the step history's rows), or empty arrays.

    Returns ``(layer_cycles, noc_tail_cycles, running)``: the slowest PE's cycles (0 without
    PEs), the NoC tail (:func:`noc_tail`) and ``before + layer_cycles + noc_tail`` (the
    next layer's ``before``). Every figure is the numpy expression's, bit for bit.
    """
    counted_ops, counted_cycles, missed_count = counters
    events_row, latency, ptr, link_rows, link_cycles, links, packet_cycles = tail_args
    us, tick, chained = times
    pes = busy.shape[0]
    if pes:
        column_sums(phase_cycles, busy)
    slowest = 0.0
    arg = 0
    for p in range(pes):
        if p == 0 or busy[p] > slowest:
            slowest = busy[p]
            arg = p
    counted_ops += ops
    counted_cycles += phase_cycles
    tail = noc_tail(ops[events_row], latency, ptr, link_rows, link_cycles, links, packet_cycles)
    step = slowest + tail
    running = before + step
    shift = (running - step) * us if chained else 0.0 * us
    for p in range(pes):
        own = busy[p] * us
        done[p] = own + shift
        if tick > 0:
            if own > tick:
                missed_count[p] += 1
            missed[p] = done[p] > tick
            if missed[p]:
                deadline[p] += 1
        else:
            missed[p] = False
    critical, totals = rows
    if critical.shape[0] and pes:
        for k in range(critical.shape[0]):
            critical[k] = phase_cycles[k, arg]
    if totals.shape[0]:
        row_sums(ops, totals)
    return slowest, tail, running
