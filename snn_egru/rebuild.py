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
        self.adaptive = None if artifact.adaptive is None else _adaptive_module(artifact.adaptive)
        self.register_buffer(
            "word_rank",
            None if artifact.adaptive is None else torch.from_numpy(artifact.adaptive.word_rank),
        )
        self.eval()

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.embedding[inputs] if self.artifact_input_kind == "embedding" else inputs
        y, state = self.rnn(x.unsqueeze(1).float(), state)
        y = y[:, 0]
        if self.adaptive is not None:  # torch's own log_prob, rank order -> word-id order
            return self.adaptive.log_prob(y)[:, self.word_rank], state
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


def _adaptive_module(head) -> nn.AdaptiveLogSoftmaxWithLoss:
    """A ``torch.nn.AdaptiveLogSoftmaxWithLoss`` holding an artifact's adaptive head (the
    tail clusters get the stored widths, whatever ``div_value`` made them)."""
    module = nn.AdaptiveLogSoftmaxWithLoss(
        head.in_features, head.num_words, list(head.cutoffs), head_bias=head.head_bias is not None
    )
    with torch.no_grad():
        module.head.weight.copy_(torch.from_numpy(head.head_weight))
        if head.head_bias is not None:
            module.head.bias.copy_(torch.from_numpy(head.head_bias))
        for i, (proj, out) in enumerate(zip(head.tail_projections, head.tail_outputs)):
            first = nn.Linear(proj.shape[1], proj.shape[0], bias=False)
            second = nn.Linear(out.shape[1], out.shape[0], bias=False)
            first.weight.copy_(torch.from_numpy(proj))
            second.weight.copy_(torch.from_numpy(out))
            module.tail[i] = nn.Sequential(first, second)
    return module.eval()


def torch_model_from_artifact(artifact: DeploymentArtifact) -> ArtifactModel:
    """The PyTorch model of ``artifact`` (see :class:`ArtifactModel`)."""
    return ArtifactModel(artifact)
