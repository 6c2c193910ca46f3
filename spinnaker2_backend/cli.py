"""Command line of the simulated SpiNNaker2 backend: ``python -m spinnaker2_backend``.

Subcommands:

``map``
    map a network onto the chip without running it (py-spinnaker2's ``mapping_only``) and
    print the mapping report: PEs per layer, bytes per memory region, the fullest PE, router
    entries and traffic. Optional JSON report, placement table (CSV / JSON) and a memory
    heatmap (PNG).

Mistakes a user can fix (a missing file, a network that does not fit) print one line on
stderr and exit with status 2; ``--verbose`` shows the traceback instead.

Other subcommands plug in through :func:`build_parser` (see the marked place there); they may
reuse :func:`add_network_arguments` / :func:`add_mapping_arguments` and
:func:`mapping_from_args` so that every subcommand reads a network and maps it the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import WEIGHT_FORMATS
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping import INPUT_SOURCES, Mapping, map_network
from spinnaker2_backend.synthetic import PRESETS

__all__ = [
    "UserError",
    "add_mapping_arguments",
    "add_network_arguments",
    "build_parser",
    "load_network",
    "main",
    "mapping_from_args",
]

logger = logging.getLogger(__name__)

PROG = "python -m spinnaker2_backend"

DESCRIPTION = """\
A simulated SpiNNaker2 chip for EGRU networks: map a trained network (a deployment
artifact written by `snn-egru export`) or a synthetic one onto the chip's 152 PEs, and
see where every unit, weight and byte goes."""

MAP_DESCRIPTION = """\
Map an EGRU network onto SpiNNaker2 PEs without running it: partition the units of each
layer into per-PE slices, place the slices on PEs, route the events, lay out every PE's
memory, check that it fits, and print the report."""

MAP_EPILOG = f"""\
examples:
  {PROG} map model.npz
      map a trained network (CSR weights, automatic partition) and print the report
  {PROG} map --synthetic paper-lm --sparsity 0.95 --seed 0
      the published language model (1350/1350/750 units) with 95 % sparse random weights
  {PROG} map --synthetic paper-lm --max-units-per-pe 24 --plot memory.png
      at most 24 units per PE; draw the memory use of every PE on the chip
  {PROG} map --synthetic paper-dvs --weight-format dense --json
      the DVS gesture network with dense weights, report as JSON
  {PROG} map model.npz --record-steps 70 --chips 2 --save-placement placement.csv
      room for 70 recorded steps, two chips, placement table written as CSV

exit status: 0 mapped and fits, 2 a user error (file missing, network does not fit, ...)."""


class UserError(Exception):
    """A mistake on the command line the user can fix (printed as one line, exit 2)."""


# ====================================================================== shared options


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the network: an artifact path or a synthetic preset."""
    group = parser.add_argument_group("network")
    group.add_argument(
        "artifact",
        nargs="?",
        metavar="ARTIFACT",
        help="deployment artifact (.npz) written by `snn-egru export`",
    )
    group.add_argument(
        "--synthetic",
        choices=sorted(PRESETS),
        help="use a synthetic network instead of ARTIFACT: "
        + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items()),
    )
    group.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="weight sparsity of the synthetic network, 0 <= s < 1 "
        "(default: the preset's, 0.95 for paper-lm, 0 for paper-dvs)",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="random seed of the synthetic network (default 0)"
    )


def add_mapping_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the mapping and of the machine."""
    group = parser.add_argument_group("mapping")
    group.add_argument(
        "--weight-format",
        choices=WEIGHT_FORMATS,
        default="csr",
        help="how PEs store weights: csr (rows, the published design), event (one row per "
        "source unit: only weights of units that fired are read), dense (default: csr)",
    )
    split = group.add_mutually_exclusive_group()
    split.add_argument(
        "--max-units-per-pe",
        type=int,
        metavar="N",
        help="at most N units per PE (like py-spinnaker2's max_atoms_per_core); default: "
        "automatic, the fewest PEs that fit",
    )
    split.add_argument(
        "--pes-per-layer",
        metavar="N[,N...]",
        help="PEs for every layer (one number) or per layer (comma-separated), units "
        "balanced by bytes",
    )
    group.add_argument(
        "--record-steps",
        type=int,
        default=0,
        metavar="N",
        help="steps of events recorded in PE memory during a run (they must fit; default 0)",
    )
    group.add_argument(
        "--input-source",
        choices=INPUT_SOURCES,
        default="dram",
        help="where layer-0 input vectors come from (default: dram, computed ahead)",
    )
    machine = parser.add_argument_group("machine")
    machine.add_argument(
        "--chips", type=int, default=1, metavar="N", help="number of chips (default 1)"
    )
    machine.add_argument(
        "--clock-mhz",
        type=float,
        default=150,
        choices=[hz / 1e6 for hz in ChipSpec().pe_clock_levels_hz],
        metavar="MHZ",
        help="PE clock: 150 or 300 MHz (default 150)",
    )


def _parse_pes_per_layer(text: str | None) -> int | list[int] | None:
    if text is None:
        return None
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(
            f"--pes-per-layer takes a number or comma-separated numbers, got {text!r}"
        ) from None
    return counts[0] if len(counts) == 1 else counts


def load_network(args: argparse.Namespace):
    """The :class:`~snn_egru.artifact.DeploymentArtifact` chosen by the network options."""
    from snn_egru.artifact import DeploymentArtifact
    from spinnaker2_backend.synthetic import synthetic_network

    if args.synthetic and args.artifact:
        raise UserError("give either ARTIFACT or --synthetic, not both")
    if args.synthetic:
        return synthetic_network(args.synthetic, sparsity=args.sparsity, seed=args.seed)
    if not args.artifact:
        raise UserError("give a deployment artifact (ARTIFACT) or --synthetic paper-lm|paper-dvs")
    if args.sparsity is not None:
        raise UserError("--sparsity applies to --synthetic networks only")
    return DeploymentArtifact.load(args.artifact)


def mapping_from_args(args: argparse.Namespace, *, check: bool = True) -> Mapping:
    """Load the network and map it with the mapping / machine options."""
    artifact = load_network(args)
    spec = ChipSpec().with_clock_mhz(args.clock_mhz)
    if args.chips < 1:
        raise UserError(f"--chips must be >= 1, got {args.chips}")
    machine = Machine(chips=args.chips, spec=spec)
    return map_network(
        artifact,
        machine=machine,
        weight_format=args.weight_format,
        max_units_per_pe=args.max_units_per_pe,
        pes_per_layer=_parse_pes_per_layer(args.pes_per_layer),
        record_steps=args.record_steps,
        input_source=args.input_source,
        check=check,
    )


# ================================================================================ map


def _cmd_map(args: argparse.Namespace) -> int:
    mapping = mapping_from_args(args)
    report = mapping.report()
    if args.json:
        print(report.to_json())
    else:
        print(report.table(max_pe_rows=None if args.per_pe else 0))
    if args.save_placement:
        path = mapping.save_placement(args.save_placement)
        logger.info("placement written to %s", path)
        if not args.json:
            print(f"placement table: {path}")
    if args.plot:
        from spinnaker2_backend.plots import plot_memory_heatmap

        if not args.plot.lower().endswith(".png"):
            raise UserError(
                f"--plot writes a PNG file: give a name ending in .png, not {args.plot!r}"
            )
        plot_memory_heatmap(mapping, args.plot)
        if not args.json:
            print(f"memory heatmap: {args.plot}")
    return 0


def add_map_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``map`` subcommand (mapping only, no run)."""
    parser = subparsers.add_parser(
        "map",
        help="map a network onto the chip and report memory per PE (no run)",
        description=MAP_DESCRIPTION,
        epilog=MAP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_network_arguments(parser)
    add_mapping_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the full report as JSON")
    out.add_argument("--per-pe", action="store_true", help="also print one line per PE")
    out.add_argument(
        "--save-placement",
        metavar="FILE",
        help="write the placement table (.csv or .json)",
    )
    out.add_argument("--plot", metavar="FILE.png", help="draw the memory heatmap of the PEs")
    parser.set_defaults(func=_cmd_map)
    return parser


# ============================================================================= parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"run `{PROG} COMMAND --help` for the options of a command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress; show tracebacks of errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_map_parser(subparsers)
    from spinnaker2_backend.run import add_run_parser

    add_run_parser(subparsers)
    # ---------------------------------------------------------------------------------
    # RUNNING half: further subcommands (e.g. `run`) are added here, one call each:
    #     from spinnaker2_backend.<module> import add_run_parser
    #     add_run_parser(subparsers)
    # A subcommand sets `func` (args -> exit status) with parser.set_defaults(func=...).
    # ---------------------------------------------------------------------------------
    return parser


#: Exceptions that are user mistakes: one line on stderr, exit status 2. ``ValueError``
#: covers invalid option values (a sparsity out of range, a bad clock, ...); MappingError and
#: ArtifactError are ValueErrors too.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ValueError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        if verbose:
            raise
        message = " ".join(str(err).split())
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
