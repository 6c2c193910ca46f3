"""A compiled layer step (numba): in one call, :func:`layer_step`, or in two around
``np.tanh``, :func:`layer_front` and :func:`layer_back`.

:func:`layer_front`: the input checks' counts, the ``bitmap16`` rounding of the received
values, the event-list capacity test and both products up to the point-wise update's
``tanh``. :func:`layer_back`: the rest of the point-wise update, the per-PE counts, the
cost product and the accounting (:func:`~spinnaker2_backend.kernels.layer_counts`,
:func:`~spinnaker2_backend.kernels_account.cost_product`,
:func:`~spinnaker2_backend.kernels_account.account_layer` in that order, the same values,
so the same bits as the three calls and the BLAS product they replace). :func:`layer_step`
runs both with numpy's own ``tanh`` loop between them
(:mod:`~spinnaker2_backend.kernels_tanh`).

Before, a step of the ``csr`` / ``bitmap16`` layout made four to six calls here (the
checks' counts, two roundings, two ``count_nonzero``, the products), each with numba's
dispatch cost and numpy's allocation around it. :func:`layer_front` runs the same kernels
(:func:`~spinnaker2_backend.kernels.nonzero_and_bad`,
:func:`~spinnaker2_backend.kernels_half.round_binary16`,
:func:`~spinnaker2_backend.kernels.layer_gates`) in the same order on the same values, so
the numbers are the same bits (the golden run digests pin them).
"""

from __future__ import annotations

from numba import njit

from spinnaker2_backend.kernels import layer_counts, layer_gates, nonzero_and_bad
from spinnaker2_backend.kernels_account import account_layer, cost_product
from spinnaker2_backend.kernels_half import round_binary16
from spinnaker2_backend.kernels_tanh import call_unary_loop

__all__ = [
    "FRONT_BAD_INPUT",
    "FRONT_DONE",
    "FRONT_OVERFLOW",
    "FRONT_TOO_WIDE",
    "layer_back",
    "layer_front",
    "layer_step",
]

#: :func:`layer_front`'s status: products computed.
FRONT_DONE = 0
#: The input holds NaN or infinite values (nothing computed; the caller raises).
FRONT_BAD_INPUT = 1
#: A received value is beyond binary16's range (nothing computed; the caller raises).
FRONT_TOO_WIDE = 2
#: An event list would overflow (the received values are rounded, the products not
#: computed: the caller takes the general path, which drops or raises).
FRONT_OVERFLOW = 3


@njit(cache=True, nogil=True)
def layer_front(x, y, xr, yr, rounding, caps, products, biases, gather_above, gates, counts):
    """Checks, rounding, capacity and both products of one batch-1 step of a layer.

    Args:
        x: ``(I,)`` the layer's input. y: ``(H,)`` the layer's ``y_{t-1}``.
        xr: ``(1, I)`` written: ``x``, rounded to binary16 when ``rounding[0]``.
        yr: ``(1, H)`` written: ``y``, rounded to binary16 when ``rounding[1]`` (the new
            ``y_{t-1}`` of the layer).
        caps: ``(input cap, recurrent cap)`` of an event list, ``-1`` for none: more
            events than a cap returns :data:`FRONT_OVERFLOW` without the products.
        products, gather_above: of :func:`~spinnaker2_backend.kernels.layer_gates`.
        biases: ``(bias_ih, bias_hh)``. gates: ``(gi, gh, z, pre)`` and counts:
            ``(events, walked)``: :func:`~spinnaker2_backend.kernels.layer_gates`'s.

    Returns:
        ``(n_in, n_rec, status)``: the non-zero entries of ``xr`` and ``yr`` and one of
        the ``FRONT_*`` statuses.
    """
    n_in, bad = nonzero_and_bad(x)
    if bad:
        return n_in, 0, FRONT_BAD_INPUT
    xb, yb = xr[0], yr[0]
    if rounding[0]:
        n_in, largest = round_binary16(x, xb)
        if largest >= 0:
            return n_in, 0, FRONT_TOO_WIDE
    else:
        xb[:] = x
    if rounding[1]:
        n_rec, largest = round_binary16(y, yb)
        if largest >= 0:
            return n_in, n_rec, FRONT_TOO_WIDE
    else:
        n_rec = 0
        for i in range(y.shape[0]):
            yb[i] = y[i]
            if y[i] != 0:
                n_rec += 1
    cap_in, cap_rec = caps
    if (cap_rec >= 0 and n_rec > cap_rec) or (cap_in >= 0 and n_in > cap_in):
        return n_in, n_rec, FRONT_OVERFLOW
    gi, gh, z, pre = gates
    events, walked = counts
    layer_gates(
        products, biases[0], biases[1], xr, n_in, yr, n_rec, gather_above, gi, gh, events,
        walked, z, pre,
    )  # fmt: skip
    return n_in, n_rec, FRONT_DONE


@njit(cache=True, nogil=True)
def layer_back(counting, account, network):  # pragma: no cover - compiled
    """The point-wise update after its ``tanh``, the per-PE counts, the cost product and
    the accounting of one batch-1 step of a layer (a layer of two or more PEs whose
    receive policy's counts :func:`~spinnaker2_backend.kernels.layer_counts` makes).

    Args:
        counting: the arguments of :func:`~spinnaker2_backend.kernels.layer_counts`
            (``ops`` ``(1, N_OPS, P)`` written).
        account: ``(cost, phase_cycles, counters, tail_args, times)``: the ``(PH, N_OPS)``
            cost matrix, ``(PH, P)`` written (:func:`~spinnaker2_backend.kernels_account.
            cost_product`), then :func:`~spinnaker2_backend.kernels_account.account_layer`'s.
        network: ``(before, busy, done, missed, deadline, rows)`` of
            :func:`~spinnaker2_backend.kernels_account.account_layer`.

    Returns:
        ``(layer_cycles, noc_tail_cycles, running)`` of :func:`~spinnaker2_backend.
        kernels_account.account_layer`.
    """
    update, x, prev_owner, fired_before, host, n_in, routes, op_rows = counting[:8]
    events, walked, word, ops, policy = counting[8:]
    layer_counts(
        update, x, prev_owner, fired_before, host, n_in, routes, op_rows, events, walked,
        word, ops, policy,
    )  # fmt: skip
    cost, phase_cycles, counters, tail_args, times = account
    before, busy, done, missed, deadline, rows = network
    cost_product(cost, ops[0], phase_cycles)
    return account_layer(
        phase_cycles, ops[0], counters, tail_args, times, before, busy, done, missed, deadline,
        rows,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def layer_step(x, y, xr, yr, front, tanh, counting, policy, account, network):
    """A whole batch-1 step of a layer in one call: :func:`layer_front`, numpy's ``tanh``
    (its own loop, :func:`~spinnaker2_backend.kernels_tanh.call_unary_loop`), then what
    :func:`layer_back` does.

    Args:
        x, y, xr, yr: :func:`layer_front`'s; front: the rest of its arguments.
        tanh: ``(address, pre, n)``: numpy's loop (:func:`~spinnaker2_backend.kernels_tanh.
            numpy_tanh_loop`) and the arrays it reads and writes (``n`` is the update's).
        counting: :func:`~spinnaker2_backend.kernels.layer_counts`'s arguments but
            ``n_in`` and the policy: ``(update, x, prev_owner, fired_before, host, routes,
            op_rows, events, walked, word, ops)``.
        policy: ``(rows, input_by_packets)``: the policy's five rows; the events appended
            to the received-event list are ``n_rec``, plus ``n_in`` when the input arrives
            as packets.
        account, network: :func:`layer_back`'s.

    Returns:
        ``(n_in, n_rec, status, layer_cycles, noc_tail_cycles, running)``: the status of
        :func:`layer_front`; the rest only with :data:`FRONT_DONE` (else nothing after the
        front ran, and the figures are 0).
    """
    rounding, caps, products, biases, gather_above, gates, counts = front
    n_in, n_rec, status = layer_front(
        x, y, xr, yr, rounding, caps, products, biases, gather_above, gates, counts
    )
    if status != FRONT_DONE:
        return n_in, n_rec, status, 0.0, 0.0, 0.0
    address, pre, n = tanh
    call_unary_loop(address, pre, n)
    update, xs, prev_owner, fired_before, host, routes, op_rows = counting[:7]
    events, walked, word, ops = counting[7:]
    rows, by_packets = policy
    listed = float(n_rec) + (float(n_in) if by_packets else 0.0)
    r0, r1, r2, r3, r4 = rows
    layer_counts(
        update, xs, prev_owner, fired_before, host, n_in, routes, op_rows, events, walked,
        word, ops, (r0, r1, r2, r3, r4, listed),
    )  # fmt: skip
    cost, phase_cycles, counters, tail_args, times = account
    before, busy, done, missed, deadline, rows_out = network
    cost_product(cost, ops[0], phase_cycles)
    layer_cycles, tail, running = account_layer(
        phase_cycles, ops[0], counters, tail_args, times, before, busy, done, missed, deadline,
        rows_out,
    )  # fmt: skip
    return n_in, n_rec, status, layer_cycles, tail, running
