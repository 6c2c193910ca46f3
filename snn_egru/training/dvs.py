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

The loop is the shared :class:`~snn_egru.training.loop.Trainer`; :class:`DVSTask` is what the
DVS workload adds. Evaluation and the comparison with a deployment artifact are in
:mod:`snn_egru.training.dvs_eval`.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler, RandomSampler

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
from snn_egru.quantization_cli import add_quantization_arguments, quantization_from_args
from snn_egru.training.common import (
    Checkpoint,
    CheckpointError,
    all_reduce_sum,
    cleanup_distributed,
    init_distributed,
    is_distributed,
    is_main_process,
    load_checkpoint,
    restore_training_state,
    set_seed,
)
from snn_egru.training.dvs_eval import (
    ArtifactComparison,
    DVSEvalResult,
    artifact_sequence_logits,
    compare_with_artifact,
    evaluate_dvs,
    feature_sequences,
    make_loader,
    predict_torch,
    time_major,
)
from snn_egru.training.loop import LoopSettings, Trainer
from snn_egru.utils import clamp_thresholds

__all__ = [
    "ArtifactComparison",
    "DVSEvalResult",
    "DVSTask",
    "DVSTrainConfig",
    "DVSTrainResult",
    "artifact_sequence_logits",
    "build_arg_parser",
    "compare_with_artifact",
    "dvs_datasets",
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
        precision: ``"fp32"`` or ``"bf16"`` autocast (as for the LM: the EGRU loop, its
            state and the loss in float32; :class:`~snn_egru.training.loop.LoopSettings`).
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
    precision: str = "fp32"

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
    checkpoint = _resume_checkpoint(out) if resume else None
    if checkpoint is not None:
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
        dataset = dvs_datasets(tc)
    task = DVSTask(config, tc, dataset, class_names, info.device, resume=checkpoint is not None)
    settings = task.loop_settings()
    trainer = Trainer(task, settings, out_dir=out, resume=resume, show_progress=show_progress)
    if checkpoint is not None:
        trainer.restore(checkpoint)
        logger.info(
            "resumed from %s at epoch %d, step %d", out / "last.pt", trainer.epoch, trainer.step
        )
    trainer.fit()
    task.model.eval()
    if out is not None and is_main_process():
        summary = {
            "test_accuracy": task.final.accuracy,
            "best_accuracy": task.best,
            "test_activity": task.final.activity,
            "steps": trainer.step,
            "epochs": trainer.epoch,
            "elapsed_s": trainer.elapsed(),
            "config": asdict(config),
            "train_config": asdict(tc),
            "class_names": task.names,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return DVSTrainResult(
        model=task.model,
        config=config,
        train_config=tc,
        history=trainer.history,
        final=task.final,
        best_accuracy=task.best,
        steps=trainer.step,
        epochs=trainer.epoch,
        out_dir=out,
        class_names=task.names,
        test_set=task.test_set,
    )


def _resume_checkpoint(out: Path | None) -> Checkpoint:
    if out is None or not (out / "last.pt").exists():
        raise UserError(
            f"--resume: no checkpoint {out / 'last.pt' if out else '(no output folder)'}; "
            "train without --resume first"
        )
    return load_checkpoint(out / "last.pt")


class DVSTask:
    """The DVS workload for :class:`~snn_egru.training.loop.Trainer`: the seeded model, the
    shuffled loader (the order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run
    repeats it), accuracy and activity metrics, an evaluation on the test set per epoch."""

    def __init__(
        self,
        config: DVSGestureConfig,
        tc: DVSTrainConfig,
        dataset: tuple[Dataset, Dataset],
        class_names: Sequence[str] | None,
        device: torch.device,
        *,
        resume: bool,
    ) -> None:
        self.config, self.train_config, self.device = config, tc, device
        self.train_set, self.test_set = dataset
        names = class_names or getattr(self.train_set, "classes", None) or GESTURE_CLASSES
        self.names = list(names)
        if len(self.names) != config.num_classes:
            raise UserError(
                f"the data has {len(self.names)} classes but the model config says num_classes="
                f"{config.num_classes}"
            )
        torch.manual_seed(tc.seed)  # same initial weights on every rank
        self.model = DVSGestureNet(config).to(device)
        qat.prepare_qat(self.model, tc.quantize)  # before weights are loaded (QAT fits)
        if tc.init_from is not None and not resume:
            restore_training_state(
                load_checkpoint(tc.init_from), model=self.model, restore_rng=False
            )
        batch = lambda: qat.first_batch(self.train_set, tc.batch_size).to(device)  # noqa: E731
        qat.calibrate(self.model, lambda m: m(time_major(batch())), if_needed=True)
        self.shuffle_generator = torch.Generator()
        if is_distributed():
            self.sampler: Any = DistributedSampler(
                self.train_set, shuffle=True, seed=tc.seed, drop_last=True
            )
        else:
            self.sampler = RandomSampler(self.train_set, generator=self.shuffle_generator)
        self.loader = make_loader(
            self.train_set, tc.batch_size, tc.num_workers, sampler=self.sampler, drop_last=True
        )
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise UserError(
                f"batch_size={tc.batch_size} is larger than the training set "
                f"({len(self.train_set)} samples per rank): lower --batch-size"
            )
        self.best, self.final = -1.0, None
        self.totals = self.window = {}
        self.grad_norm = 0.0

    def loop_settings(self) -> LoopSettings:
        tc = self.train_config
        total = tc.epochs * self.steps_per_epoch
        if tc.max_steps is not None:
            total = min(total, tc.max_steps)
        return LoopSettings.from_config(
            tc, no_decay=_NO_DECAY, clip=tc.clip_norm, schedule_steps=total
        )

    # ------------------------------------------------------------------ loop hooks
    def batches(self, epoch: int) -> Any:
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        else:  # the order of epoch e depends only on (seed, e): resuming repeats it exactly
            self.shuffle_generator.manual_seed(self.train_config.seed * 1_000_003 + epoch)
        self.totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
        self.window = {"loss": 0.0, "correct": 0.0, "count": 0.0, "events": 0.0, "slots": 0.0}
        return self.loader

    def training_loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        frames, target = batch
        frames = time_major(frames.to(self.device, non_blocking=True))
        self._target = target.to(self.device, non_blocking=True)
        self._out = model(frames, return_all_layers=True)
        tc = self.train_config
        logits = self._out.logits.float()  # the loss in float32 (bf16 autocast)
        loss = F.cross_entropy(logits, self._target, label_smoothing=tc.label_smoothing)
        self._loss = loss
        return loss

    def lr_scale(self, batch: Any) -> float:
        return 1.0

    @torch.no_grad()
    def after_step(self, trainer: Trainer, grad_norm: float) -> None:
        clamp_thresholds(self.model)  # beta thresholds stay in [0, 1]
        self.grad_norm = grad_norm
        out, target = self._out, self._target
        correct = float((out.logits.argmax(-1) == target).sum())
        batch = float(target.numel())
        for acc in (self.totals, self.window):
            acc["loss"] += float(self._loss) * batch
            acc["correct"] += correct
            acc["count"] += batch
        for y in out.layer_outputs:
            self.window["events"] += float((y != 0).sum())
            self.window["slots"] += y.numel()
        self._out = None

    def train_row(self, trainer: Trainer) -> dict[str, Any]:
        w = self.window
        row = {
            "epoch": trainer.epoch + 1,
            "loss": w["loss"] / w["count"],
            "accuracy": w["correct"] / w["count"],
            "activity": w["events"] / max(w["slots"], 1.0),
            "lr": trainer.scheduler.get_last_lr()[0],
            "grad_norm": self.grad_norm,
        }
        self.window = dict.fromkeys(w, 0.0)
        return row

    def end_epoch(self, trainer: Trainer) -> None:
        pass

    def evaluate(self, trainer: Trainer) -> bool:
        """Test accuracy (every rank its share); ``best.pt`` when it is the best so far."""
        tc = self.train_config
        summed = all_reduce_sum(
            torch.tensor(
                [self.totals[k] for k in ("loss", "correct", "count")], dtype=torch.float64
            )
        )
        loss, correct, count = (float(v) for v in summed)
        final = evaluate_dvs(
            trainer.ddp_model,
            self.test_set,
            batch_size=tc.eval_batch_size,
            num_workers=tc.num_workers,
        )
        improved = final.accuracy >= self.best
        self.final, self.best = final, max(self.best, final.accuracy)
        train_loss = loss / max(count, 1.0)
        trainer.log(
            kind="eval",
            step=trainer.step,
            epoch=trainer.epoch,
            train_loss=train_loss,
            train_accuracy=correct / max(count, 1.0),
            test_loss=final.loss,
            test_accuracy=final.accuracy,
            test_activity=final.activity,
            best_accuracy=self.best,
            elapsed_s=trainer.elapsed(),
        )
        if is_main_process():
            logger.info(
                "epoch %d step %d: train loss %.4f, test accuracy %.4f (best %.4f), activity %.3f",
                trainer.epoch, trainer.step, train_loss, final.accuracy, self.best, final.activity,
            )  # fmt: skip
        return improved

    def checkpoint_fields(self, trainer: Trainer) -> dict[str, Any]:
        metrics = {"test_accuracy": self.final.accuracy, "best_accuracy": self.best}
        return {"class_names": self.names, "metrics": metrics}

    def restore(self, trainer: Trainer, checkpoint: Checkpoint) -> None:
        self.best = float(checkpoint.metrics.get("best_accuracy", -1.0))


def dvs_datasets(tc: DVSTrainConfig) -> tuple[Dataset, Dataset]:
    """The ``(train, test)`` frame datasets ``tc`` describes: DVS128 Gesture from
    ``tc.data_dir``, or synthetic gestures (``tc.synthetic_*``) when it is ``None``."""
    return build_dvs_datasets(
        tc.data_dir,
        preprocessing=tc.preprocessing,
        cache_dir=tc.cache_dir,
        synthetic_train_samples=tc.synthetic_train_samples,
        synthetic_test_samples=tc.synthetic_test_samples,
        synthetic_config=_synthetic_config(tc),
        seed=tc.seed,
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
        add_more=add_quantization_arguments,
    )


#: The :class:`DVSTrainConfig` fields set by the flag of the same name (the other fields'
#: flags have other names or units: :func:`_configs_from_args`).
_SAME_NAME_FLAGS = (
    "epochs batch_size lr weight_decay warmup_steps label_smoothing seed cache_dir pool "
    "num_frames device max_steps log_every init_from precision"
).split()


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
    train_config = DVSTrainConfig(
        **{name: getattr(args, name) for name in _SAME_NAME_FLAGS},
        clip_norm=args.clip,
        data_dir=args.data,
        frame_us=int(round(args.frame_ms * 1000)),
        synthetic_train_samples=args.synthetic_train,
        synthetic_test_samples=args.synthetic_test,
        synthetic_duration_s=args.synthetic_duration,
        quantize=quantization_from_args(args),
        num_workers=args.workers,
        time_limit_s=args.time_limit,
        num_threads=args.threads,
    )
    return config, train_config


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for user errors, one line;
    ``--verbose`` shows the traceback)."""
    from snn_egru.training.lm_args import run_trainer

    cli = build_arg_parser(prog or "python -m snn_egru.training.dvs")
    return run_trainer(cli, argv, _run, log_format="%(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace) -> int:
    from snn_egru.training.common import check_device, guard_run_folder
    from snn_egru.training.lm_args import fit_options

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
        result = train_dvs(config, train_config, **fit_options(args))
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
