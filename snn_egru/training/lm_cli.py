"""The command line of the language-model trainer (``python -m snn_egru.training.lm``,
``snn-egru train lm``): parsed arguments -> configs -> :func:`~snn_egru.training.lm.
train_language_model`.

The parser itself is built torch-free in :mod:`snn_egru.training.lm_args`. ``--resume``
continues the run's own recipe: a value the user does not give again (``--max-steps``,
``--epochs``) is the one stored in the run's ``last.pt``, not the preset's.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from snn_egru.models.lm import LanguageModelConfig
from snn_egru.pruning import PruningConfig
from snn_egru.quantization_cli import add_quantization_arguments, quantization_from_args
from snn_egru.sparsity import format_sparsity_report
from snn_egru.training.common import is_main_process
from snn_egru.training.lm import (
    _PAPER_SCHEDULER_START,
    LMTrainConfig,
    _paper_hold,
    planned_steps,
    preset_configs,
    train_language_model,
)
from snn_egru.training.lm_args import (
    TRAIN_ARG_FIELDS,
    check_prune_args,
    check_pruning_schedule,
    check_run_args,
)

logger = logging.getLogger(__name__)


def parser(prog: str = "python -m snn_egru.training.lm") -> argparse.ArgumentParser:
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
    model_over: dict[str, Any] = {}
    if args.embedding_size is not None:
        model_over["embedding_size"] = args.embedding_size
    if args.hidden_sizes is not None:
        model_over["hidden_sizes"] = tuple(args.hidden_sizes)
    if args.threshold_mean is not None:  # a Beta draw of this mean, not the preset's value
        model_over["threshold_mean"] = args.threshold_mean
        model_over["threshold_value"] = None
    if args.learn_threshold is not None:
        model_over["learn_threshold"] = args.learn_threshold == "yes"
    for name in ("cell", "event_amplitude"):
        if getattr(args, name, None) is not None:
            model_over[name] = getattr(args, name)
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

    cli = parser(prog or "python -m snn_egru.training.lm")
    return run_trainer(
        cli, argv, _run, log_format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(args: argparse.Namespace) -> int:
    model_config, train_config = configs_from_args(args)
    check_run_args(args, train_config, model_config)
    train_config = resumed_budget(args, train_config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train_language_model(
        model_config,
        train_config,
        out_dir=args.out,
        resume=args.resume,
        show_progress=not (args.no_progress or args.quiet),
    )
    if is_main_process():
        summary = result.summary()
        summary.pop("test_sparsity", None)
        print(json.dumps(summary, indent=2))
        if result.test is not None and result.test.sparsity is not None:
            print(format_sparsity_report(result.test.sparsity, title="test-set sparsity"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


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
