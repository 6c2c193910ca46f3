"""The simulated SpiNNaker2 chip running a mapped EGRU network, step by step.

Every PE of a layer does, per step (``docs/spinnaker2.md``):

1. take its input: layer 0 streams the input vector from DRAM by DMA (or receives it from
   the host); other layers receive the previous layer's events as packets;
2. input product: its units' rows of ``weight_ih`` (all three gates) times the input;
3. recurrent product: its rows of ``weight_hh`` times ``y_{t-1}`` of the layer, assembled
   from the packets it received plus its own units;
4. the point-wise update (:func:`snn_egru.reference.egru_pointwise`, the one definition);
5. send: one multicast packet (32-bit key + 32-bit payload: the graded value) per event per
   destination QPE, to the other PEs of its layer and to the PEs of the next layer
   (``mapping.routes``).

The simulation is vectorised across PEs: the numbers come from one product over the whole
layer's stored rows (the rows are partitioned by PE, so it computes every PE's result at
once), and the per-PE work (weights walked, events processed, packets) from per-PE arrays
precomputed from the PEs' encoded weights and routes:

``csr``    every stored weight is walked each step: a per-PE constant;
``event``  only the runs of sources that fired: ``active @ C`` with ``C`` the
           ``(sources, P)`` matrix of stored weights per (source column, PE);
``dense``  every element: a per-PE constant.

Operation counts turn into cycles with :mod:`spinnaker2_backend.timing` and into joules with
:mod:`spinnaker2_backend.energy`.

Numerics: the weights are assembled from what the mapping encoded for each PE (so a wrong
encoding shows as a wrong output), cast to ``dtype``. The products and the per-PE counts run
in compiled kernels (:mod:`spinnaker2_backend.kernels`). With ``csr`` each row is summed as
the reference's scipy product sums it (:func:`snn_egru.reference.gate_matvec` on the same
CSR matrix), so outputs equal :func:`snn_egru.reference.egru_step` bit for bit; the
``event`` kernel walks only the sources that fired and sums the same terms in the same
order per row; ``dense`` uses a BLAS product (equal within rounding).

A :class:`LayerSimulator` depends only on the mapping and its own layer (the packets it
receives from the layer before are counted from its input vector), so Lava process models
can run one per layer, and per-layer results sum to the network run exactly. It lives in
:mod:`spinnaker2_backend.layer_simulator`; this module composes the layers
(:class:`NetworkSimulator`, :func:`run_mapping`) and fills the result types of
:mod:`spinnaker2_backend.results`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from snn_egru.reference import EGRUState
from spinnaker2_backend.constants import CycleCosts, EnergyCosts
from spinnaker2_backend.energy import estimate_energy
from spinnaker2_backend.layer_simulator import (
    LayerSimulator,
    LayerStepResult,
    check_dtype,
    check_tick,
)
from spinnaker2_backend.mapping import Mapping
from spinnaker2_backend.recording import StepHistory, StepLog, check_window
from spinnaker2_backend.results import LayerCounters, NetworkCounters, Run
from spinnaker2_backend.timing import OPS, PHASES, build_profile

logger = logging.getLogger(__name__)

__all__ = [
    "READOUT_PLACES",
    "LayerSimulator",
    "LayerStepResult",
    "NetworkSimulator",
    "NetworkStepResult",
    "receive_capacity_from_run",
    "run_mapping",
]

ReadoutPlace = Literal["host", "chip"]

#: Where the readout (tied decoder / linear) runs: on the host (as published) or on the chip.
READOUT_PLACES: tuple[str, ...] = ("host", "chip")
#: Why an adaptive-softmax artifact cannot have its readout on the chip (one line).
ADAPTIVE_ON_CHIP = (
    "the on-chip readout is one linear layer (tied decoder or linear readout); this "
    "artifact's adaptive softmax runs on the host: use --readout host (readout='host')"
)

#: Runs longer than this many steps show a progress bar unless ``progress=False``.
PROGRESS_MIN_STEPS = 2000

#: Workload inputs are turned into layer-0 vectors this many steps at a time.
INPUT_CHUNK = 1024


class NetworkStepResult:
    """One step of the whole network.

    Attributes:
        layers: one :class:`LayerStepResult` per layer (layer ``l``'s ``y`` fed layer ``l+1``).
        logits: ``(O,)`` readout of this step, or None (no readout).
        time_done_us: per layer ``(P,)`` when each PE finished, from the step's (tick's)
            start, layers composed (one after another, or pipelined).
        deadline_missed: per layer ``(P,)`` bool (all False when no tick is set).
    """

    __slots__ = ("layers", "logits", "time_done_us", "deadline_missed")

    def __init__(self, layers, logits, time_done_us, deadline_missed) -> None:
        self.layers = layers
        self.logits = logits
        self.time_done_us = time_done_us
        self.deadline_missed = deadline_missed

    @property
    def y(self) -> np.ndarray:
        """The last layer's events."""
        return self.layers[-1].y

    def __repr__(self) -> str:
        return f"NetworkStepResult(layers={self.layers!r})"


class NetworkSimulator:
    """The whole mapped network: one :class:`LayerSimulator` per layer, composed.

    Args:
        mapping: the mapping.
        dtype: ``np.float32`` or ``np.float64``.
        tick_us: tick duration (deadline checks; the run's wall time becomes ticks x tick).
        pipelined: layers pipelined instead of one after another per token.
        readout: ``"host"`` (as published; no chip cost) or ``"chip"`` (accounted on the last
            layer's PEs: each computes a block of the outputs from the fired units, decoder
            weights streamed from DRAM).
        record: keep per-step outputs and per-PE per-step counts (needed for the timer view,
            per-step plots and logits of every step).
        record_window: keep that per-step detail for the last ``record_window`` steps only
            (memory bounded whatever the run's length; see :mod:`spinnaker2_backend.
            recording`); None keeps every step. Totals, profile and energy always cover
            every step.
        costs: cycle constants. energy_costs: energy constants.
        progress: show a progress bar (default: for runs over 2000 steps).
        on_overflow: ``"raise"`` or ``"drop"`` when an ``event-list`` overflows (see
            :class:`LayerSimulator`).
        round_received: round received event values to binary16 as the ``bitmap16``
            design keeps them (None: on for ``bitmap16``; False: float32 values, the
            reference's outputs bit for bit).
    """

    def __init__(
        self,
        mapping: Mapping,
        *,
        dtype: np.dtype | type = np.float32,
        tick_us: float | None = None,
        pipelined: bool = False,
        readout: str = "host",
        record: bool = True,
        record_window: int | None = None,
        costs: CycleCosts | None = None,
        energy_costs: EnergyCosts | None = None,
        progress: bool | None = None,
        on_overflow: str = "raise",
        round_received: bool | None = None,
    ) -> None:
        if readout not in READOUT_PLACES:
            raise ValueError(f"readout must be one of {', '.join(READOUT_PLACES)}, got {readout!r}")
        self.mapping = mapping
        self.dtype = check_dtype(dtype)
        self.tick_us = check_tick(tick_us)
        self.pipelined = bool(pipelined)
        self.readout = readout
        self.record = bool(record)
        self.record_window = check_window(record_window)
        self.costs = costs if costs is not None else CycleCosts()
        self.energy_costs = energy_costs if energy_costs is not None else EnergyCosts()
        self.progress = progress
        self.on_overflow = on_overflow
        self.batch_size = int(mapping.batch_size)
        if self.pipelined and mapping.receive_policy == "reused":
            raise ValueError(
                "receive policy 'reused' keeps one vector for both products, which needs the "
                "layers one after another (the input and the recurrent events would arrive "
                "together when pipelined): run with pipelined=False or another receive policy"
            )
        artifact = mapping.artifact
        if readout == "chip" and artifact.readout_kind == "adaptive":
            raise ValueError(ADAPTIVE_ON_CHIP)
        if readout == "chip" and artifact.decoder_weight is None:
            raise ValueError(
                "readout='chip' needs a network with a readout; this artifact has none "
                "(use readout='host')"
            )
        last = len(mapping.layers) - 1
        self.layers = [
            LayerSimulator(
                mapping,
                i,
                dtype=self.dtype,
                tick_us=self.tick_us,
                readout="chip" if (readout == "chip" and i == last) else None,
                costs=self.costs,
                on_overflow=on_overflow,
                round_received=round_received,
            )
            for i in range(len(mapping.layers))
        ]
        decoder = artifact.decoder_weight
        self._decoder = None if decoder is None else np.asarray(decoder, dtype=self.dtype)
        bias = artifact.readout_bias
        self._decoder_bias = None if bias is None else np.asarray(bias, dtype=self.dtype)
        # an adaptive softmax: log-probabilities on the host, in the run's dtype
        head = artifact.adaptive
        self._adaptive = None if head is None else head.astype(self.dtype)
        self._clear_history()

    # ------------------------------------------------------------------- state
    def _clear_history(self, log: StepLog | None = None) -> None:
        self._history = StepHistory(
            len(self.layers),
            num_phases=len(PHASES),
            num_ops=len(OPS),
            detail=self.record,
            window=self.record_window,
            pipelined=self.pipelined,
            tick_us=self.tick_us,
            clock_hz=self.mapping.spec.pe_clock_hz,
            log=log,
        )
        self._missed = [np.zeros(layer.num_pes, dtype=np.int64) for layer in self.layers]

    def reset(self) -> None:
        """Zero every layer's state and every counter and recording."""
        for layer in self.layers:
            layer.reset()
        self._clear_history()

    @property
    def states(self) -> list[EGRUState]:
        return [layer.state for layer in self.layers]

    def set_states(self, states: Sequence[EGRUState]) -> None:
        if len(states) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} layer states, got {len(states)}")
        for layer, state in zip(self.layers, states):
            layer.set_state(state)

    @property
    def counters(self) -> NetworkCounters:
        return NetworkCounters(layers=[layer.counters for layer in self.layers])

    def logits_of(self, source: np.ndarray) -> np.ndarray | None:
        """Readout of the last layer's events (or trace) ``(..., H_last) -> (..., O)``
        (an adaptive softmax: its log-probabilities, :mod:`snn_egru.adaptive_head`)."""
        if self._adaptive is not None:
            return self._adaptive.log_prob(source)
        if self._decoder is None:
            return None
        logits = source @ self._decoder.T
        if self._decoder_bias is not None:
            logits = logits + self._decoder_bias
        return logits

    # -------------------------------------------------------------------- step
    def _advance(self, x0: np.ndarray) -> list[LayerStepResult]:
        """One step of every layer; this step's layer rows are written into the history
        by each layer's accounting call (its slowest PE's phases, its totals), the start of
        each layer chained in the same call (``timing.step_offsets``'s figures)."""
        layer_cycles, tails, critical, totals = self._history.new_step()
        results = []
        inp = x0
        before, chained = 0.0, not self.pipelined
        for i, layer in enumerate(self.layers):
            result = layer._step(inp, (before, chained, self._missed[i], (critical[i], totals[i])))
            results.append(result)
            layer_cycles[i] = result.layer_cycles
            tails[i] = result.noc_tail_cycles
            before = layer._running
            inp = result.y
        if self.record:
            last = self.layers[-1]
            readout_input = None
            if self._decoder is not None or self._adaptive is not None:
                readout_input = last._trace if last._trace is not None else results[-1].y
            self._history.keep_detail(
                (
                    [r.ops for r in results],
                    [r.phase_cycles for r in results],
                    [r.y for r in results],
                    readout_input,
                )
            )
        return results

    def step(self, x0: np.ndarray) -> NetworkStepResult:
        """One step of every layer (layer ``l``'s ``y`` feeds layer ``l+1``).

        Args:
            x0: ``(I,)`` layer-0 input vector (an embedding row or a feature vector).
        """
        results = self._advance(x0)
        last = self.layers[-1]
        source = last._trace if last._trace is not None else results[-1].y
        return NetworkStepResult(
            layers=results,
            logits=self.logits_of(source),
            time_done_us=[r.time_done_us for r in results],
            deadline_missed=[r.deadline_missed for r in results],
        )

    def run(self, inputs: np.ndarray, *, step_log: str | os.PathLike | None = None) -> Run:
        """Run over workload inputs (token ids ``(T,)`` or feature vectors ``(T, I)``,
        turned into layer-0 inputs by ``artifact.layer_inputs``), continuing from the
        current state; returns a :class:`~spinnaker2_backend.results.Run` of these steps.

        With ``mapping.batch_size = B > 1`` the inputs carry a leading batch axis: token ids
        ``(B, T)`` or feature vectors ``(B, T, I)``. A single stream is turned into layer-0
        vectors :data:`INPUT_CHUNK` steps at a time, so a long token stream never exists as
        a ``(T, I)`` array.

        ``step_log``: a file every step's layer rows are streamed to
        (:class:`~spinnaker2_backend.recording.StepLog`, ``.npz``)."""
        artifact = self.mapping.artifact
        b = self.batch_size
        if b == 1:
            inputs = np.asarray(inputs)
            if inputs.ndim == 0 or len(inputs) <= INPUT_CHUNK:
                return self._run_chunks([artifact.layer_inputs(inputs)], None, step_log)
            chunks = (
                artifact.layer_inputs(inputs[start : start + INPUT_CHUNK])
                for start in range(0, len(inputs), INPUT_CHUNK)
            )
            return self._run_chunks(chunks, len(inputs), step_log)
        inputs = np.asarray(inputs)
        if inputs.ndim < 2 or inputs.shape[0] != b:
            raise ValueError(
                f"the mapping keeps a batch of {b} samples: give inputs with a leading batch "
                f"axis of {b} (token ids (B, T) or features (B, T, I)), got shape {inputs.shape}"
            )
        xs = np.stack([artifact.layer_inputs(sample) for sample in inputs], axis=1)
        return self._run_chunks([xs], None, step_log)

    def run_layer_inputs(self, xs: np.ndarray) -> Run:
        """Run over layer-0 input vectors ``(T, I)`` (``(T, B, I)`` for a batch); see
        :meth:`run`."""
        xs = np.asarray(xs)
        if xs.ndim == 0 or len(xs) == 0:
            raise ValueError(
                "no inputs: the run has 0 steps; give at least one token or feature vector"
            )
        return self._run_chunks([xs], len(xs))

    def _check_layer_inputs(self, xs: np.ndarray) -> np.ndarray:
        """``xs`` of shape ``(T, I)`` (``(T, B, I)``), finite, cast to the dtype."""
        size = self.layers[0].input_size
        b = self.batch_size
        want = (size,) if b == 1 else (b, size)
        if xs.ndim != 1 + len(want) or xs.shape[1:] != want:
            shape = "(T, " + ", ".join(map(str, want)) + ")"
            raise ValueError(f"layer-0 inputs must have shape {shape}, got {xs.shape}")
        if np.issubdtype(xs.dtype, np.floating) and not np.all(np.isfinite(xs)):
            step = int(np.flatnonzero(~np.isfinite(xs).reshape(len(xs), -1).all(axis=1))[0])
            raise ValueError(
                f"input step {step} holds NaN or infinite values; a chip cannot send them as "
                f"events: clean the inputs"
            )
        return xs.astype(self.dtype, copy=False)

    def _run_chunks(self, chunks, steps: int | None, step_log=None) -> Run:
        """Run over chunks of layer-0 inputs (``steps`` in all); see :meth:`run`."""
        chunks = list(chunks) if steps is None else chunks
        if steps is None:
            xs = np.asarray(chunks[0])
            if xs.ndim == 0 or len(xs) == 0:
                raise ValueError(
                    "no inputs: the run has 0 steps; give at least one token or feature vector"
                )
            steps = len(xs)
        if step_log is None:
            return self._run_logged(chunks, steps, None)
        with StepLog(step_log, phases=PHASES, ops=OPS) as log:
            return self._run_logged(chunks, steps, log)

    def _run_logged(self, chunks, steps: int, log: StepLog | None) -> Run:
        kept = self.mapping.record_steps
        if 0 < kept < steps:
            logger.warning(
                "the mapping keeps %d recorded steps in PE SRAM but the run has %d steps: on "
                "the chip only %d would be recorded (map with record_steps=%d)",
                kept,
                steps,
                kept,
                steps,
            )
        for layer in self.layers:
            layer.counters = LayerCounters.zeros(layer.layer, layer.pes)
        self._clear_history(log)
        show = self.progress if self.progress is not None else steps > PROGRESS_MIN_STEPS
        done = 0
        with tqdm(total=steps, desc="simulated steps", disable=not show, leave=False) as bar:
            for xs in chunks:
                for x in self._check_layer_inputs(np.asarray(xs)):
                    self._advance(x)
                done += len(xs)
                bar.update(len(xs))
        return self._make_run(done)

    # ------------------------------------------------------------------- result
    def _make_run(self, steps: int) -> Run:
        mapping = self.mapping
        spec = mapping.spec
        rows = self._history.kept_rows()
        profile, step_ops, recorded = self._profile(steps, rows)
        counters = NetworkCounters(layers=[layer.counters.copy() for layer in self.layers])
        chips = max(len({s.chip for layer in mapping.layers for s in layer.slices}), 1)
        energy = self._energy(profile, counters, chips)
        layer_events, logits = self._recorded_outputs()
        dropped = counters.total("events_dropped")
        if dropped:
            logger.warning(
                "%d received events did not fit the event lists (receive_capacity %s) and were "
                "dropped: the outputs differ from the reference",
                dropped,
                "/".join(map(str, mapping.receive_capacity)),
            )
        if profile.deadline_missed:
            logger.warning(
                "tick of %g us too short: %d PE-ticks missed their deadline",
                self.tick_us,
                profile.deadlines_missed_total,
            )
        return Run(
            layer_sizes=[layer.hidden_size for layer in self.layers],
            weight_format=mapping.weight_format,
            num_pes=int(sum(layer.num_pes for layer in self.layers)),
            num_chips=chips,
            clock_hz=float(spec.pe_clock_hz),
            dtype=self.dtype.name,
            readout=self.readout,
            steps=steps,
            layer_events=layer_events,
            logits=logits,
            states=self.states,
            counters=counters,
            step_totals=rows["op_totals"],
            step_ops=step_ops,
            recorded_steps=recorded,
            profile=profile,
            energy=energy,
            cycle_costs=self.costs,
            energy_costs=self.energy_costs,
            layer_pes=[layer.pes.copy() for layer in self.layers],
            timing_infos=[layer.timing_info for layer in self.layers],
            pipelined=self.pipelined,
            tick_us=self.tick_us,
            batch_size=self.batch_size,
            input_kind=mapping.artifact.input_kind,
            receive_policy=mapping.receive_policy,
        )

    def _profile(self, steps: int, rows: dict[str, np.ndarray]):
        """The run's time profile, the recorded per-step operation counts (per layer) and the
        recorded steps (``None``: the kept rows and detail cover every step)."""
        num_phases = len(PHASES)
        history = self._history
        kept = history.kept_steps()
        recorded = None if len(kept) == steps else kept
        step_cycles = step_ops = None
        if self.record:
            step_cycles = [
                history.detail_arrays(i, 2, (num_phases, layer.num_pes))
                for i, layer in enumerate(self.layers)
            ]
            step_ops = [
                history.detail_arrays(i, 1, (len(OPS), layer.num_pes))
                for i, layer in enumerate(self.layers)
            ]
        spec = self.mapping.spec
        profile = build_profile(
            layer_cycles=rows["layer_cycles"],
            layer_tails=rows["layer_tails"],
            critical_phase_cycles=rows["critical_phase_cycles"],
            schedule_cycles=(rows["start_cycles"], rows["finish_cycles"]),
            totals=history.totals,
            pe_phase_cycles=[layer.counters.phase_cycles for layer in self.layers],
            clock_hz=spec.pe_clock_hz,
            timer_hz=spec.timer_hz,
            pipelined=self.pipelined,
            tick_us=self.tick_us,
            step_phase_cycles=step_cycles,
            recorded_steps=recorded,
            deadline_missed_count=[m.copy() for m in self._missed],
        )
        return profile, step_ops, recorded

    def _energy(self, profile, counters: NetworkCounters, chips: int):
        """The energy estimate of the run's time and counters."""
        spec = self.mapping.spec
        return estimate_energy(
            wall_seconds=profile.wall_seconds,
            busy_cycles=float(sum(layer.counters.phase_cycles.sum() for layer in self.layers)),
            packets=counters.total("packets_sent"),
            packet_hops=counters.total("packet_hops"),
            chip_link_hops=counters.total("chip_link_hops"),
            dram_bytes=counters.total("dram_bytes") + counters.total("readout_dram_bytes"),
            clock_hz=spec.pe_clock_hz,
            chips=chips,
            costs=self.energy_costs,
        )

    def _recorded_outputs(self) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
        """Every layer's recorded events and the logits of the recorded readout inputs
        (batch first with a batch); ``None`` without recording."""
        layer_events = logits = None
        if self.record:
            history = self._history
            layer_events = [
                history.detail_arrays(i, 3, layer.state_shape)
                for i, layer in enumerate(self.layers)
            ]
            readout_inputs = history.readout_inputs()
            if (self._decoder is not None or self._adaptive is not None) and readout_inputs:
                logits = self.logits_of(np.stack(readout_inputs))
        if self.batch_size > 1 and layer_events is not None:
            layer_events = [np.moveaxis(e, 1, 0) for e in layer_events]  # (B, T, H)
            if logits is not None:
                logits = np.moveaxis(logits, 1, 0)
        return layer_events, logits

    def __repr__(self) -> str:
        return (
            f"NetworkSimulator(layers={[layer.hidden_size for layer in self.layers]}, "
            f"format={self.mapping.weight_format!r}, dtype={self.dtype.name}, "
            f"readout={self.readout!r}, pipelined={self.pipelined})"
        )


def run_mapping(
    mapping: Mapping,
    inputs: np.ndarray,
    *,
    dtype: np.dtype | type = np.float32,
    tick_us: float | None = None,
    pipelined: bool = False,
    readout: str = "host",
    record: bool = True,
    record_window: int | None = None,
    states: Sequence[EGRUState] | None = None,
    costs: CycleCosts | None = None,
    energy_costs: EnergyCosts | None = None,
    progress: bool | None = None,
    batch_size: int | None = None,
    on_overflow: str = "raise",
    step_log: str | os.PathLike | None = None,
    round_received: bool | None = None,
) -> Run:
    """Run a mapped network on the simulated chip.

    Args:
        mapping: from :func:`~spinnaker2_backend.mapping.map_network`.
        inputs: workload inputs: token ids ``(T,)`` or feature vectors ``(T, I)`` (turned
            into layer-0 inputs by ``artifact.layer_inputs``).
        dtype: ``np.float32`` (as the chip) or ``np.float64``.
        tick_us: tick duration in microseconds (deadline checks, wall time = ticks x tick).
        pipelined: layers pipelined instead of one after another per token.
        readout: ``"host"`` (default, as published) or ``"chip"`` (accounted on chip).
        record: keep per-step outputs and per-PE per-step counts.
        record_window: keep them, and the per-step layer rows (``Run.step_totals``, the
            profile's per-step arrays), for the last ``record_window`` steps only (None:
            every step): memory then stays bounded; totals, profile sums, activity and
            energy cover every step either way, bit for bit.
        states: initial per-layer states (default zeros).
        costs, energy_costs: cycle and energy constants (defaults from constants.py).
        progress: progress bar (default: runs over 2000 steps).
        batch_size: samples per PE (default: the mapping's). A batch larger than the
            mapping was laid out for is laid out and checked again
            (:meth:`~spinnaker2_backend.mapping.Mapping.for_batch`; a
            :class:`~spinnaker2_backend.mapping.MappingError` names the per-sample state when
            it does not fit). Inputs then carry a leading batch axis (``(B, T)`` token ids or
            ``(B, T, I)`` features); outputs equal ``B`` independent batch-1 runs.
        on_overflow: ``"raise"`` (default) or ``"drop"`` when an ``event-list`` overflows.
        step_log: a file every step's layer figures are streamed to (``.npz`` chunks,
            :class:`~spinnaker2_backend.recording.StepLog`), or None.
        round_received: see :class:`NetworkSimulator`.

    Returns:
        :class:`~spinnaker2_backend.results.Run`.
    """
    if batch_size is not None:
        mapping = mapping.for_batch(batch_size)
    simulator = NetworkSimulator(
        mapping,
        dtype=dtype,
        tick_us=tick_us,
        pipelined=pipelined,
        readout=readout,
        record=record,
        record_window=record_window,
        costs=costs,
        energy_costs=energy_costs,
        progress=progress,
        on_overflow=on_overflow,
        round_received=round_received,
    )
    if states is not None:
        simulator.set_states(states)
    return simulator.run(inputs, step_log=step_log)


def receive_capacity_from_run(run: Run, *, margin: float = 0.0) -> tuple[int, ...]:
    """Per layer, the event-list entries a recorded run needed (its peak, times
    ``1 + margin``, rounded up): the most events of one product in one step of one sample,
    i.e. ``max(events of the layer's input, events of the layer's own y_{t-1})``.

    Map with ``receive_capacity=receive_capacity_from_run(run)`` to size the lists from the
    recorded activity (inputs from DRAM are a dense DMA target and need no list entries).

    Raises:
        ValueError: the run was not recorded (``record=True``) or has a negative margin.
    """
    if run.layer_events is None:
        raise ValueError("sizing the event lists needs a run recorded with record=True")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")

    def peak(events: np.ndarray) -> int:
        flat = events.reshape(-1, events.shape[-1])
        return int(np.count_nonzero(flat, axis=1).max()) if flat.size else 0

    out = []
    for i, events in enumerate(run.layer_events):
        need = peak(events)
        if i > 0:
            need = max(need, peak(run.layer_events[i - 1]))
        out.append(int(np.ceil(need * (1.0 + margin))))
    return tuple(out)
