"""Command line of lava_procs: run a deployment artifact as a Lava graph.

``python -m lava_procs run ARTIFACT --inputs INPUTS.npy --backend spinnaker2 --out OUT``

It is also how ``snn-egru`` runs Lava: in a child process, so that the training side
(torch) never imports Lava and Lava's forked process models never inherit torch. The
mapping and machine flags are the ones of every command that maps a network
(:mod:`spinnaker2_backend.options`), so the advice of a mapping error names flags that
exist here too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from snn_egru.cliargs import (
    ArgumentParser,
    add_seconds_option,
    check_output,
    flag_message,
    int_at_least,
    load_inputs,
    npz_bytes,
    run_main,
    user_error_types,
)
from snn_egru.errors import UserError
from spinnaker2_backend.options import NOT_ON_LAVA, add_mapping_arguments, given_mapping_flags

log = logging.getLogger("lava_procs")

PROG = "python -m lava_procs"

EPILOG = """examples:
  python -m lava_procs run model.npz --inputs tokens.npy --backend floating_pt --out lava_out
      run the numpy-reference process models over the token ids in tokens.npy
  python -m lava_procs run model.npz --inputs tokens.npy --backend spinnaker2 \\
      --weight-format event --out lava_chip
      the simulated-SpiNNaker2 process models, event-driven weight layout; writes
      outputs.npz (logits, events), chip_report.json (time, profile, energy, packets),
      profile.png and packets.png
  python -m lava_procs run dvs.npz --inputs features.npy --backend spinnaker2 --chips 2 \\
      --out lava_dvs
      a feature-vector (DVS) artifact on two simulated chips

The mapping and machine options apply to --backend spinnaker2 (the floating_pt models do
not map onto a chip); --pes-per-layer and --input-source are not available on the Lava
models (use `python -m spinnaker2_backend run` or `snn-egru run --backend chip`).

The results of an earlier run in --out are replaced only with --overwrite; the files of a
run appear together when it ends (a run that fails or is interrupted leaves none).

exit status: 0 ran, 2 a user error (missing file, bad inputs, network does not fit, an
earlier run in --out), 1 the Lava run itself failed (a process model raised; the message
names it) or the results could not be written (a full disk), 130 / 143 interrupted."""

#: What a run writes into --out (replaced only with --overwrite).
RUN_FILES = ("outputs.npz", "lava_run.json", "chip_report.json", "profile.png", "packets.png")


def _chip_options(args: argparse.Namespace) -> dict:
    """The run_network keyword arguments of the mapping and machine flags."""
    if args.backend == "floating_pt":
        given = given_mapping_flags(args)
        if given:
            raise UserError(
                f"{given[0]} applies to --backend spinnaker2 only (the floating_pt models run "
                "no chip): drop it or use --backend spinnaker2"
            )
        return {}
    missing = given_mapping_flags(args, NOT_ON_LAVA)
    if missing:
        raise UserError(
            f"{missing[0]} is not available on the Lava chip models (they partition by "
            "--max-units-per-pe): use --max-units-per-pe N, or `python -m spinnaker2_backend "
            "run` for this option"
        )
    from spinnaker2_backend.constants import ChipSpec
    from spinnaker2_backend.machine import Machine

    spec = ChipSpec().with_clock_mhz(args.clock_mhz)
    return {
        "weight_format": args.weight_format,
        "max_units_per_pe": args.max_units_per_pe,
        "machine": Machine(chips=args.chips, spec=spec),
        "spec": spec,
    }


def _cmd_run(args: argparse.Namespace) -> int:
    from snn_egru.artifact import load_artifact

    path = Path(args.artifact)
    if path.is_dir():
        raise UserError(f"ARTIFACT {path} is a folder; give the .npz of `snn-egru export`")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    check_output(out, "--out", folder=True)
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if earlier and not args.overwrite:
        raise UserError(
            f"--out {out} holds the results of an earlier run ({', '.join(earlier[:3])}): "
            "pass --overwrite to replace them, or give another --out"
        )
    options = _chip_options(args)
    artifact = load_artifact(path)
    inputs = load_inputs(args.inputs, artifact)
    if args.steps is not None and args.steps > len(inputs):
        raise UserError(f"--steps {args.steps} is more than --inputs holds ({len(inputs)} steps)")
    from lava_procs.run import run_network

    log.debug("running %d steps on the %s models", args.steps or len(inputs), args.backend)
    try:
        result = run_network(
            artifact,
            inputs,
            backend=args.backend,
            num_steps=args.steps,
            record_events=not args.no_events,
            timeout_s=args.timeout,
            **options,
        )
    except TimeoutError as err:
        raise UserError(f"{err} (raise --timeout)") from None
    except ValueError as err:  # arguments the library refused (MappingError: does not fit)
        raise UserError(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    report = _write_results(result, out)
    if report is not None:
        print(report.table(), flush=True)
    log.info(
        "%s: %d steps in %.2f s (+%.2f s start-up, of which %.2f s compiling or loading the "
        "simulator's kernels), %.1f steps/s; outputs in %s",
        result.backend,
        result.num_steps,
        result.run_s,
        result.startup_s,
        result.kernel_setup_s,
        result.steps_per_s,
        out,
    )
    return 0


def _write_results(result, out: Path):
    """Write the run's files into ``out``, all or none: they are made in a staging folder
    inside ``out`` and renamed into place once every one is written, so a full disk or an
    interrupt leaves the earlier files of ``out`` as they were and no half-written ones.
    Returns the chip report (``None`` on the floating_pt models)."""
    stage = out / f".lava-run-{os.getpid()}.partial"
    stage.mkdir()
    try:
        arrays = {"time_steps": result.time_steps}
        if result.logits is not None:
            arrays["logits"] = result.logits
        for i, events in enumerate(result.layer_events):
            arrays[f"layer{i}_events"] = events
        (stage / "outputs.npz").write_bytes(npz_bytes(**arrays))
        report = None
        if result.chip is not None:
            from spinnaker2_backend.plots_run import save_run_plots

            report = result.chip.report()
            (stage / "chip_report.json").write_text(report.to_json())
            save_run_plots(result.chip, stage)
        info = {
            "backend": result.backend,
            "steps": result.num_steps,
            "startup_s": result.startup_s,
            "kernel_setup_s": result.kernel_setup_s,
            "run_s": result.run_s,
            "steps_per_s": result.steps_per_s,
        }
        (stage / "lava_run.json").write_text(json.dumps(info, indent=2))
        # lava_run.json last: its presence says the run's files are complete
        names = [n for n in RUN_FILES if n != "lava_run.json" and (stage / n).exists()]
        for name in [*names, "lava_run.json"]:
            os.replace(stage / name, out / name)  # atomic: the old file or the new one
        for name in set(RUN_FILES) - {*names, "lava_run.json"}:
            (out / name).unlink(missing_ok=True)  # an earlier run's file this run did not make
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Run an EGRU deployment artifact as a Lava process graph, on the "
        "floating-point models or on the simulated-SpiNNaker2 models.",
        epilog=EPILOG,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run an artifact as a Lava graph",
        description="Build the EGRUNetwork of ARTIFACT, run it over INPUTS, save outputs.",
        epilog=EPILOG,
    )
    run.add_argument("artifact", metavar="ARTIFACT", help="deployment artifact (.npz)")
    run.add_argument(
        "--inputs",
        required=True,
        metavar="FILE.npy",
        help="token ids (T,) or feature vectors (T, I), as the artifact takes",
    )
    run.add_argument(
        "--backend",
        choices=["floating_pt", "spinnaker2"],
        default="floating_pt",
        help="process models: numpy reference or simulated SpiNNaker2 (default floating_pt)",
    )
    run.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    run.add_argument(
        "--steps",
        type=int_at_least(1),
        default=None,
        metavar="T",
        help="run the first T inputs (default: all)",
    )
    add_mapping_arguments(run)
    run.add_argument("--no-events", action="store_true", help="do not record layer events")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out",
    )
    add_seconds_option(run, "--timeout", "limit for the run (default: none)")
    run.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see the epilog of ``run --help``)."""
    parser = build_parser()
    args = parser.parse_or_status(argv)
    if isinstance(args, int):
        return args
    verbose = bool(getattr(args, "verbose", False))
    # progress of this command at INFO; the libraries' (mapping stages, ...) with -v
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        return run_main(
            lambda: args.func(args),
            prog=f"{PROG} {args.command}",
            verbose=verbose,
            user_errors=user_error_types(),
        )
    except Exception as err:
        from lava_procs.common import LavaRunError

        if verbose or not isinstance(err, LavaRunError):
            raise
        # a user mistake found while Lava compiled the graph (the network does not fit the
        # machine: MappingError) is one: exit 2 with its own message; otherwise the run
        # itself failed (a process model raised): exit 1, the message names it
        cause = _user_cause(err)
        message = flag_message(str(cause if cause is not None else err))
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2 if cause is not None else 1


def _user_cause(err: BaseException) -> BaseException | None:
    """The user mistake (MappingError, ArtifactError, ...) behind a Lava error, if any."""
    seen = set()
    cause = err.__cause__ or err.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, user_error_types()):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
