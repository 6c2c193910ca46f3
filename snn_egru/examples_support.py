"""What the examples share around their own story: for the training examples
(``examples/dvs_gestures.py``, ``examples/language_model.py``) torch threads and the output
folder, mapping the exported network onto the simulated chip, the results table and
``results.json``; for the Lava examples (``examples/lava_graph.py``,
``examples/lava_stock_graph.py``) their run options.

Layer: application (imports torch and the backend, lazily, inside the functions).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "activity_row",
    "add_lava_run_arguments",
    "add_torch_example_arguments",
    "aligned_table",
    "check_at_least",
    "check_files",
    "example_parser",
    "finish_example",
    "map_for_example",
    "parse_example_args",
    "prepare_torch_example",
]


def example_parser(doc: str | None, *, smoke: str) -> argparse.ArgumentParser:
    """An example's command line: the first line of its module docstring ``doc`` as the
    description, and ``--smoke`` (a check in seconds; ``smoke`` says what it runs, shown
    below the options)."""
    parser = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0] if doc else None,
        epilog=f"--smoke: {smoke} (seconds).",
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes: a check in seconds")
    return parser


def parse_example_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    check: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = None,
    smoke: dict[str, Any] | None = None,
) -> argparse.Namespace:
    """How an example starts: parse ``argv``, ``check(parser, args)``, apply the ``smoke``
    values when ``--smoke`` is given, and log INFO lines (with their time) to stderr."""
    args = parser.parse_args(argv)
    if check is not None:
        check(parser, args)
    if smoke is not None and getattr(args, "smoke", False):
        for name, value in smoke.items():
            setattr(args, name, value)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args


def add_lava_run_arguments(group: argparse._ActionsContainer) -> None:
    """The options of an example that runs a Lava graph under both run configs: ``--steps``,
    ``--weight-format`` (the chip's), ``--timeout`` per Lava run and ``--seed``."""
    group.add_argument("--steps", type=int, default=20, help="time steps (inputs)")
    group.add_argument("--weight-format", choices=("csr", "event", "dense"), default="csr")
    group.add_argument("--timeout", type=float, default=300.0, help="limit per Lava run (s)")
    group.add_argument("--seed", type=int, default=0)


def check_at_least(parser: argparse.ArgumentParser, args: argparse.Namespace, **least: int) -> None:
    """``parser.error`` (exit status 2) for the first option ``--NAME`` of ``least`` whose
    value is below its minimum (``NAME=minimum``); an option left unset (``None``) passes."""
    for name, minimum in least.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")


def check_files(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """``parser.error`` (exit status 2) for the first option ``--NAME`` of ``names`` that
    names a path that is not a file (an option left unset passes)."""
    for name in names:
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            parser.error(f"--{name.replace('_', '-')}: no file at {path}")


def add_torch_example_arguments(
    parser: argparse.ArgumentParser, *, out_dir: str, preset_help: str
) -> argparse._ArgumentGroup:
    """The options a training example shares, which :func:`prepare_torch_example` reads:
    the ``training`` group (returned, for the example's own options) with ``--preset``
    (``tiny``, ``small`` or ``paper``; ``preset_help`` says what they are), ``--device``,
    ``--threads`` and ``--seed``; ``--out-dir`` (default ``out_dir``) and ``--quiet`` on
    the ``parser`` (``--smoke`` comes with :func:`example_parser`)."""
    training = parser.add_argument_group("training")
    training.add_argument(
        "--preset", choices=("tiny", "small", "paper"), default="small", help=preset_help
    )
    training.add_argument("--device", default="auto", help="auto, cpu or cuda (training)")
    training.add_argument("--threads", type=int, help="torch CPU threads")
    training.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=out_dir, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return training


def prepare_torch_example(args: argparse.Namespace) -> Path:
    """Set torch's CPU threads (``--threads``) and make ``--out-dir``; returns it. Under
    ``--smoke`` the run is quiet and on the CPU, on one thread unless ``--threads`` says
    otherwise (tiny tensors run fastest on one thread of a shared CPU)."""
    import torch  # after argument parsing: --help stays fast

    if args.smoke:
        args.quiet = True
        args.device = "cpu"
        if args.threads is None:
            args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def map_for_example(
    artifact: Any, out: Path, log: logging.Logger, **options: Any
) -> tuple[Any, Any] | None:
    """``map_network(artifact, **options)`` and its report, written to
    ``out/mapping_report.txt``; ``None`` (logged and printed) when the network does not fit."""
    from spinnaker2_backend import MappingError, map_network

    try:
        mapping = map_network(artifact, **options)
    except MappingError as err:
        log.error("the network does not fit: %s", err)
        print(f"does not fit: {err}")
        return None
    report = mapping.report()
    (out / "mapping_report.txt").write_text(report.table())
    return mapping, report


def activity_row(activity: list[float]) -> tuple[str, str]:
    """The results-table row of the per-layer share of units firing on the chip."""
    layers = ", ".join(f"layer {i} {a:.1%}" for i, a in enumerate(activity))
    return "activity on chip", f"{layers} of units firing"


def aligned_table(title: str, rows: list[tuple[str, str]]) -> list[str]:
    """``== title ==`` and a line per ``(name, value)`` row, the values aligned."""
    width = max(len(name) for name, _ in rows) + 2
    return [f"== {title} ==", *(f"{name:<{width}}{value}" for name, value in rows)]


def finish_example(
    out: Path,
    results: dict[str, Any],
    table: Callable[[dict[str, Any]], str],
    log: logging.Logger,
) -> int:
    """Write ``out/results.json``, print ``table(results)``; returns the exit status 0."""
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    log.info("results in %s", out)
    return 0
