"""SubProcessModel of :class:`~lava_procs.network.process.EGRUNetwork`.

Untagged: it only wires sub-processes, and the RunConfig's tag then picks each layer's
model (``floating_pt`` or ``spinnaker2``). Imports are absolute: Lava loads this file by
path while it scans the folder.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_procs.common import NetworkContext
from lava_procs.egru_layer.process import EGRULayer
from lava_procs.io.process import (
    AdaptiveReadout,
    EmbeddingSource,
    FeatureSource,
    HostSink,
    Readout,
)
from lava_procs.network.process import EGRUNetwork
from snn_egru.reference import QuantizedEGRUParams

__all__ = ["EGRUNetworkModel"]


@implements(proc=EGRUNetwork, protocol=LoihiProtocol)
class EGRUNetworkModel(AbstractSubProcessModel):
    """source | x_in -> layer 0 -> ... -> layer L-1 [-> readout -> sink | logits_out]
    (+ y_out_<i> when it is connected outside).

    Sub-processes are attributes named ``source``, ``layer_<i>``, ``readout`` and
    ``logits_sink`` (Lava registers them under these names). Events are recorded by the
    layer models themselves (``event_recorders``), the logits by a Readout process and a
    sink only with ``readout="process"`` (else on the host from the last layer's
    recorded output); the Readout process also runs when ``logits_out`` is used. An out
    port of the network is wired inside only when something outside is connected to it (a
    dangling hierarchical port would have no process model on its other end).
    """

    def __init__(self, proc: EGRUNetwork) -> None:
        params = proc.proc_params
        artifact = params["artifact"]
        states = params["initial_states"] or [None] * artifact.num_layers
        recorders = params["chip_recorders"]
        prefix = proc.name
        fed_from_outside = bool(proc.x_in.in_connections)

        first_layer_input = None
        if params["inputs"] is not None:
            if fed_from_outside:
                raise ValueError(
                    f"EGRUNetwork {prefix!r} was given inputs= and its x_in is connected too: "
                    "use one of them (inputs=None to feed x_in from another process)"
                )
            inputs = np.asarray(params["inputs"])
            if artifact.input_kind == "embedding":
                self.source = EmbeddingSource(
                    embedding=artifact.embedding, token_ids=inputs, name=f"{prefix}.source"
                )
            else:
                self.source = FeatureSource(
                    features=artifact.layer_inputs(inputs), name=f"{prefix}.source"
                )
            upstream = self.source.x_out
        elif fed_from_outside:
            upstream = None
            first_layer_input = proc.in_ports.x_in
        else:
            raise ValueError(
                f"EGRUNetwork {prefix!r} has no inputs: give inputs= or connect a process "
                "(e.g. lava.proc.io.source.RingBuffer) to its x_in port"
            )

        last_layer = artifact.num_layers - 1
        for index, layer_params in enumerate(artifact.layers):
            track_trace = artifact.readout_source == "trace" and index == last_layer
            if isinstance(layer_params, QuantizedEGRUParams):
                # the Vars hold the dequantised weights (code * scale): what floating_pt
                # computes; the spinnaker2 model runs the mapping's int8 codes
                layer_params = layer_params.dequantize()
            layer = EGRULayer.from_params(
                layer_params,
                initial_state=states[index],
                track_trace=track_trace,
                network_context=NetworkContext(artifact=artifact, layer_index=index),
                chip_recorder=recorders[index],
                event_recorder=params["event_recorders"][index],
                name=f"{prefix}.layer_{index}",
            )
            if upstream is None:
                first_layer_input.connect(layer.x_in)
            else:
                upstream.connect(layer.x_in)
            setattr(self, f"layer_{index}", layer)
            events_port = getattr(proc.out_ports, f"y_out_{index}")
            if events_port.out_connections:  # probed from outside
                layer.y_out.connect(events_port)
            upstream = layer.trace_out if track_trace else layer.y_out

        logits_port_used = artifact.has_readout and bool(proc.out_ports.logits_out.out_connections)
        if logits_port_used or (params["record_logits"] and params["readout"] == "process"):
            self.readout = _readout_process(artifact, f"{prefix}.readout")
            upstream.connect(self.readout.events_in)
            if params["record_logits"] and params["readout"] == "process":
                self.logits_sink = HostSink(
                    shape=self.readout.logits_out.shape, name=f"{prefix}.logits_sink"
                )
                self.readout.logits_out.connect(self.logits_sink.data_in)
            if logits_port_used:
                self.readout.logits_out.connect(proc.out_ports.logits_out)


def _readout_process(artifact, name: str):
    """The Readout process of ``artifact`` (a tied decoder or linear readout), or its
    AdaptiveReadout (an adaptive softmax: log-probabilities), in the last layer's dtype."""
    if artifact.readout_kind == "adaptive":
        return AdaptiveReadout(head=artifact.adaptive, dtype=artifact.layers[-1].dtype, name=name)
    return Readout(
        weight=artifact.decoder_weight,
        bias=artifact.readout_bias,
        dtype=np.result_type(artifact.layers[-1].dtype, artifact.decoder_weight.dtype),
        name=name,
    )
