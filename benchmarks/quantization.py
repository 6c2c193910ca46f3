"""Benchmark: float32 vs int8 post-training quantisation (PTQ) vs int8 QAT, same seed.

Two workloads, each against its float32 baseline measured in the same run:

* **LM** (``snn-egru demo``'s model): the ``small`` PTB preset trained as the demo trains it,
  pruned to 90 % weight sparsity (gradual, 300 steps), then: PTQ variants (no training:
  int8 weights; int8 weights + int8 inputs/events, the MAC-array mode; + int8 state levels),
  a float32 fine-tune of ``--qat-steps`` steps (the control: QAT rows are also fine-tunes),
  and QAT fine-tunes of the same length from the pruned checkpoint (``init_from``; the
  90 % zero pattern is kept). Metric: test perplexity on the whole PTB test split
  (10 streams, state carried, as the preset's final test).
* **DVS** (``small`` preset, synthetic gestures): float32 training, then the same PTQ
  variants and QAT fine-tunes (``--dvs-qat-epochs``). Metric: test accuracy.

Each row also checks the deployed arithmetic: the int8 artifact exported from the model
(``export_artifact``) is run with the numpy reference (``quantized_egru_step``) on the first
``--check-tokens`` test tokens (LM) / ``--check-samples`` test samples (DVS), against the torch
model's evaluation forward: max |logit difference| and agreement of the arg-max.

    python benchmarks/quantization.py --json runs/quant/results.json     # minutes to an hour
    python benchmarks/quantization.py --smoke                            # tiny, seconds

Trainings are kept in ``--out`` and reused when the script runs again (nothing is
overwritten); one training runs at a time, on ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session
except ImportError:  # imported as benchmarks.quantization
    from benchmarks._timing import Session

log = logging.getLogger("benchmarks.quantization")

#: (name, QuantizationConfig fields) of the PTQ rows and the QAT rows.
PTQ_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("PTQ int8 weights", {}),
    ("PTQ int8 weights (gate scales)", {"granularity": "gate"}),
    ("PTQ int8 weights + int8 events", {"products": "int8", "activation_scales": "calibrated"}),
    ("PTQ int8 weights + int8 state (uniform)", {"state": "uniform"}),
    ("PTQ int8 weights + int8 state (threshold)", {"state": "threshold"}),
]
QAT_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("QAT int8 weights", {}),
    ("QAT int8 weights + int8 events", {"products": "int8", "activation_scales": "learned"}),
    ("QAT int8 weights + int8 state (uniform)", {"state": "uniform"}),
]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


# ------------------------------------------------------------------------------ LM
def _lm_rows(args: argparse.Namespace) -> dict[str, Any]:
    from snn_egru.data.text import batchify, load_corpus
    from snn_egru.export import export_artifact
    from snn_egru.pipeline import stage_prune, stage_train
    from snn_egru.pruning import PruningConfig, matrix_sparsity
    from snn_egru.quantization import QuantizationConfig, calibrate, prepare_qat
    from snn_egru.training.common import load_checkpoint
    from snn_egru.training.lm import (
        LMTrainConfig,
        evaluate_perplexity,
        load_language_model,
        train_language_model,
    )

    out = Path(args.out) / "lm"
    preset = "tiny" if args.smoke else "small"
    train_steps = 10 if args.smoke else None
    prune_steps = 6 if args.smoke else 300
    started = time.perf_counter()
    trained = stage_train(out, preset=preset, steps=train_steps, seed=args.seed, full_test=False)
    pruned = stage_prune(
        trained, out, sparsity=0.9, steps=prune_steps, seed=args.seed, full_test=False
    )
    base_time = time.perf_counter() - started
    corpus = load_corpus("ptb")
    source = load_checkpoint(pruned)
    tc0 = source.training_config(LMTrainConfig)
    test_tokens = corpus.test[: args.max_test_tokens] if args.max_test_tokens else corpus.test
    calib = batchify(corpus.train, tc0.batch_size)[: 4 * tc0.bptt]

    def test_ppl(model: torch.nn.Module) -> float:
        res = evaluate_perplexity(
            model, test_tokens, batch_size=tc0.test_batch_size, bptt=tc0.bptt, show_progress=False
        )
        return res.perplexity

    def check(model: torch.nn.Module) -> dict[str, Any]:
        """Artifact (numpy reference) vs torch evaluation forward on one token stream."""
        model.eval()
        artifact = export_artifact(model, vocabulary=corpus.vocabulary)
        tokens = corpus.test[: args.check_tokens].numpy()
        with torch.no_grad():
            torch_logits = model(torch.from_numpy(tokens)[:, None]).logits[:, 0].numpy()
        ref = artifact.run_reference(tokens).logits
        return {
            "artifact_version": artifact.format_version,
            "max_abs_logit_diff": float(np.abs(ref - torch_logits).max()),
            "argmax_agreement": float((ref.argmax(-1) == torch_logits.argmax(-1)).mean()),
        }

    rows: list[dict[str, Any]] = []

    def add(name: str, model: torch.nn.Module, *, train_s: float | None = None) -> None:
        t = time.perf_counter()
        ppl = test_ppl(model)
        row = {"workload": "LM", "model": name, "test_perplexity": ppl, "train_s": train_s}
        if getattr(model.rnn, "quantizer", None) is not None:
            row.update(check(model))
        row["eval_s"] = time.perf_counter() - t
        rows.append(row)
        log.info("LM %-42s test perplexity %.2f", name, ppl)

    float_model, _, _ = load_language_model(pruned)
    sparsity = [matrix_sparsity(getattr(float_model.rnn, f"weight_hh_l{k}")) for k in range(1)]
    add("float32 (demo model, 90 % pruned)", float_model, train_s=base_time)
    for name, fields in PTQ_ROWS:
        model, _, _ = load_language_model(pruned)
        prepare_qat(model, QuantizationConfig(**fields))
        calibrate(model, lambda m: m(calib))
        add(name, model)

    def finetune(name: str, quantize: QuantizationConfig | None) -> None:
        folder = out / f"ft_{_slug(name)}"
        tc = replace(
            tc0,
            max_steps=args.qat_steps,
            schedule_steps=args.qat_steps,
            warmup_steps=0,
            hold_steps=0,
            lr=tc0.lr * 0.5,
            eval_every=0,
            final_test=False,
            init_from=str(pruned),
            pruning=PruningConfig(target_sparsity=0.9, schedule="one_shot", start_step=0),
            quantize=quantize,
            seed=args.seed,
        )
        t = time.perf_counter()
        if not (folder / "last.pt").exists():
            train_language_model(
                source.model_config(float_model.config.__class__),
                tc,
                data=corpus,
                out_dir=folder,
                show_progress=False,
            )
        model, _, _ = load_language_model(folder / "last.pt")
        add(name, model, train_s=time.perf_counter() - t)

    finetune(f"float32 fine-tune ({args.qat_steps} steps, control)", None)
    for name, fields in QAT_ROWS:
        finetune(f"{name} ({args.qat_steps} steps)", QuantizationConfig(**fields))
    return {
        "rows": rows,
        "settings": {
            "preset": preset,
            "checkpoint": str(pruned),
            "weight_sparsity_hh": sparsity,
            "test_tokens": int(test_tokens.numel()),
            "test_batch_size": tc0.test_batch_size,
            "qat_steps": args.qat_steps,
        },
    }


# ------------------------------------------------------------------------------ DVS
def _dvs_rows(args: argparse.Namespace) -> dict[str, Any]:
    from snn_egru.export import export_artifact
    from snn_egru.models.dvs import dvs_preset
    from snn_egru.quantization import QuantizationConfig, calibrate, prepare_qat
    from snn_egru.training import dvs
    from snn_egru.training.dvs_eval import time_major

    out = Path(args.out) / "dvs"
    preset = "tiny" if args.smoke else "small"
    tc0 = dvs.DVSTrainConfig(
        epochs=1 if args.smoke else args.dvs_epochs,
        seed=args.seed,
        num_threads=args.threads,
        synthetic_train_samples=16 if args.smoke else 220,
        synthetic_test_samples=8 if args.smoke else 110,
        num_frames=12 if args.smoke else 68,
        batch_size=4 if args.smoke else 16,
    )
    t = time.perf_counter()
    data = dvs.dvs_datasets(tc0)
    train_set, test_set = data
    data_s = time.perf_counter() - t
    config = dvs_preset(preset)
    base = out / "float"
    t = time.perf_counter()
    if not (base / "best.pt").exists():
        dvs.train_dvs(config, tc0, dataset=data, out_dir=base, show_progress=False)
    base_time = time.perf_counter() - t
    samples = [train_set[i] for i in range(tc0.batch_size)]
    calib = time_major(torch.utils.data.default_collate(samples)[0])
    rows: list[dict[str, Any]] = []

    def add(name: str, model: torch.nn.Module, *, train_s: float | None = None) -> None:
        t = time.perf_counter()
        res = dvs.evaluate_dvs(model, test_set, batch_size=tc0.eval_batch_size)
        row = {"workload": "DVS", "model": name, "test_accuracy": res.accuracy, "train_s": train_s}
        if getattr(model.rnn, "quantizer", None) is not None:
            artifact = export_artifact(model)
            cmp = dvs.compare_with_artifact(
                model, artifact, test_set, max_samples=args.check_samples
            )
            row.update(
                {
                    "artifact_version": artifact.format_version,
                    "max_abs_logit_diff": float(cmp.max_abs_logit_difference),
                    "argmax_agreement": float(cmp.agreement),
                }
            )
        row["eval_s"] = time.perf_counter() - t
        rows.append(row)
        log.info("DVS %-42s test accuracy %.4f", name, res.accuracy)

    add("float32", dvs.load_dvs_model(base / "best.pt")[0], train_s=base_time)
    for name, fields in PTQ_ROWS:
        model = dvs.load_dvs_model(base / "best.pt")[0]
        prepare_qat(model, QuantizationConfig(**fields))
        calibrate(model, lambda m: m(calib))
        add(name, model)
    epochs = 1 if args.smoke else args.dvs_qat_epochs
    variants = [(f"float32 fine-tune ({epochs} epochs, control)", None)] + [
        (f"{name} ({epochs} epochs)", QuantizationConfig(**fields)) for name, fields in QAT_ROWS
    ]
    for name, quantize in variants:
        folder = out / f"ft_{_slug(name)}"
        tc = replace(
            tc0,
            epochs=epochs,
            lr=tc0.lr * 0.25,
            warmup_steps=0,
            init_from=str(base / "best.pt"),
            quantize=quantize,
        )
        t = time.perf_counter()
        if not (folder / "last.pt").exists():
            dvs.train_dvs(config, tc, dataset=data, out_dir=folder, show_progress=False)
        add(name, dvs.load_dvs_model(folder / "last.pt")[0], train_s=time.perf_counter() - t)
    return {
        "rows": rows,
        "settings": {
            "preset": preset,
            "train_samples": len(train_set),
            "test_samples": len(test_set),
            "epochs": tc0.epochs,
            "qat_epochs": epochs,
            "synthetic_data_s": data_s,
        },
    }


# ------------------------------------------------------------------------------ report
def format_table(results: dict[str, Any]) -> str:
    """The results as a markdown table (metric, change against the float32 baseline)."""
    lines = [
        "| workload | model | test metric | vs float32 | artifact vs torch: max abs logit diff, "
        "arg-max agreement |",
        "|---|---|---|---|---|",
    ]
    for workload in ("lm", "dvs"):
        part = results.get(workload)
        if not part:
            continue
        rows = part["rows"]
        key = "test_perplexity" if workload == "lm" else "test_accuracy"
        base = rows[0][key]
        for row in rows:
            value = row[key]
            if workload == "lm":
                metric = f"ppl {value:.2f}"
                delta = f"{value / base:.3f}x"
            else:
                metric = f"acc {100 * value:.1f} %"
                delta = f"{100 * (value - base):+.1f} pts"
            check = "-"
            if "max_abs_logit_diff" in row:
                check = (
                    f"v{row['artifact_version']}: {row['max_abs_logit_diff']:.2e}, "
                    f"{100 * row['argmax_agreement']:.1f} %"
                )
            lines.append(f"| {row['workload']} | {row['model']} | {metric} | {delta} | {check} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quant", help="trainings are kept here")
    p.add_argument("--workloads", nargs="+", choices=["lm", "dvs"], default=["lm", "dvs"])
    p.add_argument("--qat-steps", type=int, default=150, help="LM fine-tune steps")
    p.add_argument("--dvs-epochs", type=int, default=10, help="DVS float training epochs")
    p.add_argument("--dvs-qat-epochs", type=int, default=3, help="DVS fine-tune epochs")
    p.add_argument("--max-test-tokens", type=int, default=None, help="LM: cap the test split")
    p.add_argument("--check-tokens", type=int, default=300, help="LM artifact-check tokens")
    p.add_argument("--check-samples", type=int, default=8, help="DVS artifact-check samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--smoke", action="store_true", help="tiny presets and few steps")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.smoke:
        args.qat_steps = min(args.qat_steps, 4)
        args.max_test_tokens = args.max_test_tokens or 400
        args.check_tokens = min(args.check_tokens, 30)
        args.check_samples = min(args.check_samples, 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    session = Session("wall (perf_counter), train_s / eval_s only")
    results: dict[str, Any] = {"load_average": os.getloadavg(), "threads": args.threads}
    started = time.perf_counter()
    if "lm" in args.workloads:
        results["lm"] = _lm_rows(args)
    if "dvs" in args.workloads:
        results["dvs"] = _dvs_rows(args)
    results["wall_s"] = time.perf_counter() - started
    results["load_average_end"] = os.getloadavg()
    results["conditions"] = session.finish()
    print(format_table(results))
    print(
        f"(seed {args.seed}; {args.threads} torch thread(s); load average "
        f"{results['load_average'][0]:.1f} at start, {results['load_average_end'][0]:.1f} at "
        f"the end; {results['wall_s']:.0f} s)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
