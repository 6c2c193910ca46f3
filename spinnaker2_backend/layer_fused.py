"""The back half of a compiled layer step in one call, and the cost product of a step.

Part of :class:`~spinnaker2_backend.layer_simulator.LayerSimulator` (each function takes
the layer). After :func:`~spinnaker2_backend.kernels_step.layer_front` (checks, rounding,
both products, the gates), :func:`fused_back` runs numpy's ``tanh`` and then one compiled
call, :func:`~spinnaker2_backend.kernels_step.layer_back`: the rest of the point-wise
update, the per-PE counts, the cost product and the accounting, where the step before made
three compiled calls, numpy's BLAS product and the buffers around them in Python. The
numbers are the same bits (the golden run digests and ``tests/spinnaker2_backend/
test_kernels.py`` compare them). :func:`cost_cycles` is the cost product of the other
paths: :func:`~spinnaker2_backend.kernels_account.cost_product` (OpenBLAS's order,
compiled) with two or more PEs, numpy's product (``dgemv``) with one.
"""

from __future__ import annotations

import numpy as np

from spinnaker2_backend.kernels_account import cost_product
from spinnaker2_backend.kernels_step import layer_back
from spinnaker2_backend.layer_result import LayerStepResult
from spinnaker2_backend.timing import OPS

__all__ = ["can_fuse", "cost_cycles", "fused_back"]


def can_fuse(layer) -> bool:
    """Whether a step of ``layer`` that :func:`layer_front` computed can end in
    :func:`fused_back`: the receive policy's counts are made by ``layer_counts`` (nothing is
    counted after it in Python: no on-chip readout either) and the layer has two or more
    PEs (the compiled cost product's order is BLAS's there)."""
    return (
        layer._front is not None
        and layer._k_policy is not None
        and not layer.readout_on_chip
        and layer.num_pes >= 2
    )


def cost_cycles(layer, ops: np.ndarray) -> np.ndarray:
    """``cost @ ops`` (``(PH, P)`` cycles per phase and PE) as numpy computes it."""
    if layer.num_pes < 2:
        return layer._cost @ ops
    out = np.empty((layer._cost.shape[0], layer.num_pes))
    cost_product(layer._cost, np.ascontiguousarray(ops, dtype=np.float64), out)
    return out


def fused_back(layer, n_in: int, n_rec: int, network) -> LayerStepResult:
    """The rest of a step after :func:`layer_front` (products done, ``layer._y`` the
    rounded ``y_{t-1}``; ``n_in``, ``n_rec`` the events of the two products, ``network``
    of ``LayerSimulator._step``): numpy's ``tanh``, then :func:`layer_back`. Updates the
    layer's state and counters as ``_step_compiled`` and ``_account`` do."""
    n = np.tanh(layer._pre, out=layer._n)  # numpy's tanh (numba's differs), into a buffer
    c, y = layer._c.copy(), np.empty_like(layer._pre)  # new arrays (results keep them)
    trace = layer._no_trace if layer._trace is None else layer._trace.copy()
    p = layer.num_pes
    ops = np.empty((1, len(OPS), p))
    phase_cycles = np.empty((layer._cost.shape[0], p))
    busy, done, missed = np.empty(p), np.empty(p), np.empty(p, dtype=bool)
    listed = float(n_rec) + (float(n_in) if layer._input_by_packets else 0.0)
    counters = layer.counters
    before, chained, deadline, rows = network
    update = (layer._z, n, c, layer._threshold, y, trace, layer._decay, layer._slice_of_unit,
              layer._fired)  # fmt: skip
    layer_cycles, tail, running = layer_back(
        (update, layer._xr, layer._prev_owner, layer._fired_before, layer._host_input, n_in,
         layer._routes, layer._op_rows, layer._k_events, layer._k_walked,
         layer.spec.word_bytes, ops, (*layer._k_policy, listed)),
        (layer._cost, phase_cycles, (counters.ops, counters.phase_cycles,
         counters.deadline_missed), layer._k_tail, layer._k_times[chained]),
        (before, busy, done, missed, deadline, rows),
    )  # fmt: skip
    if layer._trace is not None:
        layer._trace = trace
    layer._c, layer._y = c, y
    counters.steps += 1
    counters.layer_cycles += layer_cycles
    counters.tail_cycles += tail
    layer._running = running  # the next layer's start (a network step)
    return LayerStepResult(
        y=y,
        ops=ops[0],
        phase_cycles=phase_cycles,
        busy_cycles=busy,
        layer_cycles=layer_cycles,
        noc_tail_cycles=tail,
        time_done_us=done,
        deadline_missed=missed,
    )
