"""``snn-egru sweep``: the trade-off study as a tool (also ``python -m snn_egru.sweep``).

::

    snn-egru sweep run --task lm --cells egru,gru --widths 256,512 --gru-widths 68,160 \\
        --seeds 0,1 --steps 300 --out runs/sweep           # train and measure every point
    snn-egru sweep run ... --shard 3/8                     # slice 3 of 8 (a SLURM array task)
    snn-egru sweep merge runs/sweep --json docs/tradeoff.json
    snn-egru sweep merge runs/sweep other/points/KEY.json --json t.json  # one point of another
    snn-egru sweep run ... --rechip --rechip-tokens 0      # chip again, whole test split
    snn-egru sweep report docs/tradeoff.json --md docs/tradeoff.md --figures docs/figures
    snn-egru sweep run --quick --out /tmp/sweep            # CI: a 2-point grid in seconds

Each point is trained by the project's training code (a library call), evaluated on the test
split (perplexity / accuracy, MACs per token as NeuroBench counts them, activity and weight
sparsity), exported, mapped on the simulated chip with the fewest PEs that fit and run there
(time, energy, power per token); its result is ``OUT/points/<key>.json``. A point already
done is not trained again (``--overwrite`` retrains); a stopped sweep resumes at the point it
was on. A SLURM array job: ``sbatch --array=1-8 --wrap "snn-egru sweep run ... --shard
$SLURM_ARRAY_TASK_ID/8 --out shared/sweep"``, then one ``merge``.

User mistakes (an empty grid, an unknown cell, a shard out of range, a result file in the
way) print one line and exit 2; a model that does not fit the chip is recorded for its point
and the sweep goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from snn_egru.cliargs import int_at_least
from snn_egru.errors import UserError
from snn_egru.sweep.grid import (
    CELLS,
    DATASETS,
    TASKS,
    Grid,
    parse_floats,
    parse_ints,
    parse_shard,
)

__all__ = ["add_sweep_parser", "build_parser", "main", "run_command"]

PROG = "snn-egru sweep"

#: ``--quick``: a 2-point LM grid (EGRU and GRU, tiny preset, generated corpus) in seconds.
QUICK = {
    "task": "lm",
    "cells": "egru,gru",
    "widths": "16",
    "steps": "4",
    "preset": "tiny",
    "data": "cyclic",
    "test_tokens": 60,
    "chip_tokens": 30,
}


def _recipe(items: list[str] | None) -> tuple[tuple[str, object], ...]:
    out = []
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UserError(f"--recipe {item!r}: give NAME=VALUE, e.g. weight_decay=0.1")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.append((name.strip(), value))
    return tuple(out)


def _one_float(text: str, flag: str) -> float:
    values = parse_floats(text, flag)
    if len(values) != 1:
        raise UserError(f"{flag} {text!r}: give one number (every bottleneck of the grid gets it)")
    return float(values[0])  # type: ignore[arg-type]


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The grid of ``sweep run`` (every value checked; UserError names the flag)."""
    cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    per_cell = []
    for cell, text in (
        ("egru", args.egru_widths),
        ("gru", args.gru_widths),
        ("lstm", args.lstm_widths),
    ):
        if text is not None:
            per_cell.append((cell, parse_ints(text, f"--{cell}-widths")))
    grid = Grid(
        task=args.task,
        cells=cells,
        widths=parse_ints(args.widths, "--widths"),
        layers=parse_ints(args.layers, "--layers"),
        thresholds=parse_floats(args.thresholds, "--thresholds", high=1.0 + 1e-12, none_ok=True),
        event_l1=parse_floats(args.event_l1, "--event-l1"),  # type: ignore[arg-type]
        prune=parse_floats(args.prune, "--prune", high=1.0),  # type: ignore[arg-type]
        seeds=parse_ints(args.seeds, "--seeds", minimum=0),
        steps=parse_ints(args.steps, "--steps"),
        preset=args.preset,
        data=args.data or DATASETS[args.task][0],
        test_tokens=args.test_tokens,
        chip_tokens=args.chip_tokens,
        weight_format=args.weight_format,
        chips=args.chips,
        recipe=_recipe(args.recipe),
        cell_widths=tuple(per_cell),
        bottlenecks=parse_floats(args.bottlenecks, "--bottlenecks"),  # type: ignore[arg-type]
        layer_per_chip=args.layer_per_chip,
        bottleneck_kind=args.bottleneck_kind,
        bottleneck_l1=_one_float(args.bottleneck_l1, "--bottleneck-l1"),
        warm_start=args.warm_start,
    )
    for cell, _ in per_cell:
        if cell not in grid.cells:
            raise UserError(f"--{cell}-widths is given but --cells has no {cell}")
    return grid


def _add_run_modes(run: argparse.ArgumentParser) -> None:
    """The ``run`` sub-command's folder, shard, thread and mode flags."""
    run.add_argument("--out", required=True, help="sweep folder (results: OUT/points/KEY.json)")
    run.add_argument("--shard", default=None, help="i/n: run slice i of n (1-based)")
    run.add_argument("--quick", action="store_true", help="CI: 2 tiny LM points, seconds")
    run.add_argument("--overwrite", action="store_true", help="retrain points already done")
    run.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads")
    run.add_argument("--list", action="store_true", help="print the points and their keys only")
    run.add_argument(
        "--fit",
        action="store_true",
        help="with --list: also map each point's model (untrained, pruned like the point) and "
        "print the PEs it needs on the machine of --chips chips, or that it does not fit",
    )
    run.add_argument(
        "--rechip",
        action="store_true",
        help="only run the simulated chip again for points already done (saved weights in "
        "OUT/models), replacing their chip figures (after a change of the chip model)",
    )
    run.add_argument(
        "--rechip-tokens",
        type=int_at_least(0),
        default=None,
        help="with --rechip: run the chip over the first N test tokens (DVS: samples) instead "
        "of the points' --chip-tokens; 0: every test token the point was evaluated on (the "
        "whole test split unless --test-tokens) (the points keep their keys)",
    )


def add_sweep_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``run`` / ``merge`` / ``report`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="sweep_command", metavar="{run,merge,report}")
    sub.required = True
    run = sub.add_parser("run", help="train and measure the points of a grid")
    run.add_argument("--task", choices=TASKS, default="lm")
    run.add_argument("--cells", default="egru,gru,lstm", help=f"comma list of {', '.join(CELLS)}")
    run.add_argument("--widths", default="256", help="units per layer, comma list")
    for cell in CELLS:
        run.add_argument(f"--{cell}-widths", default=None, help=f"widths of the {cell} points")
    run.add_argument("--layers", default="1", help="recurrent layers, comma list")
    run.add_argument(
        "--thresholds",
        default="preset",
        help="EGRU thresholds (every unit, frozen), comma list; 'preset': the recipe's",
    )
    run.add_argument("--event-l1", default="0", help="EGRU L1 penalty on events, comma list")
    run.add_argument("--prune", default="0", help="EGRU target weight sparsity, comma list")
    run.add_argument("--seeds", default="0", help="comma list")
    run.add_argument("--steps", default="300", help="training steps, comma list")
    run.add_argument("--preset", choices=("small", "tiny"), default="small")
    run.add_argument(
        "--data", default=None, help="lm: ptb | cyclic; dvs: synthetic | synthetic-hard"
    )
    run.add_argument(
        "--test-tokens",
        type=int_at_least(1),
        default=None,
        help="LM: first N test tokens (default: the whole split); DVS: unused",
    )
    run.add_argument(
        "--chip-tokens",
        type=int_at_least(1),
        default=None,
        help="steps run on the simulated chip (LM: first N test tokens; DVS: first N test samples)",
    )
    run.add_argument("--weight-format", default="event", help="chip weight layout")
    run.add_argument(
        "--chips", type=int_at_least(1), default=1, help="chips of the simulated machine"
    )
    run.add_argument(
        "--recipe",
        action="append",
        metavar="NAME=VALUE",
        help="training / model config override for every point",
    )
    run.add_argument(
        "--bottlenecks",
        default="0",
        help="EGRU LM: bottleneck ratios n/k at every layer boundary, comma list (0: none)",
    )
    run.add_argument(
        "--bottleneck-kind",
        default="egru",
        help="what the bottlenecks compute: egru (an EGRU layer, default), ff (max(0, tanh(Wx+b)),"
        " event-based) or dense (tanh(Wx+b), every unit every step)",
    )
    run.add_argument(
        "--bottleneck-l1",
        default="0",
        help="L1 penalty on the bottleneck layers' events, summed over a bottleneck's units "
        "(fewer events cross chips; 0: none)",
    )
    run.add_argument(
        "--warm-start",
        type=int_at_least(0),
        default=0,
        metavar="STEPS",
        help="EGRU LM: train each point's plain stack STEPS steps first (a point of the sweep, "
        "cached), then --steps more from its weights, the bottlenecks inserted from it "
        "(snn_egru.bottleneck_insert); budget STEPS + --steps (0: from scratch)",
    )
    run.add_argument(
        "--layer-per-chip",
        action="store_true",
        help="map with a chip boundary at every layer boundary (after each bottleneck)",
    )
    _add_run_modes(run)
    merge = sub.add_parser("merge", help="combine sweep folders (shards) into one JSON")
    merge.add_argument("folders", nargs="+")
    merge.add_argument("--json", required=True, help="output file (e.g. docs/tradeoff.json)")
    merge.add_argument("--overwrite", action="store_true")
    merge.add_argument(
        "--notes",
        default=None,
        help="a markdown file of notes kept in the JSON and printed "
        "under 'Notes' in the report (what the numbers mean, what a target would take)",
    )
    report = sub.add_parser("report", help="markdown table and figures from a merged JSON")
    report.add_argument("json")
    report.add_argument("--md", required=True, help="output markdown (e.g. docs/tradeoff.md)")
    report.add_argument("--figures", default=None, help="folder for the PNG figures")
    report.add_argument("--overwrite", action="store_true")
    for p in (run, merge, report):
        p.add_argument("-v", "--verbose", action="store_true", help="tracebacks")
    return parser


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from snn_egru.cliargs import ArgumentParser

    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    return add_sweep_parser(parser)


def _apply_quick(args: argparse.Namespace, parser_defaults: dict) -> None:
    for name, value in QUICK.items():
        if getattr(args, name) == parser_defaults.get(name):
            setattr(args, name, value)


def _cmd_run(args: argparse.Namespace, defaults: dict, command: str) -> int:
    if args.quick:
        _apply_quick(args, defaults)
    grid = grid_from_args(args)
    index, count = parse_shard(args.shard)
    points = grid.shard(index, count)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if args.fit and not args.list:
        raise UserError("--fit goes with --list (it maps the points' models, it trains nothing)")
    if args.list:
        if args.fit:
            from snn_egru.sweep.runner import SweepData, check_fit

            data = SweepData()
        for p in points:
            fit = ""
            if args.fit:
                fits, message, pes = check_fit(p, data)
                fit = f"  {pes} PEs" if fits else f"  does not fit: {message}"
            print(f"{p.key}  {p.label()}{fit}")
        return 0
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from snn_egru.sweep.runner import rechip, run_points

    if args.rechip_tokens is not None and not args.rechip:
        raise UserError("--rechip-tokens goes with --rechip (it sets what the chip runs again)")
    if args.rechip:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        started = time.perf_counter()
        counts = rechip(points, out, tokens=args.rechip_tokens)
        with open(out / "runs.jsonl", "a", encoding="utf-8") as log:
            entry = {"command": command, "rechip": True, "counts": counts}
            entry["rechip_tokens"] = args.rechip_tokens
            entry["wall_s"] = time.perf_counter() - started
            entry["threads"] = torch.get_num_threads()
            entry["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            entry["load_before"] = load
            log.write(json.dumps(entry) + "\n")
        print(
            f"sweep --rechip: {counts['rechipped']} point(s) run on the chip again, "
            f"{counts['skipped']} skipped",
            file=sys.stderr,
        )
        return 0
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"sweep: {len(points)} point(s) (slice {index}/{count} of {len(grid.points())}), "
        f"{torch.get_num_threads()} thread(s), load {load}, results in {out / 'points'}",
        file=sys.stderr,
    )
    counts = run_points(points, out, overwrite=args.overwrite, threads=torch.get_num_threads())
    wall = time.perf_counter() - started
    entry = {
        "command": command,
        "shard": f"{index}/{count}",
        "points": len(points),
        "counts": counts,
        "wall_s": wall,
        "threads": torch.get_num_threads(),
        "load_before": load,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with open(out / "runs.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)
    print(f"sweep: {summary or 'nothing to do'} in {wall:.0f} s", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _write_new(path: Path, text: str, overwrite: bool, flag: str) -> bool:
    """Write ``text``; an existing different file needs ``--overwrite``. True if written."""
    if path.exists():
        if path.is_dir():
            raise UserError(f"{flag} {path} is a folder; give a file")
        if path.read_text() == text:
            return False
        if not overwrite:
            raise UserError(f"{path} exists and differs; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def _cmd_merge(args: argparse.Namespace, command: str) -> int:
    from snn_egru.sweep.report import merge

    doc = merge([Path(f) for f in args.folders], command, point_keys_of_command)
    if args.notes is not None:
        notes = Path(args.notes)
        if not notes.is_file():
            raise UserError(f"--notes {notes}: no such file")
        doc["notes"] = notes.read_text().strip()
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    _write_new(Path(args.json), text, args.overwrite, "--json")
    head = doc["headline"]
    print(f"merged {len(doc['points'])} point(s) into {args.json}")
    for name, value in head.items():
        print(f"  {name}: {'-' if value is None else format(value, '.4g')}")
    return 0


def load_doc(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no merged sweep at {p} (run: snn-egru sweep merge FOLDER --json {p})")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{p} is not valid JSON ({err})") from None


def _cmd_report(args: argparse.Namespace) -> int:
    from snn_egru.sweep.figures import write_figures
    from snn_egru.sweep.report import render_markdown

    doc = load_doc(args.json)
    text = render_markdown(doc)
    written = _write_new(Path(args.md), text, args.overwrite, "--md")
    print(f"{'wrote' if written else 'unchanged:'} {args.md}")
    if args.figures:
        for path in write_figures(doc, Path(args.figures)):
            print(f"wrote {path}")
    return 0


def point_keys_of_command(command: str) -> set[str]:
    """The keys of the points a recorded ``sweep run`` command line ran (its shard); empty
    for any other command or one that no longer parses."""
    words = shlex.split(command)
    if "run" not in words:
        return set()
    parser = build_parser()
    run_parser = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = parser.parse_args(words[words.index("run") :])
        if args.quick:
            _apply_quick(args, {a.dest: a.default for a in run_parser._actions})
        index, count = parse_shard(args.shard)
        return {p.key for p in grid_from_args(args).shard(index, count)}
    except (SystemExit, UserError, ValueError):
        return set()


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> int:
    """Run a parsed ``sweep`` command (errors raise; the caller prints them); ``command``:
    the command line, as recorded in the results."""
    if args.sweep_command == "run":
        run_parser = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
        defaults = {a.dest: a.default for a in run_parser._actions}
        return _cmd_run(args, defaults, command)
    if args.sweep_command == "merge":
        return _cmd_merge(args, command)
    return _cmd_report(args)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    from snn_egru.cliargs import run_main

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    command = f"{prog} {shlex.join(argv)}"
    return run_main(lambda: run_command(args, parser, command), prog=prog, verbose=args.verbose)
