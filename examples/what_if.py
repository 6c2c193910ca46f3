"""What if: pruning sparsity and weight format vs memory, time and energy on a simulated SpiNNaker2.

What it shows (for chip users)
------------------------------
A walk through the mapping of the published language model (``paper-lm``: embedding 750,
EGRU 1350/1350/750, vocabulary 10,000) with synthetic weights
(:func:`spinnaker2_backend.synthetic.synthetic_network`: Xavier-normal weights, magnitude
pruned per matrix to the requested sparsity). For every sparsity of ``--sparsities`` and
every weight format of ``--formats``:

* **memory**: :func:`spinnaker2_backend.map_network` partitions the units over the PEs
  (the fewest PEs whose 96 KiB data memory holds them), places, routes and lays out every
  PE's memory. A network that does not fit raises ``MappingError``: it is recorded as
  "does not fit" with the reason (and the PEs it would need), not a crash.
* **time and energy**: a short run of ``--tokens`` random tokens on the simulated chip
  (``run_mapping``), extrapolated to the published time unit, one 70-token sequence
  (``run.report()``).

The formats: ``csr`` (the published design: each PE walks every stored non-zero of its rows
every step, so its time hardly depends on activity), ``event`` (per-source-unit rows: only
the columns of units that fired are walked, so time falls with activity; with random
weights units fire more often than in a trained EGRU, lower it with ``--threshold-mean``)
and ``dense`` (every weight stored; fits only small networks).

The int8 formats (``docs/quantisation.md``) store the network quantised after training
(here: of the synthetic weights): ``csr-int8`` and ``event-int8`` keep the layouts above
with one-byte codes and narrow indices (int8 weights x float32 events on the Arm core),
``mac-int8`` stores 16 x 4 tiles for the MAC array (events quantised too): at 95 % random
sparsity nearly every tile holds a non-zero, so it needs about as much memory as dense int8,
and it is fast.

The weights are random: use this for memory, placement, time and energy, not accuracy.

How to run
----------
::

    .venv/bin/python examples/what_if.py --smoke                     # seconds
    .venv/bin/python examples/what_if.py                             # paper-lm, ~1 minute
    .venv/bin/python examples/what_if.py --sparsities 0.9 0.95 0.98 --formats csr event \\
        --threshold-mean 0.3 --tokens 20                             # sparser activity
    .venv/bin/python examples/what_if.py --chips 4                   # a bigger machine
    .venv/bin/python examples/what_if.py --layer-sizes 512 512 --input-size 256

Expected output
---------------
Log lines on stderr, a table on stdout. ``--smoke`` (all six formats) printed::

    == What if: custom (64 -> 1100/64) on 1 chip(s) (152 PEs), 3 tokens per run ==
    sparsity  format      fits  PEs (needed)  fullest PE  time / 70 tok  energy / 70 tok  ...
        0.90  csr         yes   40                98.6 %      119.53 ms          42.3 mJ  ...
        0.90  event       yes   42                98.4 %       68.99 ms          24.4 mJ  ...
        0.90  dense       no    (195)                  -              -                -  ...
        0.90  csr-int8    yes   16                94.5 %      327.21 ms           111 mJ  ...
        0.90  event-int8  yes   14                80.3 %      171.19 ms          58.1 mJ  ...
        0.90  mac-int8    yes   57                91.2 %       29.91 ms          10.8 mJ  ...
        0.98  csr         yes   10                90.3 %      103.34 ms          34.9 mJ  ...
        ...
        0.98  mac-int8    yes   37               100.0 %       30.74 ms          10.8 mJ  ...

(the int8 Arm-core formats hold a PE's worth of units in fewer PEs, so each PE walks more
weights per step: fewer PEs, more time; ``event-int8`` stops at 85 units per PE there, where
its one-byte row indices would widen). The default run (about 30 s, before the int8
formats were added; it now prints their three rows after each sparsity's float rows)
printed::

    == What if: paper-lm (750 -> 1350/1350/750) on 1 chip(s) (152 PEs), 10 tokens per run ==
    sparsity  format  fits  PEs (needed)  fullest PE  time / 70 tok  energy / 70 tok  ...
        0.50  csr     no    (1375)                 -              -                -  ...
        ...
        0.93  csr     no    (171)                  -              -                -  ...
        0.93  event   no    (191)                  -              -                -  ...
        0.93  dense   no    (1375)                 -              -                -  ...
        0.95  csr     yes   123               99.8 %      224.88 ms            84 mJ  ...
        0.95  event   yes   138               99.1 %      159.65 ms          60.7 mJ  ...
        0.95  dense   no    (1375)                 -              -                -  ...
        0.98  csr     yes   51                99.3 %      226.20 ms            79 mJ  ...
        0.98  event   yes   56               100.0 %      161.57 ms          56.8 mJ  ...
        0.98  dense   no    (1375)                 -              -                -  ...
    published (SpiNNaker2, 95% sparse, csr, 150 PEs): 170.25 ms, 65.3 mJ per sequence (measured)

and ``what_if.png`` (four panels against sparsity, one line per format: PEs used, fullest
PE, time per 70-token sequence, energy per sequence), ``what_if.csv`` and ``what_if.json``
in ``--out-dir`` (default ``runs/example_what_if``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru.examples_support import check_at_least, example_parser, parse_example_args

log = logging.getLogger("examples.what_if")

#: Tokens per sequence of the published measurement (the time unit).
SEQUENCE_TOKENS = 70
#: The published SpiNNaker2 measurement (95 % sparse weights, CSR, 150 PEs), docs/spinnaker2.md.
PUBLISHED = {"sparsity": 0.95, "seconds": 170.25e-3, "joules": 0.0653, "pes": 150}
#: ``--smoke``: two sparsities, small shapes (a first layer wide enough that dense weights
#: overflow one chip, so the "does not fit" path shows), 3 tokens.
SMOKE = {
    "sparsities": [0.9, 0.98],
    "layer_sizes": [1100, 64],
    "input_size": 64,
    "vocab_size": 200,
    "tokens": 3,
}
FORMATS = ("csr", "event", "dense", "csr-int8", "event-int8", "mac-int8")
#: The int8 formats: the network is quantised for them first (PTQ, see ``quantised``).
INT8_FORMATS = ("csr-int8", "event-int8", "mac-int8")


@dataclass
class WhatIfPoint:
    """One (sparsity, weight format) case.

    Attributes:
        sparsity: weight sparsity of every matrix. weight_format: ``csr``/``event``/``dense``.
        fits: whether the mapping fits the machine. reason: why not (``MappingError``).
        pes_needed: PEs the partition needs (also when it does not fit; ``None`` when a
            single unit is too big for a PE).
        pes_used: PEs of the mapping. fullest_utilisation: data memory use of the fullest PE.
        seconds_per_sequence, energy_per_sequence_j, average_power_w: from the run report.
        activity: fraction of units firing per step (mean over layers) in the short run.
        host_seconds: host time of mapping + run.
    """

    sparsity: float
    weight_format: str
    fits: bool
    reason: str = ""
    pes_needed: int | None = None
    pes_used: int | None = None
    fullest_utilisation: float | None = None
    seconds_per_sequence: float | None = None
    energy_per_sequence_j: float | None = None
    average_power_w: float | None = None
    activity: float | None = None
    host_seconds: float = 0.0


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = example_parser(__doc__, smoke="2 sparsities, layers 1100/64, 3 tokens")
    p.add_argument(
        "--sparsities",
        type=float,
        nargs="+",
        default=[0.5, 0.8, 0.9, 0.93, 0.95, 0.98],
        help="weight sparsities to try (default %(default)s)",
    )
    p.add_argument(
        "--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="weight formats"
    )
    p.add_argument(
        "--layer-sizes",
        type=int,
        nargs="+",
        help="custom EGRU layer sizes instead of paper-lm's 1350/1350/750",
    )
    p.add_argument("--input-size", type=int, help="embedding size of a custom network")
    p.add_argument("--vocab-size", type=int, default=10_000, help="vocabulary (custom network)")
    p.add_argument(
        "--threshold-mean",
        type=float,
        help="mean threshold of the synthetic units (higher: sparser activity)",
    )
    p.add_argument("--tokens", type=int, default=10, help="tokens per run (default %(default)s)")
    p.add_argument("--chips", type=int, default=1, help="chips of the machine (default 1)")
    p.add_argument(
        "--max-units-per-pe",
        type=int,
        help="at most this many units per PE (py-spinnaker2's max_atoms_per_core); default: "
        "the fewest PEs that hold the weights",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/example_what_if", help="output folder")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad option values with a message naming the fix (exit status 2)."""
    if any(not 0.0 <= s < 1.0 for s in args.sparsities):
        parser.error(f"--sparsities must lie in [0, 1), got {args.sparsities}")
    check_at_least(parser, args, tokens=1, chips=1, max_units_per_pe=1)
    if (args.layer_sizes is None) != (args.input_size is None):
        parser.error("a custom network needs both --layer-sizes and --input-size")
    if args.layer_sizes is not None and min(args.layer_sizes) < 1:
        parser.error("--layer-sizes must be >= 1")
    if args.threshold_mean is not None and not 0.0 < args.threshold_mean < 1.0:
        parser.error(f"--threshold-mean must lie in (0, 1), got {args.threshold_mean}")


# ------------------------------------------------------------------------------- sweep
def make_network(args: argparse.Namespace, sparsity: float) -> Any:
    """The synthetic network at ``sparsity`` (paper-lm, or the custom shapes)."""
    from spinnaker2_backend.synthetic import synthetic_network

    if args.layer_sizes is None:
        return synthetic_network(
            "paper-lm", sparsity=sparsity, seed=args.seed, threshold_mean=args.threshold_mean
        )
    tied = args.input_size == args.layer_sizes[-1]
    return synthetic_network(
        layer_sizes=args.layer_sizes,
        input_size=args.input_size,
        input_kind="embedding",
        vocab_size=args.vocab_size,
        readout_kind="tied_decoder" if tied else "none",
        sparsity=sparsity,
        threshold_mean=args.threshold_mean if args.threshold_mean is not None else 0.01,
        seed=args.seed,
    )


def quantised(artifact: Any, weight_format: str) -> Any:
    """The int8 network an int8 format stores: post-training quantisation of the synthetic
    weights, "float" products for csr-int8 / event-int8, "int8" (events quantised, scales
    calibrated on 70 random tokens) for mac-int8
    (:func:`spinnaker2_backend.synthetic.quantize_for_format`).
    """
    from spinnaker2_backend.synthetic import quantize_for_format

    return quantize_for_format(artifact, weight_format)


def measure(
    artifact: Any,
    weight_format: str,
    sparsity: float,
    tokens: np.ndarray,
    machine: Any,
    *,
    max_units_per_pe: int | None = None,
) -> WhatIfPoint:
    """Map ``artifact`` with ``weight_format``; if it fits, run ``tokens`` and report."""
    from spinnaker2_backend.mapping import MappingError, map_network, partition_network
    from spinnaker2_backend.simulator import run_mapping

    begin = time.perf_counter()
    if weight_format in INT8_FORMATS:
        artifact = quantised(artifact, weight_format)
    options = {"weight_format": weight_format, "max_units_per_pe": max_units_per_pe}
    try:
        pes_needed: int | None = partition_network(
            artifact, spec=machine.spec, **options
        ).num_slices
    except MappingError:
        pes_needed = None
    try:
        mapping = map_network(artifact, machine=machine, **options)
    except MappingError as err:
        log.info("sparsity %.2f, %s: does not fit (%s)", sparsity, weight_format, err)
        return WhatIfPoint(
            sparsity=sparsity,
            weight_format=weight_format,
            fits=False,
            reason=str(err),
            pes_needed=pes_needed,
            host_seconds=time.perf_counter() - begin,
        )
    report = mapping.report()
    run = run_mapping(mapping, tokens, record=False)
    chip = run.report(sequence_tokens=SEQUENCE_TOKENS)
    point = WhatIfPoint(
        sparsity=sparsity,
        weight_format=weight_format,
        fits=True,
        pes_needed=pes_needed,
        pes_used=report.pes_used,
        fullest_utilisation=report.fullest.utilisation,
        seconds_per_sequence=chip.seconds_per_sequence,
        energy_per_sequence_j=chip.energy_per_sequence_j,
        average_power_w=chip.average_power_w,
        activity=float(np.mean(chip.activity)),
        host_seconds=time.perf_counter() - begin,
    )
    log.info(
        "sparsity %.2f, %s: %d PEs, fullest %.1f %%, %.2f ms and %.3g mJ per %d tokens "
        "(activity %.1f %%)",
        sparsity,
        weight_format,
        point.pes_used,
        100 * point.fullest_utilisation,
        1e3 * point.seconds_per_sequence,
        1e3 * point.energy_per_sequence_j,
        SEQUENCE_TOKENS,
        100 * point.activity,
    )
    return point


def sweep(args: argparse.Namespace) -> tuple[list[WhatIfPoint], Any]:
    """Every (sparsity, format) point; returns the points and the last network made."""
    from spinnaker2_backend import Machine

    machine = Machine(chips=args.chips)
    rng = np.random.default_rng(args.seed)
    points = []
    artifact = None
    for sparsity in sorted(args.sparsities):
        begin = time.perf_counter()
        artifact = make_network(args, sparsity)
        log.info("network at sparsity %.2f made in %.1f s", sparsity, time.perf_counter() - begin)
        tokens = rng.integers(0, artifact.embedding.shape[0], size=args.tokens)
        for weight_format in args.formats:
            points.append(
                measure(
                    artifact,
                    weight_format,
                    sparsity,
                    tokens,
                    machine,
                    max_units_per_pe=args.max_units_per_pe,
                )
            )
    return points, artifact


# -------------------------------------------------------------------------------- report
def format_table(points: list[WhatIfPoint], title: str, *, show_published: bool) -> str:
    """The sweep as a text table (one row per point)."""
    header = (
        f"{'sparsity':>8}  {'format':<10}  {'fits':<4}  {'PEs (needed)':<12}  "
        f"{'fullest PE':>10}  {'time / 70 tok':>13}  {'energy / 70 tok':>15}  "
        f"{'power':>7}  {'activity':>8}"
    )
    lines = [title, header]
    for p in points:
        if p.fits:
            lines.append(
                f"{p.sparsity:>8.2f}  {p.weight_format:<10}  {'yes':<4}  {p.pes_used:<12d}  "
                f"{100 * p.fullest_utilisation:>8.1f} %  "
                f"{1e3 * p.seconds_per_sequence:>10.2f} ms  "
                f"{1e3 * p.energy_per_sequence_j:>12.3g} mJ  "
                f"{p.average_power_w:>5.3f} W  {100 * p.activity:>6.1f} %"
            )
        else:
            needed = f"({p.pes_needed})" if p.pes_needed is not None else "(unit too big)"
            lines.append(
                f"{p.sparsity:>8.2f}  {p.weight_format:<10}  {'no':<4}  {needed:<12}  "
                f"{'-':>10}  {'-':>13}  {'-':>15}  {'-':>7}  {'-':>8}"
            )
    if show_published:
        lines.append(
            f"published (SpiNNaker2, {PUBLISHED['sparsity']:.0%} sparse, csr, "
            f"{PUBLISHED['pes']} PEs): {1e3 * PUBLISHED['seconds']:.2f} ms, "
            f"{1e3 * PUBLISHED['joules']:.1f} mJ per sequence (measured)"
        )
    lines.append(
        "note: each mapping uses the fewest PEs that hold its weights (or --max-units-per-pe): "
        "sparser weights -> fewer, fuller PEs, so time falls less than the weights do."
    )
    if any(p.weight_format == "event" and p.fits for p in points):
        lines.append(
            "note: event-format time depends on activity (measured here with random weights "
            "from a zero state over a short run); csr walks every stored weight whatever fires."
        )
    return "\n".join(lines)


def plot(
    points: list[WhatIfPoint],
    path: Path,
    *,
    title: str,
    pes_available: int,
    show_published: bool,
) -> Path:
    """Four panels against sparsity, one line per weight format (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    panels = [
        (axes[0, 0], "PEs used (hollow: needed, does not fit)", lambda p: p.pes_used),
        (
            axes[0, 1],
            "fullest PE (% of its data memory)",
            lambda p: 100 * p.fullest_utilisation,
        ),
        (
            axes[1, 0],
            f"time per {SEQUENCE_TOKENS}-token sequence (ms)",
            lambda p: 1e3 * p.seconds_per_sequence,
        ),
        (
            axes[1, 1],
            f"energy per {SEQUENCE_TOKENS}-token sequence (mJ)",
            lambda p: 1e3 * p.energy_per_sequence_j,
        ),
    ]
    formats = list(dict.fromkeys(p.weight_format for p in points))
    for ax, label, value in panels:
        for index, weight_format in enumerate(formats):
            color = f"C{index}"
            fitting = [p for p in points if p.weight_format == weight_format and p.fits]
            ax.plot(
                [p.sparsity for p in fitting],
                [value(p) for p in fitting],
                "o-",
                color=color,
                label=weight_format,
            )
            if ax is axes[0, 0]:
                missing = [
                    p
                    for p in points
                    if p.weight_format == weight_format and not p.fits and p.pes_needed
                ]
                ax.plot(
                    [p.sparsity for p in missing],
                    [p.pes_needed for p in missing],
                    "o",
                    mfc="none",
                    color=color,
                )
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0, 0].axhline(pes_available, color="k", ls="--", lw=1, label="PEs of the machine")
    axes[0, 0].set_yscale("log")
    axes[0, 1].axhline(100, color="k", ls="--", lw=1)
    axes[0, 1].set_ylim(0, 105)
    if show_published:
        axes[1, 0].plot(
            PUBLISHED["sparsity"], 1e3 * PUBLISHED["seconds"], "k*", ms=12, label="published"
        )
        axes[1, 1].plot(
            PUBLISHED["sparsity"], 1e3 * PUBLISHED["joules"], "k*", ms=12, label="published"
        )
        axes[1, 0].legend()
    axes[0, 0].legend()
    for ax in axes[1]:
        ax.set_xlabel("weight sparsity")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the sweep; returns 0 (points that do not fit are results, not errors)."""
    args = parse_example_args(build_parser(), argv, check=check_args, smoke=SMOKE)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points, artifact = sweep(args)

    from spinnaker2_backend import Machine

    pes_available = Machine(chips=args.chips).num_pes
    name = "paper-lm" if args.layer_sizes is None else "custom"
    sizes = "/".join(map(str, artifact.layer_sizes))
    title = (
        f"What if: {name} ({artifact.input_size} -> {sizes}) on {args.chips} chip(s) "
        f"({pes_available} PEs), {args.tokens} tokens per run"
    )
    published = args.layer_sizes is None
    print(format_table(points, f"== {title} ==", show_published=published))
    png = plot(
        points,
        out / "what_if.png",
        title=title,
        pes_available=pes_available,
        show_published=published,
    )
    rows = [asdict(p) for p in points]
    (out / "what_if.json").write_text(json.dumps({"title": title, "points": rows}, indent=2))
    with open(out / "what_if.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"plot: {png}")
    log.info("table in %s, plot in %s", out / "what_if.csv", png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
