"""Process models of the input/output Processes (``process.py`` next to this file).

They run on the host CPU whatever the layers run on, so each carries both tags,
``floating_pt`` and ``spinnaker2``: either RunConfig of ``lava_procs.run_configs`` selects
them. Imports are absolute: Lava loads this file by path while it scans the folder.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType

from lava_procs.common import MESSAGE_DTYPE
from lava_procs.io.process import (
    AdaptiveReadout,
    EmbeddingSource,
    FeatureSource,
    HostSink,
    Readout,
)
from lava_procs.model_base import HOST_TAGS, SafeStepModel, host_cpu_model

__all__ = [
    "PyAdaptiveReadoutModel",
    "PyEmbeddingSourceModel",
    "PyFeatureSourceModel",
    "PyHostSinkModel",
    "PyReadoutModel",
]


def _exhausted(position: int, total: int, what: str) -> ValueError:
    return ValueError(
        f"no {what} left: all {total} were sent (next position {position}); run at most "
        f"as many steps as there are inputs, or set new inputs between runs"
    )


@host_cpu_model(EmbeddingSource, *HOST_TAGS)
class PyEmbeddingSourceModel(SafeStepModel):
    """Sends ``embedding[token_ids[position]]`` (float64, exact) and advances ``position``."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)
    token_ids: np.ndarray = LavaPyType(np.ndarray, np.int64)
    position: np.ndarray = LavaPyType(np.ndarray, np.int64)

    out_port_names = ("x_out",)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._embedding = np.asarray(proc_params["embedding"])

    def compute_step(self) -> dict[str, np.ndarray]:
        position = int(self.position[0])
        if position >= self.token_ids.shape[0]:
            raise _exhausted(position, self.token_ids.shape[0], "token ids")
        token = int(self.token_ids[position])
        if not 0 <= token < self._embedding.shape[0]:
            raise ValueError(
                f"token id {token} at position {position} is outside the vocabulary "
                f"[0, {self._embedding.shape[0]})"
            )
        self.position[0] = position + 1
        return {"x_out": self._embedding[token].astype(MESSAGE_DTYPE)}


@host_cpu_model(FeatureSource, *HOST_TAGS)
class PyFeatureSourceModel(SafeStepModel):
    """Sends ``features[position]`` and advances ``position``."""

    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)
    features: np.ndarray = LavaPyType(np.ndarray, MESSAGE_DTYPE)
    position: np.ndarray = LavaPyType(np.ndarray, np.int64)

    out_port_names = ("x_out",)

    def compute_step(self) -> dict[str, np.ndarray]:
        position = int(self.position[0])
        if position >= self.features.shape[0]:
            raise _exhausted(position, self.features.shape[0], "feature vectors")
        self.position[0] = position + 1
        return {"x_out": self.features[position].copy()}


@host_cpu_model(Readout, *HOST_TAGS)
class PyReadoutModel(SafeStepModel):
    """``logits = y @ weight.T (+ bias)`` in the compute dtype, sent as float64."""

    events_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, MESSAGE_DTYPE)
    logits_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)
    weight: np.ndarray = LavaPyType(np.ndarray, MESSAGE_DTYPE)
    bias: np.ndarray = LavaPyType(np.ndarray, MESSAGE_DTYPE)

    out_port_names = ("logits_out",)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._dtype = np.dtype(proc_params["dtype"])
        self._has_bias = bool(proc_params["has_bias"])
        self._weight_t: np.ndarray | None = None
        self._bias: np.ndarray | None = None

    def on_var_update(self) -> None:
        self._weight_t = None

    def compute_step(self) -> dict[str, np.ndarray]:
        events = self.events_in.recv().astype(self._dtype)
        if self._weight_t is None:
            self._weight_t = self.weight.astype(self._dtype).T
            self._bias = self.bias.astype(self._dtype)
        logits = events @ self._weight_t
        if self._has_bias:
            logits = logits + self._bias
        return {"logits_out": logits.astype(MESSAGE_DTYPE)}


@host_cpu_model(AdaptiveReadout, *HOST_TAGS)
class PyAdaptiveReadoutModel(SafeStepModel):
    """The adaptive softmax's log-probabilities in the compute dtype, sent as float64."""

    events_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, MESSAGE_DTYPE)
    logits_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, MESSAGE_DTYPE)

    out_port_names = ("logits_out",)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._dtype = np.dtype(proc_params["dtype"])
        self._head = proc_params["head"]

    def compute_step(self) -> dict[str, np.ndarray]:
        events = self.events_in.recv().astype(self._dtype)
        return {"logits_out": self._head.log_prob(events).astype(MESSAGE_DTYPE)}


@host_cpu_model(HostSink, *HOST_TAGS)
class PyHostSinkModel(SafeStepModel):
    """Puts ``(time_step, vector)`` into the sink's recorder; never blocks."""

    data_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, MESSAGE_DTYPE)
    records_sent: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def compute_step(self) -> dict[str, np.ndarray]:
        value = self.data_in.recv()
        self.proc_params["recorder"].put(self.time_step, value)
        self.records_sent[0] += 1
        return {}
