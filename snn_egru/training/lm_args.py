"""The command line of the language-model trainer, built without importing torch.

``snn-egru train lm`` parses (and refuses bad values) with this parser before torch is
imported, so a typo costs a fraction of a second. :mod:`snn_egru.training.lm` runs the
parsed arguments.
"""

from __future__ import annotations

import argparse
from typing import Any

#: The training presets (:data:`snn_egru.training.lm.LM_TRAIN_PRESETS`; a test keeps the
#: two equal).
LM_PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "paper", "paper-wikitext2")
#: The recurrent cells and event amplitudes the ``--cell`` / ``--event-amplitude`` flags of the
#: LM and DVS trainers offer (:data:`snn_egru.models.lm.LM_CELLS`,
#: :data:`snn_egru.functional.EVENT_AMPLITUDES`, kept equal by a test; named here so that
#: building a parser does not import torch).
CELL_NAMES: tuple[str, ...] = ("egru", "gru", "lstm")
EVENT_AMPLITUDE_NAMES: tuple[str, ...] = ("state", "clamped")
#: :data:`snn_egru.bottleneck.BOTTLENECK_KINDS` (torch-free; kept equal by a test).
BOTTLENECK_KIND_NAMES: tuple[str, ...] = ("egru", "ff", "dense")


def build_parser(
    prog: str = "python -m snn_egru.training.lm", *, add_more=None
) -> argparse.ArgumentParser:
    """The parser of ``python -m snn_egru.training.lm`` / ``snn-egru train lm``.

    ``add_more(parser)`` adds further options (the trainer passes the int8 QAT options of
    :mod:`snn_egru.quantization`, which needs torch; without it the parser is torch-free and
    ``parse_known_args`` checks the other options cheaply).
    """
    from snn_egru.cliargs import ArgumentParser, add_hidden_alias, float_in, int_at_least

    positive = int_at_least(1)
    p = ArgumentParser(
        prog=prog,
        description="Train the EGRU word-level language model (PTB / WikiText-2). Runs under "
        "torchrun --nproc_per_node N for data-parallel training. A folder holding a run is "
        "continued with --resume or replaced with --overwrite, never silently.",
        epilog="examples:\n"
        f"  {prog} --preset tiny --out runs/lm_tiny --no-full-test     seconds\n"
        f"  {prog} --preset small --out runs/lm                         minutes on 2 cores\n"
        f"  {prog} --preset small --out runs/lm --resume                continue it\n"
        f"  {prog} --preset paper --device cuda --out runs/paper        the published model",
    )
    p.add_argument(
        "--preset",
        default="small",
        choices=LM_PRESET_NAMES,
        help="model and recipe: tiny (tests), small (PTB on CPU), paper, paper-wikitext2",
    )
    p.add_argument("--corpus", choices=["ptb", "wikitext2"], help="data set (preset's default)")
    p.add_argument("--data-dir", help="folder with wiki.{train,valid,test}.tokens (WikiText-2)")
    p.add_argument("--out", default="runs/lm", metavar="DIR", help="checkpoints and metrics")
    add_hidden_alias(p, "--out-dir", dest="out")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in DIR (last.pt)")
    run.add_argument(
        "--overwrite", action="store_true", help="replace the run in DIR (its checkpoints go)"
    )
    p.add_argument(
        "--max-steps", type=positive, metavar="N", help="stop after N optimizer steps (preset's)"
    )
    add_time_limit_option(p)
    p.add_argument("--epochs", type=positive, help="passes over the training split (preset's)")
    p.add_argument("--batch-size", type=positive, help="global number of training streams")
    p.add_argument("--bptt", type=positive, help="BPTT window length (preset's)")
    p.add_argument("--lr", type=float_in(0, low_open=True), help="learning rate (preset's)")
    p.add_argument("--weight-decay", type=float_in(0), help="AdamW weight decay (preset's)")
    p.add_argument("--clip", type=float_in(0), help="gradient-norm limit, 0: none (preset's)")
    p.add_argument(
        "--eval-every", type=int_at_least(0), help="validate every N steps (0: each epoch)"
    )
    p.add_argument("--test-batch-size", type=positive, help="test streams (preset's)")
    p.add_argument("--seed", type=int, help="random seed (preset's: 0)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="fp32 (default) or bf16 autocast (EGRU loop, state and loss stay float32; for "
        "CPUs/GPUs with bf16 matrix units: slower on AVX2-only CPUs)",
    )
    p.add_argument(
        "--softmax",
        type=_softmax_spec,
        metavar="full|fused|sampled:K",
        help="training loss: full softmax (default); fused: the same loss with one logits "
        "buffer (fused-numpy: numpy's BLAS for its products); or sampled softmax over K "
        "log-uniform candidates per step (e.g. sampled:1024); evaluation is always the full "
        "softmax",
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    _add_model_options(p)
    _add_pruning_options(p)
    p.add_argument("--init-from", help="start from the weights of this checkpoint (fine-tuning)")
    p.add_argument("--no-full-test", action="store_true", help="skip the final test evaluation")
    add_hidden_alias(p, "--no-test", dest="no_full_test", action="store_true")
    p.add_argument("--threads", type=positive, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bars or progress log lines"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs, tracebacks")
    if add_more is not None:
        add_more(p)
    return p


def _softmax_spec(text: str) -> str:
    from snn_egru.losses import parse_softmax

    try:
        parse_softmax(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def adaptive_cutoffs(text: str) -> tuple[int, ...]:
    """``C1[,C2...]`` word ranks, or ``none`` (the full softmax: ``()``)."""
    if text.strip().lower() == "none":
        return ()
    parts = text.split(",")
    if not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated word ranks such as 2000,6000 (or none), got {text!r}"
        )
    return tuple(int(part) for part in parts)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """The architecture flags (the preset's values unless given)."""
    from snn_egru.cliargs import float_in, int_at_least

    positive = int_at_least(1)
    p.add_argument("--hidden-sizes", type=positive, nargs="+", help="EGRU layer sizes")
    p.add_argument("--embedding-size", type=positive, help="embedding width (preset's)")
    p.add_argument(
        "--threshold-mean",
        type=float_in(0, 1, low_open=True, high_open=True),
        help="mean initial threshold, 0 < t < 1 (preset's)",
    )
    p.add_argument("--learn-threshold", choices=["yes", "no"], help="learn the thresholds")
    p.add_argument(
        "--cell",
        choices=CELL_NAMES,
        help="recurrent layers: egru (preset's) or a dense baseline gru / lstm (quality "
        "comparisons: same recipe, not prunable, quantisable or exportable)",
    )
    p.add_argument(
        "--event-amplitude",
        choices=EVENT_AMPLITUDE_NAMES,
        help="gradient of a graded event: state (EvNN, product rule) or clamped (preset's)",
    )
    p.add_argument(
        "--bottlenecks",
        type=float_in(1, low_open=True),
        metavar="N/K",
        help="insert a bottleneck layer of k = n / (N/K) units at every layer boundary of the "
        "stack (snn_egru.bottleneck; --hidden-sizes with 2 or more layers)",
    )
    p.add_argument(
        "--bottleneck-kind",
        choices=BOTTLENECK_KIND_NAMES,
        help="what the bottlenecks compute: egru (an EGRU layer, default), ff (max(0, "
        "tanh(Wx+b)), event-based) or dense (tanh(Wx+b), every unit every step)",
    )
    p.add_argument(
        "--bottleneck-l1",
        type=float_in(0),
        metavar="G",
        help="L1 penalty on the bottleneck layers' events, summed over a bottleneck's units: "
        "fewer events cross the chip boundary (default: 0)",
    )
    p.add_argument(
        "--adaptive-softmax",
        type=adaptive_cutoffs,
        metavar="C1[,C2...]",
        help="adaptive softmax decoder with these cutoffs over frequency-ranked words (e.g. "
        "2000,6000; none: the full softmax); unties the decoder from the embedding; exported "
        "with its readout on the host (the chip sends the events)",
    )


def _add_pruning_options(p: argparse.ArgumentParser) -> None:
    """Pruning during training (``--prune-to`` and its schedule)."""
    from snn_egru.cliargs import float_in, int_at_least

    positive = int_at_least(1)
    p.add_argument(
        "--prune-to",
        type=float_in(0, 1, high_open=True),
        help="prune to this weight sparsity during training, 0 <= s < 1 (e.g. 0.95)",
    )
    p.add_argument("--prune-start", type=int_at_least(0), default=0, help="first pruning step")
    p.add_argument(
        "--prune-end",
        type=int_at_least(0),
        help="step the gradual schedule reaches the target (default: --prune-start, one shot)",
    )
    p.add_argument("--prune-every", type=positive, default=50, help="mask update interval")


#: Parsed arguments -> the :class:`~snn_egru.training.lm.LMTrainConfig` fields they set.
TRAIN_ARG_FIELDS = {
    "corpus": "corpus",
    "data_dir": "data_dir",
    "max_steps": "max_steps",
    "time_limit": "time_budget_s",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "bptt": "bptt",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "clip": "clip",
    "eval_every": "eval_every",
    "test_batch_size": "test_batch_size",
    "seed": "seed",
    "device": "device",
    "init_from": "init_from",
    "precision": "precision",
    "softmax": "softmax",
}


#: Config fields -> the flags that set them (messages name the flag the user typed).
FIELD_FLAGS = {
    "hidden_sizes": "--hidden-sizes",
    "embedding_size": "--embedding-size",
    "threshold_mean": "--threshold-mean",
    "batch_size": "--batch-size",
    "test_batch_size": "--test-batch-size",
    "bptt": "--bptt",
    "max_steps": "--max-steps",
    "epochs": "--epochs",
    "target_sparsity": "--prune-to",
    "end_step": "--prune-end",
    "start_step": "--prune-start",
    "frequency": "--prune-every",
    "adaptive_softmax": "--adaptive-softmax",
    "bottleneck_kind": "--bottleneck-kind",
    "bottleneck_l1": "--bottleneck-l1",
    "bottleneck_layers": "--bottlenecks",
}


def flagged(err: Exception) -> str:
    """The message of a config error with field names written as the flags that set them."""
    import re

    text = str(err)
    for name, flag in FIELD_FLAGS.items():
        text = re.sub(rf"\b{name}\b=?", f"{flag} ", text)
    return " ".join(text.split())


def check_prune_args(args: argparse.Namespace) -> None:
    """``--prune-start`` / ``--prune-end`` need ``--prune-to`` and must be in order."""
    from snn_egru.errors import UserError

    if args.prune_to is None and (args.prune_end is not None or args.prune_start):
        raise UserError("--prune-start / --prune-end need --prune-to S (the target sparsity)")
    if args.prune_to is not None:
        end = args.prune_end if args.prune_end is not None else args.prune_start
        if end < args.prune_start:
            raise UserError(
                f"--prune-end {end} is before --prune-start {args.prune_start}: the schedule "
                "must end at or after its start"
            )


def check_pruning_schedule(pruning, last_step: int) -> None:
    """Refuse a pruning schedule (a :class:`~snn_egru.pruning.PruningConfig`) that would not
    reach its target by ``last_step``: the run would train an unpruned model and keep no
    ``best.pt`` (only models at the target sparsity may become the best one).

    Raises:
        UserError: the schedule ends after the last training step.
    """
    from snn_egru.errors import UserError

    reach = max(pruning.start_step, pruning.end_step)
    if reach > last_step:
        raise UserError(
            f"the pruning schedule reaches its target at step {reach} but training stops at "
            f"step {last_step}: use --prune-end <= {last_step} (and --prune-start <= it) or "
            "more --max-steps"
        )


def check_run_args(args: argparse.Namespace, tc, config) -> None:
    """Everything that can be checked before training starts (files, folders, device)."""
    from pathlib import Path

    from snn_egru.errors import UserError
    from snn_egru.models.lm import LanguageModelConfig
    from snn_egru.training.common import (
        check_device,
        config_differences,
        guard_run_folder,
        load_checkpoint,
    )

    check_device(tc.device)
    if tc.data_dir is not None and not Path(tc.data_dir).is_dir():
        raise UserError(f"--data-dir {tc.data_dir} is not a folder")
    if tc.init_from is not None and not Path(tc.init_from).is_file():
        raise UserError(f"--init-from {tc.init_from}: no such checkpoint")
    guard_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        stored = load_checkpoint(Path(args.out) / "last.pt")
        if stored.config is not None:
            diffs = config_differences(
                stored.model_config(LanguageModelConfig), config, skip=("vocab_size",)
            )
            if diffs:
                raise UserError(
                    f"--resume: {Path(args.out) / 'last.pt'} holds another model "
                    f"({'; '.join(diffs[:3])}): give the flags of that run, or --overwrite"
                )


def add_time_limit_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Both trainers' ``--time-limit SECONDS`` (old spelling ``--time-budget``)."""
    from snn_egru.cliargs import add_seconds_option

    add_seconds_option(
        parser,
        "--time-limit",
        "stop training after this many seconds (default: none)",
        aliases=("--time-budget",),
    )


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """What both trainers' command lines pass their ``train_*`` function besides the
    configs: the output folder, ``--resume``, and the progress bars (off with
    ``--no-progress`` or ``--quiet``)."""
    return {
        "out_dir": args.out,
        "resume": args.resume,
        "show_progress": not (args.no_progress or args.quiet),
    }


def run_trainer(cli: argparse.ArgumentParser, argv: Any, run: Any, *, log_format: str) -> int:
    """Parse ``argv``, set the log level (``-v`` / ``-q``) and ``run(args)``: user mistakes
    end with one line and exit status 2 (``--verbose`` shows the traceback). The entry point
    of both trainers' command lines."""
    import logging

    from snn_egru.cliargs import run_main

    args = cli.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format=log_format,
    )
    return run_main(lambda: run(args), prog=cli.prog, verbose=args.verbose)


def model_overrides(args: argparse.Namespace, preset_sizes: Any) -> dict[str, Any]:
    """The model-config fields the trainer's flags set (``preset_sizes``: the preset's
    ``hidden_sizes``, which ``--bottlenecks`` expands when ``--hidden-sizes`` is not given).

    Raises:
        ValueError: ``--bottlenecks`` on a 1-layer stack, ``--adaptive-softmax`` with a
            sampled or fused softmax.
    """
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
    if getattr(args, "bottlenecks", None):
        from snn_egru.bottleneck import bottleneck_width, insert_bottlenecks

        sizes = model_over.get("hidden_sizes", preset_sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"--bottlenecks needs 2 or more layers (a bottleneck sits between two), got "
                f"hidden_sizes={list(sizes)}"
            )
        ks = {i: bottleneck_width(sizes[i], args.bottlenecks) for i in range(len(sizes) - 1)}
        stack = insert_bottlenecks(sizes, ks)
        model_over.update(
            hidden_sizes=stack.hidden_sizes, bottleneck_layers=stack.bottleneck_layers
        )
    if getattr(args, "bottleneck_kind", None) is not None:
        model_over["bottleneck_kind"] = args.bottleneck_kind
    if getattr(args, "bottleneck_l1", None) is not None:
        model_over["bottleneck_l1"] = args.bottleneck_l1
    if getattr(args, "adaptive_softmax", None):  # its head has its own output weights
        model_over.update(adaptive_softmax=args.adaptive_softmax, tie_weights=False)
        if getattr(args, "softmax", None) not in (None, "full"):
            raise ValueError(
                "--adaptive-softmax is its own training loss: drop --softmax "
                f"{args.softmax} (or --adaptive-softmax)"
            )
    return model_over
