"""Command line of the simulated SpiNNaker2 backend: ``python -m spinnaker2_backend``.

Subcommands:

``map``
    map a network onto the chip without running it (py-spinnaker2's ``mapping_only``) and
    print the mapping report: PEs per layer, bytes per memory region, the fullest PE, router
    entries and traffic. Optional JSON report, placement table (CSV / JSON) and a memory
    heatmap (PNG).

``run``
    map a network, run it on the simulated chip and print the run report: time per token and
    per 70-token sequence (LM) or per sample (DVS), the time profile, energy, packets and
    events, and the matching published rows for comparison. Optional JSON and plots.

``validate``
    run the published deployments and print each published figure beside the model's
    (:mod:`spinnaker2_backend.validation`).

Every subcommand lives in this module and nothing else in the package imports it (it sits
on top: it imports the mapping, the simulator and the plots, never the other way round).

Mistakes a user can fix (a missing file, a network that does not fit) print one line on
stderr and exit with status 2; ``--verbose`` shows the traceback instead.

A new subcommand is one ``add_<name>_parser`` function here, called from
:func:`build_parser`; it may reuse :func:`add_network_arguments` / :func:`add_mapping_arguments` and
:func:`mapping_from_args` so that every subcommand reads a network and maps it the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru.cliargs import (
    ArgumentParser,
    float_in,
    int_at_least,
    load_inputs,
    new_file,
    run_main,
)
from snn_egru.errors import UserError
from spinnaker2_backend.mapping import Mapping, map_network
from spinnaker2_backend.mapping.base import OVERFLOW_ACTIONS, ReceiveOverflowError
from spinnaker2_backend.options import (
    add_chip_boundaries_argument,
    add_map_output_arguments,
    add_mapping_arguments,
    add_network_arguments,
    check_map_arguments,
    load_network,
    mapping_kwargs,
    print_mapping,
)
from spinnaker2_backend.results import SEQUENCE_TOKENS, GpuFigure

__all__ = [
    "UserError",
    "add_mapping_arguments",
    "add_network_arguments",
    "add_run_parser",
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

MAP_HELP = "map a network onto the chip and report memory per PE (no run)"
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


# ====================================================================== shared options
# The network, mapping and machine flags live in spinnaker2_backend/options.py, shared with
# `snn-egru map|run|demo` and `python -m lava_procs run` (same flags, same checks).


def mapping_from_args(
    args: argparse.Namespace, *, check: bool = True, receive_capacity: Any = "args"
) -> Mapping:
    """Load the network and map it with the mapping / machine options (``receive_capacity``
    other than ``"args"`` replaces ``--receive-capacity``)."""
    from spinnaker2_backend.synthetic import published_receive

    kwargs = mapping_kwargs(args)
    net = load_network(args)
    if args.receive_policy is None:  # the published design where the paper gives it
        policy, capacity = published_receive(net, args.weight_format, args.input_source)
        kwargs["receive_policy"] = policy
        if args.receive_capacity is None:
            kwargs["receive_capacity"] = capacity
    if receive_capacity != "args":
        kwargs["receive_capacity"] = receive_capacity
    if getattr(args, "chip_boundaries", None) is not None:  # `map --chip-boundaries`
        from spinnaker2_backend.mapping.crossings import (
            bottleneck_boundaries,
            bottleneck_layers_of,
            check_bottleneck_placement,
        )

        boundaries = bottleneck_boundaries(net, args.chip_boundaries)
        mapping = map_network(net, **kwargs, check=check, chip_boundaries=boundaries)
        if args.chip_boundaries == "bottlenecks":
            check_bottleneck_placement(mapping, bottleneck_layers_of(net))
        return mapping
    return map_network(net, **kwargs, check=check)


# ================================================================================ map


def _cmd_map(args: argparse.Namespace) -> int:
    check_map_arguments(args)
    print_mapping(mapping_from_args(args), args)
    return 0


def _folder(text: str) -> str:
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return text


def _mapping_subcommand(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A subcommand that maps a network: its parser with the network and mapping flags."""
    parser = subparsers.add_parser(name, help=help, description=description, epilog=epilog)
    add_network_arguments(parser)
    add_mapping_arguments(parser)
    return parser


def add_map_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``map`` subcommand (mapping only, no run)."""
    parser = _mapping_subcommand(subparsers, "map", MAP_HELP, MAP_DESCRIPTION, MAP_EPILOG)
    add_map_output_arguments(parser)
    parser.set_defaults(func=_cmd_map)
    return parser


# ===================================================================== command line: run

RUN_HELP = "map a network and run it on the simulated chip (time, profile, energy)"
RUN_DESCRIPTION = """\
Map an EGRU network onto the simulated SpiNNaker2 chip and run it: every PE computes its
units, events travel as NoC packets, and the run reports time per token and per 70-token
sequence, the per-phase profile, energy, packets and events, compared with a GPU figure
(default: the published A100 row). Simulated figures are model estimates calibrated to the
published SpiNNaker2 run (170.25 ms, 0.39 W)."""

RUN_EPILOG = """\
examples:
  python -m spinnaker2_backend run --synthetic paper-lm --sparsity 0.95 --pes-per-layer 50
      the published LM on 150 PEs, CSR weights, the stand-in firing like a trained LM (20 %
      of units per step), bitmap receive buffers sized from its activity, one 70-token
      sequence of random tokens (`validate` runs it with --balance units: 27/27/15 units)
  python -m spinnaker2_backend run --synthetic paper-dvs --pes-per-layer 64 --steps 68 \
      --batch-size 4
      the DVS network on 128 PEs, four samples of 68 frames per step: time per sample
  python -m spinnaker2_backend run --synthetic paper-lm --weight-format event --json
      the same with the event-driven weight layout, report as JSON
  python -m spinnaker2_backend run model.npz --inputs tokens.npy --plot-dir plots/
      a trained network on given inputs; profile and packet plots written to plots/
  python -m spinnaker2_backend run --synthetic paper-dvs --weight-format dense --tick-us 5000
      the DVS network timer-driven, a step per 5 ms tick (the PEs idle after their work; a
      tick shorter than a step's work exits 2 naming the misses and the tick that fits)

inputs: --inputs FILE.npy (token ids (T,) or feature vectors (T, I)); otherwise --steps
random inputs (token ids drawn uniformly, or standard-normal features; seeded by --seed).
exit status: 0 ran, 2 a user error (file missing, network does not fit, ...)."""


def _workload_inputs(args: argparse.Namespace, artifact: Any) -> np.ndarray:
    """``--inputs`` (checked against the artifact; ``--steps`` keeps the first T) or
    ``--steps`` random inputs (``--batch-size`` samples of them)."""
    if args.inputs:
        time_axis = 0 if args.batch_size == 1 else 1
        inputs = load_inputs(args.inputs, artifact if args.batch_size == 1 else None)
        if args.steps is not None:
            if inputs.ndim <= time_axis or args.steps > inputs.shape[time_axis]:
                held = inputs.shape[time_axis] if inputs.ndim > time_axis else 0
                raise UserError(f"--steps {args.steps} is more than --inputs holds ({held} steps)")
            inputs = inputs[: args.steps] if time_axis == 0 else inputs[:, : args.steps]
        return inputs
    steps = SEQUENCE_TOKENS if args.steps is None else args.steps
    rng = np.random.default_rng(args.seed)
    batch = () if args.batch_size == 1 else (args.batch_size,)
    if artifact.input_kind == "embedding":
        return rng.integers(0, artifact.embedding.shape[0], size=(*batch, steps))
    return rng.standard_normal((*batch, steps, artifact.input_size)).astype(np.float32)


def _gpu_from_args(args: argparse.Namespace, artifact: Any = None) -> GpuFigure | None:
    """The user's comparison row, or None for the published row matching the workload (LM:
    the A100 of Table II, per 70-token sequence; features: the A100 of Table III, per
    sample)."""
    given = [args.gpu_power_w, args.gpu_ms, args.gpu_energy_j]
    if all(v is None for v in given):
        return None
    if any(v is None for v in given):
        raise UserError(
            "a GPU comparison row needs all of --gpu-power-w, --gpu-ms and --gpu-energy-j "
            "(per 70-token sequence for an LM, per sample otherwise)"
        )
    features = artifact is not None and artifact.input_kind != "embedding"
    return GpuFigure(
        unit="sample" if features else "sequence",
        name=args.gpu_name,
        power_w=args.gpu_power_w,
        seconds_per_sequence=args.gpu_ms * 1e-3,
        energy_j_per_sequence=args.gpu_energy_j,
        measured=False,
        source="user supplied (command line)",
    )


#: Steps of per-step detail ``run`` keeps by default (``--record-window``).
RECORD_WINDOW = 1000


def _window(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: every step), got {value}")
    return value


def _check_plot_outputs(args: argparse.Namespace) -> None:
    """``--plot`` and ``--plot-dir``'s plots are written, never silently replaced."""
    from snn_egru.cliargs import check_output

    if args.plot:
        check_output(args.plot, "--plot", overwrite=args.overwrite)
    if args.plot_dir:
        check_output(args.plot_dir, "--plot-dir", folder=True)
        for name in ("profile.png", "packets.png"):
            check_output(Path(args.plot_dir) / name, "--plot-dir", overwrite=args.overwrite)


def _cmd_run(args: argparse.Namespace) -> int:
    from spinnaker2_backend.simulator import receive_capacity_from_run, run_mapping

    auto = args.receive_capacity == "auto"
    if auto and args.receive_policy not in (None, "event-list", "bitmap16"):
        raise UserError(
            "--receive-capacity auto sizes event lists and bitmaps: add --receive-policy "
            "event-list or bitmap16"
        )
    if args.save_steps:
        target = Path(args.save_steps)
        if target.exists() and not args.overwrite:
            raise UserError(f"--save-steps: {target} exists: pass --overwrite to replace it")
        if not target.parent.is_dir():
            raise UserError(f"--save-steps: folder {target.parent} does not exist")
    _check_plot_outputs(args)
    mapping = mapping_from_args(args, check=not auto)
    inputs = _workload_inputs(args, mapping.artifact)
    gpu = _gpu_from_args(args, mapping.artifact)
    options = dict(
        dtype=np.float64 if args.dtype == "float64" else np.float32,
        tick_us=args.tick_us,
        pipelined=args.pipelined,
        readout=args.readout,
        record=True,
        record_window=args.record_window or None,
        progress=args.verbose,
        on_overflow=args.on_overflow,
    )
    if auto:  # lists that cannot overflow, one recorded run, then lists of its peak
        probe = run_mapping(mapping, inputs, **options)
        capacity = receive_capacity_from_run(probe)
        mapping = mapping_from_args(args, receive_capacity=list(capacity))
        logger.info("event lists sized from the recorded activity: %s", capacity)
    run = run_mapping(mapping, inputs, step_log=args.save_steps, **options)
    if args.tick_us is not None and run.profile.deadline_missed:
        from spinnaker2_backend.execution import deadline_report

        raise UserError(deadline_report(run.profile).message())
    report = run.report(gpu=gpu)
    crossings = None
    if args.chip_boundaries is not None:  # what crossed the chip boundaries in this run
        from spinnaker2_backend.mapping.crossings import crossings_from_run

        crossings = crossings_from_run(mapping, run)
    if args.json:
        text = report.to_json()
        if crossings is not None:
            text = json.dumps({**json.loads(text), "crossings": crossings.to_dict()}, indent=2)
        print(text)
    else:
        print(report.table())
        if crossings is not None:
            print(crossings.table())
    if args.plot_dir:
        from spinnaker2_backend.plots_run import save_run_plots

        paths = save_run_plots(run, args.plot_dir)
        if not args.json:
            print("plots: " + ", ".join(str(p) for p in paths))
    if args.plot:
        from spinnaker2_backend.plots_run import plot_profile

        plot_profile(run, args.plot)
        if not args.json:
            print(f"profile plot: {args.plot}")
    return 0


def add_run_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``run`` subcommand of ``python -m spinnaker2_backend`` (map, then run)."""
    parser = _mapping_subcommand(subparsers, "run", RUN_HELP, RUN_DESCRIPTION, RUN_EPILOG)
    group = parser.add_argument_group("run")
    group.add_argument(
        "--inputs", metavar="FILE.npy", help="workload inputs (token ids or feature vectors)"
    )
    group.add_argument(
        "--steps",
        type=int_at_least(1),
        default=None,
        metavar="T",
        help=f"steps to run: of random inputs (default {SEQUENCE_TOKENS}, one sequence), or "
        "the first T of --inputs (default: all)",
    )
    group.add_argument(
        "--tick-us",
        type=float_in(0, low_open=True),
        default=None,
        metavar="US",
        help="tick duration in microseconds: flag PEs that miss the deadline (default: none, "
        "free running)",
    )
    group.add_argument(
        "--pipelined",
        action="store_true",
        help="pipeline the layers (default: one after another per token, as published)",
    )
    group.add_argument(
        "--readout",
        choices=("host", "chip"),
        default="host",
        help="where the readout runs (default: host, as published)",
    )
    group.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="default float32"
    )
    group.add_argument(
        "--on-overflow",
        choices=OVERFLOW_ACTIONS,
        default="raise",
        help="a full event list: raise (default, exit 2 naming the layer and step) or drop "
        "the events and report how many",
    )
    group.add_argument(
        "--record-window",
        type=_window,
        default=RECORD_WINDOW,
        metavar="N",
        help="keep the per-step per-PE detail (events, counts, logits) of the last N steps "
        f"only, so memory does not grow with the run (default {RECORD_WINDOW}; 0: every "
        "step); the report and the profile plot always cover every step, the packets "
        "plot the kept steps",
    )
    gpu = parser.add_argument_group(
        "comparison row (per 70-token sequence for an LM, per sample otherwise; default: the "
        "published A100 row of the matching table)"
    )
    gpu.add_argument("--gpu-name", default="GPU (user supplied)", help="label of the GPU row")
    positive = float_in(0, low_open=True)
    gpu.add_argument("--gpu-power-w", type=positive, help="GPU power, W (> 0)")
    gpu.add_argument("--gpu-ms", type=positive, help="GPU time per sequence or sample, ms")
    gpu.add_argument("--gpu-energy-j", type=positive, help="GPU energy per sequence or sample, J")
    add_chip_boundaries_argument(group)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (with "
        "--chip-boundaries: and the run's chip-to-chip crossings)",
    )
    out.add_argument(
        "--plot", type=new_file(".png"), metavar="FILE.png", help="draw the time profile"
    )
    out.add_argument(
        "--plot-dir", type=_folder, metavar="DIR", help="write profile.png and packets.png"
    )
    out.add_argument(
        "--save-steps",
        type=new_file(".npz"),
        metavar="FILE.npz",
        help="stream every step's layer figures (cycles, NoC tail, critical-path phases, "
        "operation counts, schedule) to FILE.npz, in chunks (memory stays bounded; open it "
        "with spinnaker2_backend.recording.read_step_log or numpy.load)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --save-steps, --plot or --plot-dir file (refused otherwise)",
    )
    parser.set_defaults(func=_cmd_run)
    return parser


# ========================================================================== validate

VALIDATE_DESCRIPTION = """\
Run every published deployment the simulator stands in for (the LM on 150 PEs, the DVS
gesture network on 128 PEs, batch 1) and print one table: each published figure (memory
per region, time, energy, power, PEs) beside the model's, the relative error, and whether
the figure was used to calibrate the model or is held out (never fitted)."""


def _cmd_validate(args: argparse.Namespace) -> int:
    from spinnaker2_backend.validation import validate

    result = validate()
    print(result.table())
    for path, text in ((args.markdown, result.markdown()), (args.json, result.to_json())):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + ("" if text.endswith("\n") else "\n"))
            print(f"written: {path}")
    return 0 if result.ok else 1


def add_validate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``validate`` subcommand (the fidelity table)."""
    parser = subparsers.add_parser(
        "validate",
        help="compare the simulated chip with every published measurement",
        description=VALIDATE_DESCRIPTION,
    )
    parser.epilog = (  # parser.prog: `snn-egru validate` when called from snn-egru
        f"exit status: 0 every figure within its bound, 1 one is not.\n"
        f"the documented table: {parser.prog} --markdown docs/fidelity.md "
        "--json docs/fidelity.json"
    )
    parser.add_argument("--markdown", metavar="FILE.md", help="also write the table as markdown")
    parser.add_argument("--json", metavar="FILE.json", help="also write the table as JSON")
    parser.set_defaults(func=_cmd_validate)
    return parser


# ============================================================================= parser


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser with every subcommand (``prog``: the name the user typed)."""
    parser = ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=f"run `{prog} COMMAND --help` for the options of a command",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress; show tracebacks of errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Every subcommand lives in this module: one add_<name>_parser(subparsers) each, which
    # sets `func` (args -> exit status) with parser.set_defaults(func=...).
    add_map_parser(subparsers)
    add_run_parser(subparsers)
    add_validate_parser(subparsers)
    return parser


#: Exceptions that are user mistakes: one line on stderr, exit status 2. ``ValueError``
#: covers invalid option values (a sparsity out of range, a bad clock, ...); MappingError and
#: ArtifactError are ValueErrors too.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ReceiveOverflowError,
    ValueError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Entry point; returns the exit status (``prog``: the program name in help and errors)."""
    parser = build_parser(prog)
    args = parser.parse_or_status(argv)
    if isinstance(args, int):
        return args
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return run_main(
        lambda: args.func(args),
        prog=f"{prog} {args.command}",
        verbose=verbose,
        user_errors=USER_ERRORS,
    )
