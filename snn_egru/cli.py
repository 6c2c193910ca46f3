"""``snn-egru``: the command line of the whole flow.

    snn-egru demo                          the main job on an embedded default
    snn-egru train lm|dvs [...]            train a workload (options: snn-egru train lm --help)
    snn-egru prune CHECKPOINT              gradual magnitude pruning with fine-tuning
    snn-egru export CHECKPOINT             the deployment artifact (torch-free .npz)
    snn-egru map ARTIFACT                  map onto a simulated SpiNNaker2 (no run)
    snn-egru run ARTIFACT --backend B      run on torch / the numpy reference / Lava / the chip
    snn-egru report RUN_DIR                print the results of a run folder again

Every option is checked before any work starts. User mistakes end with one line on stderr
and exit status 2; ``--verbose`` shows the traceback. No command replaces a trained model
or an artifact unless asked to (``--overwrite``, ``--resume``, ``--retrain``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from snn_egru.cliargs import (
    ArgumentParser,
    add_hidden_alias,
    choice_with_aliases,
    float_in,
    int_at_least,
    new_file,
    run_main,
)
from snn_egru.errors import UserError

log = logging.getLogger("snn_egru")

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

#: Backends of ``snn-egru run`` (the Lava ones carry Lava's tags, as everywhere else).
RUN_BACKENDS = ("torch", "reference", "floating_pt", "spinnaker2", "chip")
LAVA_BACKENDS = ("floating_pt", "spinnaker2")
#: Old spellings of backends, still accepted.
BACKEND_ALIASES = {"lava-float": "floating_pt", "lava_float": "floating_pt"}

#: Fine-tuning steps of the demo's pruning per preset (tiny: a check in seconds).
DEMO_PRUNE_STEPS = {"tiny": 30, "small": 300}
#: Training steps of the demo per preset (``None``: the preset's). The small recipe reaches a
#: PTB test perplexity well under 180 in 800 steps (the quality comparison trains it for 1000),
#: which keeps the whole demo within five minutes on two cores.
DEMO_TRAIN_STEPS: dict[str, int | None] = {"tiny": None, "small": 800}

#: PTB test tokens run by default (two 70-token sequences and the first target).
DEFAULT_TOKENS = 141


# --------------------------------------------------------------------------- helpers
def _existing_file(path: str, what: str, hint: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file ({hint})")
    if not p.exists():
        raise UserError(f"no {what} at {path} ({hint})")
    return p


def _out_folder(path: str, flag: str = "--out") -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {path} is a file; give a folder")
    return p


def _load_lm_or_dvs_checkpoint(path: Path):
    from snn_egru.training.common import load_checkpoint

    return load_checkpoint(path)


# --------------------------------------------------------------------------- commands
def _cmd_demo(args: argparse.Namespace) -> int:
    from snn_egru.pipeline import DemoSettings, run_demo
    from snn_egru.summary import format_summary

    mapping = {
        "pes_per_layer": args.pes_per_layer,
        "record_steps": args.record_steps or None,
        "input_source": None if args.input_source == "dram" else args.input_source,
        "chips": None if args.chips == 1 else args.chips,
        "clock_mhz": None if args.clock_mhz == 150 else args.clock_mhz,
    }
    if args.backend == "spinnaker2":  # the Lava run takes the mapping flags too
        from spinnaker2_backend.options import NOT_ON_LAVA, given_mapping_flags

        missing = given_mapping_flags(args, NOT_ON_LAVA)
        if missing:
            raise UserError(
                f"{missing[0]} is not available on the Lava chip models that run the demo: "
                "drop it, use --max-units-per-pe N, or --backend floating_pt (mapping only)"
            )
    settings = DemoSettings(
        out_dir=_out_folder(args.out),
        preset=args.preset,
        train_steps=args.train_steps or DEMO_TRAIN_STEPS[args.preset],
        prune_sparsity=args.sparsity,
        prune_steps=args.prune_steps or DEMO_PRUNE_STEPS[args.preset],
        eval_tokens=args.eval_tokens,
        backend=args.backend,
        weight_format=args.weight_format,
        max_units_per_pe=args.max_units_per_pe,
        mapping={k: v for k, v in mapping.items() if v is not None},
        retrain=args.retrain,
        reprune=args.reprune,
        full_test=not args.no_full_test,
        seed=args.seed,
        show_progress=not (args.no_progress or args.quiet),
    )
    summary = run_demo(settings)
    print(format_summary(summary))
    print(f"\nEverything is in {settings.out_dir}/ (summary.json, summary.txt, plots).")
    return 0


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


def _cmd_prune(args: argparse.Namespace) -> int:
    from snn_egru.pipeline import stage_prune

    checkpoint = _existing_file(args.checkpoint, "checkpoint", "train one with `snn-egru train lm`")
    out = _out_folder(args.out)
    target = out / "prune"
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file; give another --out")
    if checkpoint.resolve().parent == target.resolve():
        raise UserError(f"{checkpoint} lies in {target}, which pruning rewrites: use another --out")
    existing = [target / n for n in ("last.pt", "best.pt") if (target / n).exists()]
    if existing and not args.overwrite:
        raise UserError(
            f"{existing[0]} holds a pruned model already: pass --overwrite to replace it, or "
            "--out NEW_DIR"
        )
    ckpt = _load_lm_or_dvs_checkpoint(checkpoint)
    if ckpt.vocabulary is None:
        raise UserError(
            f"{checkpoint} is not a language-model checkpoint; `snn-egru prune` prunes "
            "language models"
        )
    path = stage_prune(
        checkpoint,
        out,
        sparsity=args.sparsity,
        steps=args.steps,
        seed=args.seed,
        retrain=True,
        full_test=not args.no_full_test,
        show_progress=not (args.no_progress or args.quiet),
    )
    print(f"pruned checkpoint: {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    checkpoint = _existing_file(args.checkpoint, "checkpoint", "train one with `snn-egru train`")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or another --out")
    sparse = False if args.dense else None
    calibration = None
    if args.calibration is not None:
        calibration_path = _existing_file(
            args.calibration, "calibration inputs", "a .npy of token ids or feature vectors"
        )
    ckpt = _load_lm_or_dvs_checkpoint(checkpoint)
    quant: dict = {}
    if args.quantize is not None:
        import numpy as np

        from snn_egru.quantization import QuantizationConfig

        if args.calibration is not None:
            calibration = np.load(calibration_path, allow_pickle=False)
        elif args.quant_products == "int8" and not (ckpt.train_config or {}).get("fields", {}).get(
            "quantize"
        ):
            raise UserError(
                "--quant-products int8 quantises inputs and events too: give --calibration "
                "INPUTS.npy (token ids or feature vectors) to set their scales, or export a "
                "checkpoint trained with `--quantize int8 --quant-products int8`"
            )
        quant = {
            "quantize": QuantizationConfig(
                granularity=args.quant_granularity,
                products=args.quant_products,
                activation_scales="calibrated",
            ),
            "calibration_inputs": calibration,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    if ckpt.vocabulary is not None:
        from snn_egru.export import export_language_model_checkpoint

        artifact = export_language_model_checkpoint(checkpoint, out, sparse=sparse, **quant)
    elif ckpt.class_names is not None:
        from snn_egru.export import export_artifact
        from snn_egru.training.dvs import load_dvs_model

        model, class_names = load_dvs_model(checkpoint)[:2]
        artifact = export_artifact(model, class_names=class_names, sparse=sparse, **quant)
        artifact.save(out)
    else:
        raise UserError(
            f"{checkpoint} stores neither a vocabulary nor class names: not a checkpoint of "
            "`snn-egru train lm|dvs`"
        )
    kind = "float32"
    if artifact.is_quantized:
        modes = sorted({q["product_mode"] for q in artifact.quantization() if q})
        kind = f"int8 weights, {'/'.join(modes)} products, version {artifact.format_version}"
    print(
        f"artifact: {out} (layers {artifact.layer_sizes}, input {artifact.input_kind}, "
        f"readout {artifact.readout_kind}, {kind})"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from spinnaker2_backend.cli import main as backend_main

    return int(backend_main(["validate", *args.validate_args]))


def _cmd_map(args: argparse.Namespace) -> int:
    from spinnaker2_backend.mapping import map_network
    from spinnaker2_backend.options import (
        check_map_arguments,
        check_network_arguments,
        load_network,
        mapping_kwargs,
        print_mapping,
    )

    check_network_arguments(args)
    check_map_arguments(args)
    if args.artifact:
        _existing_file(args.artifact, "artifact", "create one with `snn-egru export`")
    print_mapping(map_network(load_network(args), **mapping_kwargs(args)), args)
    return 0


def load_inputs(path: str, artifact) -> object:
    """The ``--inputs`` array, checked against what ``artifact`` takes."""
    import numpy as np

    p = _existing_file(path, "inputs file", "a .npy of token ids (T,) or feature vectors (T, I)")
    if p.suffix != ".npy":
        raise UserError(f"--inputs takes a .npy file (numpy.save), got {p.name}")
    try:
        inputs = np.load(p, allow_pickle=False)
    except Exception as err:
        raise UserError(f"--inputs {p} is not a readable .npy array ({err})") from None
    try:
        artifact.layer_inputs(inputs[:1] if inputs.ndim else inputs)
        artifact.layer_inputs(inputs)
    except ValueError as err:
        raise UserError(f"--inputs {p}: {err}") from None
    if inputs.shape[0] < 1:
        raise UserError(f"--inputs {p} holds no inputs")
    return inputs


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from snn_egru.artifact import load_artifact
    from snn_egru.pipeline import perplexity_from_logits
    from spinnaker2_backend.options import mapping_argv, mapping_kwargs

    path = _existing_file(args.artifact, "artifact", "create one with `snn-egru export`")
    out = _out_folder(args.out)
    _check_backend_flags(args)
    artifact = load_artifact(path)
    tokens = targets = None
    if args.inputs is not None:
        if args.tokens is not None:
            raise UserError(
                "--tokens counts PTB test tokens; with --inputs every input runs: give one"
            )
        inputs = load_inputs(args.inputs, artifact)
    elif artifact.input_kind == "embedding":
        from snn_egru.pipeline import load_test_tokens

        wanted = args.tokens if args.tokens is not None else DEFAULT_TOKENS
        tokens, _ = load_test_tokens(wanted)
        if len(tokens) < wanted:
            raise UserError(
                f"--tokens {wanted} is more than the PTB test split has ({len(tokens)})"
            )
        try:
            artifact.layer_inputs(tokens)
        except ValueError as err:
            raise UserError(
                f"{path} cannot read PTB token ids ({err}): pass its inputs with --inputs"
            ) from None
        inputs, targets = tokens[:-1], tokens[1:]
    else:
        raise UserError(
            f"{path} takes feature vectors ({artifact.input_size} per step), not PTB tokens: "
            "pass them with --inputs FILE.npy (an array (T, "
            f"{artifact.input_size}) of floats)"
        )
    out.mkdir(parents=True, exist_ok=True)

    if args.backend in LAVA_BACKENDS:
        from snn_egru.pipeline import stage_run_lava

        result = stage_run_lava(
            path,
            tokens,
            out,
            backend=args.backend,
            weight_format=args.weight_format,
            max_units_per_pe=args.max_units_per_pe,
            inputs=None if tokens is not None else inputs,
            extra_args=mapping_argv(args, partition=False),
            folder=out,
            echo=print,
        )
        logits = result["logits"]
    elif args.backend == "chip":
        from spinnaker2_backend.mapping import map_network
        from spinnaker2_backend.simulator import run_mapping

        mapping = map_network(artifact, **mapping_kwargs(args))
        run = run_mapping(mapping, inputs)
        report = run.report()
        (out / "chip_report.json").write_text(report.to_json())
        print(report.table())
        from spinnaker2_backend.plots_run import save_run_plots

        save_run_plots(run, out)
        logits = run.logits
    elif args.backend == "reference":
        logits = artifact.run_reference(inputs).logits
    else:  # torch
        from snn_egru.rebuild import torch_model_from_artifact

        logits = torch_model_from_artifact(artifact).logits_numpy(inputs)
    if logits is not None:
        np.save(out / "logits.npy", logits)
    if targets is not None and logits is not None:
        ppl = perplexity_from_logits(logits, targets)
        (out / "perplexity.json").write_text(
            json.dumps({"backend": args.backend, "tokens": len(targets), "perplexity": ppl})
        )
        print(f"{args.backend}: perplexity {ppl:.2f} over {len(targets)} next-token predictions")
    elif logits is not None:
        print(f"{args.backend}: logits {tuple(logits.shape)} written to {out / 'logits.npy'}")
    else:
        print(f"{args.backend}: ran {len(inputs)} steps (the artifact has no readout); see {out}")
    return 0


def _check_backend_flags(args: argparse.Namespace) -> None:
    """Refuse mapping flags that the chosen backend would ignore (before any work)."""
    from spinnaker2_backend.options import NOT_ON_LAVA, given_mapping_flags

    if args.backend not in ("chip", "spinnaker2"):
        given = given_mapping_flags(args)
        if given:
            raise UserError(
                f"{given[0]} applies to the chip backends (--backend chip or spinnaker2), "
                f"not to --backend {args.backend}: drop it or choose a chip backend"
            )
    elif args.backend == "spinnaker2":
        missing = given_mapping_flags(args, NOT_ON_LAVA)
        if missing:
            raise UserError(
                f"{missing[0]} is not available on the Lava chip models: use --backend chip "
                "(the simulated chip without Lava), or --max-units-per-pe N"
            )


def _cmd_report(args: argparse.Namespace) -> int:
    from snn_egru.summary import format_summary

    folder = Path(args.run_dir)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "no such folder"
        raise UserError(f"no run folder at {args.run_dir} ({what}; run `snn-egru demo --out DIR`)")
    path = folder / "summary.json"
    if not path.exists():
        raise UserError(f"no summary.json in {args.run_dir} (run `snn-egru demo --out DIR`)")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}): run the demo again") from None
    if not isinstance(summary, dict) or "perplexity" not in summary:
        if isinstance(summary, dict) and "best_valid_perplexity" in summary:
            raise UserError(
                f"{path} is the summary of a training run, not of `snn-egru demo`: report "
                "reads a demo's run folder (the training numbers are in that file)"
            )
        raise UserError(f"{path} is not the summary of `snn-egru demo`")
    try:
        text = format_summary(summary)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} is incomplete ({err!r} missing or malformed)") from None
    print(text)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    from spinnaker2_backend.options import (
        add_map_output_arguments,
        add_mapping_arguments,
        add_network_arguments,
    )

    parser = ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common()]

    def add(name: str, **kw) -> ArgumentParser:
        return sub.add_parser(name, parents=common, **kw)

    demo = add(
        "demo",
        help="the main job: train, prune, export, map, run on the simulated chip, report",
        description="Train a small EGRU language model on Penn Treebank, prune it, export "
        "it, map it onto a simulated SpiNNaker2 chip, run a slice of the PTB test set "
        "through the Lava graph on the simulated chip and in PyTorch, and report perplexity, "
        "sparsity, memory, time, energy and packets. A re-run into the same --out reuses "
        "its checkpoints only when they were made with the same settings (preset, steps, "
        "sparsity, seed); other settings are refused unless --retrain (or --reprune for pruning).",
        epilog="examples:\n  snn-egru demo --preset tiny --no-full-test --out runs/quick\n"
        "  snn-egru demo --backend floating_pt --weight-format event",
    )
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder")
    demo.add_argument(
        "--preset",
        default="small",
        choices=["tiny", "small"],
        help="model and training recipe: tiny (seconds, for checks) or small (minutes)",
    )
    demo.add_argument(
        "--train-steps",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="training steps (default: 800 for small, the preset's for tiny)",
    )
    demo.add_argument(
        "--sparsity",
        type=float_in(0.0, 1.0, high_open=True),
        default=0.9,
        help="target weight sparsity of pruning, 0 <= s < 1",
    )
    demo.add_argument(
        "--prune-steps",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="fine-tuning steps of pruning (default: 30 for tiny, 300 for small)",
    )
    demo.add_argument(
        "--eval-tokens",
        type=int_at_least(2),
        default=DEFAULT_TOKENS,
        metavar="N",
        help="PTB test tokens run on the chip and in PyTorch (N-1 predictions)",
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
    demo.add_argument(
        "--no-full-test",
        action="store_true",
        help="skip the whole-test-split perplexity after training and after pruning (fast)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    _add_progress(demo)
    demo.set_defaults(func=_cmd_demo)

    train = add(
        "train",
        help="train a workload: lm (PTB / WikiText-2) or dvs (DVS128 Gesture / synthetic)",
        description="Train a workload. Every option after the workload goes to its trainer: "
        "see `snn-egru train lm --help` and `snn-egru train dvs --help`.",
    )
    train.add_argument("workload", choices=["lm", "dvs"], help="the workload")
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="trainer options")
    train.set_defaults(func=_cmd_train)

    prune = add(
        "prune",
        help="gradual magnitude pruning of a trained LM, with fine-tuning",
        description="Prune every EGRU weight matrix of a language-model checkpoint to the "
        "target sparsity (cubic schedule over two thirds of the steps, then fine-tuning at the "
        "target). Writes OUT/prune/last.pt (the model at the target sparsity); an existing one "
        "is replaced only with --overwrite.",
        epilog="example:\n  snn-egru prune runs/lm/best.pt --sparsity 0.9 --out runs/lm",
    )
    prune.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint of `train lm`")
    prune.add_argument(
        "--sparsity",
        type=float_in(0.0, 1.0, high_open=True),
        default=0.9,
        help="target weight sparsity, 0 <= s < 1",
    )
    prune.add_argument(
        "--steps", type=int_at_least(1), default=300, metavar="N", help="fine-tuning steps"
    )
    prune.add_argument("--out", default="runs/prune", metavar="DIR", help="writes DIR/prune/")
    prune.add_argument("--seed", type=int, default=0, help="random seed")
    prune.add_argument(
        "--no-full-test", action="store_true", help="skip the whole-test-split perplexity"
    )
    prune.add_argument(
        "--overwrite", action="store_true", help="replace an existing DIR/prune/ model"
    )
    _add_progress(prune)
    prune.set_defaults(func=_cmd_prune)

    export = add(
        "export",
        help="write the deployment artifact of a checkpoint (torch-free .npz)",
        description="Export a trained LM or DVS checkpoint to the deployment artifact read by "
        "spinnaker2_backend and lava_procs. Sparse matrices are stored as CSR. An existing "
        "file is replaced only with --overwrite.",
        epilog="example:\n  snn-egru export runs/lm/prune/last.pt --out runs/lm/artifact.npz",
    )
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
    export.set_defaults(func=_cmd_export)

    map_ = add(
        "map",
        help="map an artifact onto a simulated SpiNNaker2 (mapping only)",
        description="Map an EGRU network onto SpiNNaker2 PEs without running it: partition, "
        "place, route, lay out every PE's memory, check that it fits, print the report "
        "(as `python -m spinnaker2_backend map`).",
        epilog="examples:\n  snn-egru map runs/demo/artifact.npz --weight-format event\n"
        "  snn-egru map --synthetic paper-lm --plot memory.png",
    )
    add_network_arguments(map_)
    add_mapping_arguments(map_)
    add_map_output_arguments(map_)
    map_.set_defaults(func=_cmd_map)

    run = add(
        "run",
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
    )
    run.add_argument("artifact", metavar="ARTIFACT", help="deployment artifact (.npz)")
    run.add_argument(
        "--backend",
        type=choice_with_aliases(BACKEND_ALIASES),
        choices=RUN_BACKENDS,
        default="spinnaker2",
        help="where to run: torch, reference, floating_pt, spinnaker2, chip",
    )
    run.add_argument(
        "--tokens",
        type=int_at_least(2),
        default=None,
        metavar="N",
        help=f"PTB test tokens, LM artifacts (N-1 predictions; default {DEFAULT_TOKENS})",
    )
    run.add_argument(
        "--inputs",
        default=None,
        metavar="FILE.npy",
        help="inputs instead of PTB: token ids (T,) or feature vectors (T, I) as the "
        "artifact takes",
    )
    run.add_argument("--out", default="runs/run", metavar="DIR", help="output folder")
    add_mapping_arguments(run)
    run.set_defaults(func=_cmd_run)

    validate = add(
        "validate",
        help="the simulated chip beside every published SpiNNaker2 measurement",
        description="Same as `python -m spinnaker2_backend validate`.",
    )
    validate.add_argument("validate_args", nargs=argparse.REMAINDER, help="its options")
    validate.set_defaults(func=_cmd_validate)

    report = add(
        "report",
        help="print the results of a run folder",
        description="Print the results section of a run folder of `snn-egru demo` again.",
        epilog="example:\n  snn-egru report runs/demo | head -20",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a demo")
    report.set_defaults(func=_cmd_report)
    for p in (demo, prune):
        add_hidden_alias(p, "--out-dir", dest="out")
    return parser


_GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snn-egru`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `train lm|dvs ...` hands all its options to the trainer's parser
    head = [a for a in argv if a in _GLOBAL_FLAGS]
    rest = argv[len(head) :] if argv[: len(head)] == head else None
    if rest and rest[0] == "validate":  # all its options go to spinnaker2_backend's parser
        args = argparse.Namespace(func=_cmd_validate, validate_args=rest[1:], command="validate")
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
