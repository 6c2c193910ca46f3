"""The demo's training stages: train the language model, prune it, or reuse what an
earlier run made with the same settings.

:func:`plan_train` / :func:`plan_prune` decide from the stored configs whether a checkpoint
in the run folder can be reused (other settings are refused unless ``retrain``);
:func:`stage_train` / :func:`stage_prune` run :func:`~snn_egru.training.lm.
train_language_model` (the shared training loop) and return the checkpoint the next stage
reads. :mod:`snn_egru.pipeline` chains them with export, mapping and the chip run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from snn_egru.errors import UserError

log = logging.getLogger("snn_egru.pipeline")

__all__ = [
    "StagePlan",
    "file_sha1",
    "plan_prune",
    "plan_train",
    "pruning_schedule",
    "stage_prune",
    "stage_train",
    "train_configs",
]


def _best_checkpoint(folder: Path) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (folder / name).exists():
            return folder / name
    return None


#: Fields that do not change the weights a run produces (left out of the reuse check).
_NOT_COMPARED = {"final_test", "measure_sparsity", "save_checkpoints", "device", "vocab_size"}


def _differences(stored: Any, expected: Any) -> list[str]:
    from snn_egru.training.common import config_differences

    return config_differences(stored, expected, skip=_NOT_COMPARED)


#: Written beside a pruned model: the trained checkpoint it was pruned from (path, SHA-1).
SOURCE_FILE = "source.json"


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes (identifies a checkpoint wherever its folder moved)."""

    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class StagePlan:
    """What a stage of the demo will do: reuse ``checkpoint`` or (re)make it."""

    reuse: bool
    checkpoint: Path | None
    steps: int | None = None


def train_configs(
    preset: str,
    *,
    steps: int | None,
    seed: int,
    full_test: bool,
    adaptive_softmax: tuple[int, ...] = (),
):
    """Model and training configs of the demo's training stage (``adaptive_softmax``:
    cutoffs of an adaptive-softmax decoder, untied; ``()``: the preset's full softmax)."""
    from snn_egru.training.lm import preset_configs

    model_config, train_config = preset_configs(preset)
    if adaptive_softmax:
        try:
            model_config = replace(
                model_config, adaptive_softmax=tuple(adaptive_softmax), tie_weights=False
            )
        except ValueError as err:
            raise UserError(f"--adaptive-softmax: {err}") from None
    overrides: dict[str, Any] = {"seed": seed, "final_test": full_test}
    if steps is not None:
        overrides["max_steps"] = steps
    return model_config, replace(train_config, **overrides)


def plan_train(
    out_dir: Path,
    *,
    preset: str,
    steps: int | None,
    seed: int,
    retrain: bool,
    adaptive_softmax: tuple[int, ...] = (),
) -> StagePlan:
    """Reuse ``out_dir/train``'s checkpoint only when it was made with these settings.

    Raises:
        UserError: a checkpoint made with other settings is there (and ``retrain`` is off):
            the message lists the differences and the ways on.
    """
    from snn_egru.models.lm import LanguageModelConfig
    from snn_egru.training.common import load_checkpoint
    from snn_egru.training.lm import LMTrainConfig

    folder = out_dir / "train"
    existing = _best_checkpoint(folder)
    if existing is None or retrain:
        return StagePlan(False, None)
    model_config, train_config = train_configs(
        preset, steps=steps, seed=seed, full_test=True, adaptive_softmax=adaptive_softmax
    )
    ckpt = load_checkpoint(existing)
    diffs = _differences(ckpt.model_config(LanguageModelConfig), model_config)
    diffs += _differences(ckpt.training_config(LMTrainConfig), train_config)
    if diffs:
        raise UserError(
            f"{existing} was trained with other settings ({'; '.join(diffs[:4])}"
            f"{'; ...' if len(diffs) > 4 else ''}): pass --retrain to replace it, or --out NEW_DIR"
        )
    return StagePlan(True, existing, ckpt.step)


def plan_prune(
    out_dir: Path,
    train_checkpoint: Path | None,
    *,
    sparsity: float,
    steps: int,
    seed: int,
    retrain: bool,
) -> StagePlan:
    """Reuse ``out_dir/prune/last.pt`` only when it was pruned from ``train_checkpoint``
    with these settings (``train_checkpoint`` ``None``: training runs again first)."""
    from snn_egru.training.common import load_checkpoint
    from snn_egru.training.lm import LMTrainConfig

    last = out_dir / "prune" / "last.pt"
    if not last.exists() or retrain:
        return StagePlan(False, None)
    if not (last.parent / "summary.json").exists():
        # written after the pruned model's test evaluation: without it the pruning stopped
        # before it ended (its summary line and test perplexity would be missing)
        log.warning(
            "prune: %s is from a pruning that stopped before it ended (no summary.json): "
            "pruning again",
            last,
        )
        return StagePlan(False, None)
    if train_checkpoint is None:
        raise UserError(
            f"{last} exists but its trained model is gone, so pruning would replace it: "
            "pass --retrain to train and prune again, or --out NEW_DIR"
        )
    ckpt = load_checkpoint(last)
    tc = ckpt.training_config(LMTrainConfig)
    diffs = []
    target = tc.pruning.target_sparsity if tc.pruning is not None else None
    if target != sparsity:
        diffs.append(f"sparsity {target} (now {sparsity})")
    if tc.max_steps != steps:
        diffs.append(f"prune steps {tc.max_steps} (now {steps})")
    if tc.seed != seed:
        diffs.append(f"seed {tc.seed} (now {seed})")
    recorded = last.parent / SOURCE_FILE
    if recorded.exists():  # the trained model it was pruned from, by content
        source = json.loads(recorded.read_text())
        if source.get("sha1") != file_sha1(train_checkpoint):
            diffs.append(f"pruned from another trained model than {train_checkpoint}")
    else:
        source_path = Path(tc.init_from).resolve() if tc.init_from else None
        if source_path != train_checkpoint.resolve():
            diffs.append(f"pruned from {tc.init_from} (now {train_checkpoint})")
    if diffs:
        raise UserError(
            f"{last} was pruned with other settings ({'; '.join(diffs)}): pass --reprune to "
            "prune the trained model again (replacing it), or --out NEW_DIR"
        )
    return StagePlan(True, last, ckpt.step)


def stage_train(
    out_dir: Path,
    *,
    preset: str,
    steps: int | None = None,
    seed: int = 0,
    retrain: bool = False,
    full_test: bool = True,
    show_progress: bool = True,
    adaptive_softmax: tuple[int, ...] = (),
) -> Path:
    """Train the language model, or reuse the checkpoint a previous run made with the same
    settings (:func:`plan_train`; other settings are refused unless ``retrain``)."""
    from snn_egru.training.lm import train_language_model

    folder = out_dir / "train"
    plan = plan_train(
        out_dir,
        preset=preset,
        steps=steps,
        seed=seed,
        retrain=retrain,
        adaptive_softmax=adaptive_softmax,
    )
    if plan.reuse:
        log.info(
            "train: reusing %s (same settings; pass --retrain to train again)", plan.checkpoint
        )
        return plan.checkpoint
    model_config, train_config = train_configs(
        preset, steps=steps, seed=seed, full_test=full_test, adaptive_softmax=adaptive_softmax
    )
    if retrain and _best_checkpoint(folder) is not None:
        log.warning("train: --retrain replaces the checkpoints in %s", folder)
    log.info("train: preset %r on %s -> %s", preset, train_config.corpus, folder)
    result = train_language_model(
        model_config, train_config, out_dir=folder, show_progress=show_progress
    )
    log.info(
        "train: %d steps in %.0f s, valid perplexity %.1f",
        result.steps,
        result.wall_time_s,
        result.best_valid_perplexity,
    )
    checkpoint = _best_checkpoint(folder)
    if checkpoint is None:
        raise RuntimeError(f"training wrote no checkpoint into {folder}")
    return checkpoint


def pruning_schedule(sparsity: float, steps: int):
    """The demo's gradual schedule: cubic over the first two thirds of ``steps``."""
    from snn_egru.pruning import PruningConfig

    end = max(1, (2 * steps) // 3)
    return PruningConfig(
        target_sparsity=sparsity,
        schedule="gradual",
        initial_sparsity=0.0,
        start_step=0,
        end_step=end,
        frequency=max(1, end // 10),
    )


def stage_prune(
    checkpoint: Path,
    out_dir: Path,
    *,
    sparsity: float,
    steps: int,
    seed: int = 0,
    retrain: bool = False,
    full_test: bool = True,
    show_progress: bool = True,
) -> Path:
    """Gradual magnitude pruning to ``sparsity`` while fine-tuning from ``checkpoint``.

    The cubic schedule (Zhu & Gupta) runs over the first two thirds of ``steps``; the rest
    fine-tunes at the target sparsity. Masks keep pruned weights at exactly zero. The pruned
    model is ``out_dir/prune/last.pt`` (the model at the end, at the target sparsity); a
    previous one is reused only when made from ``checkpoint`` with the same settings
    (:func:`plan_prune`), and replaced only with ``retrain``.
    """
    from snn_egru.models.lm import LanguageModelConfig
    from snn_egru.training.common import load_checkpoint
    from snn_egru.training.lm import LMTrainConfig, train_language_model

    folder = out_dir / "prune"
    plan = plan_prune(
        out_dir, checkpoint, sparsity=sparsity, steps=steps, seed=seed, retrain=retrain
    )
    if plan.reuse:
        log.info("prune: reusing %s (same settings)", plan.checkpoint)
        return plan.checkpoint
    source = load_checkpoint(checkpoint)
    model_config = source.model_config(LanguageModelConfig)
    train_config = source.training_config(LMTrainConfig)
    train_config = replace(
        train_config,
        max_steps=steps,
        schedule_steps=steps,
        warmup_steps=0,
        hold_steps=0,
        lr=train_config.lr * 0.5,
        pruning=pruning_schedule(sparsity, steps),
        init_from=str(checkpoint),
        seed=seed,
        eval_every=0,
        final_test=full_test,
        time_budget_s=None,
    )
    if folder.exists():
        for name in ("best.pt", "last.pt", SOURCE_FILE):
            (folder / name).unlink(missing_ok=True)
    log.info("prune: to %.0f %% over %d fine-tuning steps -> %s", 100 * sparsity, steps, folder)
    train_language_model(model_config, train_config, out_dir=folder, show_progress=show_progress)
    # the pruned model is the one at the end (the best validation checkpoint may predate
    # the target sparsity)
    last = folder / "last.pt"
    if not last.exists():
        raise RuntimeError(f"pruning wrote no checkpoint into {folder}")
    (folder / SOURCE_FILE).write_text(
        json.dumps({"checkpoint": str(checkpoint), "sha1": file_sha1(checkpoint)}, indent=2)
    )
    return last
