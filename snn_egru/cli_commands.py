"""What each ``snn-egru`` sub-command does, after :mod:`snn_egru.cli` parsed its options.

One function per sub-command (``cmd_demo``, ``cmd_prune``, ``cmd_export``, ``cmd_map``,
``cmd_run``, ``cmd_report``), each checking its files before any work and raising
:class:`~snn_egru.errors.UserError` (one line, exit status 2) for a user's mistake. The heavy
libraries (torch, Lava, the backend) are imported inside the functions, so that parsing and
``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from snn_egru.cliargs import atomic_path, check_finite, check_output, load_inputs, load_npy
from snn_egru.errors import UserError

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

#: The demo's decoder per preset: adaptive-softmax cutoffs, or ``()`` (the full softmax).
DEMO_ADAPTIVE_SOFTMAX: dict[str, tuple[int, ...]] = {"tiny": (), "small": (2000, 6000)}

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
    check_output(p, flag, folder=True)
    return p


def describe_file(path: Path) -> str | None:
    """What a file that is not a checkpoint holds (``None``: it may be one), in words."""
    import zipfile

    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy array"
    if not head.startswith(b"PK"):
        if head[:1] == b"\x80":  # a pickle: torch's old format, never written by this project
            return None
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return f"{size:,} bytes of unknown binary data"
        return "a text file"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return f"a truncated or corrupted archive ({size:,} bytes)"
    if any(n.endswith("data.pkl") for n in names):
        return None  # a torch checkpoint archive
    if any(n.endswith(".npy") for n in names):
        if any(n.startswith("meta_json") for n in names):
            return "a deployment artifact (.npz of `snn-egru export`)"
        return "a numpy .npz archive"
    return "a zip archive"


def _load_lm_or_dvs_checkpoint(path: Path):
    """A checkpoint of ``snn-egru train`` / ``prune``; anything else is named for what it is."""
    expected = "expected a .pt checkpoint of `snn-egru train` or `snn-egru prune`"
    what = describe_file(path)
    if what is not None:
        raise UserError(f"{path} is {what}, not a checkpoint: {expected}")
    from snn_egru.training.common import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        if "not a readable checkpoint" not in str(err):
            raise
        size = path.stat().st_size
        raise UserError(
            f"{path} cannot be read as a checkpoint ({size:,} bytes; truncated or corrupted: "
            f"{str(err).split(': ', 1)[-1] or type(err).__name__}); {expected}"
        ) from None


# --------------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
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
        adaptive_softmax=(
            DEMO_ADAPTIVE_SOFTMAX[args.preset]
            if args.adaptive_softmax is None
            else args.adaptive_softmax
        ),
    )
    summary = run_demo(settings)
    print(format_summary(summary))
    print(f"\nEverything is in {settings.out_dir}/ (summary.json, summary.txt, plots).")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
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


def cmd_export(args: argparse.Namespace) -> int:
    checkpoint = _existing_file(args.checkpoint, "checkpoint", "train one with `snn-egru train`")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists: pass --overwrite to replace it, or another --out")
    check_output(out, "--out")
    sparse = False if args.dense else None
    calibration = None
    if args.calibration is not None:
        calibration_path = _existing_file(
            args.calibration, "calibration inputs", "a .npy of token ids or feature vectors"
        )
    ckpt = _load_lm_or_dvs_checkpoint(checkpoint)
    quant: dict = {}
    if args.quantize is not None:
        from snn_egru.quantization import QuantizationConfig

        if args.calibration is not None:
            calibration = _calibration_inputs(calibration_path, lm=ckpt.vocabulary is not None)
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


def _calibration_inputs(path: Path, *, lm: bool):
    """``--calibration``: token ids (T,) for a language model, finite features otherwise."""
    import numpy as np

    values = load_npy(path, "--calibration", hint="a .npy of token ids or feature vectors")
    if lm and (values.ndim != 1 or not np.issubdtype(values.dtype, np.integer)):
        raise UserError(
            f"--calibration {path} holds {values.dtype} values of shape {values.shape}; a "
            "language-model checkpoint is calibrated with token ids: a 1-D integer array "
            "(numpy.save(path, ids.astype('int64')))"
        )
    if not lm and (values.ndim < 2 or not np.issubdtype(values.dtype, np.floating)):
        raise UserError(
            f"--calibration {path} holds {values.dtype} values of shape {values.shape}; this "
            "checkpoint is calibrated with feature vectors: a floating-point array (T, I)"
        )
    if values.size == 0:
        raise UserError(f"--calibration {path} holds no inputs")
    check_finite(values, f"--calibration {path}")
    return values


def cmd_map(args: argparse.Namespace) -> int:
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


@contextlib.contextmanager
def _no_partial_file(path: Path):
    """Write ``path`` in the block (the block writes the path yielded), whole or not at all:
    a failed write (a full disk) leaves the earlier file as it was and no partial file that
    a re-run would take for a result (:func:`snn_egru.cliargs.atomic_path`)."""
    with atomic_path(path) as tmp:
        yield tmp


#: What ``snn-egru run`` writes into its --out folder (any backend).
RUN_OUTPUTS = (
    "logits.npy",
    "perplexity.json",
    "chip_report.json",
    "profile.png",
    "packets.png",
    "outputs.npz",
    "lava_run.json",
    "lava_stdout.txt",
    "inputs.npy",
)


def _refuse_replacing_run(out: Path, *, overwrite: bool) -> None:
    """A run (or a demo's chip / Lava folder) in ``out`` is replaced only with --overwrite."""
    present = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if present and not overwrite:
        shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
        raise UserError(
            f"--out {out} holds the results of an earlier run ({shown}): pass --overwrite to "
            "replace them, or give another --out"
        )


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from snn_egru.artifact import load_artifact
    from snn_egru.pipeline import perplexity_from_logits
    from spinnaker2_backend.options import mapping_argv, mapping_kwargs

    path = _existing_file(args.artifact, "artifact", "create one with `snn-egru export`")
    out = _out_folder(args.out)
    _check_backend_flags(args)
    _refuse_replacing_run(out, overwrite=getattr(args, "overwrite", False))
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
        with _no_partial_file(out / "chip_report.json") as chip_json:
            chip_json.write_text(report.to_json())
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
        with _no_partial_file(out / "logits.npy") as path:
            np.save(path, logits)
    if targets is not None and logits is not None:
        ppl = perplexity_from_logits(logits, targets)
        with _no_partial_file(out / "perplexity.json") as path:
            path.write_text(
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


def cmd_report(args: argparse.Namespace) -> int:
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
