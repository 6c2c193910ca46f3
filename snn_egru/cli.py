"""``snn-egru``: the command line of the whole flow.

    snn-egru demo                          the main job on an embedded default
    snn-egru train lm|dvs [...]            train a workload (options: snn-egru train lm --help)
    snn-egru prune CHECKPOINT              gradual magnitude pruning with fine-tuning
    snn-egru export CHECKPOINT             the deployment artifact (torch-free .npz)
    snn-egru map ARTIFACT                  map onto a simulated SpiNNaker2 (no run)
    snn-egru run ARTIFACT --backend B      run on torch / the numpy reference / Lava / the chip
    snn-egru report RUN_DIR                print the results of a run folder again
    snn-egru sweep run|merge|report        the trade-off study (snn-egru sweep run --help)

Every option is checked before any work starts. User mistakes end with one line on stderr
and exit status 2; ``--verbose`` shows the traceback. No command replaces a trained model
or an artifact unless asked to (``--overwrite``, ``--resume``, ``--retrain``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from snn_egru import cli_commands as commands
from snn_egru.cli_commands import (
    BACKEND_ALIASES,
    DEFAULT_TOKENS,
    DEMO_ADAPTIVE_SOFTMAX,
    LAVA_BACKENDS,
    RUN_BACKENDS,
)
from snn_egru.cliargs import (
    ArgumentParser,
    add_hidden_alias,
    choice_with_aliases,
    float_in,
    int_at_least,
    new_file,
    run_main,
)

PROG = "snn-egru"

DESCRIPTION = (
    "Train event-based GRUs (EGRU) with snnTorch, prune them, and run them as Lava processes "
    "on a simulated SpiNNaker2 chip, with memory, time, energy and packet reports."
)

EPILOG = """typical flow (each command's options: snn-egru COMMAND --help):
  snn-egru demo --preset tiny --no-full-test      the whole flow on a tiny model, fast
  snn-egru demo                                   the whole flow on a small PTB model
  snn-egru train lm --preset small --out runs/lm  train on Penn Treebank
  snn-egru prune runs/lm/best.pt --sparsity 0.9 --out runs/lm
  snn-egru export runs/lm/prune/last.pt --out runs/lm/artifact.npz
  snn-egru map runs/lm/artifact.npz --weight-format event
  snn-egru run runs/lm/artifact.npz --backend spinnaker2 --tokens 141 --out runs/lm/chip
  snn-egru report runs/demo

exit status: 0 done, 2 a user error (one line on stderr; --verbose for the traceback),
130 interrupted."""


# --------------------------------------------------------------------------- commands
def _cmd_train(args: argparse.Namespace) -> int:
    prog = f"{PROG} train {args.workload}"
    if args.workload == "lm":
        # parse and check the folder before torch is imported (a typo costs no seconds)
        from snn_egru.cliargs import guard_run_folder
        from snn_egru.training.lm_args import build_parser

        # the QAT options need torch: they are checked by the trainer's own parse
        parsed, _ = build_parser(prog).parse_known_args(args.train_args)
        if not parsed.overwrite:
            guard_run_folder(parsed.out, resume=parsed.resume, overwrite=False)
        from snn_egru.training.lm import main as train_main
    else:
        from snn_egru.training.dvs import main as train_main
    argv = list(args.train_args)
    if args.verbose and "--verbose" not in argv and "-v" not in argv:
        argv.append("--verbose")
    if args.quiet and "--quiet" not in argv and "-q" not in argv:
        argv.append("--quiet")
    return int(train_main(argv, prog=prog) or 0)


def _cmd_validate(args: argparse.Namespace) -> int:
    from spinnaker2_backend.cli import main as backend_main

    return int(backend_main(["validate", *args.validate_args], prog=PROG))


def _cmd_sweep(args: argparse.Namespace) -> int:
    from snn_egru.sweep.cli import main as sweep_main

    return int(sweep_main(args.sweep_args, prog=f"{PROG} sweep"))


# ----------------------------------------------------------------------------- parser
def _common() -> argparse.ArgumentParser:
    """``-v`` / ``-q`` accepted after the sub-command too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return common


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars or progress log lines",
    )


def _count(
    parser: argparse.ArgumentParser, flag: str, help: str, *, minimum: int = 1, default=None
) -> None:
    """An ``N`` option: an integer ``>= minimum``."""
    parser.add_argument(flag, type=int_at_least(minimum), default=default, metavar="N", help=help)


def _add_sparsity(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--sparsity", type=float_in(0.0, 1.0, high_open=True), default=0.9, help=help
    )


def _add_run_options(parser: argparse.ArgumentParser, tested: str) -> None:
    """What the training commands (demo, prune) share: seed, test, progress, old ``--out-dir``."""
    parser.add_argument(
        "--no-full-test",
        action="store_true",
        help=f"skip the whole-test-split perplexity {tested}",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    _add_progress(parser)
    add_hidden_alias(parser, "--out-dir", dest="out")


#: ``help`` (the list of ``snn-egru --help``), ``description`` and ``epilog`` per command.
_TEXTS: dict[str, dict[str, str]] = {
    "demo": dict(
        help="the main job: train, prune, export, map, run on the simulated chip, report",
        description="Train a small EGRU language model on Penn Treebank, prune it, export "
        "it, map it onto a simulated SpiNNaker2 chip, run a slice of the PTB test set "
        "through the Lava graph on the simulated chip and in PyTorch, and report perplexity, "
        "sparsity, memory, time, energy and packets. A re-run into the same --out reuses "
        "its checkpoints only when they were made with the same settings (preset, steps, "
        "sparsity, seed); other settings are refused unless --retrain (or --reprune for pruning).",
        epilog="examples:\n  snn-egru demo --preset tiny --no-full-test --out runs/quick\n"
        "  snn-egru demo --backend floating_pt --weight-format event",
    ),
    "train": dict(
        help="train a workload: lm (PTB / WikiText-2) or dvs (DVS128 Gesture / synthetic)",
        description="Train a workload. Every option after the workload goes to its trainer: "
        "see `snn-egru train lm --help` and `snn-egru train dvs --help`.",
    ),
    "prune": dict(
        help="gradual magnitude pruning of a trained LM, with fine-tuning",
        description="Prune every EGRU weight matrix of a language-model checkpoint to the "
        "target sparsity (cubic schedule over two thirds of the steps, then fine-tuning at the "
        "target). Writes OUT/prune/last.pt (the model at the target sparsity); an existing one "
        "is replaced only with --overwrite.",
        epilog="example:\n  snn-egru prune runs/lm/best.pt --sparsity 0.9 --out runs/lm",
    ),
    "export": dict(
        help="write the deployment artifact of a checkpoint (torch-free .npz)",
        description="Export a trained LM or DVS checkpoint to the deployment artifact read by "
        "spinnaker2_backend and lava_procs. Sparse matrices are stored as CSR. An existing "
        "file is replaced only with --overwrite.",
        epilog="example:\n  snn-egru export runs/lm/prune/last.pt --out runs/lm/artifact.npz",
    ),
    "map": dict(
        help="map an artifact onto a simulated SpiNNaker2 (mapping only)",
        description="Map an EGRU network onto SpiNNaker2 PEs without running it: partition, "
        "place, route, lay out every PE's memory, check that it fits, print the report "
        "(as `python -m spinnaker2_backend map`).",
        epilog="examples:\n  snn-egru map runs/demo/artifact.npz --weight-format event\n"
        "  snn-egru map --synthetic paper-lm --plot memory.png",
    ),
    "run": dict(
        help="run an artifact: torch, numpy reference, Lava float, Lava on the chip, or chip",
        description="Run a deployment artifact over the PTB test split (LM artifacts) or "
        "over given inputs (--inputs, any artifact). Backends: torch (PyTorch rebuilt from "
        "the artifact), reference (numpy), floating_pt (Lava graph, floating-point models), "
        "spinnaker2 (Lava graph on the simulated chip), chip (the simulated chip directly, "
        "no Lava). Writes logits.npy (and perplexity.json for PTB tokens; chip_report.json, "
        "profile.png and packets.png on the chip backends) into --out.",
        epilog="examples:\n  snn-egru run runs/demo/artifact.npz --backend spinnaker2 "
        "--tokens 141 --out runs/chip\n  snn-egru run dvs.npz --backend floating_pt --inputs "
        "features.npy --out runs/dvs_lava",
    ),
    "validate": dict(
        help="the simulated chip beside every published SpiNNaker2 measurement",
        description="Same as `python -m spinnaker2_backend validate`: the simulated chip "
        "beside every published SpiNNaker2 measurement.",
    ),
    "report": dict(
        help="print the results of a run folder",
        description="Print the results section of a run folder of `snn-egru demo` again.",
        epilog="example:\n  snn-egru report runs/demo | head -20",
    ),
    "sweep": dict(
        help="the trade-off study: train a grid, MACs, sparsity, simulated chip cost",
        description="snn-egru sweep run|merge|report (same as `python -m snn_egru.sweep`).",
    ),
}


def _sub_parser(sub: Any, name: str, parents: list) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=parents, **_TEXTS[name])


def _add_demo(sub: Any, parents: list) -> None:
    """``snn-egru demo``: the whole flow."""
    from spinnaker2_backend.options import add_mapping_arguments

    demo = _sub_parser(sub, "demo", parents)
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder")
    demo.add_argument(
        "--preset",
        default="small",
        choices=["tiny", "small"],
        help="model and training recipe: tiny (seconds, for checks) or small (minutes)",
    )
    _count(demo, "--train-steps", "training steps (default: 800 for small, the preset's for tiny)")
    from snn_egru.training.lm_args import adaptive_cutoffs

    demo.add_argument(
        "--adaptive-softmax",
        type=adaptive_cutoffs,
        default=None,
        metavar="C1[,C2...]",
        help="decoder: an adaptive softmax with these cutoffs over frequency-ranked words, as "
        "`train lm --adaptive-softmax` (its log-probabilities computed on the host from the "
        "chip's events), or none: the full softmax (default: "
        + ", ".join(
            f"{'none' if not c else ','.join(map(str, c))} for {p}"
            for p, c in DEMO_ADAPTIVE_SOFTMAX.items()
        )
        + ")",
    )
    _add_sparsity(demo, "target weight sparsity of pruning, 0 <= s < 1")
    _count(
        demo, "--prune-steps", "fine-tuning steps of pruning (default: 30 for tiny, 300 for small)"
    )
    _count(
        demo,
        "--eval-tokens",
        "PTB test tokens run on the chip and in PyTorch (N-1 predictions)",
        minimum=2,
        default=DEFAULT_TOKENS,
    )
    demo.add_argument(
        "--backend",
        default="spinnaker2",
        type=choice_with_aliases(BACKEND_ALIASES),
        choices=LAVA_BACKENDS,
        help="Lava process models: spinnaker2 (the simulated chip) or floating_pt (numpy)",
    )
    add_mapping_arguments(demo)
    again = demo.add_mutually_exclusive_group()
    again.add_argument(
        "--retrain", action="store_true", help="train and prune again, replacing checkpoints"
    )
    again.add_argument(
        "--reprune",
        action="store_true",
        help="prune again (replacing prune/), reusing the trained model",
    )
    _add_run_options(demo, "after training and after pruning (fast)")
    demo.set_defaults(func=commands.cmd_demo)


def _add_train(sub: Any, parents: list) -> None:
    """``snn-egru train lm|dvs ...``: the options go to the trainer."""
    train = _sub_parser(sub, "train", parents)
    train.add_argument("workload", choices=["lm", "dvs"], help="the workload")
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="trainer options")
    train.set_defaults(func=_cmd_train)


def _add_prune(sub: Any, parents: list) -> None:
    """``snn-egru prune CHECKPOINT``."""
    prune = _sub_parser(sub, "prune", parents)
    prune.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint of `train lm`")
    _add_sparsity(prune, "target weight sparsity, 0 <= s < 1")
    _count(prune, "--steps", "fine-tuning steps", default=300)
    prune.add_argument("--out", default="runs/prune", metavar="DIR", help="writes DIR/prune/")
    prune.add_argument(
        "--overwrite", action="store_true", help="replace an existing DIR/prune/ model"
    )
    _add_run_options(prune, "of the pruned model")
    prune.set_defaults(func=commands.cmd_prune)


def _add_export(sub: Any, parents: list) -> None:
    """``snn-egru export CHECKPOINT``."""
    export = _sub_parser(sub, "export", parents)
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint of `train`")
    export.add_argument(
        "--out", required=True, type=new_file(".npz"), metavar="FILE.npz", help="artifact file"
    )
    export.add_argument("--dense", action="store_true", help="store every matrix dense")
    export.add_argument(
        "--quantize",
        choices=["int8"],
        help="post-training int8 quantisation (a checkpoint trained with --quantize is "
        "always exported with the codes it was trained with)",
    )
    export.add_argument(
        "--quant-granularity", choices=["row", "gate"], default="row", help="weight scales"
    )
    export.add_argument(
        "--quant-products",
        choices=["float", "int8"],
        default="float",
        help="int8: quantise inputs and events too (MAC array; needs --calibration)",
    )
    export.add_argument(
        "--calibration", metavar="INPUTS.npy", help="inputs that set the int8 input/event scales"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    export.set_defaults(func=commands.cmd_export)


def _add_map(sub: Any, parents: list) -> None:
    """``snn-egru map ARTIFACT``: the backend's network, mapping and output options."""
    from spinnaker2_backend.options import (
        add_map_output_arguments,
        add_mapping_arguments,
        add_network_arguments,
    )

    map_ = _sub_parser(sub, "map", parents)
    add_network_arguments(map_)
    add_mapping_arguments(map_)
    add_map_output_arguments(map_)
    map_.set_defaults(func=commands.cmd_map)


def _add_run(sub: Any, parents: list) -> None:
    """``snn-egru run ARTIFACT --backend B``."""
    from spinnaker2_backend.options import add_mapping_arguments

    run = _sub_parser(sub, "run", parents)
    run.add_argument("artifact", metavar="ARTIFACT", help="deployment artifact (.npz)")
    run.add_argument(
        "--backend",
        type=choice_with_aliases(BACKEND_ALIASES),
        choices=RUN_BACKENDS,
        default="spinnaker2",
        help="where to run: torch, reference, floating_pt, spinnaker2, chip",
    )
    _count(
        run,
        "--tokens",
        f"PTB test tokens, LM artifacts (N-1 predictions; default {DEFAULT_TOKENS})",
        minimum=2,
    )
    run.add_argument(
        "--inputs",
        default=None,
        metavar="FILE.npy",
        help="inputs instead of PTB: token ids (T,) or feature vectors (T, I) as the "
        "artifact takes",
    )
    run.add_argument("--out", default="runs/run", metavar="DIR", help="output folder")
    run.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --out"
    )
    add_mapping_arguments(run)
    run.set_defaults(func=commands.cmd_run)


def _add_validate(sub: Any, parents: list) -> None:
    """``snn-egru validate ...``: the options go to the backend."""
    validate = _sub_parser(sub, "validate", parents)
    validate.add_argument("validate_args", nargs=argparse.REMAINDER, help="its options")
    validate.set_defaults(func=_cmd_validate)


def _add_report(sub: Any, parents: list) -> None:
    """``snn-egru report RUN_DIR``."""
    report = _sub_parser(sub, "report", parents)
    report.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a demo")
    report.set_defaults(func=commands.cmd_report)


def _add_sweep(sub: Any, parents: list) -> None:
    """``snn-egru sweep ...``: the options go to :mod:`snn_egru.sweep.cli`."""
    sweep = _sub_parser(sub, "sweep", parents)
    sweep.add_argument("sweep_args", nargs=argparse.REMAINDER, help="run | merge | report ...")
    sweep.set_defaults(func=_cmd_sweep)


#: The sub-commands in the order ``--help`` lists them.
_SUBCOMMANDS = (
    _add_demo,
    _add_train,
    _add_prune,
    _add_export,
    _add_map,
    _add_run,
    _add_validate,
    _add_report,
    _add_sweep,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``snn-egru`` parser: global ``-v`` / ``-q`` and one sub-parser per command."""
    parser = ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub, [_common()])
    return parser


_GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snn-egru`` console script."""
    from snn_egru.cliargs import Terminated, stop_on_sigterm

    stop_on_sigterm()  # from the start: a kill while the options are read is one line too
    try:
        return _main(argv)
    except Terminated:  # before the command started (reading options, importing)
        print(f"{PROG}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `train lm|dvs ...` hands all its options to the trainer's parser
    head = [a for a in argv if a in _GLOBAL_FLAGS]
    rest = argv[len(head) :] if argv[: len(head)] == head else None
    if rest and rest[0] == "validate":  # all its options go to spinnaker2_backend's parser
        args = argparse.Namespace(func=_cmd_validate, validate_args=rest[1:], command="validate")
        args.verbose = "-v" in head or "--verbose" in head
        args.quiet = "-q" in head or "--quiet" in head
    elif rest and rest[0] == "sweep":  # all its options go to snn_egru.sweep's parser
        args = argparse.Namespace(func=_cmd_sweep, sweep_args=rest[1:], command="sweep")
        args.verbose = "-v" in head or "--verbose" in head
        args.quiet = "-q" in head or "--quiet" in head
    elif rest and rest[0] == "train" and rest[1:2] and rest[1] in ("lm", "dvs"):
        args = argparse.Namespace(func=_cmd_train, workload=rest[1], train_args=rest[2:])
        args.verbose = "-v" in head or "--verbose" in head
        args.quiet = "-q" in head or "--quiet" in head
        args.command = "train"
    else:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the sub-command's parser, with its name and --help
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    args.verbose = bool(getattr(args, "verbose", False))
    args.quiet = bool(getattr(args, "quiet", False))
    # progress of this command (snn_egru's own log lines) at INFO; the libraries' details
    # (mapping stages, Lava internals) with -v; -q: warnings and errors only
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("snn_egru").setLevel(level)
    prog = f"{PROG} {args.command}"
    if args.command == "train":
        prog += f" {args.workload}"
    return run_main(lambda: args.func(args), prog=prog, verbose=args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
