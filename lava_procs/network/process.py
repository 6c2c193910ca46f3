"""A whole EGRU network from a deployment artifact, as one hierarchical Lava Process.

The SubProcessModel (``models.py`` next to this file) builds, at compile time::

    [EmbeddingSource | FeatureSource]  ->  EGRULayer 0  ->  ...  ->  EGRULayer L-1
        [->  Readout  ->  HostSink "logits"]          (readout="process")

Each layer model records its own events for the host (``event_recorders``, no sink
process) and, with the default ``readout="host"``, the session computes the logits of a
run from the last layer's recorded events in one product. The bracketed source is
optional: the network also has real ports, so stock Lava processes can feed and probe it.
``x_in`` takes layer 0's input vector per step (give no ``inputs`` and connect e.g. a
``RingBuffer`` to it); ``logits_out`` (served by a Readout process) and ``y_out_<l>``
(layer ``l``'s graded events) send every step to whatever is connected to them (a
``Monitor``, a ``Dense``, ...).

Step alignment (documented and tested): every process of the network receives and sends
within the same Lava time step (the layers keep their recurrent state themselves; no Lava
synapse process, which would add a step of delay, sits between them). Input ``k``
(0-based) therefore leaves the source at Lava time step ``k + 1`` and its events and logits
are recorded and reach the out ports at that same time step ``k + 1``; each record carries its
time step, and :class:`~lava_procs.run.LavaNetworkSession` checks it. Time steps count on
over successive runs of the same graph. (A stock source such as ``RingBuffer`` also sends
its ``k``-th value at step ``k + 1``; a stock ``Dense`` in between adds one step.)
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig

from lava_procs.common import ChipRecorder, HostRecorder
from lava_procs.process_base import GuardedProcess
from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUState

__all__ = ["READOUTS", "EGRUNetwork"]

#: Where the recorded logits are computed (see EGRUNetwork's ``readout``).
READOUTS: tuple[str, ...] = ("host", "process")


class EGRUNetwork(GuardedProcess):
    """The network of a :class:`~snn_egru.artifact.DeploymentArtifact`, inputs to logits.

    Args (keyword-only):
        artifact: the network (layers, embedding or features input, readout).
        inputs: token ids ``(T,)`` (``input_kind == "embedding"``) or feature vectors
            ``(T, I)`` (``"features"``), checked by ``artifact.layer_inputs``, sent by a
            built-in source; ``None``: no built-in source, connect a process to ``x_in``.
        initial_states: per-layer state at the first step (zeros when ``None``), e.g. the
            ``states`` of a previous run to continue a stream.
        record_events: record every layer's events ``y`` for the host (read by
            :class:`~lava_procs.run.LavaNetworkSession`; each layer model puts them into a
            :class:`~lava_procs.common.HostRecorder`, no sink process).
        record_logits: record the logits for the host.
        readout: where the recorded logits are computed. ``"host"`` (default, as on the
            SpiNNaker2 deployment, whose decoder runs on the host): the last layer's events
            (or trace) are recorded and the session computes the logits of a whole run in
            one matrix product, ``artifact.readout`` (the reference's own function); no
            Readout process runs unless ``logits_out`` is connected. ``"process"``: a
            :class:`~lava_procs.io.process.Readout` process computes them every step and a
            HostSink records them (a 10,000 x 750 decoder read from memory every step costs
            more than the three EGRU layers).
        name, log_config: Lava options.

    Ports:
        x_in: InPort ``(I,)``: layer 0's input per step (for an embedding network the
            embedding row, ``artifact.layer_inputs(token_ids)[k]``); used when ``inputs``
            is ``None``.
        logits_out: OutPort ``(O,)``, the readout per step (only with a readout).
        y_out_<l>: OutPort ``(H_l,)`` per layer ``l``, its graded events per step.

    After compilation (``create_runtime`` / ``run``) the sub-processes are reachable with
    :meth:`layer_processes`, :meth:`source_process`, :meth:`readout_process` and
    :meth:`logits_sink`; each layer's events arrive in ``event_recorders[layer]`` and its
    chip counters (``spinnaker2`` models) in ``chip_recorders[layer]``.
    """

    def __init__(
        self,
        *,
        artifact: DeploymentArtifact,
        inputs: np.ndarray | None = None,
        initial_states: list[EGRUState] | None = None,
        record_events: bool = True,
        record_logits: bool = True,
        readout: str = "host",
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        artifact.validate()
        num_inputs = None
        if inputs is not None:
            layer_inputs = artifact.layer_inputs(inputs)  # raises a clear ValueError
            if layer_inputs.shape[0] == 0:
                raise ValueError("inputs are empty: give at least one token or feature vector")
            num_inputs = int(layer_inputs.shape[0])
            inputs = np.asarray(inputs)
        if initial_states is not None and len(initial_states) != artifact.num_layers:
            raise ValueError(
                f"initial_states has {len(initial_states)} entries, the artifact has "
                f"{artifact.num_layers} layers"
            )
        if artifact.readout_source == "trace" and not artifact.has_readout:
            raise ValueError("readout_source='trace' needs a readout")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        # enabled by LavaNetworkSession (which reads them); off for a network run otherwise
        chip_recorders = [
            ChipRecorder(name=f"chip counters of layer {i}", enabled=False)
            for i in range(artifact.num_layers)
        ]
        has_readout = artifact.has_readout
        record_logits = bool(record_logits) and has_readout
        last = artifact.num_layers - 1
        # the last layer's output is recorded also for a host readout of the logits
        event_recorders = [
            HostRecorder(name=f"events of layer {i}")
            if record_events or (record_logits and readout == "host" and i == last)
            else None
            for i in range(artifact.num_layers)
        ]
        super().__init__(
            name=name,
            log_config=log_config,
            artifact=artifact,
            inputs=inputs,
            initial_states=None if initial_states is None else list(initial_states),
            record_events=bool(record_events),
            record_logits=record_logits,
            readout=readout,
            chip_recorders=chip_recorders,
            event_recorders=event_recorders,
        )
        self.artifact = artifact
        self.num_inputs = num_inputs
        self.readout = readout
        self.record_events = bool(record_events)
        self.record_logits = record_logits
        self.chip_recorders = chip_recorders
        self.event_recorders = event_recorders
        self.x_in = InPort(shape=(artifact.input_size,))
        if has_readout:
            self.logits_out = OutPort(shape=(artifact.output_size,))
        for index, size in enumerate(artifact.layer_sizes):
            setattr(self, f"y_out_{index}", OutPort(shape=(size,)))

    def event_ports(self) -> list[OutPort]:
        """``y_out_0 .. y_out_<L-1>``: each layer's events."""
        return [getattr(self, f"y_out_{i}") for i in range(self.artifact.num_layers)]

    # ----------------------------------------------------- sub-processes (compiled)
    # Methods, not properties: Lava's _post_init evaluates every attribute of a Process.
    def _sub(self, name: str) -> AbstractProcess:
        if name not in self.procs.member_names:
            raise RuntimeError(
                f"EGRUNetwork {self.name!r} has no sub-process {name!r} yet: its sub-processes "
                "are built when the network is compiled (create_runtime / run)"
            )
        return getattr(self.procs, name)

    def layer_processes(self) -> list[AbstractProcess]:
        """The :class:`~lava_procs.egru_layer.process.EGRULayer` processes, in order."""
        return [self._sub(f"layer_{i}") for i in range(self.artifact.num_layers)]

    def source_process(self) -> AbstractProcess | None:
        """The EmbeddingSource or FeatureSource (``None`` without ``inputs``)."""
        return self._sub("source") if self.num_inputs is not None else None

    def readout_process(self) -> AbstractProcess | None:
        """The Readout process, or ``None`` (no readout, or a host readout with
        ``logits_out`` unconnected)."""
        names = self.procs.member_names
        if "readout" in names:
            return self.procs.readout
        self._sub("layer_0")  # raises when not compiled yet
        return None

    def logits_sink(self) -> AbstractProcess | None:
        """The HostSink of the logits (``readout="process"`` with ``record_logits``)."""
        if self.record_logits and self.readout == "process":
            return self._sub("logits_sink")
        return None
