"""Select a DVS recipe on a validation split (never on the test split).

Trains one sweep DVS point (the configs of ``snn_egru.sweep.runner.dvs_configs``: the same
model, recipe and training budget ``python -m snn_egru.sweep run --task dvs`` would use) on
its training split, but evaluates it after every epoch on a *validation* split: synthetic
recordings of the same setting drawn with another data seed (``--val-seed``, test-style first
window), disjoint from the sweep's training and test recordings (every synthetic sample has its
own seed ``(data seed, split, index)``). Prints one JSON line: the validation accuracy per
epoch, the final one, the final training loss, activity sparsity and dead units (EGRU units
with no event over the validation split) per layer; ``--log FILE`` appends it to a JSON-lines
file. The sweep's test split is not touched.

Example (what issue 23's DVS recipe search ran, one call per candidate)::

    python scripts/dvs_recipe_search.py --cell egru --steps 140 --thresholds 0 \\
        --recipe learn_threshold=false --recipe readout_source=trace --log runs/dvs-search.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from snn_egru.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from snn_egru.cliargs import int_at_least

    positive = int_at_least(1)
    doc = (__doc__ or "").split("\n\n")[0]
    p = argparse.ArgumentParser(prog="scripts/dvs_recipe_search.py", description=doc)
    p.add_argument("--cell", choices=("egru", "gru", "lstm"), default="egru")
    p.add_argument("--width", type=positive, default=64)
    p.add_argument("--layers", type=positive, default=2)
    p.add_argument("--steps", type=positive, default=140)
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--preset", choices=("small", "tiny"), default="small", help="as in sweep run")
    p.add_argument("--data", default="synthetic-hard", choices=("synthetic", "synthetic-hard"))
    p.add_argument("--thresholds", default="preset", help="EGRU threshold or 'preset'")
    p.add_argument("--recipe", action="append", metavar="NAME=VALUE", help="as in sweep run")
    p.add_argument("--val-seed", type=int, default=7, help="data seed of the validation split")
    p.add_argument("--val-samples", type=positive, default=110, help="validation recordings")
    p.add_argument("--threads", type=positive, default=1)
    p.add_argument("--cache", default="runs/sweep-study/dvs-frames", help="training frame cache")
    p.add_argument("--val-cache", default="runs/dvs-search/frames", help="validation frame cache")
    p.add_argument("--log", help="append the result (JSON line) to this file")
    return p


def run(args: argparse.Namespace) -> dict:
    import torch

    from snn_egru.data.dvs import FramePreprocessing, build_dvs_datasets
    from snn_egru.data.synthetic_dvs import SyntheticGestureConfig
    from snn_egru.sweep.cli import _recipe
    from snn_egru.sweep.grid import SweepPoint
    from snn_egru.sweep.measure import event_probe, macs_from_account
    from snn_egru.sweep.runner import SweepData, dvs_configs
    from snn_egru.training.dvs import evaluate_dvs, train_dvs

    if args.val_seed == 0:
        raise UserError("--val-seed 0 is the sweep's own data seed (its test split): pick another")
    threshold = None if args.thresholds == "preset" else float(args.thresholds)
    point = SweepPoint(
        task="dvs",
        cell=args.cell,
        width=args.width,
        layers=args.layers,
        threshold=threshold if args.cell == "egru" else None,
        seed=args.seed,
        steps=args.steps,
        preset=args.preset,
        data=args.data,
        recipe=_recipe(args.recipe),
    )
    config, tc = dvs_configs(point)
    cache = Path(args.cache) if args.cache else None
    train_set, _ = SweepData(cache).dvs(
        point.data, (tc.synthetic_train_samples, tc.synthetic_test_samples), tc.num_frames
    )
    pre = FramePreprocessing(num_frames=tc.num_frames)
    duration = pre.slice_duration_us / 1e6
    synth = (
        SyntheticGestureConfig.harder(duration_s=duration)
        if point.data == "synthetic-hard"
        else SyntheticGestureConfig(duration_s=duration)
    )
    _, val_set = build_dvs_datasets(
        None,
        preprocessing=pre,
        synthetic_train_samples=1,
        synthetic_test_samples=args.val_samples,
        synthetic_config=synth,
        seed=args.val_seed,
        cache_dir=Path(args.val_cache) if args.val_cache else None,
    )
    torch.set_num_threads(args.threads)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    result = train_dvs(config, tc, dataset=(train_set, val_set), show_progress=False)
    wall = time.perf_counter() - started
    model = result.model.eval()
    evals = [r for r in result.history if r.get("kind") == "eval"]
    record = {
        "label": point.label(),
        "recipe": [list(r) for r in point.recipe],
        "threshold": point.threshold,
        "val_seed": args.val_seed,
        "val_samples": len(val_set),
        "val_curve": [[r["step"], round(r["test_accuracy"], 4)] for r in evals],
        "train_loss_curve": [[r["step"], round(r["train_loss"], 4)] for r in evals],
        "val_accuracy": result.final.accuracy,
        "val_loss": result.final.loss,
        "train_loss": evals[-1]["train_loss"] if evals else None,
        "wall_s": round(wall, 1),
        "threads": args.threads,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if point.is_event_based:
        probe = event_probe(model)
        with probe:
            evaluate_dvs(model, val_set, batch_size=tc.eval_batch_size)
        account = probe.result()
        record["activity_sparsity"] = account.activity_sparsity
        record["macs_per_frame"] = macs_from_account(account)["effective_with_decoder"]
        record["dead_units"] = probe.meter.dead_units()
    return record


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        record = run(args)
    except (UserError, ValueError, TypeError) as err:  # bad input (e.g. an unknown recipe name)
        print(f"error: {err}", file=sys.stderr)
        return 2
    line = json.dumps(record)
    print(line)
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
