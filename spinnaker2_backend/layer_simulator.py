"""One mapped layer on the simulated chip: :class:`LayerSimulator` and :class:`LayerStepResult`.

Part of :mod:`spinnaker2_backend.simulator` (which re-exports both names and composes one
:class:`LayerSimulator` per layer into the network); see there for what a PE does per step
and how the simulation is vectorised. A :class:`LayerSimulator` depends only on the mapping
and its own layer, so Lava process models can run one per layer.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snn_egru.reference import TRACE_DECAY, EGRUState, egru_pointwise, gate_matvec, init_state
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.formats import assemble_blocks
from spinnaker2_backend.int8_layer import Int8Products
from spinnaker2_backend.kernels import (
    egru_gates,
    layer_counts,
    layer_gates,
    link_columns,
    product_arrays,
    step_inputs,
)
from spinnaker2_backend.kernels_account import account_layer
from spinnaker2_backend.kernels_step import FRONT_DONE, FRONT_OVERFLOW
from spinnaker2_backend.layer_checks import (
    check_chip_readout,
    check_dtype,
    check_input,
    check_mapping,
    check_options,
    check_rounding,
    check_slices,
    check_state,
    check_tick,
)
from spinnaker2_backend.layer_fused import (
    can_fuse,
    cost_cycles,
    front_step,
    record_step,
    tanh_loop,
)
from spinnaker2_backend.layer_result import LayerStepResult
from spinnaker2_backend.layer_setup import (
    LayerRoutes,
    ReceiveTable,
    layer_routes,
    static_operation_counts,
)
from spinnaker2_backend.mapping import Mapping
from spinnaker2_backend.mapping.base import CAPPED_RECEIVE_POLICIES as CAPPED
from spinnaker2_backend.mapping.base import ReceiveOverflowError
from spinnaker2_backend.receive_bitmap import BitmapReceive, round_received
from spinnaker2_backend.results import LayerCounters
from spinnaker2_backend.timing import (
    OP_INDEX,
    OPS,
    LayerTimingInfo,
    cost_matrix,
    link_cycles,
    noc_tail_cycles,
)

__all__ = ["LayerSimulator", "LayerStepResult", "check_dtype", "check_tick"]

_I = OP_INDEX  # short alias for the hot path

#: Event layout: above this fraction of sources firing, the host sums the product row by
#: row (gather) instead of source by source (scatter); the results are the same bits.
EVENT_GATHER_ABOVE = 0.5


class LayerSimulator:
    """All PEs of one mapped layer, stepped together (vectorised across PEs).

    Args:
        mapping: a :class:`~spinnaker2_backend.mapping.Mapping` (the whole network's).
        layer: the layer index.
        dtype: ``np.float32`` (as the chip) or ``np.float64`` (exactness checks).
        tick_us: tick duration; a PE whose step runs longer is flagged (deadline missed).
        readout: ``"chip"`` to account the readout on this (the last) layer's PEs; ``None``
            or ``"host"`` for none.
        costs: cycle constants (defaults: :class:`CycleCosts`).
        on_overflow: what a full ``event-list`` (``mapping.receive_policy``) does with one
            more event: ``"raise"`` a :class:`~spinnaker2_backend.mapping.base.
            ReceiveOverflowError` (default) or ``"drop"`` it (the events of the lowest
            source indices are kept; the rest are counted in ``events_dropped`` and left out
            of the product; a run logs a warning and reports the count).

    The receive policy and the batch size come from the mapping (``mapping.receive_policy``,
    ``mapping.batch_size``). With a batch of ``B > 1`` the state is ``(B, H)`` and
    :meth:`step` takes ``(B, I)``: each PE processes the ``B`` samples one after another in
    the step (their operation counts add up; the per-step overhead is paid once).

    Example::

        sim = LayerSimulator(mapping, 0)
        result = sim.step(x)         # LayerStepResult
        sim.counters.events          # cumulative
    """

    #: Take the compiled step where it applies (False: the general path everywhere, which
    #: gives the same numbers; tests compare the two).
    compiled = True

    def __init__(
        self,
        mapping: Mapping,
        layer: int,
        *,
        dtype: np.dtype | type = np.float32,
        tick_us: float | None = None,
        readout: str | None = None,
        costs: CycleCosts | None = None,
        on_overflow: str = "raise",
        round_received: bool | None = None,
    ) -> None:
        num_layers = check_mapping(mapping, layer)
        self.mapping = mapping
        self.layer = int(layer)
        self.dtype = check_dtype(dtype)
        self.tick_us = check_tick(tick_us)
        check_options(on_overflow, readout)
        self.costs = costs if costs is not None else CycleCosts()
        self.spec = mapping.spec
        artifact = mapping.artifact
        self.on_overflow = on_overflow
        self.receive_policy = mapping.receive_policy
        self.round_received = check_rounding(round_received, self.receive_policy)
        self.batch_size = int(mapping.batch_size)
        capacities = mapping.receive_capacity or (0,) * num_layers
        self.receive_capacity = int(capacities[self.layer])
        self.readout_on_chip = readout == "chip"
        if self.readout_on_chip:
            check_chip_readout(self.layer, num_layers, artifact)

        params = artifact.layers[self.layer]
        self.hidden_size = params.hidden_size
        self.input_size = params.input_size
        self.weight_format = mapping.weight_format
        self.slices = list(mapping.layers[self.layer].slices)
        self.num_pes = len(self.slices)
        self.pes = np.array([s.pe for s in self.slices], dtype=np.int64)
        units = np.array([s.num_units for s in self.slices], dtype=np.float64)
        self._slice_of_unit = np.repeat(np.arange(self.num_pes), units.astype(np.int64))
        check_slices(self.slices, self.hidden_size, self.layer)
        self.keeps_trace = artifact.readout_source == "trace" and self.layer == num_layers - 1
        pe_weights = [mapping.pe_weights(self.layer, s) for s in self.slices]
        self._load_weights(pe_weights, params)

        # ---- static per-PE operation counts ---------------------------------------------
        self._input_by_packets = self.layer > 0 or mapping.input_source != "dram"
        self._uses_list = self.receive_policy in ("event-list", "accumulate", "bitmap16")
        self._rows = 3 * units
        self._dram_input = self.layer == 0 and mapping.input_source == "dram"
        self._host_input = self.layer == 0 and not self._dram_input
        self._static_ops, self._walked_static = static_operation_counts(
            pe_weights,
            units,
            weight_format=self.weight_format,
            word_bytes=self.spec.word_bytes,
            hidden_size=self.hidden_size,
            input_size=self.input_size,
            keeps_trace=self.keeps_trace,
            input_by_packets=self._input_by_packets,
            uses_list=self._uses_list,
            dram_input=self._dram_input,
            int8=self._int8,
        )

        self._bitmap = None
        if self.receive_policy == "bitmap16":  # hits, appends, bitmap zeroing, rank directory
            self._bitmap = BitmapReceive(pe_weights, input_size=self.input_size,
                hidden_size=self.hidden_size, input_by_packets=self._input_by_packets)  # fmt: skip
            self._bitmap.static_ops(self._static_ops, _I)
        # ---- routes: packets per event, receivers, hops ----------------------------------
        routes = layer_routes(mapping, self.layer, self.slices)
        self._per_event, self._receive_own = routes.per_event, routes.receive_own
        self._prev_slice_of_unit = routes.prev_slice_of_unit
        if routes.receive_in is not None:
            self._num_prev = len(routes.receive_in)
            self._receive_in = routes.receive_in

        self._setup_timing(artifact, routes)
        self._prepare_kernels()
        self.reset()

    def _setup_timing(self, artifact, routes: LayerRoutes) -> None:
        """The on-chip readout's share per PE and the cycle costs of the layer's PEs."""
        # ---- on-chip readout: output blocks split over the layer's PEs -------------------
        self._readout_block = np.zeros(self.num_pes)
        if self.readout_on_chip:
            outputs = int(artifact.decoder_weight.shape[0])
            self._readout_block = np.array(
                [len(b) for b in np.array_split(np.arange(outputs), self.num_pes)],
                dtype=np.float64,
            )
        self.timing_info = LayerTimingInfo(
            layer=self.layer,
            weight_format=self.weight_format,
            num_pes=self.num_pes,
            dram_readers=self.num_pes if self._dram_input else 0,
            readout_readers=self.num_pes if self.readout_on_chip else 0,
            max_noc_hops=routes.max_noc,
            max_chip_hops=routes.max_chip,
            link_incidence=link_cycles(self.mapping.routes, self.pes, self.costs)[1],
            batch_size=self.batch_size,
            receive_policy=self.receive_policy,
        )
        self._cost = cost_matrix(self.timing_info, costs=self.costs, spec=self.spec)
        self._tail_latency = (
            routes.max_noc * self.costs.noc_hop_cycles
            + routes.max_chip * self.costs.chip_link_cycles
        )
        self._us_per_cycle = 1e6 / self.spec.pe_clock_hz

    def _load_weights(self, pe_weights: list, params) -> None:
        """The layer's weights assembled from its PEs' encoded blocks, biases, thresholds
        (and for the ``event`` format the weights each source stores on each PE)."""
        rows = np.concatenate([pw.global_rows for pw in pe_weights])
        fmt = self.weight_format
        self._int8 = Int8Products.for_layer(pe_weights, rows, params, self.dtype)  # or None
        if self._int8 is None:  # float formats
            self._w_ih = assemble_blocks([pw.weight_ih for pw in pe_weights], rows, fmt, self.dtype)
            self._w_hh = assemble_blocks([pw.weight_hh for pw in pe_weights], rows, fmt, self.dtype)
        self._b_ih = np.asarray(params.bias_ih, dtype=self.dtype)
        self._b_hh = np.asarray(params.bias_hh, dtype=self.dtype)
        self._threshold = np.asarray(params.threshold, dtype=self.dtype)
        if fmt == "event":
            # (sources, P): stored weights of each source column in each PE; the weights a
            # PE walks in a step are the sum of the rows of the sources that fired.
            self._count_ih, self._count_hh = (
                np.ascontiguousarray(
                    np.stack([getattr(pw, w).column_lengths() for pw in pe_weights], axis=1),
                    dtype=np.int32,
                )
                for w in ("weight_ih", "weight_hh")
            )

    def _prepare_kernels(self) -> None:
        """Arrays and buffers of the compiled step (:mod:`spinnaker2_backend.kernels`)."""
        p = self.num_pes
        self._bitmap_hits = self._bitmap is not None and self.weight_format == "csr"
        self._k_products = None  # csr and event: (gather, scatter, counts, totals) x 2
        if self.weight_format in ("csr", "event"):
            # stored weights per (source, PE): the event format's walk, bitmap16's hits;
            # none for csr with another policy (every stored weight: static counts)
            counts = (None, None)
            if self.weight_format == "event":
                counts = (self._count_ih, self._count_hh)
            elif self._bitmap_hits:
                counts = (self._bitmap.count_ih, self._bitmap.count_hh)
            w = (self._w_ih, self._w_hh)
            self._k_products = product_arrays(w[0], counts[0]) + product_arrays(w[1], counts[1])
        counted = p if self.weight_format == "event" or self._bitmap_hits else 0
        self._k_events, self._k_walked = np.zeros((2, 1)), np.zeros((2, 1, counted))
        rows, h = 3 * self.hidden_size, self.hidden_size
        self._gi = np.zeros((1, rows), dtype=self.dtype)
        self._gh = np.zeros((1, rows), dtype=self.dtype)
        self._z, self._pre = np.zeros(h, self.dtype), np.zeros(h, self.dtype)
        self._n = np.zeros(h, self.dtype)
        self._decay = np.array([TRACE_DECAY, 1 - TRACE_DECAY], dtype=self.dtype)
        self._no_trace = np.zeros(0, self.dtype)
        links = self.timing_info.link_incidence  # sparse (timing.link_cycles)
        self._links = np.zeros((0, p)) if links is None else links
        self._slice_of_unit = np.ascontiguousarray(self._slice_of_unit, dtype=np.int64)
        self._fired = np.zeros((1, p))
        self._host_received = np.zeros(1)
        # the fused accounting (kernels.account_layer): the NoC tail's and the times' figures
        # self._links holds cycles per event and link (timing.link_cycles): packet cycles 1
        self._k_tail = (_I["events"], self._tail_latency, *link_columns(self._links),
                        self._links.shape[0], 1.0)  # fmt: skip
        tick = -1.0 if self.tick_us is None else self.tick_us
        self._k_times = ((self._us_per_cycle, tick, 0), (self._us_per_cycle, tick, 1))
        self._no_deadline = np.zeros(p, dtype=np.int64)  # a layer stepped alone: no count
        self._no_rows = (np.zeros(0), np.zeros(0))
        self._x_shape = (self.input_size,)
        self._front = None  # layer_front's arguments (csr / event, float32 if rounding)
        if self._k_products is not None and (not self.round_received or self.dtype == np.float32):
            capped, by_packets = self.receive_policy in CAPPED, self._input_by_packets
            cap = self.receive_capacity if capped else -1
            rounding = (self.round_received and by_packets, self.round_received)
            self._xr = np.zeros((1, self.input_size), self.dtype)
            self._front = (rounding, (cap if by_packets else -1, cap), self._k_products,
                (self._b_ih, self._b_hh), EVENT_GATHER_ABOVE, (self._gi, self._gh, self._z,
                self._pre), (self._k_events, self._k_walked))  # fmt: skip
        # the receive policy's rows counted by layer_counts (None: _policy_ops counts them)
        self._no_policy = (-1, -1, -1, -1, -1, 0.0)
        self._k_policy = None
        drop, listed = _I["events_dropped"], _I["list_entries"]
        if self._bitmap_hits:
            hits = (_I["input_hits"], _I["recurrent_hits"], _I["macs"])
            self._k_policy = (drop, listed, *hits)
        elif self.receive_policy == "event-list" and self.weight_format == "event":
            self._k_policy = (drop, listed, -1, -1, -1)
        prev = self._prev_slice_of_unit
        if prev is None:
            self._fired_before, self._receive_in = np.zeros((1, 0)), ReceiveTable.empty(p)
            self._prev_owner = np.zeros(0, dtype=np.int64)
        else:
            self._prev_slice_of_unit = np.ascontiguousarray(prev, dtype=np.int64)
            self._prev_owner = self._prev_slice_of_unit
            self._fired_before = np.zeros((1, self._num_prev))
        names = ("events", "packets_received", "packets_sent", "packets_sent_chip")
        rows = [_I[n] for n in (*names, "packet_hops", "chip_link_hops")]
        event_rows = ("input_events", "recurrent_events", "input_weights", "recurrent_weights")
        event_rows += ("macs", "weight_bytes_read")
        is_event = self.weight_format == "event"
        rows += [_I[n] if is_event else -1 for n in event_rows]
        self._op_rows = tuple(rows)
        self._routes = (
            self._static_ops,
            self._receive_in.arrays,
            self._host_received,
            self._receive_own.arrays,
            self._per_event,
        )
        self._fused = can_fuse(self)  # the back half of a step in one call (layer_fused)
        self._tanh_loop = tanh_loop(self)  # non-zero: the whole step in one call

    # ------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Zero state (and trace) and zero counters."""
        state = init_state(self.hidden_size, dtype=self.dtype, trace=self.keeps_trace)
        self._c, self._y, self._trace = state.c, state.y, state.trace
        if self.batch_size > 1:
            b = self.batch_size
            self._c = np.zeros((b, self.hidden_size), dtype=self.dtype)
            self._y = np.zeros((b, self.hidden_size), dtype=self.dtype)
            if self._trace is not None:
                self._trace = np.zeros((b, self.hidden_size), dtype=self.dtype)
        self.counters = LayerCounters.zeros(self.layer, self.pes)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """``(H,)`` for batch 1, ``(B, H)`` for a batch of ``B``."""
        h = self.hidden_size
        return (h,) if self.batch_size == 1 else (self.batch_size, h)

    @property
    def state(self) -> EGRUState:
        """The layer's current :class:`EGRUState` (``c``, ``y``, ``trace``)."""
        return EGRUState(c=self._c, y=self._y, trace=self._trace)

    def set_state(self, state: EGRUState) -> None:
        """Continue from ``state`` (shapes ``(H,)``; cast to the simulator's dtype)."""
        self._c, self._y, self._trace = check_state(self, state)

    # ------------------------------------------------------------------------ step
    def _event_product(self, w: sp.csc_matrix, v: np.ndarray, active: np.ndarray) -> np.ndarray:
        """``w @ v`` over the columns of the sources that fired only (CSC column slice)."""
        if active.size == 0:
            return np.zeros(w.shape[0], dtype=self.dtype)
        return gate_matvec(w[:, active], v[active])

    def _products(self, x: np.ndarray, y_prev: np.ndarray):
        """``(gi, gh)`` without biases for one sample: the PE kernels' numbers (hot path)."""
        fmt = self.weight_format
        if fmt == "csr":
            return gate_matvec(self._w_ih, x), gate_matvec(self._w_hh, y_prev)
        if fmt == "dense":
            return self._w_ih @ x, self._w_hh @ y_prev
        # event: only the columns of sources that fired
        return (
            self._event_product(self._w_ih, x, np.flatnonzero(x)),
            self._event_product(self._w_hh, y_prev, np.flatnonzero(y_prev)),
        )

    # ---------------------------------------------------- receive policy (orchestration)
    def _keep_received(self, v: np.ndarray, what: str) -> tuple[np.ndarray, int, int]:
        """What the ``event-list`` keeps of the events ``v`` of one product of one sample:
        ``(v with the dropped events zeroed, kept, dropped)``. Other policies keep all."""
        active = np.flatnonzero(v)
        n = int(active.size)
        if self.receive_policy not in CAPPED or n <= self.receive_capacity:
            return v, n, 0
        dropped = n - self.receive_capacity
        if self.on_overflow == "raise":
            raise ReceiveOverflowError(
                f"layer {self.layer}, step {self.counters.steps}: {n} {what} events arrived "
                f"but the event list holds {self.receive_capacity} ({dropped} over): map with "
                f"receive_capacity >= {n} (or receive_policy='dense'), or run with "
                f"on_overflow='drop' to drop and count them"
            )
        kept = v.copy()
        kept[active[self.receive_capacity :]] = 0
        return kept, self.receive_capacity, dropped

    def _policy_ops(self, ops: np.ndarray, n_in: float, n_rec: float, dropped: float) -> None:
        """Operation counts that depend on the receive policy (``n_in``, ``n_rec``: events
        kept in the two products, summed over the batch)."""
        fmt = self.weight_format
        in_list = n_in if self._input_by_packets else 0.0
        if self.receive_policy == "event-list":
            ops[_I["list_entries"]] = in_list + n_rec
        ops[_I["events_dropped"]] = dropped
        if not self._uses_list or self._bitmap or fmt in ("event", "event-int8", "mac-int8"):
            return
        rows = self._rows
        if fmt in ("csr", "csr-int8"):  # every stored weight is walked; rows merge with the list
            ops[_I["input_merge_steps"]] = rows * in_list
            ops[_I["recurrent_merge_steps"]] = rows * n_rec
            return
        # dense weights with a list: walk the columns of the listed events only
        b = self.batch_size
        walked_in, walked_rec = self._walked_static
        if self._input_by_packets:
            ops[_I["input_rows"]] = 0.0
            ops[_I["input_events"]] = n_in
            ops[_I["input_weights"]] = rows * n_in
        else:
            ops[_I["input_weights"]] = walked_in * b
        ops[_I["recurrent_rows"]] = 0.0
        ops[_I["recurrent_events"]] = n_rec
        ops[_I["recurrent_weights"]] = rows * n_rec
        ops[_I["macs"]] = ops[_I["input_weights"]] + ops[_I["recurrent_weights"]]
        word = self.spec.word_bytes
        ops[_I["weight_bytes_read"]] = word * ops[_I["macs"]]

    def _kernel_step(self, x, y_prev, n_in: int, n_rec: int, products_done: bool) -> np.ndarray:
        """Both products (unless ``products_done``: :func:`layer_front` did them), the
        point-wise update and the per-PE counts of one step (``n_in``, ``n_rec``: non-zero
        entries of ``x`` and ``y_prev``).

        Updates ``_c``, ``_y``, ``_trace``; returns the ``(len(OPS), P)`` counts. The
        products, the point-wise update (but its ``tanh``) and the counts run in
        :mod:`spinnaker2_backend.kernels` (batch axis of 1). The chip walks what its layout
        says (every stored weight for ``csr``, the sources that fired for ``event``); the
        host sums each product over the sources that fired, or row by row when most fired
        (above :data:`EVENT_GATHER_ABOVE`): the same sums bit for bit.
        """
        x2, h2 = x[None], y_prev[None]
        gi, gh, z, pre = self._gi, self._gh, self._z, self._pre
        events, walked = self._k_events, self._k_walked
        if self._k_products is not None and not products_done:
            layer_gates(
                self._k_products, self._b_ih, self._b_hh, x2, n_in, h2, n_rec,
                EVENT_GATHER_ABOVE, gi, gh, events, walked, z, pre,
            )  # fmt: skip
        elif self._k_products is None:  # dense
            gi[0] = self._w_ih @ x + self._b_ih
            gh[0] = self._w_hh @ y_prev + self._b_hh
            egru_gates(gi[0], gh[0], z, pre)
        # egru_pointwise, compiled around numpy's tanh; new arrays (results keep them)
        n = np.tanh(pre, out=self._n)  # numpy's tanh (numba's differs), into a buffer
        c, y = self._c.copy(), np.empty_like(pre)
        trace = self._no_trace if self._trace is None else self._trace.copy()
        update = (z, n, c, self._threshold, y, trace, self._decay, self._slice_of_unit, self._fired)
        ops = np.empty((1, len(OPS), self.num_pes))
        policy = self._k_policy
        if policy is not None:  # its rows in the same call (else _policy_ops after)
            listed = float(n_rec) + (float(n_in) if self._input_by_packets else 0.0)
            policy = (*policy, listed)
        layer_counts(
            update, x2, self._prev_owner, self._fired_before, self._host_input, n_in,
            self._routes, self._op_rows, events, walked, self.spec.word_bytes, ops,
            policy if policy is not None else self._no_policy,
        )  # fmt: skip
        if self._trace is not None:
            self._trace = trace
        self._c, self._y = c, y
        return ops[0]

    def products_only(self, x: np.ndarray, y_prev: np.ndarray) -> None:
        """Both products and the gates up to ``tanh`` of one batch-1 step of ``x`` and
        ``y_prev`` (float, ``(I,)`` and ``(H,)``), nothing else: no state, counts or time
        (``benchmarks/simulator.py`` times it as the arithmetic every step has to do)."""
        n_in, n_rec = int(np.count_nonzero(x)), int(np.count_nonzero(y_prev))
        layer_gates(
            self._k_products, self._b_ih, self._b_hh, x[None], n_in, y_prev[None], n_rec,
            EVENT_GATHER_ABOVE, self._gi, self._gh, self._k_events, self._k_walked,
            self._z, self._pre,
        )  # fmt: skip

    def _event_ops(self, ops, n_in, n_rec, walked_in, walked_rec) -> None:
        """The ``event`` format's counts of a step: events, weights walked, MACs, bytes
        (the general path; the compiled one counts them in :func:`layer_counts`)."""
        ops[_I["input_events"]] = n_in
        ops[_I["recurrent_events"]] = n_rec
        ops[_I["input_weights"]] = walked_in
        ops[_I["recurrent_weights"]] = walked_rec
        ops[_I["macs"]] = walked_in + walked_rec
        # values + target rows per weight, two column extents per event
        ops[_I["weight_bytes_read"]] = self.spec.word_bytes * (
            2 * (walked_in + walked_rec) + 2 * (n_in + n_rec)
        )

    def step(self, x: np.ndarray) -> LayerStepResult:
        """One step of every PE of the layer.

        Args:
            x: ``(I,)`` the layer's input (layer 0: the input vector; else the previous
                layer's events ``y``); ``(B, I)`` for a mapping with ``batch_size=B``.

        Returns:
            :class:`LayerStepResult`.

        Raises:
            ValueError: wrong shape, NaN or infinite inputs.
            ReceiveOverflowError: an ``event-list`` overflowed and ``on_overflow="raise"``.
        """
        return self._step(x, (0.0, False, self._no_deadline, self._no_rows))

    def _step(self, x, network) -> LayerStepResult:
        """:meth:`step` inside a network step: ``network`` is ``(before, chained, deadline,
        rows)`` of :func:`~spinnaker2_backend.kernels.account_layer` (the layer's start,
        the network's deadline counts, the step history's rows, filled in the same call)."""
        x = np.asarray(x)
        fast = self.batch_size == 1 and self._int8 is None and self.compiled  # int8: below
        if fast and self._front is not None and x.dtype == self.dtype and x.shape == self._x_shape:
            yr = np.empty((1, self.hidden_size), self.dtype)  # the new y_{t-1} (results keep y)
            result, n_in, n_rec, status = front_step(self, x, yr, network)  # layer_fused
            if result is not None:
                return result
            if status == FRONT_DONE or status == FRONT_OVERFLOW:
                self._y = yr[0]
                if status == FRONT_DONE:
                    return self._step_compiled(self._xr[0], n_in, n_rec, network, True)
                return self._step_general(self._xr[0].copy(), network)
            # else NaN / infinite or beyond binary16: the checks below raise, naming the step
        if fast and x.dtype == self.dtype and x.shape == self._x_shape:
            n_in, bad, n_rec = step_inputs(x, self._y)  # the checks' counts, in one call
            if bad:
                check_input(self, x)  # raises, naming the step
        else:
            x, n_in = check_input(self, x)
            n_rec = int(np.count_nonzero(self._y)) if fast else 0
        if self.round_received:  # bitmap16 keeps received values as binary16
            x, n_in, self._y = self._received_binary16(x, n_in)
            n_rec = int(np.count_nonzero(self._y)) if fast else 0
        if fast:
            cap = self.receive_capacity
            if self.receive_policy not in CAPPED or (
                n_rec <= cap and (n_in <= cap or not self._input_by_packets)
            ):  # every event is kept: the compiled path
                return self._step_compiled(x, n_in, n_rec, network)
        return self._step_general(x, network)

    def _step_general(self, x, network) -> LayerStepResult:
        """One step on the general path (a batch, int8, an event list that overflows)."""
        batched = self.batch_size > 1
        xs = x if batched else x[None, :]
        ys_prev = self._y if batched else self._y[None, :]
        gis, ghs, kept = [], [], []
        n_in = n_rec = dropped = 0.0
        active_in: list[np.ndarray] = []
        active_rec: list[np.ndarray] = []
        for xb, yb in zip(xs, ys_prev):
            if self._input_by_packets:
                xb, kept_in, drop_in = self._keep_received(xb, "input")
            else:
                kept_in, drop_in = int(np.count_nonzero(xb)), 0
            yb, kept_rec, drop_rec = self._keep_received(yb, "recurrent")
            kept.append((xb, yb))
            n_in += kept_in
            n_rec += kept_rec
            dropped += drop_in + drop_rec
            int8 = self._int8  # int8 products keep their operands for the counts
            gi, gh = (
                int8.products(xb, yb, active_in, active_rec) if int8 else self._products(xb, yb)
            )
            gis.append(gi)
            ghs.append(gh)
            if self.weight_format == "event":
                active_in.append(np.flatnonzero(xb))
                active_rec.append(np.flatnonzero(yb))
        gi = (np.stack(gis) if batched else gis[0]) + self._b_ih
        gh = (np.stack(ghs) if batched else ghs[0]) + self._b_hh
        y, c, o = egru_pointwise(gi, gh, self._c, self._threshold)
        c = self._int8.stored_state(c) if self._int8 is not None else c  # state levels
        if self._trace is not None:
            trace = TRACE_DECAY * self._trace + (1 - TRACE_DECAY) * y
            self._trace = trace.astype(self.dtype, copy=False)
        self._c, self._y = c, y
        ops = self._count_ops(xs, np.atleast_2d(o), active_in, active_rec, n_in, n_rec, dropped)
        if self._bitmap is not None:
            self._bitmap.step_ops(ops, _I, *(np.stack(v) for v in zip(*kept)))
        return self._account(y, ops, network)

    def _received_binary16(self, x: np.ndarray, n_in: int):
        """The step's received values rounded to binary16
        (:func:`~spinnaker2_backend.receive_bitmap.round_received`): the layer input when
        it arrives as packets (a DRAM input is a dense float32 DMA target) and ``y_{t-1}``."""
        if self._input_by_packets:
            x = round_received(x)
            n_in = int(np.count_nonzero(x))
        return x, n_in, round_received(self._y)

    def _step_compiled(self, x, n_in, n_rec, network, front=False) -> LayerStepResult:
        """One step of one sample whose events are all kept (``n_in``, ``n_rec``: events of
        the two products; an ``event-list`` that would overflow takes the general path):
        products, point-wise update and counts in the compiled kernels, the same numbers
        as the general path."""
        y_prev = self._y
        ops = self._kernel_step(x, y_prev, n_in, n_rec, front)
        if self._k_policy is None:  # else counted by layer_counts
            self._policy_ops(ops, float(n_in), float(n_rec), 0.0)
        if self._bitmap_hits and self._k_policy is None:  # BitmapReceive.step_ops's hits
            self._bitmap_ops(ops, float(n_in), float(n_rec))
        elif self._bitmap is not None and not self._bitmap_hits:
            self._bitmap.step_ops(ops, _I, x[None], y_prev[None])
        if self.readout_on_chip:
            self._readout_ops(ops)
        return self._account(self._y, ops, network)

    def _bitmap_ops(self, ops: np.ndarray, n_in: float, n_rec: float) -> None:
        """``bitmap16``'s counts of a compiled step (:meth:`BitmapReceive.step_ops`'s): the
        hits counted by ``layer_gates`` from the bitmap's counts, the events appended."""
        hits_in, hits_rec = self._k_walked[0, 0], self._k_walked[1, 0]
        ops[_I["input_hits"]] = hits_in
        ops[_I["recurrent_hits"]] = hits_rec
        ops[_I["macs"]] = hits_in + hits_rec
        ops[_I["list_entries"]] = n_rec + (n_in if self._bitmap.input_by_packets else 0.0)

    def _readout_ops(self, ops: np.ndarray) -> None:
        """The on-chip readout's counts of one step (``ops`` updated in place)."""
        source = self._trace if self._trace is not None else self._y
        n_read = float(np.count_nonzero(source))
        block = self._readout_block
        word = self.spec.word_bytes
        reads = n_read + self.batch_size  # one DMA per fired unit plus one per sample (logits)
        ops[_I["readout_macs"]] = block * n_read
        ops[_I["readout_dma_transfers"]] = np.where(block > 0, reads, 0.0)
        ops[_I["readout_dram_bytes"]] = word * block * reads

    def _count_ops(self, xs, o, active_in, active_rec, n_in, n_rec, dropped) -> np.ndarray:
        """Per-PE operation counts of one step, summed over the batch's samples."""
        b = self.batch_size
        ops = self._static_ops.copy()
        if b > 1:
            ops *= b
            ops[_I["steps"]] = 1.0  # the per-step overhead is paid once
        fired_each = [
            np.bincount(self._slice_of_unit, weights=ob, minlength=self.num_pes) for ob in o
        ]
        fired = np.sum(fired_each, axis=0)
        ops[_I["events"]] = fired
        if self.weight_format == "event":
            ev_in = float(sum(a.size for a in active_in))
            ev_rec = float(sum(a.size for a in active_rec))
            # gather-and-sum, no BLAS: a single pass, exact integers
            walked_in = sum(self._count_ih[a].sum(axis=0) for a in active_in).astype(np.float64)
            walked_rec = sum(self._count_hh[a].sum(axis=0) for a in active_rec).astype(np.float64)
            self._event_ops(ops, ev_in, ev_rec, walked_in, walked_rec)
        if self._int8 is not None:
            self._int8.count_ops(ops, _I, active_in, active_rec)
        self._policy_ops(ops, n_in, n_rec, dropped)
        received = self._receive_own.received(fired)
        if self._prev_slice_of_unit is not None:
            fired_before = sum(
                np.bincount(self._prev_slice_of_unit, weights=xb != 0, minlength=self._num_prev)
                for xb in xs
            )
            received = received + self._receive_in.received(fired_before)
        elif self._host_input:
            received = received + float(np.count_nonzero(xs))
        ops[_I["packets_received"]] = received
        per_event = self._per_event
        ops[_I["packets_sent"]] = fired * per_event[0]
        ops[_I["packets_sent_chip"]] = fired * per_event[1]
        ops[_I["packet_hops"]] = fired * per_event[2]
        ops[_I["chip_link_hops"]] = fired * per_event[3]
        if self.readout_on_chip:
            self._readout_ops(ops)
        return ops

    def _account(self, y: np.ndarray, ops: np.ndarray, network) -> LayerStepResult:
        """Cycles, deadline and cumulative counters of one step's operation counts: the
        cost product (:func:`~spinnaker2_backend.layer_fused.cost_cycles`), the rest in one
        compiled call (``network``: see :meth:`_step`)."""
        phase_cycles = cost_cycles(self, ops)
        counters = self.counters
        p = self.num_pes
        busy, done, missed = np.empty(p), np.empty(p), np.empty(p, dtype=bool)
        before, chained, deadline, rows = network
        figures = account_layer(
            phase_cycles, ops, (counters.ops, counters.phase_cycles, counters.deadline_missed),
            self._k_tail, self._k_times[chained], before, busy, done, missed, deadline, rows,
        )  # fmt: skip
        return record_step(self, y, ops, phase_cycles, busy, done, missed, figures)

    def noc_tail_cycles(self, events: np.ndarray) -> np.ndarray:
        """NoC tail latency for per-PE event counts ``(..., P)`` (see timing)."""
        return noc_tail_cycles(events, self.timing_info, costs=self.costs)

    def __repr__(self) -> str:
        return (
            f"LayerSimulator(layer={self.layer}, units={self.hidden_size}, pes={self.num_pes}, "
            f"format={self.weight_format!r}, dtype={self.dtype.name})"
        )
