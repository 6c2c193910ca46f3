"""The one training loop of every workload: :class:`Trainer` runs a :class:`TrainingTask`.

The task (:mod:`snn_egru.training.lm`, :mod:`snn_egru.training.dvs`) owns what differs between
workloads: its model, its batches, its loss and metrics, what a checkpoint stores beside the
weights, and what an evaluation means. The loop owns what they share:

* the optimizer (AdamW, :func:`~snn_egru.training.common.make_optimizer`) and the schedule
  (cosine with warm-up and hold, or constant), gradient-norm clipping, an optional
  per-batch learning-rate scale (the LM's ``seq_len / bptt``);
* DistributedDataParallel wrapping, the stop conditions agreed by every rank (``max_steps``,
  a time limit), epochs (with the resume position), the progress bar;
* metric rows (``metrics.csv`` / ``metrics.jsonl`` through
  :class:`~snn_egru.training.common.MetricsLogger`, the returned ``history``);
* evaluation every ``eval_every`` steps or after each epoch, and once more at the end when the
  last step was not evaluated; checkpoints ``last.pt`` after every evaluation and
  ``best.pt`` when the task says the model improved; resume from ``last.pt``.

One optimizer step is :meth:`Trainer.optimizer_step`: ``task.training_loss`` -> zero the
gradients -> backward -> clip -> (scaled) ``optimizer.step`` -> ``scheduler.step`` ->
``task.after_step``. Later work adds a precision mode (a ``torch.autocast`` context around
``task.training_loss``, a ``GradScaler`` around backward/step), a loss (the task's
``training_loss``), a per-layer warning (``task.after_evaluation``), and a sweep driver
calls ``train_language_model`` / ``train_dvs`` as library functions.

Why hand-written and not Lightning Fabric: Fabric would own ``setup`` (device, DDP),
``backward``, ``clip_gradients``, ``save``/``load`` and ``autocast``. Here those are one line
each over :mod:`snn_egru.training.common` (which the tests pin: checkpoint layout, RNG state,
the CPU gloo group of ``torchrun``), so Fabric would not make this module shorter: the loop's
length is the epoch / evaluation / checkpoint / stop bookkeeping, which Fabric leaves to the
caller. It would add a dependency (``lightning`` and its own pins, tens of MB to install in
CI), its own checkpoint format (old checkpoints must keep loading, every field identical),
its own seeding and sampler replacement (``setup_dataloaders`` swaps in a
``DistributedSampler``, which changes the DVS shuffling and so the numbers). Same behaviour,
same numbers, less code: the helpers stay.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from snn_egru.training.allocator import keep_buffers_mapped
from snn_egru.training.common import (
    Checkpoint,
    MetricsLogger,
    clip_gradients,
    cosine_schedule,
    is_distributed,
    is_main_process,
    make_optimizer,
    progress,
    restore_training_state,
    save_checkpoint,
    wrap_ddp,
)

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "LoopSettings", "Trainer", "TrainingTask", "stop_everywhere"]


#: Training precisions (:attr:`LoopSettings.precision`).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@dataclass
class LoopSettings:
    """What the loop needs from a workload's training config.

    Attributes:
        lr, weight_decay, betas, no_decay: AdamW (``no_decay``: name pieces without decay).
        clip: global gradient-norm limit (``<= 0`` or ``None``: none).
        schedule: ``"cosine"`` or ``"constant"``; schedule_steps: its length in steps.
        warmup_steps, hold_steps, min_lr_ratio: the cosine's shape.
        epochs: passes over the training batches; max_steps: stop after this many steps.
        time_limit_s: stop after this many seconds (counted with ``elapsed_before``).
        eval_every: evaluate every this many steps (``0``: after each epoch) and at the end.
        log_every: one ``train`` metric row every this many steps.
        save_checkpoints: write ``last.pt`` / ``best.pt`` into ``out_dir``.
        precision: ``"fp32"`` or ``"bf16"``: ``task.training_loss`` under ``torch.autocast``
            (bfloat16; no gradient scaling needed); the EGRU time loop and its state stay
            float32 (:meth:`~snn_egru.sequence.EGRUSequence._run_layer`), the task computes
            its loss in float32. For hardware with bf16 matrix units (AMX, AVX-512 BF16,
            tensor cores); on AVX2-only CPUs it is slower (docs/training_speed.md).
    """

    lr: float
    weight_decay: float
    schedule_steps: int
    epochs: int
    betas: tuple[float, float] = (0.0, 0.999)
    no_decay: tuple[str, ...] = ()
    clip: float | None = None
    schedule: str = "cosine"
    warmup_steps: int = 0
    hold_steps: int = 0
    min_lr_ratio: float = 0.0
    max_steps: int | None = None
    time_limit_s: float | None = None
    eval_every: int = 0
    log_every: int = 10
    save_checkpoints: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; valid names: {', '.join(PRECISIONS)}"
            )

    @classmethod
    def from_config(cls, train_config: Any, **values: Any) -> LoopSettings:
        """The settings named alike in a workload's training config, ``values`` for the
        others (and for those computed from it, such as ``schedule_steps``)."""
        names = [f.name for f in fields(cls)]
        taken = {n: getattr(train_config, n) for n in names if hasattr(train_config, n)}
        return cls(**{**taken, **values})


class TrainingTask(Protocol):
    """What a workload gives the loop (see :mod:`snn_egru.training.lm` for one).

    ``model`` is the unwrapped module; ``config`` / ``train_config`` go into checkpoints.
    """

    model: nn.Module
    config: Any
    train_config: Any
    steps_per_epoch: int

    def batches(self, epoch: int) -> Any:
        """The batches of ``epoch`` still to train (a sized iterable; on resume, the rest)."""

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Forward ``batch`` through ``model`` (the DDP wrapper) and return the loss."""

    def lr_scale(self, batch: Any) -> float:
        """Factor on the scheduled learning rate for this batch (1.0: none)."""

    def after_step(self, trainer: Trainer, grad_norm: float) -> None:
        """After ``optimizer.step``: constraints, pruning, running metrics."""

    def train_row(self, trainer: Trainer) -> dict[str, Any]:
        """The ``train`` metric row (after ``kind``, ``step``), resetting its window."""

    def end_epoch(self, trainer: Trainer) -> None:
        """An epoch ran to its end (``trainer.epoch`` counts it already)."""

    def evaluate(self, trainer: Trainer) -> bool:
        """Evaluate, log its rows (``trainer.log``), return whether ``best.pt`` is kept."""

    def checkpoint_fields(self, trainer: Trainer) -> dict[str, Any]:
        """``vocabulary`` / ``class_names`` / ``metrics`` / ``extra`` of a checkpoint
        (every rank calls this: collectives are allowed)."""

    def restore(self, trainer: Trainer, checkpoint: Checkpoint) -> None:
        """The task's part of a resume (after model, optimizer, schedule and RNG)."""


def stop_everywhere(flag: bool) -> bool:
    """True when any rank wants to stop (keeps the ranks in step)."""
    if not is_distributed():
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class Trainer:
    """Runs a :class:`TrainingTask` (see the module docstring).

    Args:
        task: the workload (its model built and on its device).
        settings: :class:`LoopSettings`.
        out_dir: folder of checkpoints and metrics (``None``: nothing is written).
        resume: the caller restores with :meth:`restore` before :meth:`fit`; metric files
            are appended to.
        show_progress: progress bar on the main rank.
        start_time: ``time.perf_counter()`` when the run started (default: now).

    Attributes after :meth:`fit`: ``step``, ``epoch`` (completed), ``stop_reason``
    (``"epochs"``, ``"max_steps"``, ``"time_budget"``), ``history`` (metric rows),
    ``last_lr`` (the scheduled rate of the last step), ``elapsed_before`` (seconds of the
    resumed run).
    """

    def __init__(
        self,
        task: TrainingTask,
        settings: LoopSettings,
        *,
        out_dir: Path | None = None,
        resume: bool = False,
        show_progress: bool = True,
        start_time: float | None = None,
    ) -> None:
        self.task, self.settings, self.out_dir = task, settings, out_dir
        self.show_progress = show_progress
        self.start_time = start_time
        self.model = task.model
        s = settings
        self.optimizer = make_optimizer(
            self.model, s.lr, s.weight_decay, s.betas, no_decay=s.no_decay
        )
        self.scheduler = self._make_scheduler()
        self.step, self.epoch, self.elapsed_before = 0, 0, 0.0
        self.stop_reason = "epochs"
        self.last_lr = s.lr
        self.last_eval_step = -1
        self.metrics = MetricsLogger(out_dir, resume=resume) if out_dir is not None else None
        self.history: list[dict[str, Any]] = list(self.metrics.rows) if self.metrics else []
        self.ddp_model: nn.Module = self.model

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        s, total = self.settings, self.settings.schedule_steps
        if s.schedule == "constant":
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, _constant)
        return cosine_schedule(
            self.optimizer,
            total,
            min(s.warmup_steps, total),
            min_lr_ratio=s.min_lr_ratio,
            hold_steps=min(s.hold_steps, max(0, total - s.warmup_steps)),
        )

    # ------------------------------------------------------------------ state
    def restore(self, checkpoint: Checkpoint, *, elapsed_before: float = 0.0) -> None:
        """Continue from ``checkpoint``: model, optimizer, schedule, RNG, step, epoch, task."""
        restore_training_state(
            checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
        )
        self.step, self.epoch = checkpoint.step, checkpoint.epoch
        self.elapsed_before = elapsed_before
        self.task.restore(self, checkpoint)

    def elapsed(self) -> float:
        """Seconds of training, including those of the run resumed."""
        return self.elapsed_before + time.perf_counter() - self.start_time

    def log(self, **row: Any) -> dict[str, Any]:
        """Record one metric row (files on the main rank, ``history`` everywhere)."""
        row = self.metrics.log(**row) if self.metrics is not None else row
        self.history.append(row)
        return row

    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (every rank calls this; the main rank writes)."""
        fields = self.task.checkpoint_fields(self)
        if not (is_main_process() and self.settings.save_checkpoints and self.out_dir):
            return
        save_checkpoint(
            self.out_dir / name,
            model=self.model,
            config=self.task.config,
            train_config=self.task.train_config,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            step=self.step,
            epoch=self.epoch,
            **fields,
        )

    def evaluate_and_save(self) -> None:
        """Evaluate, keep ``best.pt`` when the task says so, write ``last.pt``."""
        if self.task.evaluate(self):
            self.save("best.pt")
        self.save("last.pt")
        self.last_eval_step = self.step

    # ------------------------------------------------------------------ training
    def optimizer_step(self, batch: Any) -> None:
        """One step on ``batch`` (see the module docstring)."""
        with self._autocast():
            loss = self.task.training_loss(self.ddp_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(self.model, self.settings.clip)
        scale = self.task.lr_scale(batch)
        scheduled = [group["lr"] for group in self.optimizer.param_groups]
        for group, lr in zip(self.optimizer.param_groups, scheduled):
            group["lr"] = lr * scale
        self.optimizer.step()
        for group, lr in zip(self.optimizer.param_groups, scheduled):
            group["lr"] = lr
        self.scheduler.step()
        self.last_lr = scheduled[0]
        self.step += 1
        self.task.after_step(self, grad_norm)

    def _autocast(self) -> Any:
        if self.settings.precision == "fp32":
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16)

    def _should_stop(self) -> bool:
        s = self.settings
        if s.max_steps is not None and self.step >= s.max_steps:
            self.stop_reason = "max_steps"
            return True
        out_of_time = s.time_limit_s is not None and self.elapsed() >= s.time_limit_s
        if stop_everywhere(out_of_time):
            self.stop_reason = "time_budget"
            return True
        return False

    def _run_epoch(self, bar: Any) -> bool:
        """Train the rest of epoch ``self.epoch``; True when training must stop."""
        s = self.settings
        batches = self.task.batches(self.epoch)
        self.model.train()
        taken = 0
        for batch in batches:
            self.optimizer_step(batch)
            taken += 1
            bar.update(1)
            if self.step % s.log_every == 0:
                values = self.task.train_row(self)
                row = self.log(kind="train", step=self.step, **values, elapsed_s=self.elapsed())
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if s.eval_every and self.step % s.eval_every == 0:
                self.evaluate_and_save()
            if self._should_stop():
                break
        else:
            taken = len(batches)
        stop = self.stop_reason != "epochs"
        if taken == len(batches):  # the epoch ran to its end
            self.epoch += 1
            self.task.end_epoch(self)
            if not s.eval_every:
                self.evaluate_and_save()
        return stop

    def fit(self) -> Trainer:
        """Train until the epochs, ``max_steps`` or the time limit end; evaluate at the end."""
        s = self.settings
        if self.start_time is None:
            self.start_time = time.perf_counter()
        keep_buffers_mapped()  # no per-step mmap/munmap of large buffers (allocator.py)
        if self.out_dir is not None and is_main_process():
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ddp_model = wrap_ddp(self.model)
        bar = progress(
            total=s.max_steps or self.task.steps_per_epoch * s.epochs,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not self.show_progress or None,
        )
        done = s.max_steps is not None and self.step >= s.max_steps  # resumed a finished run
        if done:
            self.stop_reason = "max_steps"
        while self.epoch < s.epochs and not done:
            done = self._run_epoch(bar)
        bar.close()
        if self.last_eval_step != self.step:
            self.evaluate_and_save()
        return self


def _constant(_: int) -> float:
    return 1.0
