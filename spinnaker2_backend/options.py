"""The mapping and machine options shared by every command that maps a network.

``snn-egru map|run|demo``, ``python -m spinnaker2_backend map|run`` and ``python -m
lava_procs run`` all build their flags here, so the same idea has the same flag everywhere
and every piece of advice a mapping error prints (``--chips 2``, ``--max-units-per-pe 24``,
``--weight-format event``, ``--record-steps 3``) is a flag the command has:

- :func:`add_mapping_arguments`: the ``mapping`` and ``machine`` argument groups
  (``--weight-format``, ``--max-units-per-pe`` | ``--pes-per-layer``, ``--record-steps``,
  ``--input-source``, ``--chips``, ``--clock-mhz``); every value is checked while the
  arguments are parsed, before any work starts.
- :func:`mapping_kwargs`: parsed arguments -> keyword arguments of
  :func:`spinnaker2_backend.map_network` (``machine``, ``weight_format``, ...).
- :func:`mapping_argv`: the same options as command-line words, to hand them to a child
  process (``snn-egru`` runs Lava as ``python -m lava_procs run ...``).
- :func:`add_network_arguments` / :func:`load_network`: ARTIFACT or ``--synthetic PRESET``.

This module is not a command line itself (nothing here parses ``sys.argv``); command-line
modules import it, never the other way round.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from snn_egru.cliargs import float_in, int_at_least
from snn_egru.errors import UserError
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats_int8 import QUANTIZED_WEIGHT_FORMATS
from spinnaker2_backend.mapping.base import ALL_WEIGHT_FORMATS, RECEIVE_POLICIES
from spinnaker2_backend.mapping.partition import PARTITION_BALANCES

logger = logging.getLogger(__name__)

__all__ = [
    "CLOCKS_MHZ",
    "INPUT_SOURCES",
    "add_mapping_arguments",
    "add_network_arguments",
    "load_network",
    "mapping_argv",
    "MAPPING_DEFAULTS",
    "NOT_ON_LAVA",
    "given_mapping_flags",
    "mapping_kwargs",
    "mapping_settings",
    "pes_per_layer",
]

#: Where layer-0 inputs come from (see :func:`spinnaker2_backend.map_network`).
INPUT_SOURCES: tuple[str, ...] = ("dram", "host")

#: PE clock levels of the chip, in MHz (150 and 300).
CLOCKS_MHZ: tuple[float, ...] = tuple(hz / 1e6 for hz in ChipSpec().pe_clock_levels_hz)


def _counts(text: str, takes: str, what: str) -> int | list[int]:
    """``N`` or ``N,N,...`` (every N >= 1) as an int or a list, else ArgumentTypeError."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes {takes}, got {text!r}") from None
    if any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"every {what} must be >= 1, got {text!r}")
    return counts[0] if len(counts) == 1 else counts


def pes_per_layer(text: str) -> int | list[int]:
    """``argparse`` type of ``--pes-per-layer``: ``N`` or ``N,N,...``, every N >= 1."""
    return _counts(text, "a number or comma-separated numbers (e.g. 53,68,29)", "PE count")


def receive_capacity(text: str) -> str | int | list[int]:
    """``argparse`` type of ``--receive-capacity``: ``auto``, ``N`` or ``N,N,...`` (N >= 1)."""
    if text == "auto":
        return text
    return _counts(text, "a number, comma-separated numbers or auto", "capacity")


def _clock(text: str) -> float:
    value = float_in(0, low_open=True)(text)
    if value not in CLOCKS_MHZ:
        levels = " or ".join(f"{c:g}" for c in CLOCKS_MHZ)
        raise argparse.ArgumentTypeError(f"the PE clock is {levels} MHz, got {text}")
    return value


def add_mapping_arguments(parser: argparse.ArgumentParser, *, weight_format: str = "csr") -> None:
    """Add the ``mapping`` and ``machine`` groups (the same flags on every command)."""
    group = parser.add_argument_group("mapping")
    group.add_argument(
        "--weight-format",
        choices=ALL_WEIGHT_FORMATS,
        default=weight_format,
        help="how PEs store weights: csr (rows, the published design), event (one row per "
        "source unit: only weights of units that fired are read), dense "
        f"(default: {weight_format}); for an int8 artifact (`snn-egru export --quantize "
        "int8`): csr-int8, event-int8 (int8 weights x float32 events on the Arm core), "
        "mac-int8 (16 x 4 tiles on the MAC array, events quantised too); a --synthetic "
        "network is quantised for them (PTQ)",
    )
    split = group.add_mutually_exclusive_group()
    split.add_argument(
        "--max-units-per-pe",
        type=int_at_least(1),
        metavar="N",
        help="at most N units per PE (like py-spinnaker2's max_atoms_per_core); default: "
        "automatic, the fewest PEs that fit",
    )
    split.add_argument(
        "--pes-per-layer",
        type=pes_per_layer,
        metavar="N[,N...]",
        help="PEs for every layer (one number) or per layer (comma-separated), units "
        "balanced by bytes (default: automatic)",
    )
    group.add_argument(
        "--record-steps",
        type=int_at_least(0),
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
    group.add_argument(
        "--balance",
        choices=PARTITION_BALANCES,
        default="bytes",
        help="with --pes-per-layer: split the units so the largest slice in bytes is "
        "smallest (bytes, default) or into equal unit counts (units: the published 27/27/15 "
        "on 50 PEs per layer)",
    )
    group.add_argument(
        "--receive-policy",
        choices=RECEIVE_POLICIES,
        default=None,
        help="how a PE keeps the events it receives: dense (a float32 vector per input), "
        "reused (one vector for both products), event-list (a compact list with a "
        "capacity), bitmap16 (a bit per source and the binary16 values of those that "
        "fired, with a capacity: reproduces the published memory table at a trained LM's "
        "activity; CSR), accumulate (multiplied in on arrival; --weight-format event). "
        "Default: bitmap16 sized from the stand-in's activity for --synthetic paper-lm with "
        "CSR weights (the published deployment), dense otherwise",
    )
    group.add_argument(
        "--receive-capacity",
        type=receive_capacity,
        metavar="N[,N...]|auto",
        help="entries of the event list or bitmap, for every layer or per layer (default: "
        "every source, never overflows; the stand-in's recorded peak plus 10 %% for "
        "--synthetic paper-lm); `run` also takes auto: sized from the run's own recorded "
        "activity",
    )
    group.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=1,
        metavar="B",
        help="samples every PE keeps and processes per step (default 1)",
    )
    machine = parser.add_argument_group("machine")
    machine.add_argument(
        "--chips",
        type=int_at_least(1, maximum=ChipSpec().max_chips),
        default=1,
        metavar="N",
        help=f"number of chips, at most {ChipSpec().max_chips} (the largest SpiNNaker2 machine)",
    )
    machine.add_argument(
        "--clock-mhz",
        type=_clock,
        default=CLOCKS_MHZ[0],
        metavar="MHZ",
        help=f"PE clock: {' or '.join(f'{c:g}' for c in CLOCKS_MHZ)} MHz "
        f"(default {CLOCKS_MHZ[0]:g})",
    )


#: Defaults of the mapping and machine options (see :func:`add_mapping_arguments`).
MAPPING_DEFAULTS: dict[str, Any] = {
    "weight_format": "csr",
    "max_units_per_pe": None,
    "pes_per_layer": None,
    "record_steps": 0,
    "input_source": "dram",
    "balance": "bytes",
    "receive_policy": None,
    "receive_capacity": None,
    "batch_size": 1,
    "chips": 1,
    "clock_mhz": CLOCKS_MHZ[0],
}


def given_mapping_flags(args: argparse.Namespace, names: Any = None) -> list[str]:
    """The mapping and machine flags (``--chips``, ...) set to other than their defaults;
    ``names``: only these options (keyword names)."""
    names = MAPPING_DEFAULTS if names is None else names
    return [
        "--" + name.replace("_", "-")
        for name in names
        if getattr(args, name, MAPPING_DEFAULTS[name]) != MAPPING_DEFAULTS[name]
    ]


#: Options the Lava chip models (``lava_procs``'s spinnaker2 run config) do not take.
NOT_ON_LAVA = (
    "pes_per_layer",
    "record_steps",
    "input_source",
    "balance",
    "receive_policy",
    "receive_capacity",
    "batch_size",
)


#: The options that :func:`map_network` takes as they were parsed (besides the machine).
_MAP_NETWORK_OPTIONS = ("weight_format", "max_units_per_pe", *NOT_ON_LAVA)


def mapping_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`spinnaker2_backend.map_network` from parsed options."""
    from spinnaker2_backend.machine import Machine

    spec = ChipSpec().with_clock_mhz(args.clock_mhz)
    kwargs = {"machine": Machine(chips=args.chips, spec=spec)}
    kwargs.update((name, getattr(args, name)) for name in _MAP_NETWORK_OPTIONS)
    kwargs["receive_policy"] = args.receive_policy or "dense"  # cli: the published design
    if args.receive_capacity == "auto":  # sized by `run` from a recorded run; until then:
        kwargs["receive_capacity"] = None  # every source
    return kwargs


def mapping_argv(args: argparse.Namespace, *, partition: bool = True) -> list[str]:
    """The parsed mapping and machine options as command-line words (defaults left out;
    ``partition=False`` leaves out ``--weight-format`` and ``--max-units-per-pe`` too)."""
    words = []
    if partition:
        words += ["--weight-format", args.weight_format]
        if args.max_units_per_pe is not None:
            words += ["--max-units-per-pe", str(args.max_units_per_pe)]
    if args.pes_per_layer is not None:
        counts = (
            args.pes_per_layer if isinstance(args.pes_per_layer, list) else [args.pes_per_layer]
        )
        words += ["--pes-per-layer", ",".join(map(str, counts))]
    if args.record_steps:
        words += ["--record-steps", str(args.record_steps)]
    if args.input_source != "dram":
        words += ["--input-source", args.input_source]
    for name in ("balance", "receive_policy", "batch_size"):
        if getattr(args, name) != MAPPING_DEFAULTS[name]:
            words += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if args.receive_capacity is not None:
        cap = args.receive_capacity
        words += [
            "--receive-capacity",
            ",".join(map(str, cap)) if isinstance(cap, list) else str(cap),
        ]
    if args.chips != 1:
        words += ["--chips", str(args.chips)]
    if args.clock_mhz != CLOCKS_MHZ[0]:
        words += ["--clock-mhz", f"{args.clock_mhz:g}"]
    return words


def mapping_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The mapping and machine options as a JSON-safe dict (for summaries)."""
    return {
        **{name: getattr(args, name) for name in _MAP_NETWORK_OPTIONS},
        "chips": args.chips,
        "clock_mhz": args.clock_mhz,
    }


# --------------------------------------------------------------------------- the network
def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """ARTIFACT or ``--synthetic PRESET`` (with ``--sparsity`` and ``--seed``)."""
    from spinnaker2_backend.synthetic import PRESETS

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
        type=float_in(0.0, 1.0, high_open=True),
        default=None,
        help="weight sparsity of the synthetic network, 0 <= s < 1 "
        "(default: the preset's, 0.95 for paper-lm, 0 for paper-dvs)",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="random seed of the synthetic network (default 0)"
    )
    group.add_argument(
        "--activity",
        type=activity_list,
        metavar="A[,A...]",
        help="fraction of units a synthetic network fires per step, for every layer or per "
        "layer, 0 < A < 1 (thresholds tuned to it; default: paper-lm 0.2, a trained LM's; "
        "paper-dvs its drawn thresholds)",
    )


def activity_list(text: str) -> float | list[float]:
    """``argparse`` type of ``--activity``: ``A`` or ``A,A,...``, every ``0 < A < 1``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give fractions like 0.2 or 0.25,0.2,0.15, not {text!r}"
        ) from None
    if not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"every activity must lie in (0, 1), got {text!r}")
    return values[0] if len(values) == 1 else values


def check_network_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory network options (before any work)."""
    if args.synthetic and args.artifact:
        raise UserError("give either ARTIFACT or --synthetic, not both")
    if not args.synthetic and not args.artifact:
        raise UserError("give a deployment artifact (ARTIFACT) or --synthetic paper-lm|paper-dvs")
    if args.sparsity is not None and not args.synthetic:
        raise UserError("--sparsity applies to --synthetic networks only")
    if getattr(args, "activity", None) is not None and not args.synthetic:
        raise UserError("--activity applies to --synthetic networks only")


def load_network(args: argparse.Namespace):
    """The :class:`~snn_egru.artifact.DeploymentArtifact` chosen by the network options."""
    from snn_egru.artifact import DeploymentArtifact

    check_network_arguments(args)
    if args.synthetic:
        from spinnaker2_backend.synthetic import ActivityError, synthetic_network

        try:
            net = synthetic_network(
                args.synthetic,
                sparsity=args.sparsity,
                seed=args.seed,
                activity=getattr(args, "activity", None),
            )
        except ActivityError as err:
            raise UserError(str(err)) from None
        fmt = getattr(args, "weight_format", "csr")
        if fmt in QUANTIZED_WEIGHT_FORMATS:  # int8 formats: quantise the synthetic network
            from spinnaker2_backend.synthetic import quantize_for_format

            return quantize_for_format(net, fmt, seed=args.seed)
        return net
    return DeploymentArtifact.load(args.artifact)


# ============================================================================ map output


def placement_file(text: str) -> str:
    """argparse type of ``--save-placement``: a file name ending in .csv or .json."""
    if not text.lower().endswith((".csv", ".json")) or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"give a file name ending in .csv or .json, not {text!r}")
    return text


def add_map_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The output flags of a ``map`` command (``snn-egru map``, ``python -m ... map``)."""
    from snn_egru.cliargs import new_file

    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the full report as JSON")
    out.add_argument("--per-pe", action="store_true", help="also print one line per PE")
    out.add_argument(
        "--save-placement",
        type=placement_file,
        metavar="FILE",
        help="write the placement table (.csv or .json)",
    )
    out.add_argument(
        "--plot", type=new_file(".png"), metavar="FILE.png", help="draw the memory heatmap"
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --save-placement or --plot file (refused otherwise)",
    )
    add_chip_boundaries_argument(out)
    out.add_argument(
        "--crossings",
        action="store_true",
        help="print the chip-to-chip traffic per layer and chip pair (every unit firing)",
    )


def add_chip_boundaries_argument(group: Any) -> None:
    """``--chip-boundaries`` (``map`` and ``run``)."""
    group.add_argument(
        "--chip-boundaries",
        type=chip_boundaries,
        default=None,
        metavar="L[,L...]|bottlenecks",
        help="start the layer after each L on a fresh chip ('bottlenecks': after each "
        "bottleneck layer the artifact marks); the bottleneck layers must lie on the chips "
        "of the layer before them",
    )


def chip_boundaries(text: str) -> str | list[int]:
    """``--chip-boundaries``: ``bottlenecks`` or layer indices ``0,2``."""
    if text.strip() == "bottlenecks":
        return "bottlenecks"
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give layer indices (0,2) or 'bottlenecks'"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer indices >= 0 or 'bottlenecks'")
    return values


def check_map_arguments(args: argparse.Namespace) -> None:
    """Refuse what a mapping-only command cannot do (before any work)."""
    from snn_egru.cliargs import check_output

    for flag, path in (("--save-placement", args.save_placement), ("--plot", args.plot)):
        if path:
            check_output(path, flag, overwrite=args.overwrite)
    if args.receive_capacity == "auto":
        raise UserError(
            "--receive-capacity auto sizes the lists from a run's activity: use it with `run`, "
            "or give numbers to `map`"
        )


def print_mapping(mapping, args: argparse.Namespace) -> None:
    """Print a map command's report and write the files its output flags ask for."""
    report = mapping.report()
    print(report.to_json() if args.json else report.table(max_pe_rows=None if args.per_pe else 0))
    if args.save_placement:
        path = mapping.save_placement(args.save_placement)
        logger.info("placement written to %s", path)
        if not args.json:
            print(f"placement table: {path}")
    if getattr(args, "crossings", False):
        from spinnaker2_backend.mapping.crossings import all_fire_events, count_crossings

        crossings = count_crossings(mapping, all_fire_events(mapping), source="every unit fires")
        print(json.dumps(crossings.to_dict(), indent=2) if args.json else crossings.table())
    if args.plot:
        from spinnaker2_backend.plots import plot_memory_heatmap

        plot_memory_heatmap(mapping, args.plot)
        if not args.json:
            print(f"memory heatmap: {args.plot}")
