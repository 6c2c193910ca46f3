"""Pieces shared by every process model of ``lava_procs`` (Lava-free at import time).

- :data:`MESSAGE_DTYPE`: the dtype of every graded message between our processes.
- :class:`LavaModelError` / :class:`LavaRunError`: a failure inside a process model, and
  the host-side exception that carries it to the caller.
- :class:`HostRecorder`: a never-blocking channel from a process model to the host.
- :class:`NetworkContext`: "this layer is layer *i* of that artifact" (for the chip model).
- :func:`as_compute_array`, :func:`prepare_weight`: the dtype/format rules for Vars.

Nothing here imports Lava, so the host side can build these objects without starting it.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import Matrix

__all__ = [
    "COUNTERS_STEP",
    "FLOATING_PT_TAG",
    "SPINNAKER2_TAG",
    "MESSAGE_DTYPE",
    "RECORD_BATCH",
    "ChipRecorder",
    "HostRecorder",
    "LavaModelError",
    "LavaRunError",
    "NetworkContext",
    "as_compute_array",
    "float_matrix",
    "prepare_weight",
]

#: Tags of the process models: the numpy reference, and the simulated SpiNNaker2 chip.
FLOATING_PT_TAG = "floating_pt"
SPINNAKER2_TAG = "spinnaker2"

#: A model ships its records to the host in batches of this many steps (and at the end of
#: every run), see :class:`HostRecorder`.
RECORD_BATCH = 64

#: dtype of every message between our processes. float64 holds every float32 (and float64)
#: value exactly, so graded events, embeddings and logits arrive bit-for-bit intact; the
#: receiving model casts back to the layer's own dtype (a lossless round trip).
MESSAGE_DTYPE = np.float64


class LavaModelError(RuntimeError):
    """A process model failed during a time step (bad input, exhausted source, ...).

    Raised inside the model's own OS process; the Lava runtime reports it to the host, where
    :class:`LavaRunError` carries it to the caller. Only a message (picklable).
    """


class LavaRunError(RuntimeError):
    """A Lava run failed: the message lists every process model that raised and why.

    Attributes:
        model_errors: the exceptions raised inside the process models (may be empty when
            the runtime failed for another reason, then the message says so).
    """

    def __init__(self, message: str, model_errors: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.model_errors = list(model_errors)


class NetworkContext(NamedTuple):
    """The whole network a layer process belongs to.

    A simulated chip maps the whole network (placement, routes and chip-to-chip links depend
    on every layer) and each layer process runs its own layer of that mapping, so that the
    per-layer counters add up to a direct run of the whole network.

    Attributes:
        artifact: the deployment artifact of the whole network.
        layer_index: which of its layers this process computes.
    """

    artifact: DeploymentArtifact
    layer_index: int


class HostRecorder:
    """A channel from a process model to the host that never blocks the model.

    Lava 0.10 runs every process model in a forked OS process; a ``multiprocessing`` queue
    made (with the fork context) before the runtime starts is inherited by the models. The
    model :meth:`put` s one record per time step into a local batch and ships the batch
    when it holds :data:`RECORD_BATCH` records and when a run ends (:meth:`flush`, called
    from the model's HOST phase), so a step costs a list append, not a pipe write. The
    queue's feeder thread writes in the background: the model never waits for the host (a
    Lava external pipe has a fixed buffer and blocks or drops when the host is not
    reading). The host :meth:`take` s records while or after the run.

    Records are ``(time_step, payload)`` tuples; ``payload`` is any picklable object
    (numpy arrays arrive exactly).
    """

    def __init__(self, *, name: str) -> None:
        self.name = name
        self._queue = mp.get_context("fork").Queue()
        self._batch: list[tuple[int, Any]] = []  # model side
        self._received: deque[tuple[int, Any]] = deque()  # host side
        self._detached = False

    # ------------------------------------------------------------------ model side
    def put(self, time_step: int, payload: Any) -> None:
        """Model side: record one step (shipped with the batch)."""
        self._batch.append((int(time_step), payload))
        if len(self._batch) >= RECORD_BATCH:
            self.flush()

    def flush(self) -> None:
        """Model side: ship the records batched so far (returns at once)."""
        if not self._batch:
            return
        if not self._detached:
            # The model process may exit (Lava STOP) before the host has read everything;
            # without this, its exit would wait for the host to drain the pipe.
            self._queue.cancel_join_thread()
            self._detached = True
        self._queue.put(self._batch)
        self._batch = []

    # ------------------------------------------------------------------- host side
    def _receive(self, timeout: float | None) -> bool:
        try:
            batch = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue_module.Empty:
            return False
        self._received.extend(batch)
        return True

    def take(self, count: int, *, timeout_s: float | None = None) -> list[tuple[int, Any]]:
        """Host side: wait for exactly ``count`` records (in the order they were put).

        Raises:
            TimeoutError: fewer than ``count`` records arrived within ``timeout_s``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while len(self._received) < count:
            remaining = None if deadline is None else max(1e-3, deadline - time.monotonic())
            if not self._receive(remaining) and deadline is not None:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"recorder {self.name!r}: got {len(self._received)} of {count} "
                        f"records within {timeout_s} s"
                    )
        return [self._received.popleft() for _ in range(count)]

    def take_available(self) -> list[tuple[int, Any]]:
        """Host side: every record that has already arrived (never waits)."""
        while self._receive(0):
            pass
        records = list(self._received)
        self._received.clear()
        return records


class ChipRecorder(HostRecorder):
    """The :class:`HostRecorder` of a ``spinnaker2`` layer model's chip counters.

    Per step the model puts a :class:`~lava_procs.chip_report.ChipStepSummary` (per-PE
    detail only when :attr:`keep_pe_steps`, per-PE busy cycles only when
    :attr:`keep_busy`); when a run ends it puts the layer's cumulative ``LayerCounters``
    with time step :data:`COUNTERS_STEP`. Set the options before the graph starts
    (the model process gets a copy of this object when it is forked).
    """

    def __init__(
        self,
        *,
        name: str,
        keep_pe_steps: bool = True,
        keep_busy: bool = False,
        enabled: bool = True,
    ) -> None:
        super().__init__(name=name)
        self.keep_pe_steps = keep_pe_steps
        self.keep_busy = keep_busy
        #: the model records nothing when False (nobody reads it: no memory grows)
        self.enabled = enabled


#: Time step of the end-of-run record of a :class:`ChipRecorder` (Lava steps start at 1).
COUNTERS_STEP = 0


def as_compute_array(
    value: Any, *, shape: tuple[int, ...], dtype: np.dtype, what: str
) -> np.ndarray:
    """``value`` as a C-contiguous array of ``shape`` and ``dtype``; raises a clear ValueError."""
    array = np.asarray(value)
    if array.shape != shape:
        raise ValueError(f"{what} has shape {array.shape}, expected {shape}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def float_matrix(value: Any, *, what: str, axes: str) -> np.ndarray:
    """``value`` as an array; a clear ValueError unless it is a 2-D floating-point matrix of
    finite values (``what`` names it, ``axes`` its shape: ``"(V, E)"``)."""
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{what} must be a 2-D floating-point matrix {axes}, got shape {array.shape} "
            f"dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def prepare_weight(weight: Matrix, *, dtype: np.dtype, what: str) -> np.ndarray | sp.csr_matrix:
    """A weight matrix as it is stored in a Lava Var: a dense C array or canonical CSR copy.

    Sparse weights become CSR with sorted indices and no explicit zeros: Lava's ``Var.get``
    / ``Var.set`` on a sparse Var address the stored non-zeros by their (row, column)
    pattern, which must be the same on the host and in the model. Dropping stored zeros
    does not change any product (inputs are checked finite, so ``0 * x == 0``).
    """
    if sp.issparse(weight):
        csr = sp.csr_matrix(weight, dtype=dtype, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        return csr
    array = np.asarray(weight)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D matrix, got shape {array.shape}")
    # A copy: Lava hands this very object to the model, whose Var.set writes into it.
    return np.array(array, dtype=dtype, order="C", copy=True)
