"""Train the DVS gesture network (:class:`~snn_egru.models.dvs.DVSGestureNet`).

``python -m snn_egru.training.dvs --help``. Data: DVS128 Gesture from a folder
(``--data DIR``, read with tonic, never downloaded), or the synthetic gestures of
:mod:`snn_egru.data.synthetic_dvs` when no folder is given. Frames: 25 ms, 32 x 32
max-pooled, 2 polarities, slices of 68 frames (random window for training, first window for
evaluation), cached after the first epoch.

Recipe: cross-entropy on the sequence logits, AdamW (betas ``(0, 0.999)``), linear warm-up
then cosine decay, gradient-norm clipping, thresholds clamped to ``[0, 1]`` after each step
(beta-initialised thresholds). Each epoch ends with an evaluation (accuracy) and a
checkpoint (``last.pt``; ``best.pt`` when the accuracy improves); ``--resume`` continues from
``last.pt``. Metrics go to ``metrics.csv`` / ``metrics.jsonl`` in the output folder.
Distributed: start with ``torchrun --nproc_per_node N -m snn_egru.training.dvs ...``; each
rank trains on its shard (DDP), evaluation counts are summed over ranks.

The evaluation helpers compare the torch model with a deployment artifact (the chip's view):
:func:`compare_with_artifact` runs the CNN head in torch, feeds each sample's feature
vectors ``(T, 512)`` to ``artifact.run_reference`` and turns the per-step logits into a
prediction exactly as the torch readout does (:func:`artifact_sequence_logits`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from snn_egru import quantization as qat
from snn_egru.data.dvs import (
    DEFAULT_FRAME_US,
    DEFAULT_NUM_FRAMES,
    DEFAULT_POOL,
    FramePreprocessing,
    build_dvs_datasets,
)
from snn_egru.data.synthetic_dvs import GESTURE_CLASSES
from snn_egru.errors import UserError
from snn_egru.models.dvs import DVS_PRESETS, DVSGestureConfig, DVSGestureNet, dvs_preset
from snn_egru.reference import TRACE_DECAY
from snn_egru.training.common import (
    CheckpointError,
    MetricsLogger,
    all_reduce_sum,
    cleanup_distributed,
    clip_gradients,
    cosine_schedule,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
    load_checkpoint,
    make_optimizer,
    progress,
    restore_training_state,
    save_checkpoint,
    set_seed,
    unwrap_model,
    wrap_ddp,
)
from snn_egru.utils import clamp_thresholds

__all__ = [
    "ArtifactComparison",
    "DVSEvalResult",
    "DVSTrainConfig",
    "DVSTrainResult",
    "artifact_sequence_logits",
    "build_arg_parser",
    "compare_with_artifact",
    "evaluate_dvs",
    "feature_sequences",
    "load_dvs_model",
    "main",
    "predict_torch",
    "train_dvs",
]

logger = logging.getLogger(__name__)

#: Parameter-name pieces exempt from weight decay: biases, thresholds, batch-norm scales.
_NO_DECAY = ("bias", "threshold", "norm")


@dataclass(frozen=True)
class DVSTrainConfig:
    """How to train (saved with checkpoints next to the model's :class:`DVSGestureConfig`).

    Attributes:
        epochs: passes over the training set.
        batch_size: sequences per optimizer step (per rank when distributed).
        lr: peak learning rate (AdamW, betas ``(0, 0.999)``).
        weight_decay: decoupled weight decay (not on biases, thresholds, batch norm).
        warmup_steps: linear warm-up steps before the cosine decay.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        clip_norm: gradient-norm clipping (``<= 0``: off).
        label_smoothing: cross-entropy label smoothing.
        seed: seed of initialisation, shuffling, random windows and synthetic data.
        data_dir: DVS128 Gesture folder; ``None`` trains on synthetic gestures.
        cache_dir: frame cache folder (``None``: in memory).
        frame_us, pool, num_frames: preprocessing (published: 25 ms, 4, 68).
        synthetic_train_samples, synthetic_test_samples: synthetic split sizes.
        synthetic_duration_s: length of synthetic recordings (``None``: one slice).
        num_workers: DataLoader worker processes.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...
        eval_batch_size: batch size of the evaluations.
        max_steps: stop after this many optimizer steps in total (``None``: all epochs).
        time_limit_s: stop training after this many seconds (then evaluate and save).
        log_every: optimizer steps between metric rows.
        num_threads: torch intra-op CPU threads (``None``: torch's default). On a CPU shared
            with other jobs, 1 thread can be several times faster than oversubscribing.
        init_from: start from this checkpoint's weights; quantize: int8 QAT (as for the LM).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 20
    min_lr_ratio: float = 0.02
    clip_norm: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    data_dir: str | None = None
    cache_dir: str | None = None
    frame_us: int = DEFAULT_FRAME_US
    pool: int = DEFAULT_POOL
    num_frames: int = DEFAULT_NUM_FRAMES
    synthetic_train_samples: int = 220
    synthetic_test_samples: int = 110
    synthetic_duration_s: float | None = None
    num_workers: int = 0
    device: str = "auto"
    eval_batch_size: int = 32
    max_steps: int | None = None
    time_limit_s: float | None = None
    log_every: int = 10
    num_threads: int | None = None
    init_from: str | None = None
    quantize: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantize", qat.coerce_quantization(self.quantize))
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("epochs, batch_size and eval_batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(
                f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")

    @property
    def preprocessing(self) -> FramePreprocessing:
        return FramePreprocessing(
            frame_us=self.frame_us, pool=self.pool, num_frames=self.num_frames
        )


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


@dataclass
class DVSTrainResult:
    """What :func:`train_dvs` returns.

    Attributes:
        model: the trained network (unwrapped, in evaluation mode).
        config, train_config: the configurations used.
        history: every metric row logged.
        final: the last evaluation.
        best_accuracy: best test accuracy seen over the evaluations.
        steps, epochs: optimizer steps and epochs completed (including resumed ones).
        out_dir: where checkpoints and metrics were written (``None`` if nowhere).
        class_names: the label names.
        test_set: the evaluation dataset (for further comparisons, e.g. with an artifact).
    """

    model: DVSGestureNet
    config: DVSGestureConfig
    train_config: DVSTrainConfig
    history: list[dict[str, Any]]
    final: DVSEvalResult
    best_accuracy: float
    steps: int
    epochs: int
    out_dir: Path | None
    class_names: list[str] = field(default_factory=list)
    test_set: Any = None


# ------------------------------------------------------------------------ data helpers
def _time_major(frames: torch.Tensor) -> torch.Tensor:
    """Loader batches are ``(B, T, C, S, S)``; the network takes ``(T, B, C, S, S)``."""
    return frames.transpose(0, 1)


def _eval_subset(dataset: Dataset) -> Dataset:
    """This rank's share of an evaluation set (every world_size-th sample, no padding)."""
    if not is_distributed():
        return dataset
    return Subset(dataset, list(range(get_rank(), len(dataset), get_world_size())))


def _make_loader(dataset: Dataset, batch_size: int, num_workers: int, **kwargs: Any) -> DataLoader:
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
    loader = _make_loader(_eval_subset(dataset), batch_size, num_workers)
    predictions, labels = [], []
    loss_sum, events, slots = 0.0, 0.0, 0.0
    batches = progress(loader, desc="eval", leave=False) if show_progress else loader
    for frames, target in batches:
        frames = _time_major(frames.to(device))
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
    net = unwrap_model(model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    subset = (
        dataset if max_samples is None else Subset(dataset, range(min(max_samples, len(dataset))))
    )
    was_training = net.training
    net.eval()
    logits, labels = [], []
    for frames, target in _make_loader(subset, batch_size, 0):
        logits.append(net(_time_major(frames.to(device))).logits.float().cpu())
        labels.append(target)
    net.train(was_training)
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
    net = unwrap_model(model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    subset = (
        dataset if max_samples is None else Subset(dataset, range(min(max_samples, len(dataset))))
    )
    was_training = net.training
    net.eval()
    sequences: list[np.ndarray] = []
    labels = []
    for frames, target in _make_loader(subset, batch_size, 0):
        features = net.features(_time_major(frames.to(device))).float().cpu().numpy()
        sequences.extend(np.ascontiguousarray(features[:, b]) for b in range(features.shape[1]))
        labels.append(target.numpy())
    net.train(was_training)
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


# --------------------------------------------------------------------------- training
def train_dvs(
    config: DVSGestureConfig | None,
    train_config: DVSTrainConfig,
    *,
    dataset: tuple[Dataset, Dataset] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    class_names: Sequence[str] | None = None,
    show_progress: bool = True,
) -> DVSTrainResult:
    """Train a :class:`DVSGestureNet` and evaluate it after every epoch.

    Args:
        config: the architecture; ``None`` with ``resume`` takes it from the checkpoint
            (``None`` without a checkpoint: the ``small`` preset).
        train_config: the recipe and the data (see :class:`DVSTrainConfig`).
        dataset: ``(train, test)`` map-style datasets of ``(frames (T, C, S, S), label)``
            (e.g. :class:`~snn_egru.data.dvs.DVSFrames`); default built from
            ``train_config`` (real data folder or synthetic gestures). A train set with
            ``set_epoch`` gets a new random window per epoch.
        out_dir: folder for ``last.pt``, ``best.pt`` and the metrics (``None``: no files).
        resume: continue from ``out_dir/last.pt`` (model, optimizer, schedule, RNG, epoch).
        class_names: label names stored with checkpoints (default: the datasets' or
            DVS128 Gesture's).
        show_progress: tqdm bars (main rank, terminal only).

    Returns:
        :class:`DVSTrainResult`.

    Raises:
        UserError: ``resume`` without a checkpoint, or a config that differs from the
            checkpoint's.
    """
    tc = train_config
    out = Path(out_dir) if out_dir is not None else None
    checkpoint = None
    if resume:
        if out is None or not (out / "last.pt").exists():
            raise UserError(
                f"--resume: no checkpoint {out / 'last.pt' if out else '(no output folder)'}; "
                "train without --resume first"
            )
        checkpoint = load_checkpoint(out / "last.pt")
        stored = checkpoint.model_config(DVSGestureConfig)
        if config is not None and config != stored:
            raise UserError(
                f"--resume: the checkpoint in {out} was trained with a different model config "
                f"({stored}); resume with the same settings or use another output folder"
            )
        config = stored
    config = config or dvs_preset("small")

    if tc.num_threads is not None:
        torch.set_num_threads(tc.num_threads)
    info = init_distributed(device=tc.device)
    set_seed(tc.seed + info.rank, deterministic=False)
    if dataset is None:
        train_set, test_set = build_dvs_datasets(
            tc.data_dir,
            preprocessing=tc.preprocessing,
            cache_dir=tc.cache_dir,
            synthetic_train_samples=tc.synthetic_train_samples,
            synthetic_test_samples=tc.synthetic_test_samples,
            synthetic_config=_synthetic_config(tc),
            seed=tc.seed,
        )
    else:
        train_set, test_set = dataset
    names = list(class_names or getattr(train_set, "classes", None) or GESTURE_CLASSES)
    if len(names) != config.num_classes:
        raise UserError(
            f"the data has {len(names)} classes but the model config says num_classes="
            f"{config.num_classes}"
        )

    torch.manual_seed(tc.seed)  # same initial weights on every rank
    model = DVSGestureNet(config).to(info.device)
    qat.prepare_qat(model, tc.quantize)  # before weights are loaded (QAT checkpoints fit)
    if tc.init_from is not None and checkpoint is None:
        restore_training_state(load_checkpoint(tc.init_from), model=model, restore_rng=False)
    batch = lambda: qat.first_batch(train_set, tc.batch_size).to(info.device)  # noqa: E731
    qat.calibrate(model, lambda m: m(_time_major(batch())), if_needed=True)
    optimizer = make_optimizer(model, tc.lr, tc.weight_decay, no_decay=_NO_DECAY)
    if is_distributed():
        sampler: Any = DistributedSampler(train_set, shuffle=True, seed=tc.seed, drop_last=True)
    else:
        shuffle_generator = torch.Generator()
        sampler = RandomSampler(train_set, generator=shuffle_generator)
    loader = _make_loader(train_set, tc.batch_size, tc.num_workers, sampler=sampler, drop_last=True)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError(
            f"batch_size={tc.batch_size} is larger than the training set ({len(train_set)} "
            "samples per rank): lower --batch-size"
        )
    total_steps = tc.epochs * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(total_steps, tc.max_steps)
    scheduler = cosine_schedule(
        optimizer, total_steps, min(tc.warmup_steps, total_steps), min_lr_ratio=tc.min_lr_ratio
    )
    step, start_epoch, best = 0, 0, -1.0
    if checkpoint is not None:
        restore_training_state(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler)
        step, start_epoch = checkpoint.step, checkpoint.epoch
        best = float(checkpoint.metrics.get("best_accuracy", -1.0))
        logger.info("resumed from %s at epoch %d, step %d", out / "last.pt", start_epoch, step)
    ddp_model = wrap_ddp(model)
    metrics = MetricsLogger(out, resume=resume) if out is not None else None
    history: list[dict[str, Any]] = list(metrics.rows) if metrics is not None else []

    def record(**values: Any) -> None:
        history.append(metrics.log(**values) if metrics is not None else values)

    started = time.perf_counter()
    epoch = start_epoch
    stop = step >= total_steps
    final: DVSEvalResult | None = None
    while epoch < tc.epochs and not stop:
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        else:  # the order of epoch e depends only on (seed, e): resuming repeats it exactly
            shuffle_generator.manual_seed(tc.seed * 1_000_003 + epoch)
        model.train()
        totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
        window = {"loss": 0.0, "correct": 0.0, "count": 0.0, "events": 0.0, "slots": 0.0}
        bar_options: dict[str, Any] = {} if show_progress else {"disable": True}
        bar = progress(loader, desc=f"epoch {epoch + 1}/{tc.epochs}", **bar_options)
        for frames, target in bar:
            frames = _time_major(frames.to(info.device, non_blocking=True))
            target = target.to(info.device, non_blocking=True)
            out_ = ddp_model(frames, return_all_layers=True)
            loss = F.cross_entropy(out_.logits, target, label_smoothing=tc.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_gradients(model, tc.clip_norm)
            optimizer.step()
            scheduler.step()
            clamp_thresholds(model)  # beta thresholds stay in [0, 1]
            step += 1
            with torch.no_grad():
                correct = float((out_.logits.argmax(-1) == target).sum())
                batch = float(target.numel())
                for acc in (totals, window):
                    acc["loss"] += float(loss) * batch
                    acc["correct"] += correct
                    acc["count"] += batch
                for y in out_.layer_outputs:
                    window["events"] += float((y != 0).sum())
                    window["slots"] += y.numel()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{correct / batch:.2f}")
            if step % tc.log_every == 0:
                record(
                    kind="train",
                    step=step,
                    epoch=epoch + 1,
                    loss=window["loss"] / window["count"],
                    accuracy=window["correct"] / window["count"],
                    activity=window["events"] / max(window["slots"], 1.0),
                    lr=scheduler.get_last_lr()[0],
                    grad_norm=grad_norm,
                    elapsed_s=time.perf_counter() - started,
                )
                window = dict.fromkeys(window, 0.0)
            if step >= total_steps or (
                tc.time_limit_s is not None and time.perf_counter() - started >= tc.time_limit_s
            ):
                stop = True
                break
        if not stop or totals["count"] >= steps_per_epoch * tc.batch_size:
            epoch += 1  # the epoch ran to its end
        summed = all_reduce_sum(
            torch.tensor([totals["loss"], totals["correct"], totals["count"]], dtype=torch.float64)
        )
        totals = dict(zip(("loss", "correct", "count"), (float(v) for v in summed)))
        final = evaluate_dvs(
            ddp_model, test_set, batch_size=tc.eval_batch_size, num_workers=tc.num_workers
        )
        best = max(best, final.accuracy)
        record(
            kind="eval",
            step=step,
            epoch=epoch,
            train_loss=totals["loss"] / max(totals["count"], 1.0),
            train_accuracy=totals["correct"] / max(totals["count"], 1.0),
            test_loss=final.loss,
            test_accuracy=final.accuracy,
            test_activity=final.activity,
            best_accuracy=best,
            elapsed_s=time.perf_counter() - started,
        )
        if is_main_process():
            logger.info(
                "epoch %d step %d: train loss %.4f, test accuracy %.4f (best %.4f), activity %.3f",
                epoch,
                step,
                totals["loss"] / max(totals["count"], 1.0),
                final.accuracy,
                best,
                final.activity,
            )
        if out is not None and is_main_process():
            state = dict(
                model=model,
                config=config,
                train_config=tc,
                optimizer=optimizer,
                scheduler=scheduler,
                step=step,
                epoch=epoch,
                class_names=names,
                metrics={"test_accuracy": final.accuracy, "best_accuracy": best},
            )
            save_checkpoint(out / "last.pt", **state)
            if final.accuracy >= best:
                save_checkpoint(out / "best.pt", **state)
    if final is None:  # nothing left to train (resumed a finished run): evaluate once
        final = evaluate_dvs(model, test_set, batch_size=tc.eval_batch_size)
        best = max(best, final.accuracy)
    model.eval()
    if out is not None and is_main_process():
        summary = {
            "test_accuracy": final.accuracy,
            "best_accuracy": best,
            "test_activity": final.activity,
            "steps": step,
            "epochs": epoch,
            "elapsed_s": time.perf_counter() - started,
            "config": asdict(config),
            "train_config": asdict(tc),
            "class_names": names,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return DVSTrainResult(
        model=model,
        config=config,
        train_config=tc,
        history=history,
        final=final,
        best_accuracy=best,
        steps=step,
        epochs=epoch,
        out_dir=out,
        class_names=names,
        test_set=test_set,
    )


def _synthetic_config(tc: DVSTrainConfig):
    from snn_egru.data.synthetic_dvs import SyntheticGestureConfig

    duration = tc.synthetic_duration_s
    if duration is None:
        duration = tc.num_frames * tc.frame_us / 1e6
    return SyntheticGestureConfig(duration_s=duration)


def load_dvs_model(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[DVSGestureNet, list[str]]:
    """A trained :class:`DVSGestureNet` (evaluation mode) and its class names from a checkpoint."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    try:
        config = checkpoint.model_config(DVSGestureConfig)
    except CheckpointError as err:
        raise CheckpointError(f"{path} is not a DVS gesture checkpoint: {err}") from None
    model = DVSGestureNet(config)
    qat.prepare_from_checkpoint(model, checkpoint.train_config)
    restore_training_state(checkpoint, model=model, restore_rng=False)
    model.eval()
    return model, list(checkpoint.class_names or GESTURE_CLASSES)


# -------------------------------------------------------------------------------- CLI
def build_arg_parser(prog: str = "python -m snn_egru.training.dvs") -> argparse.ArgumentParser:
    """The command-line interface of :func:`main` (:mod:`snn_egru.training.dvs_args`)."""
    from snn_egru.training.dvs_args import build_parser

    return build_parser(
        prog,
        defaults=DVSTrainConfig(),
        presets=sorted(DVS_PRESETS),
        add_more=qat.add_quantization_arguments,
    )


def _configs_from_args(args: argparse.Namespace) -> tuple[DVSGestureConfig | None, DVSTrainConfig]:
    overrides: dict[str, Any] = {}
    if args.readout is not None:
        overrides["readout_source"] = args.readout
    if args.hidden is not None:
        overrides["hidden_sizes"] = tuple(args.hidden)
    if args.features is not None:
        overrides["feature_size"] = args.features
    for name in ("dropout", "zoneout", "dropconnect", "cell", "event_amplitude"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    config = None if args.resume and not overrides else dvs_preset(args.preset, **overrides)
    frame_us = int(round(args.frame_ms * 1000))
    train_config = DVSTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        clip_norm=args.clip,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        data_dir=args.data,
        cache_dir=args.cache_dir,
        frame_us=frame_us,
        pool=args.pool,
        num_frames=args.num_frames,
        synthetic_train_samples=args.synthetic_train,
        synthetic_test_samples=args.synthetic_test,
        synthetic_duration_s=args.synthetic_duration,
        num_workers=args.workers,
        device=args.device,
        max_steps=args.max_steps,
        time_limit_s=args.time_limit,
        log_every=args.log_every,
        num_threads=args.threads,
        init_from=args.init_from,
        quantize=qat.quantization_from_args(args),
    )
    return config, train_config


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for user errors, one line;
    ``--verbose`` shows the traceback)."""
    from snn_egru.cliargs import run_main

    parser = build_arg_parser(prog or "python -m snn_egru.training.dvs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return run_main(lambda: _run(args), prog=parser.prog, verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    from snn_egru.training.common import check_device, guard_run_folder

    check_device(args.device)
    if args.data is not None and not Path(args.data).is_dir():
        from snn_egru.data.dvs import _layout_help

        raise UserError(
            f"--data: DVS128 Gesture folder {args.data} does not exist. "
            f"{_layout_help(Path(args.data))}"
        )
    if args.export is not None and (Path(args.export).is_dir() or not args.export.endswith(".npz")):
        raise UserError(f"--export takes a file name ending in .npz, got {args.export!r}")
    guard_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)
    try:
        config, train_config = _configs_from_args(args)
        result = train_dvs(
            config,
            train_config,
            out_dir=args.out,
            resume=args.resume,
            show_progress=not (args.no_progress or args.quiet),
        )
        if is_main_process():
            print(
                f"test accuracy {result.final.accuracy:.4f} (best {result.best_accuracy:.4f}), "
                f"activity {result.final.activity:.3f}, {result.steps} steps; "
                f"checkpoints in {args.out}"
            )
            if args.export or args.compare:
                _export_and_compare(result, args)
    except ValueError as err:  # config values that do not go together
        if isinstance(err, CheckpointError):
            raise
        raise UserError(str(err)) from None
    finally:
        cleanup_distributed()
    return 0


def _export_and_compare(result: DVSTrainResult, args: argparse.Namespace) -> None:
    from snn_egru.export import export_artifact

    artifact = export_artifact(
        result.model,
        class_names=result.class_names,
        metadata={
            "workload": "dvs_gesture",
            "test_accuracy": result.final.accuracy,
            "preprocessing": asdict(result.train_config.preprocessing),
        },
    )
    if args.export:
        path = artifact.save(args.export)
        print(f"artifact written to {path}")
    if args.compare:
        test_set = result.test_set
        cmp = compare_with_artifact(result.model, artifact, test_set, max_samples=args.compare)
        print(
            f"torch accuracy {cmp.torch_accuracy:.4f}, artifact (numpy reference) accuracy "
            f"{cmp.artifact_accuracy:.4f}, agreement {cmp.agreement:.4f}, max |logit diff| "
            f"{cmp.max_abs_logit_difference:.2e} on {len(cmp.labels)} samples"
        )


if __name__ == "__main__":
    raise SystemExit(main())
