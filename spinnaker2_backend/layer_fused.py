"""A compiled layer step in one call (or its back half in one), and the step's cost product.

Part of :class:`~spinnaker2_backend.layer_simulator.LayerSimulator` (each function takes
the layer). After :func:`~spinnaker2_backend.kernels_step.layer_front` (checks, rounding,
both products, the gates), :func:`fused_back` runs numpy's ``tanh`` and then one compiled
call, :func:`~spinnaker2_backend.kernels_step.layer_back`: the rest of the point-wise
update, the per-PE counts, the cost product and the accounting, where the step before made
three compiled calls, numpy's BLAS product and the buffers around them in Python; with
numpy's ``tanh`` loop callable from compiled code (:func:`tanh_loop`), :func:`whole_step`
runs the front, the ``tanh`` and the back in one call. The numbers are the same bits (the
golden run digests and ``tests/spinnaker2_backend/test_kernels.py`` compare them).
:func:`cost_cycles` is the cost product of the other paths:
:func:`~spinnaker2_backend.kernels_account.cost_product` (OpenBLAS's order, compiled) with
two or more PEs, numpy's product (``dgemv``) with one.
"""

from __future__ import annotations

import numpy as np

from spinnaker2_backend.kernels_account import cost_product
from spinnaker2_backend.kernels_step import FRONT_DONE, layer_back, layer_front, layer_step
from spinnaker2_backend.kernels_tanh import numpy_tanh_loop
from spinnaker2_backend.layer_result import LayerStepResult
from spinnaker2_backend.timing import OPS

__all__ = [
    "can_fuse",
    "cost_cycles",
    "front_step",
    "fused_back",
    "record_step",
    "tanh_loop",
    "whole_step",
]


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


def front_step(layer, x: np.ndarray, yr: np.ndarray, network):
    """A step of a layer with ``layer_front``'s arguments, as far as the compiled calls
    take it: ``(result, n_in, n_rec, status)``. With :func:`tanh_loop` the whole step in one
    call (:func:`whole_step`), else :func:`layer_front` and, for a layer that
    :func:`can_fuse`, :func:`fused_back`; ``result`` is the step's
    :class:`LayerStepResult` when they finished it (state and counters updated), else
    ``None``: the caller goes on from the front's status (``n_in``, ``n_rec`` its events;
    ``yr`` as the front left it)."""
    if layer._tanh_loop:
        result, status = whole_step(layer, x, yr, network)
        return result, 0, 0, status  # not done: an overflow (general path) or it raises
    n_in, n_rec, status = layer_front(x, layer._y, layer._xr, yr, *layer._front)
    if status == FRONT_DONE and layer._fused:
        layer._y = yr[0]
        return fused_back(layer, n_in, n_rec, network), n_in, n_rec, status
    return None, n_in, n_rec, status


def tanh_loop(layer) -> int:
    """numpy's ``tanh`` loop for the layer's dtype when a step of it can run in one call
    (:func:`whole_step`), else 0."""
    return numpy_tanh_loop(layer.dtype) if can_fuse(layer) else 0


def whole_step(layer, x: np.ndarray, yr: np.ndarray, network):
    """A whole step in one compiled call (:func:`~spinnaker2_backend.kernels_step.
    layer_step`: the front, numpy's ``tanh`` loop, the back) for a layer with
    :func:`tanh_loop`: ``(result, status)``, the :class:`LayerStepResult` (state and
    counters updated) with :data:`FRONT_DONE`, else ``None`` (``yr`` as the front left it;
    nothing after the front ran)."""
    c, y, trace, ops, phase_cycles, busy, done, missed = _step_buffers(layer)
    counters = layer.counters
    before, chained, deadline, rows = network
    update = (layer._z, layer._n, c, layer._threshold, y, trace, layer._decay,
              layer._slice_of_unit, layer._fired)  # fmt: skip
    _, _, status, layer_cycles, tail, running = layer_step(
        x, layer._y, layer._xr, yr, layer._front, (layer._tanh_loop, layer._pre, layer._n),
        (update, layer._xr, layer._prev_owner, layer._fired_before, layer._host_input,
         layer._routes, layer._op_rows, layer._k_events, layer._k_walked,
         layer.spec.word_bytes, ops),
        (layer._k_policy, layer._input_by_packets),
        (layer._cost, phase_cycles, (counters.ops, counters.phase_cycles,
         counters.deadline_missed), layer._k_tail, layer._k_times[chained]),
        (before, busy, done, missed, deadline, rows),
    )  # fmt: skip
    if status != FRONT_DONE:
        return None, status
    return _finish(layer, c, y, trace, ops, phase_cycles, busy, done, missed,
                   (layer_cycles, tail, running)), status  # fmt: skip


def _step_buffers(layer):
    """The arrays a compiled step writes: new ``c``, ``y``, ``trace`` (results keep them),
    ``ops`` ``(1, OPS, P)``, ``phase_cycles``, ``busy``, ``done``, ``missed``."""
    c, y = layer._c.copy(), np.empty_like(layer._pre)
    trace = layer._no_trace if layer._trace is None else layer._trace.copy()
    p = layer.num_pes
    ops = np.empty((1, len(OPS), p))
    phase_cycles = np.empty((layer._cost.shape[0], p))
    return c, y, trace, ops, phase_cycles, np.empty(p), np.empty(p), np.empty(p, dtype=bool)


def _finish(layer, c, y, trace, ops, phase_cycles, busy, done, missed, figures):
    """The layer's state and counters after a compiled step, and its result."""
    if layer._trace is not None:
        layer._trace = trace
    layer._c, layer._y = c, y
    return record_step(layer, y, ops[0], phase_cycles, busy, done, missed, figures)


def record_step(layer, y, ops, phase_cycles, busy, done, missed, figures) -> LayerStepResult:
    """Count one step in the layer's counters (``figures``: the layer's cycles, its NoC tail
    and the next layer's start) and return its :class:`LayerStepResult`."""
    layer_cycles, tail, running = figures
    counters = layer.counters
    counters.steps += 1
    counters.layer_cycles += layer_cycles
    counters.tail_cycles += tail
    layer._running = running  # the next layer's start (a network step)
    return LayerStepResult(
        y=y,
        ops=ops,
        phase_cycles=phase_cycles,
        busy_cycles=busy,
        layer_cycles=layer_cycles,
        noc_tail_cycles=tail,
        time_done_us=done,
        deadline_missed=missed,
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
    c, y, trace, ops, phase_cycles, busy, done, missed = _step_buffers(layer)
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
    return _finish(layer, c, y, trace, ops, phase_cycles, busy, done, missed,
                   (layer_cycles, tail, running))  # fmt: skip
