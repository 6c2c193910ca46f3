"""Process models of :class:`~lava_procs.egru_layer.process.EGRULayer`.

- tag ``floating_pt`` (:class:`PyEGRULayerFloat`): the numpy reference
  (:func:`snn_egru.reference.egru_step`), float32 for a deployment artifact.
- tag ``spinnaker2`` (:class:`PyEGRULayerSpiNNaker2`): the layer's PEs on the simulated
  SpiNNaker2 chip of ``spinnaker2_backend`` (weights per PE, events as NoC packets).

Both ``@requires(CPU)`` (Lava looks up the runtime service by resource); a RunConfig picks
one by tag (``lava_procs.run_configs``). Imports are absolute: Lava loads this file by path
while it scans the Process's folder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from scipy.sparse import csr_matrix

from lava_procs.chip_report import summarize_step
from lava_procs.common import COUNTERS_STEP, MESSAGE_DTYPE, LavaModelError
from lava_procs.egru_layer.process import EGRULayer
from lava_procs.model_base import SafeStepModel, host_cpu_model
from snn_egru.reference import (
    EGRUParams,
    EGRUState,
    Matrix,
    QuantizedEGRUParams,
    egru_step,
    recurrent_preactivation,
    validate_params,
)
from spinnaker2_backend.energy import estimate_energy

__all__ = ["PyEGRULayerFloat", "PyEGRULayerSpiNNaker2"]


class AbstractPyEGRULayerModel(SafeStepModel):
    """Ports, Vars and bookkeeping shared by both EGRU layer models.

    Subclasses implement :meth:`advance`: one step from ``x`` (already checked, in the
    compute dtype) to ``(y, new_state)``.
    """

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, MESSAGE_DTYPE)
    y_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)
    trace_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)
    # Lava's Python builder hands the initial value of a csr_matrix-typed Var over unchanged,
    # so this one declaration carries dense ndarray weights as well as CSR ones; get/set
    # then follow the type of the value (Lava's _get_var/_set_var dispatch on it).
    weight_ih: csr_matrix = LavaPyType(csr_matrix, np.float32)
    weight_hh: csr_matrix = LavaPyType(csr_matrix, np.float32)
    # float64 containers hold float32 (and float64) values exactly; Var.get/set move float64.
    bias_ih: np.ndarray = LavaPyType(np.ndarray, np.float64)
    bias_hh: np.ndarray = LavaPyType(np.ndarray, np.float64)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.float64)
    c: np.ndarray = LavaPyType(np.ndarray, np.float64)
    y: np.ndarray = LavaPyType(np.ndarray, np.float64)
    trace: np.ndarray = LavaPyType(np.ndarray, np.float64)
    events_emitted: np.ndarray = LavaPyType(np.ndarray, np.int64)
    last_step_events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    steps_run: np.ndarray = LavaPyType(np.ndarray, np.int64)
    chip_step_cycles: np.ndarray = LavaPyType(np.ndarray, np.float64)
    chip_phase_cycles: np.ndarray = LavaPyType(np.ndarray, np.float64)
    chip_total_cycles: np.ndarray = LavaPyType(np.ndarray, np.float64)
    chip_packets: np.ndarray = LavaPyType(np.ndarray, np.int64)
    chip_dma_bytes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    chip_macs: np.ndarray = LavaPyType(np.ndarray, np.int64)
    chip_energy_j: np.ndarray = LavaPyType(np.ndarray, np.float64)

    out_port_names = ("y_out", "trace_out")

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.compute_dtype = np.dtype(proc_params["dtype"])
        self.track_trace = bool(proc_params["track_trace"])
        # Built from the Vars on first use and again after every Var.set (on_var_update).
        self._params: EGRUParams | None = None
        self._state: EGRUState | None = None
        self._deferred_error: Exception | None = None
        self._event_recorder = proc_params.get("event_recorder")

    # ------------------------------------------------------------------ Var sync
    def on_var_update(self) -> None:
        """Lava calls this after a ``Var.set()``: re-read parameters and state.

        A bad value (negative threshold, NaN) must not raise here (Lava's SET handshake
        would hang); it is kept and raised by the next time step instead.
        """
        self._params = None
        self._state = None
        try:
            self.current_params()
        except Exception as err:  # raised on the next step through SafeStepModel
            self._deferred_error = err
        else:
            self._deferred_error = None

    def _matrix(self, value: Matrix) -> Matrix:
        # A copy: Lava's Var.set writes into the Var's array in place, and the parameters a
        # model computed with must not change under it (the chip model compares them).
        if sp.issparse(value):
            return sp.csr_matrix(value, dtype=self.compute_dtype, copy=True)
        return np.array(value, dtype=self.compute_dtype, copy=True)

    def current_params(self) -> EGRUParams:
        """The parameters in the compute dtype, from the Vars (cached)."""
        if self._params is None:
            dtype = self.compute_dtype
            params = EGRUParams(
                weight_ih=self._matrix(self.weight_ih),
                weight_hh=self._matrix(self.weight_hh),
                bias_ih=self.bias_ih.astype(dtype),
                bias_hh=self.bias_hh.astype(dtype),
                threshold=self.threshold.astype(dtype),
            )
            validate_params(params, name=self.describe())
            self._params = params
        return self._params

    def current_state(self) -> EGRUState:
        """The state in the compute dtype, from the Vars (cached)."""
        if self._state is None:
            dtype = self.compute_dtype
            self._state = EGRUState(
                c=self.c.astype(dtype),
                y=self.y.astype(dtype),
                trace=self.trace.astype(dtype) if self.track_trace else None,
            )
        return self._state

    def _store_state(self, state: EGRUState) -> None:
        self._state = state
        self.c[:] = state.c
        self.y[:] = state.y
        if state.trace is not None:
            self.trace[:] = state.trace

    # --------------------------------------------------------------------- step
    def receive_input(self) -> np.ndarray:
        """This step's input, checked (shape, finite) and cast to the compute dtype."""
        x = self.x_in.recv()
        expected = (int(self.proc_params["input_size"]),)
        if x.shape != expected:
            raise ValueError(f"input has shape {x.shape}, the layer expects {expected}")
        if not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.isfinite(x))
            raise ValueError(
                f"input contains NaN or infinite values (at {bad.size} of {x.size} "
                f"positions, first index {bad[0]}); check the upstream process or the inputs"
            )
        return x.astype(self.compute_dtype)

    def before_input(self) -> object:
        """Work of the step that does not need this step's input, done before waiting for
        it (the upstream process computes meanwhile); passed to :meth:`advance`."""
        return None

    def advance(self, x: np.ndarray, ahead: object) -> tuple[np.ndarray, EGRUState]:
        raise NotImplementedError

    def compute_step(self) -> dict[str, np.ndarray]:
        if self._deferred_error is not None:
            raise self._deferred_error
        ahead = self.before_input()
        x = self.receive_input()
        y, state = self.advance(x, ahead)
        self._store_state(state)
        events = int(np.count_nonzero(y))  # y = o * c~ with c~ > theta >= 0 where o = 1
        self.last_step_events[0] = events
        self.events_emitted[0] += events
        self.steps_run[0] += 1
        trace = state.trace if state.trace is not None else np.zeros_like(y)
        if self._event_recorder is not None:
            record = (y.copy(), trace.copy()) if self.track_trace else y.copy()
            self._event_recorder.put(self.time_step, record)
        return {
            "y_out": y.astype(MESSAGE_DTYPE),
            "trace_out": trace.astype(MESSAGE_DTYPE),
        }


@host_cpu_model(EGRULayer, "floating_pt")
class PyEGRULayerFloat(AbstractPyEGRULayerModel):
    """The numpy reference: :func:`snn_egru.reference.egru_step` on the Vars' parameters.

    The recurrent product ``weight_hh @ y_{t-1} + bias_hh`` is computed before the model
    waits for ``x_t`` (it does not need it), so a layer computes it while the layer before
    it computes: the same numbers, less time per step.
    """

    def before_input(self) -> np.ndarray:
        return recurrent_preactivation(self.current_state(), self.current_params())

    def advance(self, x: np.ndarray, ahead: np.ndarray) -> tuple[np.ndarray, EGRUState]:
        return egru_step(x, self.current_state(), self.current_params(), gh=ahead)


@host_cpu_model(EGRULayer, "spinnaker2")
class PyEGRULayerSpiNNaker2(AbstractPyEGRULayerModel):
    """The layer's PEs on the simulated SpiNNaker2 chip (``spinnaker2_backend``).

    :class:`~lava_procs.run_configs.SpiNNaker2SimCfg` maps the layer's whole network on the
    host and passes the mapping in ``proc_params``; this model runs
    ``LayerSimulator(mapping, layer)``: every PE's rows of the weights in the chosen format
    (CSR / event-driven / dense), the point-wise update of
    :func:`snn_egru.reference.egru_pointwise`, events sent as NoC packets (counted), per-PE
    cycles per phase. After each step it updates the ``chip_*`` Vars and, when the process
    has a ``chip_recorder``, puts a :class:`~lava_procs.chip_report.ChipStepSummary` into it
    (and the cumulative counters when a run ends).

    After a ``Var.set`` of the parameters the layer is mapped again with the new weights
    (cumulative counters carry over when the layer keeps its PEs).
    """

    #: tells SpiNNaker2SimCfg to map the network and hand the mapping to this model
    needs_chip_mapping = True

    def __init__(self, proc_params) -> None:
        if proc_params.get("chip_mapping") is None:
            # selected by a config that maps nothing (Loihi2SimCfg(select_tag="spinnaker2"))
            raise LavaModelError(
                f"EGRULayer {proc_params.get('name') or 'unnamed'!r}: the spinnaker2 model "
                "runs the layer's PEs of a chip mapping, which only "
                "lava_procs.SpiNNaker2SimCfg makes: run the graph with SpiNNaker2SimCfg(...) "
                "instead of Loihi2SimCfg(select_tag='spinnaker2')"
            )
        super().__init__(proc_params)
        self._options = proc_params["chip_options"]
        self._mapping = proc_params["chip_mapping"]
        self._layer_index = int(proc_params["chip_layer_index"])
        self._recorder = proc_params.get("chip_recorder")
        if self._recorder is not None and not getattr(self._recorder, "enabled", True):
            self._recorder = None
        # Built now (in parallel with the other models' start-up), from the mapping's own
        # copy of the layer; the first step checks that the Vars still hold the same.
        from spinnaker2_backend.layer_simulator import LayerSimulator

        self._simulator = LayerSimulator(
            self._mapping,
            self._layer_index,
            dtype=self.compute_dtype,
            tick_us=self._options.tick_us,
        )
        self._simulated_params: EGRUParams = _float_view(
            self._mapping.artifact.layers[self._layer_index]
        )
        self._state_from_vars = True  # push the Vars' state into the simulator first
        self._chips = max(len({s.chip for layer in self._mapping.layers for s in layer.slices}), 1)

    def on_var_update(self) -> None:
        super().on_var_update()
        self._state_from_vars = True

    def on_run_end(self) -> None:
        # the layer's cumulative counters, once per run (not per step: they hold per-PE
        # arrays), then ship everything batched
        if self._recorder is not None and self.steps_run[0] > 0:
            self._recorder.put(COUNTERS_STEP, self._simulator.counters.copy())
        super().on_run_end()

    # ------------------------------------------------------------------ simulator
    def _mapping_for(self, params: EGRUParams) -> Any:
        """The mapping that holds ``params`` as this layer (mapped again if they changed)."""
        artifact = self._mapping.artifact
        own = artifact.layers[self._layer_index]
        if _same_params(_float_view(own), params):
            return self._mapping
        if isinstance(own, QuantizedEGRUParams):
            raise ValueError(
                f"{self.describe()}: its Vars no longer hold the dequantised int8 weights it "
                f"was mapped with ({self._options.weight_format}); an int8 mapping runs the "
                "artifact's codes: quantise the new weights (snn_egru.reference."
                "quantize_params) into a new artifact and build the network from it"
            )
        layers = list(artifact.layers)
        layers[self._layer_index] = params
        self._mapping = self._options.map_network(dataclasses.replace(artifact, layers=layers))
        return self._mapping

    def layer_simulator(self) -> Any:
        """The backend ``LayerSimulator`` of this layer for the current parameters."""
        params = self.current_params()
        if params is self._simulated_params or _same_params(self._simulated_params, params):
            self._simulated_params = params
            return self._simulator
        from spinnaker2_backend.layer_simulator import LayerSimulator

        mapping = self._mapping_for(params)
        simulator = LayerSimulator(
            mapping, self._layer_index, dtype=self.compute_dtype, tick_us=self._options.tick_us
        )
        old = self._simulator
        if np.array_equal(old.pes, simulator.pes):
            simulator.counters = old.counters  # same PEs: keep counting
        self._simulator = simulator
        self._simulated_params = params
        self._state_from_vars = True
        return simulator

    # ----------------------------------------------------------------------- step
    def advance(self, x: np.ndarray, ahead: object) -> tuple[np.ndarray, EGRUState]:
        simulator = self.layer_simulator()
        if self._state_from_vars:
            simulator.set_state(self.current_state())
            self._state_from_vars = False
        result = simulator.step(x)
        self._update_chip_vars(result, simulator)
        if self._recorder is not None:
            summary = summarize_step(
                result,
                keep_pe_steps=getattr(self._recorder, "keep_pe_steps", True),
                keep_busy=getattr(self._recorder, "keep_busy", False),
            )
            self._recorder.put(self.time_step, summary)
        state = simulator.state
        if not self.track_trace:
            state = state._replace(trace=None)
        return result.y, state

    def _update_chip_vars(self, result: Any, simulator: Any) -> None:
        counters = simulator.counters
        slowest = int(np.argmax(result.busy_cycles))
        self.chip_step_cycles[0] = result.layer_cycles
        self.chip_phase_cycles[:] = result.phase_cycles[:, slowest]
        self.chip_total_cycles[0] = counters.layer_cycles
        self.chip_packets[:] = (counters.packets_on_chip, counters.packets_chip_to_chip)
        self.chip_dma_bytes[0] = counters.dram_bytes
        self.chip_macs[0] = counters.macs
        clock_hz = simulator.spec.pe_clock_hz
        energy = estimate_energy(
            wall_seconds=(counters.layer_cycles + counters.tail_cycles) / clock_hz,
            busy_cycles=float(counters.phase_cycles.sum()),
            packets=counters.total("packets_sent"),
            packet_hops=counters.total("packet_hops"),
            chip_link_hops=counters.total("chip_link_hops"),
            dram_bytes=counters.dram_bytes,
            clock_hz=clock_hz,
            chips=self._chips,
        )
        self.chip_energy_j[0] = energy.total_j


def _float_view(layer: Any) -> EGRUParams:
    """The float layer the Vars hold: an int8 layer's dequantised weights (code * scale)."""
    return layer.dequantize() if isinstance(layer, QuantizedEGRUParams) else layer


def _same_params(a: EGRUParams, b: EGRUParams) -> bool:
    """True when two layers hold the same numbers (dense or sparse, any dtype)."""

    def same(u: Any, v: Any) -> bool:
        if sp.issparse(u) or sp.issparse(v):
            u, v = sp.csr_matrix(u), sp.csr_matrix(v)
            return u.shape == v.shape and (u != v).nnz == 0
        return np.array_equal(np.asarray(u), np.asarray(v))

    return all(same(getattr(a, f), getattr(b, f)) for f in EGRUParams._fields)
