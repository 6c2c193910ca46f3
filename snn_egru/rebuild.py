"""Rebuild a PyTorch model from a deployment artifact (the inverse of export).

Used by ``snn-egru run --backend torch``: the artifact is the single description of a
deployed network, so the PyTorch number can be computed from the very same file the chip
runs, without the training checkpoint.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from snn_egru.artifact import DeploymentArtifact
from snn_egru.interop import load_reference_params
from snn_egru.sequence import EGRUSequence

__all__ = ["ArtifactModel", "torch_model_from_artifact"]


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


class ArtifactModel(nn.Module):
    """``inputs -> [embedding] -> EGRUSequence -> [readout]`` with an artifact's weights.

    Evaluation only (thresholds frozen, no dropout); ``forward`` takes token ids ``(T,)`` or
    features ``(T, I)`` (one stream) and returns ``(logits or last-layer events, state)``.
    """

    def __init__(self, artifact: DeploymentArtifact) -> None:
        super().__init__()
        self.artifact_input_kind = artifact.input_kind
        self.rnn = EGRUSequence(
            artifact.input_size, list(artifact.layer_sizes), learn_threshold=False
        )
        load_reference_params(self.rnn, artifact.layers)
        embedding = None if artifact.embedding is None else torch.from_numpy(artifact.embedding)
        self.register_buffer("embedding", embedding)
        weight = artifact.decoder_weight
        self.register_buffer(
            "readout_weight", None if weight is None else torch.from_numpy(_dense(weight))
        )
        bias = artifact.readout_bias
        self.register_buffer("readout_bias", None if bias is None else torch.from_numpy(bias))
        self.eval()

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.embedding[inputs] if self.artifact_input_kind == "embedding" else inputs
        y, state = self.rnn(x.unsqueeze(1).float(), state)
        y = y[:, 0]
        if self.readout_weight is None:
            return y, state
        logits = y @ self.readout_weight.T
        if self.readout_bias is not None:
            logits = logits + self.readout_bias
        return logits, state

    def logits_numpy(self, inputs: np.ndarray) -> np.ndarray:
        """Run one stream of numpy inputs; returns numpy logits (or events) ``(T, O)``."""
        with torch.no_grad():
            out, _ = self(torch.from_numpy(np.asarray(inputs)))
        return out.numpy()


def torch_model_from_artifact(artifact: DeploymentArtifact) -> ArtifactModel:
    """The PyTorch model of ``artifact`` (see :class:`ArtifactModel`)."""
    return ArtifactModel(artifact)
