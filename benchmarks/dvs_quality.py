"""Benchmark: DVS-gesture accuracy of the EGRU against nn.GRU and nn.LSTM of the same width.

The DVS ``small`` preset (CNN feature head -> 2 recurrent layers of 64 -> linear readout) on
the synthetic gestures of :mod:`snn_egru.data.synthetic_dvs` (or DVS128 Gesture with
``--data``), trained by the project's own :func:`snn_egru.training.dvs.train_dvs` with the
same recipe and budget; only the recurrent layers differ (``DVSGestureConfig.cell``).

Prints per model: the learning rate, test accuracy (mean and spread over the seeds, each
seed), activity sparsity of the EGRU on the test set, training time; then
``egru_minus_gru_accuracy`` / ``egru_minus_lstm_accuracy`` (same run).

    python benchmarks/dvs_quality.py                    # EGRU, GRU, LSTM; 2 seeds
    python benchmarks/dvs_quality.py --quick            # EGRU and GRU, 3 epochs, 1 seed
    python benchmarks/dvs_quality.py --lr egru=2e-3,5e-3 --json

Bad input (empty or invalid learning-rate or seed list, unknown model name) exits with
status 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from lm_quality import (  # noqa: E402
    model_table,
    parse_lr_option,
    parse_seeds,
    quick_models_and_seeds,
    run_command,
    seed_summary,
    sweep_rates,
)

from snn_egru.errors import UserError  # noqa: E402
from snn_egru.models.dvs import dvs_preset  # noqa: E402
from snn_egru.training.dvs import DVSTrainConfig, train_dvs  # noqa: E402

#: The DVS models: the EGRU and the dense baselines.
DVS_MODELS: tuple[str, ...] = ("egru", "gru", "lstm")
#: Epochs of the comparison (the small preset on synthetic gestures).
DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 3


def check_dvs_model(name: str) -> str:
    if name not in DVS_MODELS:
        raise UserError(f"unknown model {name!r}; valid names: {', '.join(DVS_MODELS)}")
    return name


def build_datasets(args: argparse.Namespace) -> tuple[Any, Any]:
    """The train and test sets, built once and shared by every run (same data for all models
    and seeds; the frames are cached in memory after the first pass)."""
    from snn_egru.training.dvs import dvs_datasets

    tc = DVSTrainConfig(
        data_dir=args.data,
        synthetic_train_samples=args.train_samples,
        synthetic_test_samples=args.test_samples,
    )
    return dvs_datasets(tc)  # seed 0: the same recordings for every model and seed


def train_once(
    cell: str, lr: float, seed: int, *, epochs: int, data: str | None, datasets: Any = None
) -> dict[str, Any]:
    config = dvs_preset("small", cell=cell)
    tc = DVSTrainConfig(epochs=epochs, lr=lr, seed=seed, data_dir=data, device="cpu")
    start = time.perf_counter()
    result = train_dvs(config, tc, dataset=datasets, show_progress=False)
    elapsed = time.perf_counter() - start
    return {
        "model": cell,
        "lr": lr,
        "seed": seed,
        "steps": result.steps,
        "epochs": result.epochs,
        "test_accuracy": result.final.accuracy,
        "best_accuracy": result.best_accuracy,
        "activity_sparsity": 1.0 - result.final.activity if cell == "egru" else None,
        "train_time_s": elapsed,
        "test_samples": result.final.num_samples,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {**seed_summary(rows, "test_accuracy"), "test_samples": rows[0]["test_samples"]}


def format_report(report: dict[str, Any]) -> str:
    lines = model_table(report, "test_accuracy", "test acc.", scale=100.0, unit=" %")
    for key in ("egru_minus_gru_accuracy", "egru_minus_lstm_accuracy"):
        if report.get(key) is not None:
            lines.append(f"{key}: {100 * report[key]:+.1f} points")
    lines.append(
        f"data {report['data']}, {report['epochs']} epochs, seeds {report['seeds']}, "
        f"load {report['load']}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    models = [check_dvs_model(m) for m in args.models]
    seeds = parse_seeds(args.seeds)
    default_lr = DVSTrainConfig().lr
    lrs: dict[str, tuple[float, ...]] = {m: (default_lr,) for m in models}
    for text in args.lr or []:
        name, rates = parse_lr_option(text)
        lrs[check_dvs_model(name)] = rates
    report: dict[str, Any] = {
        "data": args.data or "synthetic gestures",
        "epochs": args.epochs,
        "train_samples": args.train_samples,
        "test_samples": args.test_samples,
        "seeds": list(seeds),
        "sweep": {},
        "models": {},
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "threads": args.threads,
    }
    datasets = build_datasets(args)
    runs: dict[str, list[dict[str, Any]]] = {}
    for cell in models:

        def sweep_run(lr: float, cell: str = cell) -> float:
            row = train_once(
                cell, lr, seeds[0], epochs=args.epochs, data=args.data, datasets=datasets
            )
            return row["test_accuracy"]

        best, entries = sweep_rates(lrs[cell], sweep_run, "test_accuracy", higher_is_better=True)
        if entries is not None:
            report["sweep"][cell] = entries
        runs[cell] = [
            train_once(cell, best, seed, epochs=args.epochs, data=args.data, datasets=datasets)
            for seed in seeds
        ]
        if not args.json:
            print(f"{cell}: {[round(r['test_accuracy'], 4) for r in runs[cell]]}", file=sys.stderr)
        report["models"][cell] = summarize(runs[cell])
    report["runs"] = runs
    acc = {cell: m["test_accuracy_mean"] for cell, m in report["models"].items()}
    for base in ("gru", "lstm"):
        both = {"egru", base} <= acc.keys()
        report[f"egru_minus_{base}_accuracy"] = acc["egru"] - acc[base] if both else None
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/dvs_quality.py",
        description="EGRU vs nn.GRU vs nn.LSTM heads of the DVS small preset, same recipe.",
    )
    p.add_argument("--models", nargs="+", default=list(DVS_MODELS), help="egru gru lstm")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default %(default)s)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--lr", action="append", metavar="MODEL=RATE[,RATE...]")
    p.add_argument("--data", help="DVS128 Gesture folder (default: synthetic gestures)")
    p.add_argument("--train-samples", type=int, default=220, help="synthetic training samples")
    p.add_argument("--test-samples", type=int, default=110, help="synthetic test samples")
    p.add_argument("--quick", action="store_true", help="EGRU and GRU, 3 epochs, one seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save", metavar="JSON", help="also write the report here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), _main, argv)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.quick:
        if args.epochs == DEFAULT_EPOCHS:
            args.epochs = QUICK_EPOCHS
        quick_models_and_seeds(parser, args, DVS_MODELS)
    if min(args.epochs, args.threads, args.train_samples, args.test_samples) < 1:
        raise UserError("--epochs, --threads, --train-samples, --test-samples must be >= 1")
    report = run(args)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
