"""The EGRU layer as a Lava Process: its interface (ports and Vars), no behaviour.

Behaviour lives in ``models.py`` next to this file (Lava finds models by scanning this
folder): tag ``floating_pt`` runs the numpy reference, tag ``spinnaker2`` runs the layer's
PEs on the simulated SpiNNaker2 chip.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import LogConfig
from lava.magma.core.process.variable import Var

from lava_procs import lava_internals
from lava_procs.common import (
    HostRecorder,
    NetworkContext,
    as_compute_array,
    prepare_weight,
)
from lava_procs.process_base import GuardedProcess
from snn_egru.reference import (
    EGRUParams,
    EGRUState,
    Matrix,
    QuantizedEGRUParams,
    QuantizedWeight,
    validate_params,
)
from spinnaker2_backend.timing import PHASES

__all__ = ["CHIP_PHASES", "EGRULayer", "ParamVar"]

#: Phases of one step on a PE, in the simulated chip's order
#: (``spinnaker2_backend.timing.PHASES``): the entries of the ``chip_phase_cycles`` Var.
CHIP_PHASES: tuple[str, ...] = PHASES


class EGRULayer(GuardedProcess):
    """One EGRU layer (``docs/egru.md``) as a Lava Process.

    Per Lava time step the layer receives its input ``x_t`` on ``x_in``, computes one step of
    :func:`snn_egru.reference.egru_step` (the equations: :mod:`snn_egru.reference`,
    ``docs/egru.md``), and sends the graded events ``y_t = o * c~`` on ``y_out`` in the same
    time step (no delay: the layer holds its own weights and recurrent state, it is not a
    Lava synapse process); with ``track_trace`` it also sends the low-pass
    ``trace_t = 0.9 * trace_{t-1} + 0.1 * y_t`` on ``trace_out``.

    Weights are in ``torch.nn.GRU`` layout, gate order (r, z, n). Messages are float64
    vectors (every float32 value exactly); the layer computes in the dtype of its
    parameters (float32 for a deployment artifact).

    Args (keyword-only):
        weight_ih: ``(3H, I)`` input weights, dense array or scipy.sparse (stored as CSR).
        weight_hh: ``(3H, H)`` recurrent weights, dense or sparse.
        bias_ih: ``(3H,)`` input bias.
        bias_hh: ``(3H,)`` recurrent bias.
        threshold: ``(H,)`` per-unit thresholds ``theta >= 0``.
        initial_state: state ``(c, y[, trace])`` at the first step; zeros when ``None``.
        track_trace: keep the low-pass ``trace`` of the events and send it on ``trace_out``.
        dtype: compute dtype; default the dtype of ``bias_ih``.
        network_context: the whole network this layer is layer ``i`` of; the ``spinnaker2``
            model maps the whole network and runs this layer's PEs of that mapping. ``None``
            for a stand-alone layer (then a one-layer network is mapped).
        chip_recorder: if given (a :class:`~lava_procs.common.ChipRecorder`), the
            ``spinnaker2`` model puts one summary of the step's chip counts per time step
            into it and the cumulative counters at the end of every run (the host reads
            them; see ``lava_procs.run``).
        event_recorder: if given, the model puts ``(time_step, y)`` per step into it
            (``(time_step, (y, trace))`` with ``track_trace``): the events reach the host
            without a sink process (a sink process per layer costs Lava messages per step).
        name: Lava name of the process.
        log_config: Lava logging options.

    Ports:
        x_in: InPort ``(I,)``, the layer input.
        y_out: OutPort ``(H,)``, the graded events ``y_t`` (zero where no event).
        trace_out: OutPort ``(H,)``, ``trace_t`` (zeros unless ``track_trace``).

    Vars (``.get()`` / ``.set()`` between runs; ``get``/``set`` move one element per
    message, so reading a large weight matrix is slow):
        weight_ih, weight_hh: the weights (dense ndarray, or CSR: ``set`` must keep the
            sparsity pattern, a Lava rule).
        bias_ih, bias_hh, threshold: the other parameters.
        c, y, trace: the state after the last step (``y`` is the last events sent).
        events_emitted: total number of events (units with ``o = 1``) so far.
        last_step_events: number of events in the last step.
        steps_run: number of time steps computed so far.
        chip_*: counters of the simulated chip (``spinnaker2`` model; zero under
            ``floating_pt``): ``chip_step_cycles`` the last step's layer time in PE clock
            cycles (its slowest PE), ``chip_phase_cycles`` the slowest PE's cycles per phase
            :data:`CHIP_PHASES` in the last step, ``chip_total_cycles`` the sum over steps
            of ``chip_step_cycles``, ``chip_packets`` NoC packets so far
            ``[on_chip, chip_to_chip]``, ``chip_dma_bytes`` DRAM bytes moved so far,
            ``chip_macs`` multiply-accumulates so far, ``chip_energy_j`` this layer's share
            of the energy so far (joules, energy model of ``spinnaker2_backend``: static
            power of the powered chips while this layer's step runs, plus its dynamic
            energy; summed over the layers it is the network run's energy).
    """

    #: marks the class for the run configs (which must not import it)
    is_egru_layer = True

    def __init__(
        self,
        *,
        weight_ih: Matrix,
        weight_hh: Matrix,
        bias_ih: np.ndarray,
        bias_hh: np.ndarray,
        threshold: np.ndarray,
        initial_state: EGRUState | None = None,
        track_trace: bool = False,
        dtype: np.dtype | type | None = None,
        network_context: NetworkContext | None = None,
        chip_recorder: HostRecorder | None = None,
        event_recorder: HostRecorder | None = None,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        label = f"EGRULayer {name!r}" if name else "EGRULayer"
        # int8 weights (QuantizedWeight): the Vars hold the dequantised weights (code *
        # scale), as EGRUNetwork does for an int8 artifact
        weight_ih, weight_hh = (
            w.dequantize() if isinstance(w, QuantizedWeight) else w for w in (weight_ih, weight_hh)
        )
        params = EGRUParams(weight_ih, weight_hh, bias_ih, bias_hh, threshold)
        _check_threshold_length(params, label)
        validate_params(params, name=label)
        dtype = np.dtype(dtype if dtype is not None else np.asarray(bias_ih).dtype)
        if not np.issubdtype(dtype, np.floating):
            raise ValueError(f"{label}: dtype must be floating point, got {dtype}")
        hidden, inputs = params.hidden_size, params.input_size
        if network_context is not None:
            _check_network_context(network_context, params, label)
        super().__init__(
            name=name,
            log_config=log_config,
            dtype=dtype,
            input_size=inputs,
            hidden_size=hidden,
            track_trace=bool(track_trace),
            network_context=network_context,
            chip_recorder=chip_recorder,
            event_recorder=event_recorder,
        )
        state = _initial_state(initial_state, hidden, dtype, label)

        self.x_in = InPort(shape=(inputs,))
        self.y_out = OutPort(shape=(hidden,))
        self.trace_out = OutPort(shape=(hidden,))

        w_ih = prepare_weight(weight_ih, dtype=dtype, what=f"{label}: weight_ih")
        w_hh = prepare_weight(weight_hh, dtype=dtype, what=f"{label}: weight_hh")
        self.weight_ih = ParamVar(shape=w_ih.shape, init=w_ih)
        self.weight_hh = ParamVar(shape=w_hh.shape, init=w_hh)
        host = {"weight_ih": w_ih.copy(), "weight_hh": w_hh.copy()}
        for field, shape, value in (
            ("bias_ih", (3 * hidden,), bias_ih),
            ("bias_hh", (3 * hidden,), bias_hh),
            ("threshold", (hidden,), threshold),
        ):
            array = as_compute_array(value, shape=shape, dtype=dtype, what=f"{label}: {field}")
            setattr(self, field, ParamVar(shape=shape, init=array))
            host[field] = array.copy()
        # The parameters as the model runs them, kept on the host: initial values, then
        # every value set with Var.set (see ParamVar). Copies: Lava hands the Vars' initial
        # values to the model, whose Var.set writes into them.
        self._host_params: EGRUParams | None = EGRUParams(**host)
        #: set by SpiNNaker2SimCfg: the chip network this layer runs in, and its index
        self.chip_network = None
        self.chip_layer_index: int | None = None
        self.c = Var(shape=(hidden,), init=state.c)
        self.y = Var(shape=(hidden,), init=state.y)
        self.trace = Var(shape=(hidden,), init=state.trace)
        self.events_emitted = Var(shape=(1,), init=0)
        self.last_step_events = Var(shape=(1,), init=0)
        self.steps_run = Var(shape=(1,), init=0)
        self.chip_step_cycles = Var(shape=(1,), init=0)
        self.chip_phase_cycles = Var(shape=(len(CHIP_PHASES),), init=0)
        self.chip_total_cycles = Var(shape=(1,), init=0)
        self.chip_packets = Var(shape=(2,), init=0)
        self.chip_dma_bytes = Var(shape=(1,), init=0)
        self.chip_macs = Var(shape=(1,), init=0)
        self.chip_energy_j = Var(shape=(1,), init=0.0)

    @classmethod
    def from_params(cls, params: EGRUParams | QuantizedEGRUParams, **kwargs) -> EGRULayer:
        """Build from an :class:`~snn_egru.reference.EGRUParams` or an int8
        :class:`~snn_egru.reference.QuantizedEGRUParams` (its dequantised weights; other
        keywords as above)."""
        if isinstance(params, QuantizedEGRUParams):
            params = params.dequantize()
        return cls(
            weight_ih=params.weight_ih,
            weight_hh=params.weight_hh,
            bias_ih=params.bias_ih,
            bias_hh=params.bias_hh,
            threshold=params.threshold,
            **kwargs,
        )

    @property
    def input_size(self) -> int:
        return int(self.proc_params["input_size"])

    @property
    def hidden_size(self) -> int:
        return int(self.proc_params["hidden_size"])

    @property
    def weights_are_sparse(self) -> bool:
        return sp.issparse(self.weight_ih.init) or sp.issparse(self.weight_hh.init)

    def params(self) -> EGRUParams:
        """The layer's current parameters, read with ``Var.get()`` (slow for large layers)."""
        dtype = np.dtype(self.proc_params["dtype"])

        def matrix(var: Var) -> Matrix:
            value = var.get()
            if sp.issparse(value):
                return sp.csr_matrix(value, dtype=dtype)
            return np.asarray(value, dtype=dtype).reshape(var.shape)

        return EGRUParams(
            weight_ih=matrix(self.weight_ih),
            weight_hh=matrix(self.weight_hh),
            bias_ih=np.asarray(self.bias_ih.get(), dtype=dtype),
            bias_hh=np.asarray(self.bias_hh.get(), dtype=dtype),
            threshold=np.asarray(self.threshold.get(), dtype=dtype),
        )

    def host_params(self) -> EGRUParams:
        """The parameters the model runs, known on the host without asking the model:
        the initial values, then each value given to ``Var.set`` (read back with
        :meth:`params` only after a partial ``set(value, idx)``)."""
        if self._host_params is None:
            self._host_params = self.params()
        return self._host_params

    def _param_was_set(self, field: str, value: object, idx: object) -> None:
        """A parameter Var was set on the host: follow it (and tell the chip network)."""
        if idx is not None or self._host_params is None:
            self._host_params = None  # read back on next use
        else:
            dtype = np.dtype(self.proc_params["dtype"])
            var = getattr(self, field)
            if field.startswith("weight"):
                if sp.issparse(var.init):
                    new = sp.csr_matrix(value, dtype=dtype)
                    new.sort_indices()
                else:
                    new = np.array(value, dtype=dtype, order="C").reshape(var.shape)
            else:
                new = np.array(value, dtype=dtype).reshape(var.shape)
            self._host_params = self._host_params._replace(**{field: new})
        if self.chip_network is not None:
            self.chip_network.update_layer(self.chip_layer_index, self.host_params())

    def state(self) -> EGRUState:
        """The layer's state after the last step (``Var.get()`` of c, y and trace)."""
        dtype = np.dtype(self.proc_params["dtype"])
        trace = None
        if self.proc_params["track_trace"]:
            trace = np.asarray(self.trace.get(), dtype=dtype)
        return EGRUState(
            c=np.asarray(self.c.get(), dtype=dtype),
            y=np.asarray(self.y.get(), dtype=dtype),
            trace=trace,
        )

    def set_state(self, state: EGRUState) -> None:
        """Set ``c``, ``y`` (and ``trace`` when tracked) between runs (``Var.set()``)."""
        dtype = np.dtype(self.proc_params["dtype"])
        checked = _initial_state(state, self.hidden_size, dtype, f"EGRULayer {self.name!r}")
        self.c.set(checked.c.astype(np.float64))
        self.y.set(checked.y.astype(np.float64))
        if self.proc_params["track_trace"]:
            self.trace.set(checked.trace.astype(np.float64))


class ParamVar(Var):
    """A parameter Var of an :class:`EGRULayer`: ``set`` also tells the layer on the host.

    The layer's model re-reads its parameters after a ``set`` (and, on the chip, maps the
    layer again); the host side follows the same value, so the run config's mapping stays
    the one the model runs (:class:`~lava_procs.run_configs.ChipNetwork`).
    """

    def set(self, value, idx=None) -> None:
        if idx is None:
            got = tuple(value.shape) if sp.issparse(value) else np.shape(value)
            if got != tuple(self.shape):
                raise ValueError(
                    f"{self.process.name}.{self.name}.set(): got shape {got}, expected "
                    f"{tuple(self.shape)} (the Var's shape; nothing was sent to the model)"
                )
        try:
            super().set(value, idx)
            self.process._param_was_set(self.name, value, idx)
        except BaseException:
            # Lava's set is a multi-message exchange with the model process; one broken
            # half-way leaves the runtime service waiting for a reply that never comes, and
            # Runtime.stop() would wait for ever. Stop the graph now, by force.
            runtime = self.process.runtime
            if runtime is not None:
                lava_internals.force_stop(runtime)
            raise


def _check_threshold_length(params: EGRUParams, label: str) -> None:
    """A threshold vector of the wrong length, named as itself (``validate_params`` takes
    ``H`` from the thresholds and would blame ``weight_ih``)."""
    w_hh = params.weight_hh
    shape = tuple(w_hh.shape) if hasattr(w_hh, "shape") else np.shape(w_hh)
    if len(shape) != 2 or shape[0] != 3 * shape[1] or np.ndim(params.threshold) != 1:
        return  # validate_params names the problem
    hidden, got = shape[1], np.shape(params.threshold)[0]
    if got != hidden:
        raise ValueError(
            f"{label}: threshold has {got} entries, expected {hidden} (one per unit: "
            f"weight_hh is {shape}, i.e. (3H, H) with H={hidden})"
        )


def _initial_state(state: EGRUState | None, hidden: int, dtype: np.dtype, label: str) -> EGRUState:
    """A complete, finite state of the right shape (zeros where not given)."""
    zeros = np.zeros(hidden, dtype=dtype)
    if state is None:
        return EGRUState(c=zeros, y=zeros.copy(), trace=zeros.copy())
    parts = {}
    for field in ("c", "y", "trace"):
        value = getattr(state, field)
        if value is None:
            parts[field] = zeros.copy()
            continue
        array = as_compute_array(
            value, shape=(hidden,), dtype=dtype, what=f"{label}: initial_state.{field}"
        )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{label}: initial_state.{field} contains NaN or infinite values")
        parts[field] = array
    return EGRUState(**parts)


def _check_network_context(context: NetworkContext, params: EGRUParams, label: str) -> None:
    layers = context.artifact.layers
    if not 0 <= context.layer_index < len(layers):
        raise ValueError(
            f"{label}: network_context.layer_index={context.layer_index} but the artifact "
            f"has {len(layers)} layers"
        )
    own = layers[context.layer_index]
    if (own.input_size, own.hidden_size) != (params.input_size, params.hidden_size):
        raise ValueError(
            f"{label}: network_context points at layer {context.layer_index} of shape "
            f"(I={own.input_size}, H={own.hidden_size}) but this layer has "
            f"(I={params.input_size}, H={params.hidden_size})"
        )
