"""The time model of the simulated chip: operation counts -> PE cycles -> seconds.

Per PE and step, the simulator counts operations (:data:`OPS`: stored weights walked,
events processed, units updated, packets sent and received, DRAM bytes, ...). Their cost in
PE clock cycles is a linear map with named constants (:class:`~spinnaker2_backend.constants.
CycleCosts`)::

    cycles[phase, pe] = sum_op  cost[phase, op] * count[op, pe]          (cost_matrix)

The phases are those the published EGRU profile timed with the 1 MHz timer, plus the parts
this model accounts separately (:data:`PHASES`, in the order a PE runs them in a step)::

    overhead           step start: tick interrupt, timer reads, clearing input buffers
    dram_input         layer-0 inputs streamed from DRAM by DMA
    receive            packets received (interrupt handlers; drawn as one block)
    input_product      weight_ih rows  x  layer input
    recurrent_product  weight_hh rows  x  y_{t-1}
    pointwise          gates, state update, threshold test (snn_egru.reference.egru_pointwise)
    send               one multicast packet per event per destination QPE
    readout            on-chip readout (last layer, only when asked for)

A layer's step ends when its slowest PE ends, plus the NoC latency of the last packet it
sent (``hops x noc_hop_cycles + chip hops x chip_link_cycles``), or, when its events queue
on a link, the busiest link's serialisation if that is longer: every event crosses each link
of its source's multicast tree once, chip-to-chip links (``chip_link_packet_cycles`` per
packet) and the on-chip NoC's QPE-to-QPE links along the XY routes of the tree
(``noc_link_packet_cycles`` per packet), :func:`link_cycles`. Layers run one after
another per token (as published) or pipelined (layer ``l`` works on token ``t`` while layer
``l-1`` works on token ``t+1``)::

    sequential:  start[l, t] = finish[l-1, t] + tail[l-1, t]   (start[0, t] after layer L-1 of t-1)
    pipelined:   start[l, t] = max(finish[l-1, t] + tail[l-1, t], finish[l, t-1] + tail[l, t-1])
    finish[l, t] = start[l, t] + max_pe cycles[l, t, pe]

Two execution modes: **as fast as possible** (no tick: each step starts when the previous
one ends) and **timer-driven** (a tick duration ``tick_us``, as py-spinnaker2 runs its apps
on a systick: each step starts on a tick and the PE idles until the next one). Both pay the
fixed per-step costs (``CycleCosts.fixed_step_cycles``: tick interrupt, host wait, barrier,
set-up). With a tick duration the chip runs one step per tick: each PE's ``time_done``
is measured from its tick's start (sequential: after the layers before it in the same tick;
pipelined: every layer starts at the tick, working on the token its input layer produced in
the tick before), and a PE whose ``time_done`` exceeds the tick has missed its deadline. The
wall time is the sum of the ticks, a tick whose work overruns lasting as long as its work
(:func:`tick_durations`); the late PEs are flagged.

DRAM: a DMA transfer costs ``dma_setup_cycles`` plus its bytes at the slower of the PE's DMA
rate (``dma_bytes_per_cycle``) and its share of the chip's DRAM bandwidth among the PEs that
read at the same time (``readers * clock / bandwidth`` cycles per byte).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spinnaker2_backend.constants import ChipSpec, CycleCosts
from spinnaker2_backend.execution import (
    DeadlineReport,
    deadline_report,
    schedule,
    step_offsets,
    tick_durations,
    tick_work_seconds,
)
from spinnaker2_backend.noc_links import link_busy, link_cycles, noc_link_edges

__all__ = [
    "OPS",
    "OP_INDEX",
    "PHASES",
    "PHASE_INDEX",
    "PROFILE_GROUPS",
    "DeadlineReport",
    "LayerTimingInfo",
    "Profile",
    "build_profile",
    "cost_matrix",
    "deadline_report",
    "dram_cycles_per_byte",
    "link_cycles",
    "noc_link_edges",
    "noc_tail_cycles",
    "phase_cycles",
    "profile_from_ops",
    "schedule",
    "step_offsets",
    "tick_durations",
    "tick_work_seconds",
    "timer_ticks",
]

#: Phases of a PE's step, in the order it runs them.
PHASES: tuple[str, ...] = (
    "overhead",
    "dram_input",
    "receive",
    "input_product",
    "recurrent_product",
    "pointwise",
    "send",
    "readout",
)
PHASE_INDEX: dict[str, int] = {name: i for i, name in enumerate(PHASES)}

#: How the profile view groups the phases (the published profile's categories).
PROFILE_GROUPS: dict[str, tuple[str, ...]] = {
    "DRAM input": ("dram_input",),
    "input product": ("input_product",),
    "recurrent product": ("recurrent_product",),
    "point-wise": ("pointwise",),
    "send/receive": ("receive", "send"),
    "overhead": ("overhead",),
    "readout": ("readout",),
}

#: Operation counts kept per PE and step (rows of the ``ops`` arrays). Counts that cost no
#: cycles of their own (``events``, ``macs``, hop counts, bytes read) are there for the
#: counters and the energy model.
OPS: tuple[str, ...] = (
    "steps",  # 1 per PE and step: the fixed per-step overhead
    "words_cleared",  # dense input-buffer words zeroed at the start of the step
    "dma_transfers",  # DMA transfers of layer inputs from DRAM
    "dram_bytes",  # bytes of layer inputs read from DRAM
    "packets_received",  # packets taken by the PE's receive handler
    "input_rows",  # rows of weight_ih visited (csr, dense)
    "input_events",  # input events processed by the event kernel
    "input_weights",  # stored weight_ih entries walked (each one is one MAC)
    "recurrent_rows",  # rows of weight_hh visited (csr, dense)
    "recurrent_events",  # recurrent events processed by the event kernel
    "recurrent_weights",  # stored weight_hh entries walked (each one is one MAC)
    "units",  # units updated point-wise
    "trace_units",  # units whose low-pass trace is updated
    "events",  # units that fired (graded events emitted)
    "packets_sent",  # packets injected (on-chip and chip-to-chip)
    "packets_sent_chip",  # the part of packets_sent that leaves the chip
    "packet_hops",  # NoC QPE hops travelled by the packets sent
    "chip_link_hops",  # chip-to-chip link hops travelled by the packets sent
    "macs",  # multiply-accumulates of the EGRU products
    "weight_bytes_read",  # bytes of weight storage read from PE SRAM
    "readout_macs",  # multiply-accumulates of the on-chip readout
    "readout_dma_transfers",  # DMA transfers of the on-chip readout
    "readout_dram_bytes",  # DRAM bytes of the on-chip readout (weights in, logits out)
    "list_entries",  # entries written to the compact received-event list (event-list policy)
    "input_merge_steps",  # CSR row x event-list merge steps of the input product
    "recurrent_merge_steps",  # the same for the recurrent product
    "events_dropped",  # received events that did not fit the event list (never silent)
    "input_tiles",  # mac-int8: 16 x 4 tiles of weight_ih issued to the MAC array
    "recurrent_tiles",  # mac-int8: the same for weight_hh
    "input_mac_setups",  # mac-int8: products of weight_ih started on the MAC array
    "recurrent_mac_setups",  # mac-int8: the same for weight_hh
    "input_rescaled_rows",  # int8 formats: rows of weight_ih scaled after the product
    "recurrent_rescaled_rows",  # the same for weight_hh
    "input_quantised",  # mac-int8: input values quantised to int8
    "recurrent_quantised",  # mac-int8: the layer's own events quantised to int8
    "input_hits",  # bitmap16: stored weight_ih entries whose source fired (a MAC each)
    "recurrent_hits",  # bitmap16: the same for weight_hh
    "rank_words",  # bitmap16: rank-directory entries built per step
)
OP_INDEX: dict[str, int] = {name: i for i, name in enumerate(OPS)}


@dataclass(frozen=True, kw_only=True)
class LayerTimingInfo:
    """Static facts about one mapped layer that the cost model needs.

    Attributes:
        layer: layer index.
        weight_format: ``"csr"``, ``"event"`` or ``"dense"``.
        num_pes: PEs of the layer.
        dram_readers: PEs of the layer that read layer inputs from DRAM in the same step
            (all of layer 0's PEs when inputs stream from DRAM, else 0).
        readout_readers: PEs that stream readout weights from DRAM in the same step.
        max_noc_hops: ``(P,)`` most NoC hops of a packet each PE sends.
        max_chip_hops: ``(P,)`` most chip-to-chip hops of a packet each PE sends.
        batch_size: samples each PE processes per step (the counts hold all of them).
        receive_policy: how the PEs keep received events; with ``bitmap16`` a stored weight
            walked costs its walk only (the bit test included) and a weight whose source
            fired (``*_hits``) the MAC plus ``bitmap_hit_cycles``; an input streamed from
            DRAM (``dram_readers`` > 0) is a dense vector, its weights cost the walk and the
            MAC as in the plain CSR kernel.
        link_incidence: ``(links, P)`` cycles one event of PE ``p`` occupies link ``k``
            (0 where its multicast tree does not cross it): chip links and on-chip NoC links,
            :func:`link_cycles` (a scipy sparse matrix; a dense array works too); or None
            (no link serialisation modelled).
    """

    layer: int
    weight_format: str
    num_pes: int
    dram_readers: int
    readout_readers: int
    max_noc_hops: np.ndarray
    max_chip_hops: np.ndarray
    link_incidence: object | None = None  # sparse or dense (links, P)
    batch_size: int = 1
    receive_policy: str = "dense"

    def __post_init__(self) -> None:
        for name in ("max_noc_hops", "max_chip_hops"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (self.num_pes,):
                raise ValueError(
                    f"LayerTimingInfo.{name} must have shape ({self.num_pes},), got {value.shape}"
                )
            object.__setattr__(self, name, value)


def dram_cycles_per_byte(readers: int, *, costs: CycleCosts, spec: ChipSpec) -> float:
    """PE cycles per DRAM byte when ``readers`` PEs read at once.

    ``max(1 / dma_bytes_per_cycle, readers * clock / dram_bandwidth)``: the PE's own DMA
    rate, or its share of the chip's DRAM bandwidth, whichever is slower.
    """
    own = 1.0 / costs.dma_bytes_per_cycle
    shared = max(readers, 1) * spec.pe_clock_hz / spec.dram_bandwidth_bytes_per_s
    return max(own, shared)


def _weight_walk_cycles(weight_format: str, costs: CycleCosts) -> float:
    if weight_format == "csr":
        walk = costs.csr_nonzero_cycles
    elif weight_format == "event":
        walk = costs.event_nonzero_cycles
    elif weight_format == "dense":
        walk = costs.dense_element_cycles
    elif weight_format == "csr-int8":
        walk = costs.csr_nonzero_cycles + costs.int8_convert_cycles
    elif weight_format == "event-int8":
        walk = costs.event_nonzero_cycles + costs.int8_convert_cycles
    elif weight_format == "mac-int8":
        return 0.0  # the MAC array's weights cost per tile (mac_tile_cycles)
    else:
        raise ValueError(
            f"unknown weight format {weight_format!r}; choose one of csr, event, dense, "
            "csr-int8, event-int8, mac-int8"
        )
    return walk + costs.mac_cycles


def cost_matrix(info: LayerTimingInfo, *, costs: CycleCosts, spec: ChipSpec) -> np.ndarray:
    """``(len(PHASES), len(OPS))`` cycles per operation, by the phase they fall in.

    Every stored weight walked costs the format's walk cycles plus one MAC
    (``CycleCosts.mac_cycles``); a row costs ``csr_row_cycles`` (csr and dense kernels), an
    event processed ``event_column_cycles`` (event kernel). The Arm-core int8 formats add
    ``int8_convert_cycles`` per code and ``int8_row_scale_cycles`` per row; ``mac-int8``
    costs ``mac_tile_cycles`` per 16 x 4 tile issued, ``mac_setup_cycles`` per product,
    ``mac_row_readout_cycles`` per output row and ``event_quantise_cycles`` per input value
    quantised (no per-weight walk).
    """
    m = np.zeros((len(PHASES), len(OPS)), dtype=np.float64)

    def put(phase: str, op: str, value: float) -> None:
        m[PHASE_INDEX[phase], OP_INDEX[op]] = value

    weight = _weight_walk_cycles(info.weight_format, costs)
    if costs.batch_shares_weight_loads and info.batch_size > 1 and weight > 0:
        # counts hold every sample's weights: the loads are paid once per step
        weight -= costs.weight_load_cycles * (1.0 - 1.0 / info.batch_size)
    put("overhead", "steps", costs.fixed_step_cycles)
    put("overhead", "words_cleared", costs.clear_word_cycles)
    # a DRAM stream (layer 0's inputs, the readout's weights): a DMA set-up per transfer and
    # the per-byte cost of the PEs reading DRAM in the same step
    for phase, op, readers in (
        ("dram_input", "", info.dram_readers),
        ("readout", "readout_", info.readout_readers),
    ):
        put(phase, f"{op}dma_transfers", costs.dma_setup_cycles)
        put(phase, f"{op}dram_bytes", dram_cycles_per_byte(readers, costs=costs, spec=spec))
    put("receive", "packets_received", costs.packet_receive_cycles)
    put("receive", "list_entries", costs.list_append_cycles)
    put("input_product", "input_merge_steps", costs.merge_step_cycles)
    put("recurrent_product", "recurrent_merge_steps", costs.merge_step_cycles)
    put("input_product", "input_rows", costs.csr_row_cycles)
    put("input_product", "input_events", costs.event_column_cycles)
    if info.receive_policy == "bitmap16" and info.weight_format == "csr":
        weight -= costs.mac_cycles  # only a weight whose source fired is multiplied
        hit = costs.mac_cycles + costs.bitmap_hit_cycles
        # a dense input (layer 0 streamed from DRAM into a vector) is read at x[col] like
        # the plain CSR kernel: each stored weight is a MAC, no bit, rank or value lookup
        put("input_product", "input_hits", costs.mac_cycles if info.dram_readers else hit)
        put("recurrent_product", "recurrent_hits", hit)
        put("receive", "rank_words", costs.rank_word_cycles)
    put("input_product", "input_weights", weight)
    put("recurrent_product", "recurrent_rows", costs.csr_row_cycles)
    put("recurrent_product", "recurrent_events", costs.event_column_cycles)
    put("recurrent_product", "recurrent_weights", weight)
    rescale = (
        costs.mac_row_readout_cycles
        if info.weight_format == "mac-int8"
        else costs.int8_row_scale_cycles
    )
    for product in ("input", "recurrent"):
        phase = f"{product}_product"
        put(phase, f"{product}_tiles", costs.mac_tile_cycles)
        put(phase, f"{product}_mac_setups", costs.mac_setup_cycles)
        put(phase, f"{product}_rescaled_rows", rescale)
        put(phase, f"{product}_quantised", costs.event_quantise_cycles)
    put("pointwise", "units", costs.pointwise_unit_cycles)
    put("pointwise", "trace_units", costs.trace_unit_cycles)
    put("send", "packets_sent", costs.packet_send_cycles)
    put("readout", "readout_macs", costs.readout_mac_cycles)
    return m


def phase_cycles(ops: np.ndarray, costs_matrix: np.ndarray) -> np.ndarray:
    """Cycles per phase from operation counts.

    Args:
        ops: ``(..., len(OPS), P)`` counts.
        costs_matrix: ``(len(PHASES), len(OPS))`` from :func:`cost_matrix`.

    Returns:
        ``(..., len(PHASES), P)`` cycles.
    """
    return np.matmul(costs_matrix, ops)


def noc_tail_cycles(events: np.ndarray, info: LayerTimingInfo, *, costs: CycleCosts) -> np.ndarray:
    """Latency of the last packet a layer sends in a step, after its slowest PE ends.

    Args:
        events: ``(..., P)`` events emitted per PE (a PE with none sends nothing).

    Returns:
        ``(...)`` cycles: ``max over sending PEs of (max_noc_hops * noc_hop_cycles +
        max_chip_hops * chip_link_cycles)``, or, when the layer's events queue on a link
        (``info.link_incidence``: cycles per event and link, :func:`link_cycles`), the
        busiest link's serialisation if that is longer; 0 when no PE sent.
    """
    latency = info.max_noc_hops * costs.noc_hop_cycles + info.max_chip_hops * costs.chip_link_cycles
    events = np.asarray(events, dtype=np.float64)
    sending = events > 0
    if latency.size == 0:
        return np.zeros(sending.shape[:-1])
    tail = np.max(np.where(sending, latency, 0.0), axis=-1)
    if info.link_incidence is not None and info.link_incidence.shape[0]:
        load = link_busy(events, info.link_incidence)  # (..., links)
        tail = np.maximum(tail, load.max(axis=-1))
    return tail


def timer_ticks(
    cycles: np.ndarray, start_cycles: np.ndarray, *, clock_hz: float, timer_hz: float
) -> np.ndarray:
    """The profiling timer's view of the phases (what a 1 MHz timer read at the boundaries
    of the phases would show).

    Args:
        cycles: ``(..., len(PHASES), P)`` cycles per phase.
        start_cycles: ``(..., P)`` (or broadcastable) cycle at which each PE's step starts.
        clock_hz: PE clock. timer_hz: timer tick rate (1 MHz).

    Returns:
        ``(..., len(PHASES), P)`` int64 timer ticks per phase: ``floor(t_end * timer_hz) -
        floor(t_start * timer_hz)`` at each phase's boundaries.
    """
    cycles = np.asarray(cycles, dtype=np.float64)
    start = np.asarray(start_cycles, dtype=np.float64)[..., None, :]
    bounds = start + np.concatenate(
        [np.zeros_like(cycles[..., :1, :]), np.cumsum(cycles, axis=-2)], axis=-2
    )
    ticks = np.floor(bounds * (timer_hz / clock_hz) + 1e-9).astype(np.int64)
    return np.diff(ticks, axis=-2)


@dataclass
class Profile:
    """Where the time of a run went, per phase, PE, layer and step.

    Attributes:
        phases: :data:`PHASES`.
        clock_hz: PE clock. timer_hz: profiling timer rate (1 MHz).
        pipelined: layers pipelined or one after another. tick_us: tick duration or None.
        steps: steps run.
        layer_cycles: ``(T, L)`` slowest-PE cycles per step and layer.
        layer_tails: ``(T, L)`` NoC tail latency per step and layer.
        critical_phase_cycles: ``(T, L, len(PHASES))`` phases of each step's slowest PE.
        start_cycles, finish_cycles: ``(T, L)`` free-running schedule (:func:`schedule`).
            These five hold the steps ``recorded_steps`` only when a window kept only those.
        wall_seconds: duration of the run (ticks x tick when ``tick_us`` is set).
        pe_phase_cycles: per layer ``(len(PHASES), P)`` cycles summed over the steps.
        step_phase_cycles: per layer ``(T, len(PHASES), P)`` or None when steps were not
            recorded (``(N, ...)`` for the steps ``recorded_steps`` when only those were).
        timer_ticks: per layer ``(T, len(PHASES), P)`` 1 MHz timer view, or None.
        time_done_us: per layer ``(T, P)`` when each PE finished, from its tick's start, or
            None when steps were not recorded.
        recorded_steps: the step indices the per-step arrays belong to, or None when they
            cover every step (a run recorded with a window).
        deadline_missed_count: per layer ``(P,)`` ticks in which the PE missed its deadline
            (zeros when no tick is set).
        critical_phase_sum, layer_critical_phase_sum, tail_cycles_sum, end_cycles: of every
            step: ``critical_phase_cycles.sum((0, 1))``, ``.sum(0)``, ``layer_tails.sum()``
            and the end of the free-running schedule (a window does not change them).
    """

    phases: tuple[str, ...]
    clock_hz: float
    timer_hz: float
    pipelined: bool
    tick_us: float | None
    steps: int
    layer_cycles: np.ndarray
    layer_tails: np.ndarray
    critical_phase_cycles: np.ndarray
    start_cycles: np.ndarray
    finish_cycles: np.ndarray
    wall_seconds: float
    pe_phase_cycles: list[np.ndarray]
    step_phase_cycles: list[np.ndarray] | None = None
    timer_ticks: list[np.ndarray] | None = None
    time_done_us: list[np.ndarray] | None = None
    deadline_missed_count: list[np.ndarray] = field(default_factory=list)
    recorded_steps: np.ndarray | None = None
    critical_phase_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(PHASES)))
    layer_critical_phase_sum: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    tail_cycles_sum: float = 0.0
    end_cycles: float = 0.0

    @property
    def num_layers(self) -> int:
        return int(self.layer_cycles.shape[1]) if self.layer_cycles.ndim == 2 else 0

    @property
    def compute_seconds(self) -> float:
        """Free-running duration (no tick): the end of the schedule."""
        return self.end_cycles / self.clock_hz if self.steps else 0.0

    @property
    def seconds_per_step(self) -> float:
        """Wall time per step (token)."""
        return self.wall_seconds / self.steps if self.steps else 0.0

    @property
    def deadline_missed(self) -> bool:
        """True when any PE missed a tick's deadline."""
        return any(int(np.sum(c)) > 0 for c in self.deadline_missed_count)

    @property
    def deadlines_missed_total(self) -> int:
        """PE-ticks that missed their deadline."""
        return int(sum(int(np.sum(c)) for c in self.deadline_missed_count))

    def critical_phase_seconds(self) -> dict[str, float]:
        """Seconds per phase along the critical path (slowest PE of every layer step), summed
        over steps and layers, plus ``"noc_latency"``. Sums to the free-running sequential
        duration."""
        totals = self.critical_phase_sum / self.clock_hz
        out = {name: float(v) for name, v in zip(self.phases, totals)}
        out["noc_latency"] = float(self.tail_cycles_sum / self.clock_hz)
        return out

    def layer_critical_phase_seconds(self) -> list[dict[str, float]]:
        """Per layer: seconds per phase of the slowest PE, summed over the steps."""
        per = self.layer_critical_phase_sum / self.clock_hz
        return [{name: float(v) for name, v in zip(self.phases, row)} for row in per]

    def pe_phase_seconds(self, layer: int) -> dict[str, np.ndarray]:
        """Per phase, ``(P,)`` busy seconds of each PE of ``layer`` summed over the steps."""
        cycles = self.pe_phase_cycles[layer]
        return {name: cycles[i] / self.clock_hz for i, name in enumerate(self.phases)}

    def timer_view(self, layer: int) -> dict[str, np.ndarray]:
        """The 1 MHz timer's view of ``layer``: per phase, ``(P,)`` timer ticks (us at
        1 MHz) of each PE summed over the recorded steps (needs a recorded run)."""
        if self.timer_ticks is None:
            raise ValueError("the timer view needs a run recorded with record=True")
        ticks = self.timer_ticks[layer].sum(axis=0)
        return {name: ticks[i] for i, name in enumerate(self.phases)}

    def timer_view_summed(self) -> dict[str, int]:
        """Timer ticks per phase summed over every PE, layer and step (needs a recorded
        run): the chip-wide busy time per phase as the PEs' timers would report it."""
        if self.timer_ticks is None:
            raise ValueError("the timer view needs a run recorded with record=True")
        totals = sum(t.sum(axis=(0, 2)) for t in self.timer_ticks)
        return {name: int(totals[i]) for i, name in enumerate(self.phases)}

    def grouped(self, values: dict[str, float]) -> dict[str, float]:
        """Sum a per-phase mapping into the :data:`PROFILE_GROUPS` categories."""
        out = {}
        for group, names in PROFILE_GROUPS.items():
            out[group] = float(sum(values.get(n, 0.0) for n in names))
        if "noc_latency" in values:
            out["NoC latency"] = float(values["noc_latency"])
        return out


def _sums_of_arrays(layer_cycles, layer_tails, critical, clock_hz, tick_us, pipelined):
    """Steps, wall seconds, schedule and whole-run sums of per-step arrays of every step."""
    steps = int(layer_cycles.shape[0])
    start, finish = schedule(layer_cycles, layer_tails, pipelined=pipelined)
    sums = (critical.sum(axis=(0, 1)), critical.sum(axis=0))
    end = float(np.max(finish + layer_tails)) if steps else 0.0
    wall = end / clock_hz
    if tick_us is not None:
        durations = tick_durations(
            layer_cycles, layer_tails, tick_us=tick_us, clock_hz=clock_hz, pipelined=pipelined
        )
        wall = float(np.sum(durations))
    return steps, wall, start, finish, sums, float(layer_tails.sum()), end


def build_profile(
    *,
    layer_cycles: np.ndarray,
    layer_tails: np.ndarray,
    critical_phase_cycles: np.ndarray,
    pe_phase_cycles: Sequence[np.ndarray],
    clock_hz: float,
    timer_hz: float,
    pipelined: bool,
    tick_us: float | None,
    step_phase_cycles: Sequence[np.ndarray] | None = None,
    deadline_missed_count: Sequence[np.ndarray] | None = None,
    recorded_steps: np.ndarray | None = None,
    totals=None,
    schedule_cycles: tuple[np.ndarray, np.ndarray] | None = None,
) -> Profile:
    """Assemble a :class:`Profile` from per-step layer figures (and per-PE steps if kept).

    Args:
        layer_cycles: ``(T, L)`` slowest-PE cycles. layer_tails: ``(T, L)`` NoC tails.
        critical_phase_cycles: ``(T, L, len(PHASES))``.
        pe_phase_cycles: per layer ``(len(PHASES), P)`` summed over steps.
        clock_hz, timer_hz, pipelined, tick_us: see :class:`Profile`.
        step_phase_cycles: per layer ``(T, len(PHASES), P)``, when recorded; gives the timer
            view and ``time_done_us``.
        deadline_missed_count: per layer ``(P,)``; computed from ``step_phase_cycles`` when
            omitted.
        recorded_steps: ``(N,)`` the steps ``step_phase_cycles`` holds when it does not
            hold every step (a recording window); pass ``deadline_missed_count`` then.
        totals: the whole run's running sums (:class:`~spinnaker2_backend.recording.
            RunTotals`) of a run that streamed them; the per-step arrays then hold the steps
            ``recorded_steps`` (None: every step), ``schedule_cycles`` their (start, finish).
    """
    layer_cycles = np.asarray(layer_cycles, dtype=np.float64)
    layer_tails = np.asarray(layer_tails, dtype=np.float64)
    critical = np.asarray(critical_phase_cycles, dtype=np.float64)
    if totals is not None:
        steps, wall = totals.steps, totals.wall_seconds
        start, finish = (np.asarray(a, dtype=np.float64) for a in schedule_cycles)
        sums = (totals.critical_phase_sum, totals.layer_critical_phase_sum)
        tails_sum, end = totals.tail_cycles_sum, float(totals.end_cycles) if steps else 0.0
    else:
        steps, wall, start, finish, sums, tails_sum, end = _sums_of_arrays(
            layer_cycles, layer_tails, critical, clock_hz, tick_us, pipelined
        )
    timer = time_done = None
    missed = [np.zeros(np.shape(c)[-1], dtype=np.int64) for c in pe_phase_cycles]
    if recorded_steps is not None:
        recorded_steps = np.asarray(recorded_steps, dtype=np.int64)
        if deadline_missed_count is None:
            raise ValueError(
                "a profile of recorded steps only needs deadline_missed_count of the whole run"
            )
    if step_phase_cycles is not None:
        offsets = step_offsets(layer_cycles, layer_tails, pipelined=pipelined)
        if recorded_steps is not None and totals is None:  # rows of every step
            offsets = offsets[recorded_steps]
        timer, time_done = [], []
        for layer, cycles in enumerate(step_phase_cycles):
            cycles = np.asarray(cycles, dtype=np.float64)
            begin = np.broadcast_to(offsets[:, layer, None], (len(offsets), cycles.shape[-1]))
            timer.append(timer_ticks(cycles, begin, clock_hz=clock_hz, timer_hz=timer_hz))
            done_us = (begin + cycles.sum(axis=1)) / clock_hz * 1e6
            time_done.append(done_us)
            if tick_us is not None:
                missed[layer] = np.sum(done_us > tick_us, axis=0).astype(np.int64)
    if deadline_missed_count is not None:
        missed = [np.asarray(c, dtype=np.int64) for c in deadline_missed_count]
    return Profile(
        phases=PHASES,
        clock_hz=float(clock_hz),
        timer_hz=float(timer_hz),
        pipelined=pipelined,
        tick_us=tick_us,
        steps=steps,
        layer_cycles=layer_cycles,
        layer_tails=layer_tails,
        critical_phase_cycles=critical,
        start_cycles=start,
        finish_cycles=finish,
        wall_seconds=float(wall),
        pe_phase_cycles=[np.asarray(c, dtype=np.float64) for c in pe_phase_cycles],
        step_phase_cycles=(
            None if step_phase_cycles is None else [np.asarray(c) for c in step_phase_cycles]
        ),
        timer_ticks=timer,
        time_done_us=time_done,
        deadline_missed_count=missed,
        recorded_steps=recorded_steps,
        critical_phase_sum=np.array(sums[0]),
        layer_critical_phase_sum=np.array(sums[1]),
        tail_cycles_sum=tails_sum,
        end_cycles=end,
    )


def profile_from_ops(
    step_ops: Sequence[np.ndarray],
    infos: Sequence[LayerTimingInfo],
    *,
    costs: CycleCosts,
    spec: ChipSpec,
    pipelined: bool = False,
    tick_us: float | None = None,
) -> Profile:
    """Cost recorded operation counts with (other) constants: the whole time model at once.

    The operation counts of a run do not depend on the cycle constants, so a run recorded
    once can be re-costed cheaply (this is how :mod:`spinnaker2_backend.calibration` fits a
    constant).

    Args:
        step_ops: per layer ``(T, len(OPS), P)`` counts (``Run.step_ops``).
        infos: per layer :class:`LayerTimingInfo` (``Run.timing_infos``).
        costs: the cycle constants. spec: the chip (clock, timer, DRAM bandwidth).
        pipelined, tick_us: the schedule.
    """
    if len(step_ops) != len(infos):
        raise ValueError(f"{len(step_ops)} layers of counts but {len(infos)} timing infos")
    busy, tails, critical, per_pe, cycles_list = [], [], [], [], []
    for ops, info in zip(step_ops, infos):
        ops = np.asarray(ops, dtype=np.float64)
        cycles = phase_cycles(ops, cost_matrix(info, costs=costs, spec=spec))
        total = cycles.sum(axis=1)  # (T, P)
        slowest = np.argmax(total, axis=1) if total.shape[1] else np.zeros(len(total), int)
        steps = np.arange(total.shape[0])
        busy.append(total[steps, slowest] if total.shape[1] else np.zeros(len(total)))
        critical.append(cycles[steps, :, slowest] if total.shape[1] else cycles.sum(axis=2))
        tails.append(noc_tail_cycles(ops[:, OP_INDEX["events"], :], info, costs=costs))
        per_pe.append(cycles.sum(axis=0))
        cycles_list.append(cycles)
    return build_profile(
        layer_cycles=np.stack(busy, axis=1),
        layer_tails=np.stack(tails, axis=1),
        critical_phase_cycles=np.stack(critical, axis=1),
        pe_phase_cycles=per_pe,
        clock_hz=spec.pe_clock_hz,
        timer_hz=spec.timer_hz,
        pipelined=pipelined,
        tick_us=tick_us,
        step_phase_cycles=cycles_list,
    )
