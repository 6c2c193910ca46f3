"""Evaluation of the DVS gesture network and its comparison with a deployment artifact.

:func:`evaluate_dvs` (accuracy, loss, activity; summed over ranks when distributed),
:func:`predict_torch`, :func:`feature_sequences` (the chip's inputs: the CNN head's features
``(T, 512)`` per sample) and :func:`compare_with_artifact`: the torch model against
``artifact.run_reference`` on the same samples, the per-step logits turned into a prediction
exactly as the torch readout does (:func:`artifact_sequence_logits`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from snn_egru.models.dvs import DVSGestureNet
from snn_egru.reference import TRACE_DECAY
from snn_egru.training.common import (
    all_reduce_sum,
    get_rank,
    get_world_size,
    is_distributed,
    progress,
    unwrap_model,
)

__all__ = [
    "ArtifactComparison",
    "DVSEvalResult",
    "artifact_sequence_logits",
    "compare_with_artifact",
    "evaluate_dvs",
    "feature_sequences",
    "predict_torch",
]


@dataclass
class DVSEvalResult:
    """Accuracy and per-sample predictions of a model on a dataset.

    Attributes:
        accuracy: fraction of correct predictions (summed over ranks when distributed).
        loss: mean cross-entropy.
        predictions, labels: ``(N,)`` int arrays (this rank's samples).
        activity: fraction of non-zero events ``y`` over all EGRU layers, steps and samples.
        num_samples: samples counted (over all ranks).
    """

    accuracy: float
    loss: float
    predictions: np.ndarray
    labels: np.ndarray
    activity: float
    num_samples: int


# ------------------------------------------------------------------------ data helpers
def time_major(frames: torch.Tensor) -> torch.Tensor:
    """Loader batches are ``(B, T, C, S, S)``; the network takes ``(T, B, C, S, S)``."""
    return frames.transpose(0, 1)


def _eval_subset(dataset: Dataset) -> Dataset:
    """This rank's share of an evaluation set (every world_size-th sample, no padding)."""
    if not is_distributed():
        return dataset
    return Subset(dataset, list(range(get_rank(), len(dataset), get_world_size())))


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, **kwargs: Any) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


# ------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_dvs(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    show_progress: bool = False,
) -> DVSEvalResult:
    """Accuracy, loss, activity and predictions of ``model`` on ``dataset``.

    Args:
        model: a :class:`DVSGestureNet` (or DDP wrapper); put in evaluation mode here.
        dataset: map-style dataset of ``(frames (T, C, S, S), label)``.
        batch_size: evaluation batch size.
        device: where to run (default: the model's device).
        num_workers: DataLoader workers.
        show_progress: show a progress bar.

    When distributed, every rank evaluates its share and the counts are summed.
    """
    net = unwrap_model(model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    loader = make_loader(_eval_subset(dataset), batch_size, num_workers)
    predictions, labels = [], []
    loss_sum, events, slots = 0.0, 0.0, 0.0
    batches = progress(loader, desc="eval", leave=False) if show_progress else loader
    for frames, target in batches:
        frames = time_major(frames.to(device))
        target = target.to(device)
        out = net(frames, return_all_layers=True)
        loss_sum += float(F.cross_entropy(out.logits, target, reduction="sum"))
        predictions.append(out.logits.argmax(dim=-1).cpu())
        labels.append(target.cpu())
        for y in out.layer_outputs:
            events += float((y != 0).sum())
            slots += y.numel()
    net.train(was_training)
    pred = torch.cat(predictions).numpy() if predictions else np.zeros(0, dtype=np.int64)
    lab = torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
    totals = torch.tensor(
        [float((pred == lab).sum()), float(lab.size), loss_sum, events, slots], dtype=torch.float64
    )
    totals = all_reduce_sum(totals)
    correct, count, loss_total, events_total, slots_total = (float(v) for v in totals)
    return DVSEvalResult(
        accuracy=correct / count if count else float("nan"),
        loss=loss_total / count if count else float("nan"),
        predictions=pred,
        labels=lab,
        activity=events_total / slots_total if slots_total else float("nan"),
        num_samples=int(count),
    )


def _eval_batches(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: torch.device | str | None,
    max_samples: int | None,
) -> Iterator[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """``(network, frames (T, B, ...) on its device, labels)`` over the first ``max_samples``
    of ``dataset`` in order, the network in evaluation mode meanwhile."""
    net = unwrap_model(model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    subset = (
        dataset if max_samples is None else Subset(dataset, range(min(max_samples, len(dataset))))
    )
    was_training = net.training
    net.eval()
    try:
        for frames, target in make_loader(subset, batch_size, 0):
            yield net, time_major(frames.to(device)), target
    finally:
        net.train(was_training)


@torch.no_grad()
def predict_torch(
    model: DVSGestureNet,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    max_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample torch predictions: ``(predictions (N,), labels (N,), logits (N, O))``."""
    logits, labels = [], []
    for net, frames, target in _eval_batches(model, dataset, batch_size, device, max_samples):
        logits.append(net(frames).logits.float().cpu())
        labels.append(target)
    all_logits = torch.cat(logits).numpy()
    return all_logits.argmax(axis=-1), torch.cat(labels).numpy(), all_logits


@torch.no_grad()
def feature_sequences(
    model: DVSGestureNet,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    max_samples: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The chip's inputs: per sample the CNN features ``(T, F)`` float32, and the labels.

    The CNN head runs in torch in evaluation mode (as published, the chip receives the
    features computed ahead).
    """
    sequences: list[np.ndarray] = []
    labels = []
    for net, frames, target in _eval_batches(model, dataset, batch_size, device, max_samples):
        features = net.features(frames).float().cpu().numpy()
        sequences.extend(np.ascontiguousarray(features[:, b]) for b in range(features.shape[1]))
        labels.append(target.numpy())
    return sequences, np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


def artifact_sequence_logits(artifact: Any, last_layer_events: np.ndarray) -> np.ndarray:
    """Sequence logits ``(O,)`` from the last layer's events ``(T, H)``, as the torch readout.

    ``readout_source == "y"``: ``mean_t (W y_t + b)``; ``"trace"``: ``W tr_T + b`` with
    ``tr_t = 0.9 tr_{t-1} + 0.1 y_t``. Works for events from any backend (numpy reference,
    Lava, simulated chip) given the artifact that describes the readout.
    """
    events = np.asarray(last_layer_events, dtype=np.float64)
    if events.ndim != 2:
        raise ValueError(f"last_layer_events must be (T, H), got shape {events.shape}")
    if artifact.readout_source == "trace":
        trace = np.zeros(events.shape[1])
        for y_t in events:
            trace = TRACE_DECAY * trace + (1.0 - TRACE_DECAY) * y_t
        return np.asarray(artifact.readout(trace), dtype=np.float64)
    return np.asarray(artifact.readout(events), dtype=np.float64).mean(axis=0)


def _without_readout(artifact: Any) -> Any:
    """The artifact's EGRU stack alone (``run_reference`` does not read out traces itself)."""
    return dataclasses.replace(
        artifact,
        readout_kind="none",
        readout_weight=None,
        readout_bias=None,
        readout_source="y",
        embedding=artifact.embedding if artifact.input_kind == "embedding" else None,
    )


@dataclass
class ArtifactComparison:
    """Torch model vs deployment artifact on the same samples.

    Attributes:
        labels: ``(N,)`` true labels.
        torch_predictions, artifact_predictions: ``(N,)`` predicted classes.
        torch_logits, artifact_logits: ``(N, O)`` sequence logits.
        torch_accuracy, artifact_accuracy: accuracies.
        agreement: fraction of samples where both predict the same class.
        max_abs_logit_difference: largest ``|torch - artifact|`` logit.
    """

    labels: np.ndarray
    torch_predictions: np.ndarray
    artifact_predictions: np.ndarray
    torch_logits: np.ndarray
    artifact_logits: np.ndarray
    torch_accuracy: float
    artifact_accuracy: float
    agreement: float
    max_abs_logit_difference: float


@torch.no_grad()
def compare_with_artifact(
    model: DVSGestureNet,
    artifact: Any,
    dataset: Dataset,
    *,
    max_samples: int | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    show_progress: bool = False,
) -> ArtifactComparison:
    """Per-sample predictions of the torch model and of ``artifact.run_reference``.

    The artifact receives the torch CNN features of each sample (``(T, F)``) and runs the
    numpy reference EGRU stack; its per-step logits become a sequence prediction by
    :func:`artifact_sequence_logits` (per-step logits averaged for ``"y"``).
    """
    net = unwrap_model(model)
    if artifact.input_kind != "features":
        raise ValueError(
            f"the DVS artifact must take features, got input_kind={artifact.input_kind!r}"
        )
    if artifact.input_size != net.config.feature_size:
        raise ValueError(
            f"artifact expects {artifact.input_size} features, the model makes "
            f"{net.config.feature_size}: export the artifact from this model"
        )
    torch_pred, labels, torch_logits = predict_torch(
        net, dataset, batch_size=batch_size, device=device, max_samples=max_samples
    )
    sequences, _ = feature_sequences(
        net, dataset, batch_size=batch_size, device=device, max_samples=max_samples
    )
    art_logits = []
    items = progress(sequences, desc="artifact", leave=False) if show_progress else sequences
    stack = _without_readout(artifact)
    for features in items:
        run = stack.run_reference(features.astype(artifact.layers[0].dtype))
        art_logits.append(artifact_sequence_logits(artifact, run.layer_events[-1]))
    artifact_logits = np.stack(art_logits) if art_logits else np.zeros((0, 0))
    art_pred = artifact_logits.argmax(axis=-1) if art_logits else np.zeros(0, dtype=np.int64)
    n = max(len(labels), 1)
    return ArtifactComparison(
        labels=labels,
        torch_predictions=torch_pred,
        artifact_predictions=art_pred,
        torch_logits=torch_logits,
        artifact_logits=artifact_logits,
        torch_accuracy=float((torch_pred == labels).sum() / n),
        artifact_accuracy=float((art_pred == labels).sum() / n),
        agreement=float((torch_pred == art_pred).sum() / n),
        max_abs_logit_difference=float(np.abs(torch_logits - artifact_logits).max())
        if art_logits
        else 0.0,
    )
