"""Run a deployment artifact as a Lava process graph, and always stop the runtime.

- :func:`run_network`: artifact + inputs -> :class:`LavaRunResult` (per-step logits and
  per-layer events, final states, and for ``backend="spinnaker2"`` the chip report), in
  one call. The runtime is stopped in ``finally``, also on errors and KeyboardInterrupt.
- :class:`LavaNetworkSession`: the same, step by step: several runs of one graph (state
  carries over), reading and setting layer state between runs.
- :func:`stop_runtime`: stop a Lava runtime, by force where Lava's own ``stop()`` would
  wait for ever.

Step alignment: the graph has no delays (see :mod:`lava_procs.network.process`): input
``k`` (0-based, counted over all runs of a session) is computed at Lava time step ``k + 1``
and its events and logits are recorded at that same step. Every record carries its time
step and the session checks it, so the outputs returned correspond token by token to the
inputs (and to ``artifact.run_reference``); no realignment is needed and none is done.

Errors: a process model that raises reports to the host; the caller gets a
:class:`~lava_procs.common.LavaRunError` whose message names the process, the time step and
the cause (e.g. "input contains NaN"). A run that exceeds ``timeout_s`` raises
``TimeoutError``. Both stop the runtime first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import RunConfig

from lava_procs import lava_internals
from lava_procs.chip_report import ChipStepSummary, ChipStepTable, assemble_chip_run
from lava_procs.common import COUNTERS_STEP, LavaRunError
from lava_procs.graph import _POLL_MAX_S, _POLL_MIN_S, run_steps, running_graph, stop_runtime
from lava_procs.model_base import quiet_model_errors
from lava_procs.network.process import EGRUNetwork
from lava_procs.run_configs import (
    WEIGHT_FORMATS,
    ChipOptions,
    FloatingPtSimCfg,
    SpiNNaker2SimCfg,
)
from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUState

__all__ = [
    "BACKENDS",
    "LavaNetworkSession",
    "LavaRunResult",
    "StepOutputs",
    "make_run_config",
    "run_network",
    "run_steps",
    "running_graph",
    "stop_runtime",
]

logger = logging.getLogger(__name__)

#: How long to wait for the last records after the runtime reported the run done (s).
_RECORD_GRACE_S = 30.0

Backend = Literal["floating_pt", "spinnaker2"]
BACKENDS: tuple[str, ...] = ("floating_pt", "spinnaker2")


# ------------------------------------------------------------------------------ session
@dataclass
class StepOutputs:
    """What one run of a session recorded, one row per time step.

    Attributes:
        time_steps: ``(n,)`` Lava time step of each row (1-based, counted over the session).
        logits: ``(n, O)`` readout, or ``None`` when the artifact has none.
        layer_events: per layer ``(n, H_l)`` graded events (empty unless recorded).
    """

    time_steps: np.ndarray
    logits: np.ndarray | None
    layer_events: list[np.ndarray]


class LavaNetworkSession:
    """One compiled :class:`~lava_procs.network.process.EGRUNetwork` and its runtime.

    Use as a context manager (the runtime is stopped on exit, also on errors)::

        with LavaNetworkSession(network, FloatingPtSimCfg()) as session:
            first = session.run(10)
            second = session.run(5)      # continues: state carries over
            states = session.layer_states()

    Args:
        network: the network process (not yet compiled).
        run_cfg: :class:`~lava_procs.run_configs.FloatingPtSimCfg` or
            :class:`~lava_procs.run_configs.SpiNNaker2SimCfg`.
        timeout_s: default limit for each :meth:`run` (``None``: no limit).
        keep_chip_steps: (``spinnaker2``) keep per-step per-PE chip counts for
            :meth:`chip_run` (timer view, like the backend's ``record=True``); ``False``
            keeps per-step layer totals only (long streams: about 260 bytes per layer and
            step, see :attr:`chip_bytes_per_step`; nothing else grows with the run when
            the outputs are consumed chunk by chunk with :meth:`iter_run`).
    """

    def __init__(
        self,
        network: EGRUNetwork,
        run_cfg: RunConfig,
        *,
        timeout_s: float | None = None,
        keep_chip_steps: bool = True,
    ) -> None:
        self.network = network
        self.run_cfg = run_cfg
        self.timeout_s = timeout_s
        self.keep_chip_steps = bool(keep_chip_steps)
        self.steps_done = 0
        self.startup_s = 0.0
        #: of ``startup_s``: compiling (first use) or loading (cached) the simulator's kernels
        self.kernel_setup_s = 0.0
        self._started = False
        self._healthy = True  # False once a run failed: stop by force
        self._stopped = False
        layers = network.artifact.num_layers if isinstance(run_cfg, SpiNNaker2SimCfg) else 0
        self._chip_steps = [ChipStepTable() for _ in range(layers)]
        self._chip_counters: list[Any] = [None] * layers
        self._chip_moved: list[int] = []  # layers mapped again onto other PEs mid-session

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Compile the graph and start the model processes (done by the first :meth:`run`)."""
        if self._started:
            return
        if self._stopped:
            raise RuntimeError("this session was stopped; build a new network to run again")
        begin = time.perf_counter()
        self._started = True
        for recorder in self.network.chip_recorders:  # read by the models once forked
            recorder.enabled = self.on_chip
            recorder.keep_pe_steps = self.keep_chip_steps
            recorder.keep_busy = self.on_chip and self.run_cfg.chip.tick_us is not None
        try:
            if self.on_chip:
                self.kernel_setup_s = _prepare_chip_kernels(self.run_cfg, self.network.artifact)
            with quiet_model_errors():  # run() re-raises every model's message
                self.network.create_runtime(run_cfg=self.run_cfg)
        except Exception as err:
            self._healthy = False
            self.stop()
            if isinstance(err, LavaRunError):
                raise
            raise LavaRunError(
                f"could not start the Lava graph of {self.network.name!r}: "
                f"{type(err).__name__}: {err}",
                [err],
            ) from err
        self.startup_s = time.perf_counter() - begin

    def stop(self) -> None:
        """Stop the runtime (by force when a run failed or was interrupted); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            stop_runtime(self.network, force=not self._healthy)

    def __enter__(self) -> LavaNetworkSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._healthy = False
        self.stop()

    # ------------------------------------------------------------------------ run
    @property
    def steps_left(self) -> int | float:
        """Inputs not yet consumed (``inf`` when the network's x_in is fed from outside)."""
        if self.network.num_inputs is None:
            return float("inf")
        return self.network.num_inputs - self.steps_done

    def run(self, num_steps: int, *, timeout_s: float | None = None) -> StepOutputs:
        """Run ``num_steps`` time steps and return what the network recorded.

        Raises:
            ValueError: ``num_steps`` < 1 or more than the inputs left.
            LavaRunError: a process model raised (message names it and why).
            TimeoutError: the run took longer than ``timeout_s`` (or the session default).
        """
        if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        if num_steps > self.steps_left:
            raise ValueError(
                f"num_steps={num_steps} but only {self.steps_left} of the network's "
                f"{self.network.num_inputs} inputs are left"
            )
        self.start()
        if not self._healthy:
            raise RuntimeError("an earlier run of this session failed; the graph is stopped")
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        self._healthy = False  # until this run has completed cleanly
        recorders = self._recorders()
        collected: dict[str, list] = {name: [] for name in recorders}
        self._run_and_wait(num_steps, timeout_s, recorders, collected)
        for name, recorder in recorders.items():
            # a chip recorder also gets the layer's counters when the run ends
            expected = num_steps + 1 if name.startswith("chip_") else num_steps
            missing = expected - len(collected[name])
            if missing:
                collected[name].extend(recorder.take(missing, timeout_s=_RECORD_GRACE_S))
        counters = {}
        for name in recorders:
            if name.startswith("chip_"):
                step, counters[name] = collected[name].pop()
                if step != COUNTERS_STEP:
                    raise LavaRunError(f"recorder {name!r}: no end-of-run counters")
        self._check_alignment(num_steps, collected)
        outputs = self._assemble(num_steps, collected)
        for index in range(len(self._chip_steps)):
            name = f"chip_{index}"
            self._keep_chip_records(
                index, [summary for _, summary in collected[name]], counters[name]
            )
        collected.clear()
        self.steps_done += num_steps
        self._healthy = True
        return outputs

    def iter_run(
        self, num_steps: int | None = None, *, chunk_steps: int = 256
    ) -> Iterator[StepOutputs]:
        """Run ``num_steps`` (default: all inputs left) in runs of ``chunk_steps``, yielding
        each run's outputs: long streams without holding every step's logits."""
        if num_steps is None and self.network.num_inputs is None:
            raise ValueError("give num_steps: the network's x_in is fed from outside")
        total = self.steps_left if num_steps is None else int(num_steps)
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        done = 0
        while done < total:
            steps = min(chunk_steps, total - done)
            yield self.run(steps)
            done += steps

    def _keep_chip_records(
        self, layer: int, summaries: list[ChipStepSummary], counters: Any
    ) -> None:
        previous = self._chip_counters[layer]
        if previous is not None and not np.array_equal(previous.pes, counters.pes):
            self._chip_moved.append(layer)
        table = self._chip_steps[layer]
        for summary in summaries:
            table.append(summary)
        self._chip_counters[layer] = counters

    @property
    def chip_bytes_per_step(self) -> int:
        """Host bytes the session keeps per step for the chip report (its only per-step
        memory: outputs are returned, not kept): the layers' per-step totals, plus the
        per-PE detail with ``keep_chip_steps``. Running totals are the models' counters."""
        return sum(table.bytes_per_step for table in self._chip_steps)

    @property
    def on_chip(self) -> bool:
        """True when the layers run the ``spinnaker2`` models."""
        return isinstance(self.run_cfg, SpiNNaker2SimCfg)

    def _recorders(self) -> dict[str, Any]:
        recorders = {
            f"events_{i}": recorder
            for i, recorder in enumerate(self.network.event_recorders)
            if recorder is not None
        }
        logits_sink = self.network.logits_sink()
        if logits_sink is not None:
            recorders["logits"] = logits_sink.recorder
        if self.on_chip:
            for i, recorder in enumerate(self.network.chip_recorders):
                recorders[f"chip_{i}"] = recorder
        return recorders

    def _run_and_wait(
        self,
        num_steps: int,
        timeout_s: float | None,
        recorders: dict[str, Any],
        collected: dict[str, list],
    ) -> None:
        """Start a non-blocking run, drain the recorders while it runs, wait for its end."""
        runtime = self.network.runtime
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.network.run(condition=RunSteps(num_steps=int(num_steps), blocking=False))
        poll = _POLL_MIN_S
        while not lava_internals.run_finished(runtime):
            for name, recorder in recorders.items():
                collected[name].extend(recorder.take_available())
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Lava run of {num_steps} steps did not finish within {timeout_s} s "
                    f"(the graph is stopped)"
                )
            time.sleep(poll)
            poll = min(poll * 2, _POLL_MAX_S)
        try:
            runtime.wait()
        except Exception as err:
            errors = lava_internals.model_errors(runtime)
            if errors:
                causes = "; ".join(str(e) for e in errors)
                raise LavaRunError(f"Lava run failed: {causes}", errors) from errors[0]
            raise LavaRunError(f"Lava run failed: {type(err).__name__}: {err}") from err

    def _check_alignment(self, num_steps: int, collected: dict[str, list]) -> None:
        """Every recorder got exactly one record per step, stamped with that step."""
        expected = np.arange(self.steps_done + 1, self.steps_done + num_steps + 1)
        for name, records in collected.items():
            steps = np.array([step for step, _ in records], dtype=np.int64)
            if not np.array_equal(steps, expected):
                raise LavaRunError(
                    f"recorder {name!r} got time steps {steps.tolist()[:8]}..., expected "
                    f"{expected.tolist()[:8]}...: the graph is not aligned step by step"
                )

    def _assemble(self, num_steps: int, collected: dict[str, list]) -> StepOutputs:
        artifact = self.network.artifact
        outputs: list[np.ndarray] = []  # per recorded layer: y, or (y, trace) stacked
        traces: dict[int, np.ndarray] = {}
        for i, layer in enumerate(artifact.layers):
            records = collected.get(f"events_{i}")
            if records is None:
                outputs.append(None)
                continue
            values = [value for _, value in records]
            if isinstance(values[0], tuple):
                traces[i] = np.stack([trace for _, trace in values]).astype(layer.dtype)
                values = [y for y, _ in values]
            outputs.append(np.stack(values).astype(layer.dtype))
        events = [y for y in outputs if y is not None] if self.network.record_events else []
        logits = None
        if "logits" in collected:  # a Readout process, step by step
            weight = artifact.decoder_weight  # None: an adaptive head, in the layers' dtype
            dtype = np.result_type(
                artifact.layers[-1].dtype, *([] if weight is None else [weight.dtype])
            )
            logits = np.stack([value for _, value in collected["logits"]]).astype(dtype)
        elif self.network.record_logits:  # on the host: the whole run in one product
            last = artifact.num_layers - 1
            source = traces[last] if artifact.readout_source == "trace" else outputs[last]
            logits = artifact.readout(source)
        time_steps = np.arange(self.steps_done + 1, self.steps_done + num_steps + 1)
        return StepOutputs(time_steps=time_steps, logits=logits, layer_events=events)

    # ----------------------------------------------------------------------- chip
    def chip_run(
        self, *, outputs: StepOutputs | None = None, states: list[EGRUState] | None = None
    ) -> Any:
        """The simulated chip's ``spinnaker2_backend.results.Run`` of all steps run so far.

        Composed from every layer process's per-step records as the backend composes a
        direct run (time per token = sum over layers of each layer's slowest PE); see
        :mod:`lava_procs.chip_report`. ``outputs`` / ``states`` fill the Run's outputs.
        """
        if not self.on_chip:
            raise RuntimeError("a chip report needs the spinnaker2 models (SpiNNaker2SimCfg)")
        if not self.steps_done:
            raise RuntimeError("no steps have run yet")
        if self._chip_moved:
            raise RuntimeError(
                f"layer(s) {sorted(set(self._chip_moved))} were mapped again onto other PEs "
                "after their weights were set: a chip report covers one mapping"
            )
        artifact = self.network.artifact
        mapping = self.run_cfg.mapping_for(artifact)  # follows any Var.set of the layers
        for index, counters in enumerate(self._chip_counters):
            if not np.array_equal(mapping.layers[index].pes, counters.pes):
                raise RuntimeError(
                    f"layer {index}: the models ran on PEs {counters.pes.tolist()} but the run "
                    f"config's mapping puts it on {list(mapping.layers[index].pes)}"
                )
        return assemble_chip_run(
            mapping,
            self._chip_steps,
            self._chip_counters,
            tick_us=self.run_cfg.chip.tick_us,
            layer_events=None if outputs is None else outputs.layer_events or None,
            logits=None if outputs is None else outputs.logits,
            states=states,
            dtype=np.dtype(artifact.layers[0].dtype).name,
        )

    # ---------------------------------------------------------------------- state
    def layer_states(self) -> list[EGRUState]:
        """Every layer's state after the last step (``Var.get``; needs a started session)."""
        self._require_started()
        return [layer.state() for layer in self.network.layer_processes()]

    def set_layer_states(self, states: Sequence[EGRUState]) -> None:
        """Set every layer's state before the next run (``Var.set``)."""
        self._require_started()
        layers = self.network.layer_processes()
        if len(states) != len(layers):
            raise ValueError(f"got {len(states)} states for {len(layers)} layers")
        for layer, state in zip(layers, states):
            layer.set_state(state)

    def _require_started(self) -> None:
        if not self._started or self._stopped or not self._healthy:
            raise RuntimeError(
                "the session has no running graph (run it first; a stopped or failed "
                "session cannot be read)"
            )


def _prepare_chip_kernels(run_cfg: Any, artifact: DeploymentArtifact) -> float:
    """Compile (first use) or load (numba's cache) the simulator's kernels in this process,
    before Lava forks the layer models, which then inherit them; returns the seconds taken.

    Without this every layer model compiled them in its first step (measured on a fresh
    cache: a 140-step spinnaker2 run took 12.2 s instead of 1.9 s, counted as run time).
    One step of the network's own mapping (the run config maps it anyway and keeps the
    mapping) exercises the same kernels with the same types.
    """
    from spinnaker2_backend.simulator import run_mapping

    begin = time.perf_counter()
    if artifact.input_kind == "embedding":
        first = np.zeros(1, dtype=np.int64)
    else:
        first = np.zeros((1, artifact.layers[0].weight_ih.shape[1]), dtype=np.float32)
    run_mapping(run_cfg.mapping_for(artifact), first, record=False, progress=False)
    return time.perf_counter() - begin


# ---------------------------------------------------------------------------- one call
@dataclass
class LavaRunResult:
    """Outputs of :func:`run_network`, aligned token by token with the inputs.

    Attributes:
        backend: ``"floating_pt"`` or ``"spinnaker2"``.
        logits: ``(T, O)`` per-step logits (``None`` when the artifact has no readout).
        layer_events: per layer ``(T, H_l)`` graded events (empty if not recorded).
        states: per layer final state (pass as ``initial_states`` to continue a stream).
        time_steps: ``(T,)`` Lava time step at which each output was recorded (``1..T``).
        startup_s: seconds to compile the graph and start its processes (including
            ``kernel_setup_s``).
        kernel_setup_s: of ``startup_s``, seconds to compile (first use in a checkout) or
            load (numba's on-disk cache) the simulator's kernels (``spinnaker2`` only).
        run_s: seconds the ``T`` steps took (inputs to recorded outputs).
        chip: the simulated chip's ``spinnaker2_backend.results.Run`` (``spinnaker2`` only; its
            ``.report()`` gives time per token, profile, energy, packets), else ``None``.
    """

    backend: str
    logits: np.ndarray | None
    layer_events: list[np.ndarray]
    states: list[EGRUState]
    time_steps: np.ndarray
    startup_s: float
    run_s: float
    chip: Any = None
    kernel_setup_s: float = 0.0

    @property
    def num_steps(self) -> int:
        return int(self.time_steps.shape[0])

    @property
    def steps_per_s(self) -> float:
        """Lava time steps per second of the run proper (start-up excluded)."""
        return self.num_steps / self.run_s if self.run_s > 0 else float("inf")


def make_run_config(
    backend: Backend,
    *,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    clock_mhz: float | None = None,
    tick_us: float | None = None,
    spec: Any = None,
    machine: Any = None,
) -> RunConfig:
    """The RunConfig for ``backend`` (chip options only apply to ``"spinnaker2"``)."""
    if backend == "floating_pt":
        return FloatingPtSimCfg()
    if backend == "spinnaker2":
        return SpiNNaker2SimCfg(
            chip=ChipOptions(
                weight_format=weight_format,
                max_units_per_pe=max_units_per_pe,
                clock_mhz=clock_mhz,
                tick_us=tick_us,
                spec=spec,
                machine=machine,
            )
        )
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def run_network(
    artifact: DeploymentArtifact | str | os.PathLike,
    inputs: np.ndarray,
    backend: Backend = "floating_pt",
    *,
    num_steps: int | None = None,
    initial_states: list[EGRUState] | None = None,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    clock_mhz: float | None = None,
    tick_us: float | None = None,
    spec: Any = None,
    machine: Any = None,
    record_events: bool = True,
    record_chip_steps: bool = True,
    readout: str = "host",
    timeout_s: float | None = None,
) -> LavaRunResult:
    """Run ``artifact`` on ``inputs`` as a Lava graph; outputs align with the reference.

    Builds :class:`~lava_procs.network.process.EGRUNetwork` (source -> layers; the logits
    on the host or in a Readout process, see ``readout``), selects the models of
    ``backend``, runs ``num_steps`` steps, collects per-step
    logits and per-layer events, reads the final states, and (``"spinnaker2"``) the chip
    report of all layer processes. The runtime is always stopped, also on errors and
    KeyboardInterrupt.

    Args:
        artifact: the network (or the path of its ``.npz``).
        inputs: token ids ``(T,)`` or feature vectors ``(T, I)`` (as the artifact takes).
        backend: ``"floating_pt"`` (numpy reference) or ``"spinnaker2"`` (simulated chip).
        num_steps: steps to run, at most ``T`` (default ``T``).
        initial_states: per-layer states to start from (default zeros).
        weight_format, max_units_per_pe, clock_mhz, tick_us, spec, machine: chip options
            (:class:`~lava_procs.run_configs.ChipOptions`; ``"spinnaker2"`` only).
        record_events: also return every layer's events (recorded by the layer models).
        record_chip_steps: keep per-step per-PE chip counts in the chip report (timer view;
            as the backend's ``record=True``); ``False`` keeps per-step layer totals only.
        readout: ``"host"`` (the logits of the run in one product from the last layer's
            recorded events, as the chip's host does) or ``"process"`` (a Lava Readout
            process, step by step); see :class:`~lava_procs.network.process.EGRUNetwork`.
        timeout_s: limit for the run proper (``None``: no limit); exceeding it raises
            ``TimeoutError``.

    Returns:
        :class:`LavaRunResult`; ``logits[k]`` and ``layer_events[l][k]`` belong to input
        ``k``, exactly as in ``artifact.run_reference(inputs[:num_steps])``.

    Raises:
        ValueError: bad arguments or inputs (wrong shape, ids out of range), before Lava
            starts.
        LavaRunError: a process model failed (e.g. NaN in the inputs); names the process.
        TimeoutError: see ``timeout_s``.
    """
    if isinstance(artifact, str | os.PathLike):  # a path, as map_network takes
        artifact = DeploymentArtifact.load(artifact)
    elif not isinstance(artifact, DeploymentArtifact):
        raise TypeError(
            f"run_network needs a DeploymentArtifact or a path to one, got "
            f"{type(artifact).__name__}"
        )
    if weight_format not in WEIGHT_FORMATS:  # checked on every backend, not only the chip
        raise ValueError(f"weight_format must be one of {WEIGHT_FORMATS}, got {weight_format!r}")
    run_cfg = make_run_config(
        backend,
        weight_format=weight_format,
        max_units_per_pe=max_units_per_pe,
        clock_mhz=clock_mhz,
        tick_us=tick_us,
        spec=spec,
        machine=machine,
    )
    inputs = np.asarray(inputs)
    total = int(artifact.layer_inputs(inputs).shape[0])
    num_steps = total if num_steps is None else int(num_steps)
    if not 1 <= num_steps <= total:
        raise ValueError(f"num_steps must lie in [1, {total}] (the number of inputs)")
    network = EGRUNetwork(
        artifact=artifact,
        inputs=inputs[:num_steps],
        initial_states=initial_states,
        record_events=record_events,
        readout=readout,
        name="egru_network",
    )
    session = LavaNetworkSession(
        network, run_cfg, timeout_s=timeout_s, keep_chip_steps=record_chip_steps
    )
    return _run_session(session, backend, num_steps)


def _run_session(session: LavaNetworkSession, backend: str, num_steps: int) -> LavaRunResult:
    """Start ``session``, run ``num_steps`` steps, collect everything; always stop it."""
    try:
        session.start()
        begin = time.perf_counter()
        outputs = session.run(num_steps)
        run_s = time.perf_counter() - begin
        states = session.layer_states()
        chip = None
        if session.on_chip:
            chip = session.chip_run(outputs=outputs, states=states)
    except BaseException:
        session._healthy = False
        raise
    finally:
        session.stop()
    return LavaRunResult(
        backend=backend,
        logits=outputs.logits,
        layer_events=outputs.layer_events,
        states=states,
        time_steps=outputs.time_steps,
        startup_s=session.startup_s,
        run_s=run_s,
        chip=chip,
        kernel_setup_s=session.kernel_setup_s,
    )
