"""``snn-egru``: the command line of the whole flow.

    snn-egru demo                          the main job on an embedded default
    snn-egru train lm|dvs [...]            train a workload (options: snn-egru train lm --help)
    snn-egru prune CHECKPOINT              gradual magnitude pruning with fine-tuning
    snn-egru export CHECKPOINT             the deployment artifact (torch-free .npz)
    snn-egru map ARTIFACT                  map onto a simulated SpiNNaker2 (no run)
    snn-egru run ARTIFACT --backend B      run on torch / the numpy reference / Lava / the chip
    snn-egru report RUN_DIR                print the results of a run folder again

User mistakes end with one line on stderr and exit status 2; ``--verbose`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from snn_egru.errors import UserError

log = logging.getLogger("snn_egru")

DESCRIPTION = (
    "Train event-based GRUs (EGRU) with snnTorch, prune them, and run them as Lava processes "
    "on a simulated SpiNNaker2 chip, with memory, time, energy and packet reports."
)

EPILOG = """typical flow:
  snn-egru demo                                   everything below, on a small PTB model
  snn-egru train lm --preset small --out-dir runs/lm   train on Penn Treebank
  snn-egru prune runs/lm/best.pt --sparsity 0.9 --out runs/lm
  snn-egru export runs/lm/prune/last.pt --out runs/lm/artifact.npz
  snn-egru map runs/lm/artifact.npz --weight-format event
  snn-egru run runs/lm/artifact.npz --backend spinnaker2 --tokens 141 --out runs/lm/chip
  snn-egru report runs/demo"""

RUN_BACKENDS = ("torch", "reference", "lava-float", "spinnaker2", "chip")


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are user mistakes (printed as one line).

    Only modules already imported are consulted: an exception class of a module that was
    never imported cannot have been raised (and importing torch just to print an error would
    cost seconds).
    """
    types: list[type[BaseException]] = [UserError, FileNotFoundError]
    for module, name in (
        ("snn_egru.artifact", "ArtifactError"),
        ("spinnaker2_backend.mapping", "MappingError"),
        ("snn_egru.training.common", "CheckpointError"),
        ("snn_egru.data.text", "DataNotFoundError"),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            types.append(getattr(loaded, name))
    return tuple(types)


# --------------------------------------------------------------------------- commands
def _cmd_demo(args: argparse.Namespace) -> int:
    from snn_egru.pipeline import DemoSettings, format_summary, run_demo

    settings = DemoSettings(
        out_dir=Path(args.out),
        preset=args.preset,
        train_steps=args.train_steps,
        prune_sparsity=args.sparsity,
        prune_steps=args.prune_steps,
        eval_tokens=args.eval_tokens,
        backend=args.backend,
        weight_format=args.weight_format,
        max_units_per_pe=args.max_units_per_pe,
        retrain=args.retrain,
        full_test=not args.no_full_test,
        seed=args.seed,
    )
    summary = run_demo(settings)
    print(format_summary(summary))
    print(f"\nEverything is in {settings.out_dir}/ (summary.json, summary.txt, plots).")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.workload == "lm":
        from snn_egru.training.lm import main as train_main
    else:
        from snn_egru.training.dvs import main as train_main
    return int(train_main(args.train_args) or 0)


def _cmd_prune(args: argparse.Namespace) -> int:
    from snn_egru.pipeline import stage_prune

    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        raise UserError(f"no checkpoint at {checkpoint} (train one with `snn-egru train lm`)")
    path = stage_prune(
        checkpoint,
        Path(args.out),
        sparsity=args.sparsity,
        steps=args.steps,
        seed=args.seed,
        retrain=True,
    )
    print(f"pruned checkpoint: {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from snn_egru.training.common import load_checkpoint

    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        raise UserError(f"no checkpoint at {checkpoint} (train one with `snn-egru train`)")
    sparse = False if args.dense else None
    ckpt = load_checkpoint(checkpoint)
    quant: dict = {}
    if args.quantize is not None:
        from snn_egru.quantization import QuantizationConfig

        calibration = None
        if args.calibration is not None:
            import numpy as np

            calibration = np.load(args.calibration, allow_pickle=False)
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
    if ckpt.vocabulary is not None:
        from snn_egru.export import export_language_model_checkpoint

        artifact = export_language_model_checkpoint(checkpoint, args.out, sparse=sparse, **quant)
    else:
        from snn_egru.export import export_artifact
        from snn_egru.training.dvs import load_dvs_model

        model, class_names = load_dvs_model(checkpoint)[:2]
        artifact = export_artifact(model, class_names=class_names, sparse=sparse, **quant)
        artifact.save(args.out)
    kind = "float32"
    if artifact.is_quantized:
        modes = sorted({q["product_mode"] for q in artifact.quantization() if q})
        kind = f"int8 weights, {'/'.join(modes)} products, version {artifact.format_version}"
    print(
        f"artifact: {args.out} (layers {artifact.layer_sizes}, input {artifact.input_kind}, "
        f"readout {artifact.readout_kind}, {kind})"
    )
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    from spinnaker2_backend.cli import main as backend_main

    return int(backend_main(["map", *args.map_args]))


def _cmd_validate(args: argparse.Namespace) -> int:
    from spinnaker2_backend.cli import main as backend_main

    return int(backend_main(["validate", *args.validate_args]))


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from snn_egru.artifact import load_artifact
    from snn_egru.pipeline import perplexity_from_logits, stage_run_lava

    artifact = load_artifact(args.artifact)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokens = targets = None
    if args.inputs is not None:
        inputs = np.load(args.inputs, allow_pickle=False)
    elif artifact.input_kind == "embedding":
        from snn_egru.pipeline import load_test_tokens

        tokens, _ = load_test_tokens(args.tokens)
        inputs, targets = tokens[:-1], tokens[1:]
    else:
        raise UserError("this artifact takes feature vectors: pass them with --inputs FILE.npy")

    if args.backend in ("lava-float", "spinnaker2"):
        if tokens is None:
            raise UserError("Lava runs from the CLI need token ids (an LM artifact)")
        result = stage_run_lava(
            Path(args.artifact),
            tokens,
            out,
            backend="floating_pt" if args.backend == "lava-float" else "spinnaker2",
            weight_format=args.weight_format,
            max_units_per_pe=args.max_units_per_pe,
        )
        logits = result["logits"]
        if "chip_report" in result:
            print((out / "chip" / "lava_stdout.txt").read_text())
    elif args.backend == "chip":
        from spinnaker2_backend import map_network

        mapping = map_network(
            artifact, weight_format=args.weight_format, max_units_per_pe=args.max_units_per_pe
        )
        run = mapping.run(inputs)
        report = run.report()
        (out / "chip_report.json").write_text(report.to_json())
        print(report.table())
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
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from snn_egru.pipeline import format_summary

    path = Path(args.run_dir) / "summary.json"
    if not path.exists():
        raise UserError(f"no summary.json in {args.run_dir} (run `snn-egru demo --out DIR`)")
    print(format_summary(json.loads(path.read_text())))
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snn-egru",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: train, prune, export, map, run on the simulated chip, report",
        description="Train a small EGRU language model on Penn Treebank (or reuse the one a "
        "previous run saved), prune it, export it, map it onto a simulated SpiNNaker2 chip, "
        "run a slice of the PTB test set through the Lava graph on the simulated chip and in "
        "PyTorch, and report perplexity, sparsity, memory, time, energy and packets.",
    )
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--preset", default="small", choices=["tiny", "small"], help="LM size")
    demo.add_argument("--train-steps", type=int, default=None, help="override training steps")
    demo.add_argument("--sparsity", type=float, default=0.9, help="target weight sparsity")
    demo.add_argument("--prune-steps", type=int, default=300, help="fine-tuning steps")
    demo.add_argument(
        "--eval-tokens", type=int, default=141, help="PTB test tokens run on the chip (141)"
    )
    demo.add_argument("--backend", default="spinnaker2", choices=["spinnaker2", "floating_pt"])
    demo.add_argument("--weight-format", default="csr", choices=["csr", "event", "dense"])
    demo.add_argument("--max-units-per-pe", type=int, default=None)
    demo.add_argument("--retrain", action="store_true", help="train again even if saved")
    demo.add_argument(
        "--no-full-test",
        action="store_true",
        help="skip the whole-test-split perplexity after training and after pruning",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train",
        help="train a workload: lm (PTB / WikiText-2) or dvs (DVS128 Gesture / synthetic)",
        description="Train a workload. Every option after the workload goes to its trainer: "
        "see `snn-egru train lm --help` and `snn-egru train dvs --help`.",
        add_help=True,
    )
    train.add_argument("workload", choices=["lm", "dvs"])
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="trainer options")
    train.set_defaults(func=_cmd_train)

    prune = sub.add_parser(
        "prune",
        help="gradual magnitude pruning of a trained LM, with fine-tuning",
        description="Prune every EGRU weight matrix of a language-model checkpoint to the "
        "target sparsity (cubic schedule over two thirds of the steps, then fine-tuning at the "
        "target). Writes OUT/prune/last.pt.",
    )
    prune.add_argument("checkpoint", metavar="CHECKPOINT")
    prune.add_argument("--sparsity", type=float, default=0.9)
    prune.add_argument("--steps", type=int, default=300)
    prune.add_argument("--out", default="runs/prune")
    prune.add_argument("--seed", type=int, default=0)
    prune.set_defaults(func=_cmd_prune)

    export = sub.add_parser(
        "export",
        help="write the deployment artifact of a checkpoint (torch-free .npz)",
        description="Export a trained LM or DVS checkpoint to the deployment artifact read by "
        "spinnaker2_backend and lava_procs. Sparse matrices are stored as CSR.",
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT")
    export.add_argument("--out", required=True, help="artifact file (.npz)")
    export.add_argument("--dense", action="store_true", help="store every matrix dense")
    export.add_argument(
        "--quantize",
        choices=["int8"],
        help="post-training int8 quantisation (a checkpoint trained with --quantize is "
        "always exported with the codes it was trained with)",
    )
    export.add_argument("--quant-granularity", choices=["row", "gate"], default="row")
    export.add_argument(
        "--quant-products",
        choices=["float", "int8"],
        default="float",
        help="int8: quantise inputs and events too (MAC array; needs --calibration)",
    )
    export.add_argument(
        "--calibration", metavar="INPUTS.npy", help="inputs that set the int8 input/event scales"
    )
    export.set_defaults(func=_cmd_export)

    map_ = sub.add_parser(
        "map",
        help="map an artifact onto a simulated SpiNNaker2 (mapping only)",
        description="Same as `python -m spinnaker2_backend map` (see `snn-egru map --help`).",
    )
    map_.add_argument("map_args", nargs=argparse.REMAINDER)
    map_.set_defaults(func=_cmd_map)

    validate = sub.add_parser(
        "validate",
        help="the simulated chip beside every published SpiNNaker2 measurement",
        description="Same as `python -m spinnaker2_backend validate`.",
    )
    validate.add_argument("validate_args", nargs=argparse.REMAINDER)
    validate.set_defaults(func=_cmd_validate)

    run = sub.add_parser(
        "run",
        help="run an artifact: torch, numpy reference, Lava float, Lava on the chip, or chip",
        description="Run a deployment artifact over the PTB test split (LM artifacts) or "
        "feature vectors (--inputs). Backends: torch (PyTorch rebuilt from the artifact), "
        "reference (numpy), lava-float (Lava floating_pt models), spinnaker2 (Lava graph on "
        "the simulated chip), chip (the simulated chip directly, no Lava).",
    )
    run.add_argument("artifact", metavar="ARTIFACT")
    run.add_argument("--backend", choices=RUN_BACKENDS, default="spinnaker2")
    run.add_argument("--tokens", type=int, default=141, help="PTB test tokens (LM artifacts)")
    run.add_argument("--inputs", default=None, help=".npy of token ids or feature vectors")
    run.add_argument("--out", default="runs/run", help="output folder")
    run.add_argument("--weight-format", default="csr", choices=["csr", "event", "dense"])
    run.add_argument("--max-units-per-pe", type=int, default=None)
    run.set_defaults(func=_cmd_run)

    report = sub.add_parser(
        "report", help="print the results of a run folder", description="Print RUN_DIR's results."
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(func=_cmd_report)
    return parser


def _forwarded(argv: list[str]) -> tuple[str, list[str]] | None:
    """``map ...`` and ``train lm|dvs ...`` hand all their options to another parser."""
    rest = [a for a in argv if a not in ("-v", "--verbose", "-q", "--quiet")]
    if rest[:1] == ["map"]:
        return "map", rest[1:]
    if rest[:1] == ["validate"]:  # issue 14: the fidelity table of spinnaker2_backend
        return "validate", rest[1:]
    if rest[:1] == ["train"] and rest[1:2] and rest[1] in ("lm", "dvs"):
        return rest[1], rest[2:]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snn-egru`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    forwarded = _forwarded(argv)
    if forwarded is not None:
        target, rest = forwarded
        if target == "map":
            args = argparse.Namespace(func=_cmd_map, map_args=rest)
        elif target == "validate":
            args = argparse.Namespace(func=_cmd_validate, validate_args=rest)
        else:
            args = argparse.Namespace(func=_cmd_train, workload=target, train_args=rest)
        args.verbose = "-v" in argv or "--verbose" in argv
        args.quiet = "-q" in argv or "--quiet" in argv
    else:
        args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose or not isinstance(err, _user_error_types()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
