"""Training pieces shared by every workload (language model, DVS gestures).

Generic, workload-agnostic helpers:

* reproducibility: :func:`set_seed`;
* optimisation: :func:`make_optimizer` (AdamW with the reference's betas ``(0, 0.999)``),
  :func:`cosine_schedule` (linear warm-up then cosine decay), :func:`clip_gradients`;
* checkpoints: :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`restore_training_state`
  storing the config dataclasses (as a dict plus the class name), the model, optimizer and
  scheduler states, step/epoch, vocabulary or class names, metrics and free extras;
* logging: :class:`MetricsLogger` (CSV and JSON lines);
* scale-out: :func:`init_distributed` (reads the ``torchrun`` environment; gloo on CPU, NCCL on
  GPU), :func:`is_main_process`, :func:`wrap_ddp`, :func:`unwrap_model`,
  :func:`all_reduce_mean`, :func:`cleanup_distributed`;
* :func:`progress`: a tqdm bar shown on the main rank only (and only on a terminal).

Nothing here runs at import time.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from snn_egru.cliargs import config_differences, guard_run_folder

logger = logging.getLogger(__name__)

#: Adam betas of the reference EGRU training recipes (no momentum on the first moment).
REFERENCE_BETAS: tuple[float, float] = (0.0, 0.999)

#: Version of the checkpoint layout written by :func:`save_checkpoint`.
CHECKPOINT_VERSION = 1

T = TypeVar("T")

__all__ = [
    "CHECKPOINT_VERSION",
    "REFERENCE_BETAS",
    "Checkpoint",
    "CheckpointError",
    "CosineFactor",
    "DistributedInfo",
    "MetricsLogger",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "cleanup_distributed",
    "clip_gradients",
    "config_from_dict",
    "config_to_dict",
    "cosine_schedule",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "load_checkpoint",
    "make_optimizer",
    "check_device",
    "config_differences",
    "guard_run_folder",
    "progress",
    "resolve_device",
    "restore_training_state",
    "save_checkpoint",
    "set_seed",
    "unwrap_model",
    "wrap_ddp",
]


# --------------------------------------------------------------------------- seeds, devices
def set_seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, numpy and torch (all devices); on CUDA also ask for determinism.

    Args:
        seed: the seed (the same seed gives the same run on the same hardware and number of
            threads).
        deterministic: when CUDA is available, select deterministic kernels
            (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN
            deterministic, no cuDNN benchmark; operations without a deterministic
            implementation warn instead of failing). CPU kernels are deterministic already,
            and the switch costs seconds of imports, so it is left alone there.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        # cuBLAS needs a fixed workspace for deterministic GEMMs (read when CUDA starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA when available (this rank's GPU), else CPU."""
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            index = int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else None
            return torch.device("cuda", index) if index is not None else torch.device("cuda")
        return torch.device("cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- optimisation
def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = REFERENCE_BETAS,
    *,
    eps: float = 1e-8,
    no_decay: Iterable[str] = (),
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` (reference betas ``(0, 0.999)``).

    Args:
        model: the module (a DDP wrapper is fine); frozen parameters are left out.
        lr: learning rate.
        weight_decay: decoupled weight decay applied to every trainable parameter except
            those whose name contains one of ``no_decay`` (and the learned quantisation
            scales of :mod:`snn_egru.quantization`).
        betas: Adam ``(beta1, beta2)``; the EGRU recipes use ``beta1 = 0``.
        eps: Adam epsilon.
        no_decay: parameter-name substrings exempt from weight decay (e.g. ``("bias",)``).

    Returns:
        The optimizer (one or two parameter groups).
    """
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    exempt = (*no_decay, "quantizer.")  # learned quantisation scales are never decayed
    decay, keep = [], []
    for name, param in unwrap_model(model).named_parameters():
        if not param.requires_grad:
            continue
        (keep if any(s in name for s in exempt) else decay).append(param)
    if not decay and not keep:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0})
    beta1, beta2 = (float(b) for b in betas)  # torch refuses (0, 0.999) with an int 0
    return torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps)


@dataclass
class CosineFactor:
    """Learning-rate factor of :func:`cosine_schedule` at step ``s`` (picklable).

    ``s < W``: ``(s + 1) / W`` (linear warm-up); ``W <= s < W + K``: 1 (hold); afterwards
    ``m + (1 - m) * 0.5 * (1 + cos(pi * min(1, (s - W - K) / (S - W - K))))`` with ``m`` the
    minimum ratio, ``W`` the warm-up steps, ``K`` the hold steps and ``S`` the total steps.
    """

    total_steps: int
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    hold_steps: int = 0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        start = self.warmup_steps + self.hold_steps
        if step < start:
            return 1.0
        span = max(1, self.total_steps - start)
        progress_ = min(1.0, (step - start) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress_))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def cosine_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    min_lr_ratio: float = 0.0,
    hold_steps: int = 0,
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, a constant ``hold_steps`` (the reference's
    ``--scheduler_start``), then cosine decay to ``min_lr_ratio * lr`` at ``total_steps``.

    Call ``scheduler.step()`` once after each ``optimizer.step()``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must lie in [0, total_steps], got {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must lie in [0, 1], got {min_lr_ratio}")
    if not 0 <= hold_steps:
        raise ValueError(f"hold_steps must be >= 0, got {hold_steps}")
    return LambdaLR(optimizer, CosineFactor(total_steps, warmup_steps, min_lr_ratio, hold_steps))


def clip_gradients(parameters: nn.Module | Iterable[torch.Tensor], max_norm: float | None) -> float:
    """Clip the global gradient norm to ``max_norm`` (no clipping when ``None`` or ``<= 0``).

    Returns:
        The total gradient 2-norm before clipping (a float; ``nan``/``inf`` if non-finite).
    """
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    limit = float("inf") if max_norm is None or max_norm <= 0 else float(max_norm)
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


# --------------------------------------------------------------------------- checkpoints
class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not match the model it is loaded into."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as ``{"class": "module:QualName", "fields": {...}}`` (JSON-safe)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    cls = type(config)
    fields = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def config_from_dict(data: Mapping[str, Any], cls: type[T] | None = None) -> T:
    """Rebuild a config dataclass written by :func:`config_to_dict`.

    Args:
        data: ``{"class": ..., "fields": ...}``.
        cls: the expected class. When ``None`` the stored class is imported, but only from
            the ``snn_egru`` package (a checkpoint never makes us import arbitrary code).

    Raises:
        CheckpointError: the stored class is not ``cls`` or a field is unknown.
    """
    if "class" not in data or "fields" not in data:
        raise CheckpointError("config entry needs 'class' and 'fields' (not a saved config)")
    stored = str(data["class"])
    if cls is None:
        module_name, _, qualname = stored.partition(":")
        if module_name.split(".")[0] != "snn_egru":
            raise CheckpointError(
                f"refusing to import config class {stored!r} from outside snn_egru; pass cls="
            )
        cls = getattr(importlib.import_module(module_name), qualname)
    elif stored.rpartition(":")[2] != cls.__qualname__:
        raise CheckpointError(f"checkpoint stores a {stored!r} config, expected {cls.__qualname__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data["fields"]) - set(known))
    if unknown:
        raise CheckpointError(
            f"config fields {unknown} are unknown to {cls.__qualname__} (checkpoint written by "
            "a different version?)"
        )
    values = {}
    for name, value in data["fields"].items():
        if isinstance(value, Mapping) and "class" in value and "fields" in value:
            value = config_from_dict(value)
        elif isinstance(value, list) and _is_tuple_field(known[name]):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def _is_tuple_field(f: dataclasses.Field) -> bool:
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return str(annotation).startswith("tuple") or isinstance(f.default, tuple)


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes:
        model_state: ``model.state_dict()`` (of the unwrapped model).
        config: the model config dict (``{"class", "fields"}``) or ``None``.
        train_config: the training config dict or ``None``.
        optimizer_state / scheduler_state: states to resume from (``None`` if not saved).
        step: optimizer steps taken; epoch: epochs completed.
        vocabulary / class_names: label spaces of the workload.
        metrics: last metrics (JSON-safe dict).
        extra: anything else (e.g. ``{"pruner": pruner.state_dict()}``).
    """

    model_state: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    train_config: dict[str, Any] | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    step: int = 0
    epoch: int = 0
    vocabulary: list[str] | None = None
    class_names: list[str] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    rng_state: dict[str, Any] | None = None

    def model_config(self, cls: type[T] | None = None) -> T:
        """The model config rebuilt as its dataclass."""
        if self.config is None:
            raise CheckpointError("this checkpoint stores no model config")
        return config_from_dict(self.config, cls)

    def training_config(self, cls: type[T] | None = None) -> T:
        """The training config rebuilt as its dataclass."""
        if self.train_config is None:
            raise CheckpointError("this checkpoint stores no training config")
        return config_from_dict(self.train_config, cls)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        ("MT19937", np.asarray(state["numpy"], dtype=np.uint32), int(state["numpy_pos"]), 0, 0.0)
    )
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    config: Any = None,
    train_config: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int = 0,
    epoch: int = 0,
    vocabulary: list[str] | None = None,
    class_names: list[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: target file (``.pt``); parent folders are created.
        model: the model (a DDP wrapper is unwrapped).
        config / train_config: config dataclasses (stored as dict + class name).
        optimizer / scheduler: saved to resume training.
        step / epoch: progress counters.
        vocabulary / class_names: the workload's label space.
        metrics: JSON-safe metrics.
        extra: further JSON/tensor-only state (e.g. pruning masks).

    Returns:
        The path written. Only call on the main rank in distributed runs.
    """
    path = Path(path)
    payload = {
        "format": "snn-egru-checkpoint",
        "version": CHECKPOINT_VERSION,
        "model_state": unwrap_model(model).state_dict(),
        "config": config_to_dict(config) if config is not None else None,
        "train_config": config_to_dict(train_config) if train_config is not None else None,
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "epoch": int(epoch),
        "vocabulary": list(vocabulary) if vocabulary is not None else None,
        "class_names": list(class_names) if class_names is not None else None,
        "metrics": _plain(dict(metrics or {})),
        "extra": dict(extra or {}),
        "rng_state": _rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    from snn_egru.cliargs import atomic_path

    with atomic_path(path) as tmp:  # whole or not at all: a full disk leaves the old file
        torch.save(payload, tmp)
    logger.info("saved checkpoint %s (step %d)", path, step)
    return path


def load_checkpoint(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only`` loading).

    Raises:
        CheckpointError: missing file, not a checkpoint of this project, or wrong version.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} (train a model first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != "snn-egru-checkpoint":
        raise CheckpointError(f"{path} is not an snn-egru checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}, this code reads "
            f"{CHECKPOINT_VERSION}"
        )
    names = {f.name for f in dataclasses.fields(Checkpoint)}
    return Checkpoint(**{k: v for k, v in payload.items() if k in names})


def restore_training_state(
    checkpoint: Checkpoint,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> None:
    """Load model (strictly), optimizer, scheduler and RNG states from ``checkpoint``."""
    try:
        unwrap_model(model).load_state_dict(checkpoint.model_state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint does not fit the model: {err}") from None
    if optimizer is not None and checkpoint.optimizer_state is not None:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    if scheduler is not None and checkpoint.scheduler_state is not None:
        scheduler.load_state_dict(checkpoint.scheduler_state)
    if restore_rng and checkpoint.rng_state is not None:
        _set_rng_state(checkpoint.rng_state)


# --------------------------------------------------------------------------- metrics
class MetricsLogger:
    """Append metric rows to ``metrics.jsonl`` and ``metrics.csv`` in ``out_dir``.

    Each :meth:`log` call writes one JSON line and one CSV row. The CSV header is the union of
    all keys seen so far; when a new key appears the CSV is rewritten with the wider header
    (files stay small: one row per log interval). Non-main ranks write nothing.

    Args:
        out_dir: folder for the files (created).
        resume: keep existing rows (append) instead of starting new files.
        enabled: ``False`` turns the logger into a no-op (default: main process only).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        resume: bool = False,
        enabled: bool | None = None,
        csv_name: str = "metrics.csv",
        jsonl_name: str = "metrics.jsonl",
    ) -> None:
        self.enabled = is_main_process() if enabled is None else enabled
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / csv_name
        self.jsonl_path = self.out_dir / jsonl_name
        self.rows: list[dict[str, Any]] = []
        self._columns: list[str] = []
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.jsonl_path.exists():
            with open(self.jsonl_path, encoding="utf-8") as fh:
                self.rows = [json.loads(line) for line in fh if line.strip()]
            for row in self.rows:
                self._columns.extend(k for k in row if k not in self._columns)
        else:
            self.jsonl_path.write_text("", encoding="utf-8")
        self._rewrite_csv()

    def log(self, **values: Any) -> dict[str, Any]:
        """Record one row (numbers, strings; tensors are turned into floats)."""
        row = {k: _scalar(v) for k, v in values.items()}
        if not self.enabled:
            return row
        self.rows.append(row)
        with open(self.jsonl_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        new = [k for k in row if k not in self._columns]
        if new:
            self._columns.extend(new)
            self._rewrite_csv()
        else:
            with open(self.csv_path, "a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=self._columns).writerow(row)
        return row

    def _rewrite_csv(self) -> None:
        with open(self.csv_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._columns)
            if self._columns:
                writer.writeheader()
            writer.writerows(self.rows)


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- distributed
class DistributedInfo(NamedTuple):
    """Where this process stands in a (possibly single-process) run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0 (or not distributed)."""
    return get_rank() == 0


def init_distributed(
    *, backend: str | None = None, device: str | torch.device | None = "auto"
) -> DistributedInfo:
    """Join the process group described by the ``torchrun`` environment, if any.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``. With
    ``WORLD_SIZE`` > 1 it initialises ``torch.distributed`` (``backend`` default: NCCL when
    the device is CUDA, gloo on CPU) and pins this rank to GPU ``LOCAL_RANK``. Without those
    variables it returns a single-process :class:`DistributedInfo`.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = torch.cuda.is_available() and (
        device in (None, "auto") or torch.device(device).type == "cuda"
    )
    if world_size > 1 and wants_cuda:
        torch.cuda.set_device(local_rank)
        resolved = torch.device("cuda", local_rank)
    elif device in (None, "auto"):
        resolved = torch.device("cuda") if wants_cuda else torch.device("cpu")
    else:
        resolved = torch.device(device)
    if world_size <= 1:
        return DistributedInfo(0, 1, 0, resolved, None)
    backend = backend or ("nccl" if resolved.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    logger.info("rank %d/%d on %s (%s)", rank, world_size, resolved, backend)
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), local_rank, resolved, backend)


def wrap_ddp(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Wrap in ``DistributedDataParallel`` when distributed, else return ``model`` as is.

    Extra keyword arguments go to DDP. On CUDA the model's device is used as the device id.
    """
    if not is_distributed():
        return model
    param = next(model.parameters())
    if param.is_cuda:
        kwargs.setdefault("device_ids", [param.device.index])
    return nn.parallel.DistributedDataParallel(model, **kwargs)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP / DataParallel wrapper (or ``model`` itself)."""
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


def all_reduce_sum(value: torch.Tensor | float) -> torch.Tensor | float:
    """Sum over ranks (identity when not distributed). Floats come back as floats."""
    if not is_distributed():
        return value
    is_float = not isinstance(value, torch.Tensor)
    tensor = torch.as_tensor(value, dtype=torch.float64) if is_float else value.clone()
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor) if is_float else tensor.to(value.device)


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean over ranks (identity when not distributed). Floats come back as floats."""
    total = all_reduce_sum(value)
    world = get_world_size()
    return total / world if world > 1 else total


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def cleanup_distributed() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- progress bars
def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Iterator[T]:
    """:func:`snn_egru.progress.progress` on the main rank only (hidden on the others)."""
    from snn_egru.progress import progress as _progress

    if not is_main_process():
        kwargs["disable"] = True
    return _progress(iterable, **kwargs)


# --------------------------------------------------------------------------- command lines
def check_device(device: str | None, *, flag: str = "--device") -> None:
    """Refuse a device name torch cannot use here, before any work.

    Raises:
        UserError: not ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``, or a CUDA device on a
            machine (or torch build) without one.
    """
    from snn_egru.errors import UserError

    if device is None or device == "auto":
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"{flag} {device!r}: use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise UserError(
                f"{flag} {device}: torch {torch.__version__} has no CUDA device here ({build}): "
                "use --device cpu (or auto)"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserError(
                f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"{flag} {device}: MPS is not available here: use --device cpu")
    elif parsed.type != "cpu":
        raise UserError(f"{flag} {device!r}: use auto, cpu, cuda or cuda:N")
