"""Input and output Processes, so that a whole workload runs inside Lava.

- :class:`EmbeddingSource`: token ids -> embedding rows (the artifact's table), one per step.
- :class:`FeatureSource`: feature vectors computed ahead (e.g. CNN features), one per step.
- :class:`Readout`: the last layer's events (or trace) -> logits, ``y @ W.T + b``.
- :class:`AdaptiveReadout`: the last layer's events -> an adaptive softmax's log-probabilities.
- :class:`HostSink`: records whatever arrives, one record per step, for the host.

All messages are float64 vectors (:data:`lava_procs.common.MESSAGE_DTYPE`): graded values
arrive intact, never binarised. Every process receives and sends in the same time step, so
none adds a step of delay. Models are in ``models.py`` next to this file.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import LogConfig
from lava.magma.core.process.variable import Var

from lava_procs.common import HostRecorder, as_compute_array, float_matrix
from lava_procs.process_base import GuardedProcess

__all__ = ["AdaptiveReadout", "EmbeddingSource", "FeatureSource", "HostSink", "Readout"]


class EmbeddingSource(GuardedProcess):
    """Sends the embedding row of one token per time step (the chip's "embeddings in DRAM").

    At Lava time step ``t`` (1-based, counted over all runs of the graph) it sends
    ``embedding[token_ids[position]]`` and advances ``position``; ``position`` starts at 0,
    so token ``k`` leaves at time step ``k + 1``. Running more steps than there are tokens
    raises a clear error from the model.

    Args (keyword-only):
        embedding: ``(V, E)`` embedding table (float32 in an artifact).
        token_ids: ``(T,)`` integer token ids in ``[0, V)``.
        name, log_config: Lava options.

    Ports:
        x_out: OutPort ``(E,)``.

    Vars:
        token_ids: the token ids (``set`` another sequence of the same length between runs).
        position: index of the next token to send.
    """

    def __init__(
        self,
        *,
        embedding: np.ndarray,
        token_ids: np.ndarray,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        embedding = float_matrix(embedding, what="embedding", axes="(V, E)")
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
            raise ValueError(
                f"token_ids must be a 1-D integer array, got shape {token_ids.shape} "
                f"dtype {token_ids.dtype}"
            )
        if token_ids.size == 0:
            raise ValueError("token_ids is empty: give at least one token")
        vocab = embedding.shape[0]
        if token_ids.min() < 0 or token_ids.max() >= vocab:
            raise ValueError(
                f"token ids must lie in [0, {vocab}), got {token_ids.min()}..{token_ids.max()}"
            )
        # The table is model data ("in DRAM"), not a Var: Var.get/set would move it one
        # element per message.
        super().__init__(name=name, log_config=log_config, embedding=embedding)
        self.x_out = OutPort(shape=(embedding.shape[1],))
        self.token_ids = Var(shape=token_ids.shape, init=token_ids.astype(np.int64))
        self.position = Var(shape=(1,), init=0)


class FeatureSource(GuardedProcess):
    """Sends one feature vector per time step (features computed ahead of the network).

    At Lava time step ``t`` it sends ``features[position]`` and advances ``position``
    (feature ``k`` leaves at time step ``k + 1``). Values are sent as given: a NaN reaches
    the next process, whose model raises (that is how bad inputs are reported).

    Args (keyword-only):
        features: ``(T, I)`` floating-point feature vectors.
        name, log_config: Lava options.

    Ports:
        x_out: OutPort ``(I,)``.

    Vars:
        features: the vectors (``set`` between runs, same shape).
        position: index of the next vector to send.
    """

    def __init__(
        self,
        *,
        features: np.ndarray,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(
                f"features must be a non-empty 2-D array (T, I), got shape {features.shape}"
            )
        if not np.issubdtype(features.dtype, np.floating):
            raise ValueError(f"features must be floating point, got dtype {features.dtype}")
        super().__init__(name=name, log_config=log_config)
        self.x_out = OutPort(shape=(features.shape[1],))
        self.features = Var(shape=features.shape, init=features)
        self.position = Var(shape=(1,), init=0)


class Readout(GuardedProcess):
    """Logits from the last layer's events: ``logits = y @ weight.T + bias``.

    This is :meth:`snn_egru.artifact.DeploymentArtifact.readout` for one step: a decoder
    tied to the embedding (``weight = embedding``) or a linear readout. The events are cast
    to ``dtype`` (the layers' dtype) before the product, as in the reference.

    Args (keyword-only):
        weight: ``(O, H)`` readout matrix.
        bias: ``(O,)`` bias, or ``None``.
        dtype: compute dtype, default the dtype of ``weight``.
        name, log_config: Lava options.

    Ports:
        events_in: InPort ``(H,)``.
        logits_out: OutPort ``(O,)``.

    Vars:
        weight, bias: the readout (``bias`` is zeros when ``None`` was given; it is then
            not added, exactly as in the reference).
    """

    def __init__(
        self,
        *,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        dtype: np.dtype | type | None = None,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        weight = float_matrix(weight, what="readout weight", axes="(O, H)")
        dtype = np.dtype(dtype if dtype is not None else weight.dtype)
        outputs, hidden = weight.shape
        super().__init__(name=name, log_config=log_config, dtype=dtype, has_bias=bias is not None)
        self.events_in = InPort(shape=(hidden,))
        self.logits_out = OutPort(shape=(outputs,))
        self.weight = Var(shape=weight.shape, init=weight.astype(dtype))
        bias_array = (
            np.zeros(outputs, dtype=dtype)
            if bias is None
            else as_compute_array(bias, shape=(outputs,), dtype=dtype, what="readout bias")
        )
        self.bias = Var(shape=(outputs,), init=bias_array)


class AdaptiveReadout(GuardedProcess):
    """Log-probabilities of an adaptive softmax from the last layer's events, one step at a
    time: :meth:`snn_egru.adaptive_head.AdaptiveHead.log_prob` (what the host computes for
    an artifact with ``readout_kind="adaptive"``; not one linear layer, so not on the chip).

    Args (keyword-only):
        head: the artifact's :class:`~snn_egru.adaptive_head.AdaptiveHead`.
        dtype: compute dtype (the layers' dtype); the events are cast to it.
        name, log_config: Lava options.

    Ports:
        events_in: InPort ``(H,)``.
        logits_out: OutPort ``(V,)`` (log-probabilities by word id).
    """

    def __init__(
        self,
        *,
        head,
        dtype: np.dtype | type = np.float32,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        head.validate()
        dtype = np.dtype(dtype)
        super().__init__(name=name, log_config=log_config, head=head.astype(dtype), dtype=dtype)
        self.events_in = InPort(shape=(head.in_features,))
        self.logits_out = OutPort(shape=(head.num_words,))


class HostSink(GuardedProcess):
    """Records what arrives on ``data_in``, one record per time step, for the host.

    The model puts ``(time_step, vector)`` into a :class:`~lava_procs.common.HostRecorder`
    and never blocks; records travel in batches (``RECORD_BATCH`` steps and at the end of every
    run), so read them with :meth:`take` after (or while) the run. ``time_step`` is Lava's
    1-based step counter, so the host can check the alignment of every record.

    Args (keyword-only):
        shape: shape of the recorded vectors.
        name, log_config: Lava options.

    Ports:
        data_in: InPort ``shape``.

    Vars:
        records_sent: number of records put so far.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        shape = tuple(int(s) for s in shape)
        recorder = HostRecorder(name=name or "HostSink")
        super().__init__(name=name, log_config=log_config, recorder=recorder)
        self.recorder = recorder
        self.data_in = InPort(shape=shape)
        self.records_sent = Var(shape=(1,), init=0)

    def take(self, count: int, *, timeout_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Wait for ``count`` records; returns ``(time_steps (count,), values (count, *shape))``."""
        records = self.recorder.take(count, timeout_s=timeout_s)
        return _stack_records(records, self.data_in.shape)

    def take_available(self) -> tuple[np.ndarray, np.ndarray]:
        """Every record already arrived (never waits); same layout as :meth:`take`."""
        return _stack_records(self.recorder.take_available(), self.data_in.shape)


def _stack_records(records: list, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array([step for step, _ in records], dtype=np.int64)
    if not records:
        return steps, np.zeros((0, *shape))
    return steps, np.stack([value for _, value in records])
