"""Train the EGRU language model on Penn Treebank or WikiText-2 (one process or ``torchrun``).

Recipe (EvNN's LM recipe, AWD-LSTM data handling):

* the training split is cut into ``batch_size`` contiguous streams (:func:`~snn_egru.data.text.
  batchify`); under ``torchrun`` rank ``r`` of ``W`` trains on streams
  ``r*B/W .. (r+1)*B/W - 1`` and DistributedDataParallel averages the gradients, so the ranks
  together take exactly the single-process step;
* truncated BPTT windows of random length around ``bptt`` (70), the state carried from window
  to window (detached); the learning rate of a window is scaled by ``seq_len / bptt``;
* AdamW with betas ``(0, 0.999)``, a cosine schedule (optionally held constant first, the
  reference's ``--scheduler_start``), global gradient-norm clipping;
* after every optimizer step: thresholds clamped to ``[0, 1]``, pruning masks enforced
  (and updated on the pruning schedule, :class:`~snn_egru.pruning.Pruner`);
* evaluation: perplexity ``exp(mean cross-entropy)`` over a whole split with the state carried
  (validation batch 10, test batch 1 as usual), activity sparsity measured on the test run;
* checkpoints ``last.pt`` / ``best.pt`` (best validation perplexity; with pruning, among the
  models at the target sparsity only) holding config, training config, vocabulary, model, optimizer,
  scheduler, pruning masks, position in the epoch and the carried state: a resumed run
  continues exactly), metrics in ``metrics.csv`` / ``metrics.jsonl``, a JSON summary.

Presets (``--preset``): ``tiny`` (tests), ``small`` (PTB on 2 CPU cores in minutes),
``paper`` (the published 1350/1350/750 model, for a GPU; the reference's command for PTB),
``paper-wikitext2`` (the same model with the reference's WikiText-2 settings).

Command line: ``python -m snn_egru.training.lm --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from snn_egru import quantization as qat
from snn_egru.data.text import Corpus, Vocabulary, load_corpus
from snn_egru.losses import parse_softmax
from snn_egru.models.lm import EGRULanguageModel, LanguageModelConfig, lm_preset
from snn_egru.pruning import PruningConfig
from snn_egru.quantization_cli import add_quantization_arguments, quantization_from_args
from snn_egru.sparsity import format_sparsity_report
from snn_egru.training.common import (
    barrier,
    cleanup_distributed,
    config_from_dict,
    init_distributed,
    is_main_process,
    load_checkpoint,
)
from snn_egru.training.lm_args import (
    TRAIN_ARG_FIELDS,
    check_prune_args,
    check_pruning_schedule,
    check_run_args,
    fit_options,
    model_overrides,
)
from snn_egru.training.lm_eval import EvalResult, evaluate_perplexity, unit_firing_rates
from snn_egru.training.lm_task import LMTask, estimate_steps_per_epoch
from snn_egru.training.loop import Trainer

logger = logging.getLogger(__name__)

__all__ = [
    "LM_TRAIN_PRESETS",
    "EvalResult",
    "LMTrainConfig",
    "LMTrainResult",
    "evaluate_perplexity",
    "load_language_model",
    "lm_training_preset",
    "main",
    "preset_configs",
    "train_language_model",
    "unit_firing_rates",
]


#: What :attr:`LMTrainConfig.carry` may be: the whole state, or the events only (EvNN).
LM_CARRY: tuple[str, ...] = ("state", "y")


@dataclass
class LMTrainConfig:
    """Training settings (saved with every checkpoint).

    Attributes:
        corpus: ``"ptb"`` (from the ``treebank`` package) or ``"wikitext2"``.
        data_dir: folder with ``wiki.*.tokens`` (WikiText-2).
        batch_size: number of training streams (global, split among ranks).
        eval_batch_size / test_batch_size: streams for validation / test perplexity.
        bptt: base window length; random_bptt: AWD-LSTM random window lengths.
        lr, weight_decay, betas: AdamW.
        clip: global gradient-norm limit (``0``: none).
        epochs: passes over the training split.
        max_steps: stop after this many optimizer steps (``None``: epochs decide).
        time_budget_s: stop training after this many seconds (``None``: no limit).
        schedule: ``"cosine"`` or ``"constant"``.
        schedule_steps: length of the cosine schedule (``None``: ``max_steps`` or the
            estimated steps of all epochs).
        warmup_steps, hold_steps, min_lr_ratio: cosine schedule shape.
        eval_every: validate every this many steps (``0``: after each epoch) and at the end.
        eval_max_tokens: cap on validation tokens during training (``None``: whole split).
        log_every: log the training loss every this many steps.
        seed: seed of initialisation, dropout and window lengths.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        pruning: a :class:`~snn_egru.pruning.PruningConfig` or ``None``.
        init_from: start from the weights of this checkpoint (same architecture), e.g. to
            prune and fine-tune a trained model; optimizer and schedule start afresh.
        final_test: evaluate the best (or last) model on the test split at the end.
        measure_sparsity: measure activity sparsity and MACs during the final test run.
        save_checkpoints: write ``last.pt`` / ``best.pt``.
        quantize: int8 QAT (:mod:`snn_egru.quantization`: ``"int8"`` or a config; None: float).
        layer_grad_clip: EvNN's per-layer clipping inside the backward pass: the gradient that
            reaches each recurrent layer's output sequence is clamped element-wise to
            ``[-c, c]`` (EvNN v0.2's LM recipe: 0.1), before the global norm clip; ``0``: off.
        carry: what is carried from one training window to the next: ``"state"`` (``y`` and
            the cell state ``c``, default) or ``"y"`` (EvNN: only the events; ``c`` restarts
            at 0 in every window).
        precision: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass; the EGRU loop, its
            state and the loss in float32: :class:`~snn_egru.training.loop.LoopSettings`).
        softmax: training loss: ``"full"`` or ``"sampled:K"`` (:func:`snn_egru.losses.
            sampled_softmax_loss`, K log-uniform candidates per step); evaluation and
            perplexity always use the full softmax.
    """

    corpus: str = "ptb"
    data_dir: str | None = None
    batch_size: int = 64
    eval_batch_size: int = 10
    test_batch_size: int = 1
    bptt: int = 70
    random_bptt: bool = True
    lr: float = 1.2e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.0, 0.999)
    clip: float = 0.1
    epochs: int = 1000
    max_steps: int | None = None
    time_budget_s: float | None = None
    schedule: str = "cosine"
    schedule_steps: int | None = None
    warmup_steps: int = 0
    hold_steps: int = 0
    min_lr_ratio: float = 0.0
    eval_every: int = 0
    eval_max_tokens: int | None = None
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    pruning: PruningConfig | None = None
    init_from: str | None = None
    final_test: bool = True
    measure_sparsity: bool = True
    save_checkpoints: bool = True
    quantize: Any = None
    layer_grad_clip: float = 0.0
    carry: str = "state"
    precision: str = "fp32"
    softmax: str = "full"

    def __post_init__(self) -> None:
        parse_softmax(self.softmax)
        if not self.layer_grad_clip >= 0:
            raise ValueError(f"layer_grad_clip must be >= 0, got {self.layer_grad_clip}")
        if self.carry not in LM_CARRY:
            raise ValueError(f"carry must be one of {', '.join(LM_CARRY)}, got {self.carry!r}")
        self.betas, self.quantize = tuple(self.betas), qat.coerce_quantization(self.quantize)
        if isinstance(self.pruning, dict):
            self.pruning = config_from_dict(self.pruning, PruningConfig)
        for name in ("batch_size", "eval_batch_size", "test_batch_size", "bptt", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")


#: Training presets (the architecture presets are :data:`snn_egru.models.lm.LM_PRESETS`).
LM_TRAIN_PRESETS: dict[str, LMTrainConfig] = {
    "tiny": LMTrainConfig(
        batch_size=4,
        eval_batch_size=2,
        test_batch_size=2,
        bptt=8,
        lr=3e-2,
        weight_decay=0.0,
        clip=1.0,
        epochs=1,
        max_steps=10,
        eval_max_tokens=200,
        log_every=5,
        measure_sparsity=True,
    ),
    # PTB on 2 CPU cores. lr 1e-2: the best of {6e-3, 1e-2, 1.5e-2} for the EGRU, nn.GRU and
    # nn.LSTM in 300-step runs (docs/lm_quality.md). 80 % of a step is the tied decoder and
    # the 10k-word softmax.
    "small": LMTrainConfig(
        batch_size=32,
        eval_batch_size=10,
        test_batch_size=10,
        bptt=35,
        lr=1e-2,
        weight_decay=0.01,
        clip=0.5,
        epochs=2,
        max_steps=1000,
        warmup_steps=20,
        min_lr_ratio=0.05,
        eval_every=500,
        eval_max_tokens=20_000,
        log_every=25,
    ),
    # The reference's PTB command (1000 epochs, lr 1.2e-3, batch 64, bptt 70, wd 0.1,
    # clip 0.1, cosine after epoch 700 -> hold_steps set by preset_configs).
    "paper": LMTrainConfig(
        batch_size=64,
        bptt=70,
        lr=1.2e-3,
        weight_decay=0.1,
        clip=0.1,
        epochs=1000,
        eval_every=0,
    ),
    # The reference's WikiText-2 command (800 epochs, lr 1e-3, batch 128, wd 0.12, cosine
    # after epoch 400).
    "paper-wikitext2": LMTrainConfig(
        corpus="wikitext2",
        batch_size=128,
        bptt=70,
        lr=1e-3,
        weight_decay=0.12,
        clip=0.1,
        epochs=800,
        eval_every=0,
    ),
}

#: Epoch at which the reference starts the cosine decay (``--scheduler_start``).
_PAPER_SCHEDULER_START = {"paper": 700, "paper-wikitext2": 400}


def lm_training_preset(name: str, **overrides: Any) -> LMTrainConfig:
    """A copy of training preset ``name`` with overrides."""
    if name not in LM_TRAIN_PRESETS:
        raise ValueError(
            f"unknown training preset {name!r}; choose one of {list(LM_TRAIN_PRESETS)}"
        )
    return replace(LM_TRAIN_PRESETS[name], **overrides)


def preset_configs(name: str) -> tuple[LanguageModelConfig, LMTrainConfig]:
    """Model and training configs of a preset (``tiny``, ``small``, ``paper``,
    ``paper-wikitext2``). WikiText-2's vocabulary size is set when the data is loaded."""
    model_name = "paper" if name.startswith("paper") else name
    model_config = lm_preset(model_name)
    train_config = lm_training_preset(name)
    if name == "paper-wikitext2":
        model_config = replace(model_config, input_dropout=0.7)
    if name in _PAPER_SCHEDULER_START:
        train_config = _paper_hold(name, train_config)
    return model_config, train_config


#: Training-split tokens of the standard corpora (for step estimates before loading data).
_CORPUS_TOKENS = {"ptb": 929_589, "wikitext2": 2_088_628}


def planned_steps(tc: LMTrainConfig) -> int:
    """Optimizer steps the run will take at most (``max_steps``, or all epochs estimated
    from the standard corpus sizes)."""
    per_epoch = estimate_steps_per_epoch(_CORPUS_TOKENS[tc.corpus] // tc.batch_size, tc.bptt)
    all_epochs = per_epoch * tc.epochs
    return min(tc.max_steps, all_epochs) if tc.max_steps is not None else all_epochs


def _paper_hold(preset: str, tc: LMTrainConfig) -> LMTrainConfig:
    """The reference holds the learning rate for ``--scheduler_start`` epochs, then decays
    it (cosine) until the last epoch: ``hold_steps`` = those epochs in steps (standard corpus
    sizes)."""
    tokens = _CORPUS_TOKENS[tc.corpus]
    rows = tokens // tc.batch_size
    per_epoch = estimate_steps_per_epoch(rows, tc.bptt)
    return replace(tc, hold_steps=_PAPER_SCHEDULER_START[preset] * per_epoch)


# --------------------------------------------------------------------------- training
@dataclass
class LMTrainResult:
    """What :func:`train_language_model` returns.

    Attributes:
        model: the trained model (best validation checkpoint when one was kept), eval mode.
        model_config / train_config: the configs used (vocab size set from the data).
        vocabulary: the corpus vocabulary.
        steps / epochs: optimizer steps taken, epochs completed.
        epochs_trained: epochs trained as a number (``1.16``: one epoch and 16 % of the next).
        train_loss: last logged mean training cross-entropy.
        valid: last validation result; test: final test result (``None`` if skipped).
        best_valid_perplexity: best validation perplexity seen (with pruning: of a model at
            the target sparsity).
        wall_time_s: training time (without the final test); total_time_s: everything.
        stop_reason: ``"epochs"``, ``"max_steps"`` or ``"time_budget"``.
        out_dir: where checkpoints and metrics are.
        world_size: number of data-parallel processes that trained.
        history: the logged metric rows.
    """

    model: EGRULanguageModel
    model_config: LanguageModelConfig
    train_config: LMTrainConfig
    vocabulary: Vocabulary
    steps: int
    epochs: int
    train_loss: float
    valid: EvalResult | None
    test: EvalResult | None
    best_valid_perplexity: float
    wall_time_s: float
    total_time_s: float
    stop_reason: str
    out_dir: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    epochs_trained: float | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary (what ``summary.json`` holds)."""
        out: dict[str, Any] = {
            "steps": self.steps,
            "epochs": round(self.epochs if self.epochs_trained is None else self.epochs_trained, 4),
            "epochs_completed": self.epochs,
            "train_loss": self.train_loss,
            "valid_perplexity": self.valid.perplexity if self.valid else None,
            "best_valid_perplexity": self.best_valid_perplexity,
            "test_perplexity": self.test.perplexity if self.test else None,
            "test_tokens": self.test.tokens if self.test else None,
            "wall_time_s": self.wall_time_s,
            "total_time_s": self.total_time_s,
            "stop_reason": self.stop_reason,
            "world_size": self.world_size,
        }
        if self.test is not None and self.test.sparsity is not None:
            out["test_sparsity"] = self.test.sparsity.to_dict()
        # JSON has no inf / nan (json.dumps would write the non-standard Infinity): None
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()
        }


def train_language_model(
    config: LanguageModelConfig,
    train_config: LMTrainConfig,
    *,
    data: Corpus | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    show_progress: bool = True,
    init_model: Any = None,
) -> LMTrainResult:
    """Train (or resume training) an :class:`~snn_egru.models.lm.EGRULanguageModel`.

    Works alone or under ``torchrun`` (each rank calls it; the process group is set up and
    torn down here when the environment describes one). The loop is the shared
    :class:`~snn_egru.training.loop.Trainer`; the LM's part is
    :class:`~snn_egru.training.lm_task.LMTask`.

    Args:
        config: the architecture (``vocab_size`` is set from the data when it differs).
        train_config: the recipe (:class:`LMTrainConfig`).
        data: a :class:`~snn_egru.data.text.Corpus`; default: loaded from
            ``train_config.corpus`` / ``data_dir``.
        out_dir: folder for checkpoints, metrics and ``summary.json`` (``None``: nothing is
            written).
        resume: continue from ``out_dir/last.pt`` (same configs expected).
        show_progress: tqdm bars on the main rank.
        init_model: start from this function's weights: ``init_model(model)`` writes them
            into the freshly built model (e.g. a trained plain stack into a bottlenecked one,
            :func:`snn_egru.bottleneck_insert.init_from_plain`); optimizer and schedule start
            afresh, as with ``init_from``. Not with ``resume`` (the checkpoint has them).

    Returns:
        :class:`LMTrainResult`.
    """
    if init_model is not None and (resume or train_config.init_from is not None):
        raise ValueError("init_model is for a fresh run: not with resume or init_from")
    start_time = time.perf_counter()
    dist_info = init_distributed(device=train_config.device)
    try:
        return _train(
            config,
            train_config,
            data=data,
            out_dir=Path(out_dir) if out_dir is not None else None,
            resume=resume,
            show_progress=show_progress,
            device=dist_info.device,
            start_time=start_time,
            init_model=init_model,
        )
    finally:
        if dist_info.world_size > 1:
            cleanup_distributed()


def _train(
    config: LanguageModelConfig,
    tc: LMTrainConfig,
    *,
    data: Corpus | None,
    out_dir: Path | None,
    resume: bool,
    show_progress: bool,
    device: torch.device,
    start_time: float,
    init_model: Any = None,
) -> LMTrainResult:
    if resume and out_dir is None:
        raise ValueError("resume=True needs the out_dir of the run to continue")
    corpus = data if data is not None else load_corpus(tc.corpus, tc.data_dir)
    if config.vocab_size != len(corpus.vocabulary):
        logger.info(
            "vocab_size %d -> %d (from the %s vocabulary)",
            config.vocab_size,
            len(corpus.vocabulary),
            corpus.name,
        )
        config = replace(config, vocab_size=len(corpus.vocabulary))
    if (tc.pruning is not None or tc.quantize is not None) and config.cell != "egru":
        raise ValueError(
            f"pruning and quantisation are for the EGRU only, not cell={config.cell!r}"
        )
    task = LMTask(
        config,
        tc,
        corpus,
        device,
        resume=resume,
        show_progress=show_progress,
        init_model=init_model,
    )
    trainer = Trainer(
        task,
        task.loop_settings(),
        out_dir=out_dir,
        resume=resume,
        show_progress=show_progress,
        start_time=start_time,
    )
    if resume:
        checkpoint = load_checkpoint(out_dir / "last.pt", map_location=device)
        if checkpoint.config is not None:
            saved = config_from_dict(checkpoint.config, LanguageModelConfig)
            if saved != config:
                raise ValueError(
                    "the model config differs from the one of the run being resumed: "
                    f"{saved} vs {config}"
                )
        trainer.restore(checkpoint, elapsed_before=float(checkpoint.extra.get("elapsed_s", 0.0)))
        where = out_dir / "last.pt"
        logger.info("resumed from %s at step %d (epoch %d)", where, trainer.step, trainer.epoch)
    else:
        task.seed_rank(1)
    trainer.fit()
    task.reduce_train_loss()
    return _finish(task, trainer, start_time=start_time, show_progress=show_progress)


def _finish(
    task: LMTask, trainer: Trainer, *, start_time: float, show_progress: bool
) -> LMTrainResult:
    """Reload the best model, run the test split, write ``summary.json``."""
    tc, model, out_dir = task.train_config, task.model, trainer.out_dir
    main_rank = is_main_process()
    wall_time = trainer.elapsed()
    best_path = out_dir / "best.pt" if out_dir is not None else None
    if (
        main_rank
        and best_path is not None
        and tc.save_checkpoints
        and best_path.exists()
        and task.best_valid < task.valid.perplexity
    ):
        best = load_checkpoint(best_path, map_location=task.train_source.device)
        model.load_state_dict(best.model_state)
    model.eval()
    test = None
    if tc.final_test and main_rank:
        test = evaluate_perplexity(
            model,
            task.corpus.test,
            batch_size=tc.test_batch_size,
            bptt=tc.bptt,
            measure_sparsity=tc.measure_sparsity,
            show_progress=show_progress,
        )
        trainer.log(
            kind="test",
            step=trainer.step,
            epoch=trainer.epoch,
            loss=test.loss,
            perplexity=test.perplexity,
            activity_sparsity=test.sparsity.activity_sparsity if test.sparsity else None,
        )
        if test.sparsity is not None:
            logger.info("\n%s", format_sparsity_report(test.sparsity, title="test sparsity"))
    barrier()
    result = LMTrainResult(
        model=model,
        model_config=task.config,
        train_config=tc,
        vocabulary=task.corpus.vocabulary,
        steps=trainer.step,
        epochs=trainer.epoch,
        epochs_trained=trainer.epoch + task.epochs_trained,
        train_loss=task.train_loss,
        valid=task.valid,
        test=test,
        best_valid_perplexity=task.best_valid,
        wall_time_s=wall_time,
        total_time_s=trainer.elapsed(),
        stop_reason=trainer.stop_reason,
        out_dir=out_dir,
        history=trainer.history,
        world_size=task.world,
    )
    if main_rank and out_dir is not None:
        (out_dir / "summary.json").write_text(json.dumps(result.summary(), indent=2))
    return result


# --------------------------------------------------------------------------- loading
def load_language_model(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[EGRULanguageModel, Vocabulary, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint of :func:`train_language_model`.

    Returns:
        ``(model in eval mode, vocabulary, checkpoint metrics)``.
    """
    checkpoint = load_checkpoint(path, map_location=map_location)
    config = checkpoint.model_config(LanguageModelConfig)
    model = EGRULanguageModel(config)
    qat.prepare_from_checkpoint(model, checkpoint.train_config)
    model.load_state_dict(checkpoint.model_state)
    model.eval()
    if checkpoint.vocabulary is None:
        raise ValueError(f"{path} stores no vocabulary (not a language-model checkpoint)")
    return model, Vocabulary(checkpoint.vocabulary), dict(checkpoint.metrics)


# --------------------------------------------------------------------------- command line
def _parser(prog: str = "python -m snn_egru.training.lm") -> argparse.ArgumentParser:
    """The command line (built torch-free in :mod:`snn_egru.training.lm_args`)."""
    from snn_egru.training.lm_args import build_parser

    return build_parser(prog, add_more=add_quantization_arguments)


def configs_from_args(args: argparse.Namespace) -> tuple[LanguageModelConfig, LMTrainConfig]:
    """Model and training configs from parsed command-line arguments.

    Raises:
        UserError: values that do not go together (the message names the flags).
    """
    from snn_egru.errors import UserError
    from snn_egru.training.lm_args import flagged

    try:
        return _configs_from_args(args)
    except ValueError as err:
        raise UserError(flagged(err)) from None


def _configs_from_args(args: argparse.Namespace) -> tuple[LanguageModelConfig, LMTrainConfig]:
    model_config, train_config = preset_configs(args.preset)
    model_over = model_overrides(args, model_config.hidden_sizes)
    if model_over:
        model_config = replace(model_config, **model_over)
    over: dict[str, Any] = {}
    for arg, attr in TRAIN_ARG_FIELDS.items():
        value = getattr(args, arg, None)
        if value is not None:
            over[attr] = value
    over["quantize"] = quantization_from_args(args)
    if model_config.cell != "egru" and (args.prune_to is not None or over["quantize"]):
        raise ValueError(
            f"--cell {model_config.cell} is a dense baseline: --prune-to and --quantize are for "
            "the EGRU only (drop them, or --cell egru)"
        )
    if args.no_full_test:
        over["final_test"] = False
    check_prune_args(args)
    if args.prune_to is not None:
        end = args.prune_end if args.prune_end is not None else args.prune_start
        over["pruning"] = PruningConfig(
            target_sparsity=args.prune_to,
            schedule="gradual" if end > args.prune_start else "one_shot",
            start_step=args.prune_start,
            end_step=end,
            frequency=args.prune_every,
        )
    train_config = replace(train_config, **over)
    if args.preset in _PAPER_SCHEDULER_START:
        train_config = _paper_hold(args.preset, train_config)
    if train_config.pruning is not None:
        check_pruning_schedule(train_config.pruning, planned_steps(train_config))
    return model_config, train_config


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Command-line entry point (``python -m snn_egru.training.lm``, ``snn-egru train lm``).

    Every option is checked before any work starts; user mistakes print one line and return
    2 (``--verbose`` shows the traceback).
    """
    from snn_egru.training.lm_args import run_trainer

    cli = _parser(prog or "python -m snn_egru.training.lm")
    return run_trainer(
        cli, argv, _run, log_format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(args: argparse.Namespace) -> int:
    model_config, train_config = configs_from_args(args)
    check_run_args(args, train_config, model_config)
    train_config = resumed_budget(args, train_config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train_language_model(model_config, train_config, **fit_options(args))
    if is_main_process():
        summary = result.summary()
        summary.pop("test_sparsity", None)
        print(json.dumps(summary, indent=2))
        if result.test is not None and result.test.sparsity is not None:
            print(format_sparsity_report(result.test.sparsity, title="test-set sparsity"))
    return 0


#: Recipe values a resumed run keeps from its own ``last.pt`` unless given again.
RESUMED_FIELDS = {"max_steps": "--max-steps", "epochs": "--epochs"}


def resumed_budget(args: argparse.Namespace, tc: LMTrainConfig) -> LMTrainConfig:
    """With ``--resume``: the stored run's step and epoch budget where no flag sets them (a
    demo trained for 800 steps resumes to 800, not to the preset's 1000)."""
    from snn_egru.training.common import load_checkpoint

    if not args.resume:
        return tc
    stored = (load_checkpoint(Path(args.out) / "last.pt").train_config or {}).get("fields", {})
    over = {
        name: stored[name]
        for name in RESUMED_FIELDS
        if getattr(args, name, None) is None and name in stored
    }
    changed = {k: v for k, v in over.items() if getattr(tc, k) != v}
    if changed:
        logger.info(
            "--resume: continuing the run's own %s (give %s to change)",
            ", ".join(f"{k}={v}" for k, v in changed.items()),
            " / ".join(RESUMED_FIELDS[k] for k in changed),
        )
    return replace(tc, **over)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
