"""Command line of lava_procs: run a deployment artifact as a Lava graph.

``python -m lava_procs run ARTIFACT --inputs INPUTS.npy --backend spinnaker2 --out OUT``

It is also how ``snn-egru`` runs Lava: in a child process, so that the training side
(torch) never imports Lava and Lava's forked process models never inherit torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from snn_egru.errors import UserError

log = logging.getLogger("lava_procs")

EPILOG = """examples:
  python -m lava_procs run model.npz --inputs tokens.npy --backend floating_pt --out lava_out
      run the numpy-reference process models over the token ids in tokens.npy
  python -m lava_procs run model.npz --inputs tokens.npy --backend spinnaker2 \\
      --weight-format event --out lava_chip
      the simulated-SpiNNaker2 process models, event-driven weight layout; writes
      outputs.npz (logits, events), chip_report.json (time, profile, energy, packets),
      profile.png and packets.png

exit status: 0 ran, 2 a user error (missing file, bad inputs, network does not fit)."""


def _load_inputs(path: Path) -> np.ndarray:
    if not path.exists():
        raise UserError(f"no inputs file at {path} (a .npy of token ids (T,) or features (T, I))")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise UserError(f"cannot read {path} as a .npy array: {err}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from snn_egru.artifact import ArtifactError, load_artifact

    try:
        artifact = load_artifact(args.artifact)
    except ArtifactError as err:
        raise UserError(str(err)) from None
    inputs = _load_inputs(Path(args.inputs))
    from lava_procs.run import run_network

    try:
        result = run_network(
            artifact,
            inputs,
            backend=args.backend,
            num_steps=args.steps,
            weight_format=args.weight_format,
            max_units_per_pe=args.max_units_per_pe,
            clock_mhz=args.clock_mhz,
            record_events=not args.no_events,
            timeout_s=args.timeout,
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"time_steps": result.time_steps}
    if result.logits is not None:
        arrays["logits"] = result.logits
    for i, events in enumerate(result.layer_events):
        arrays[f"layer{i}_events"] = events
    np.savez_compressed(out / "outputs.npz", **arrays)
    info = {
        "backend": result.backend,
        "steps": result.num_steps,
        "startup_s": result.startup_s,
        "run_s": result.run_s,
        "steps_per_s": result.steps_per_s,
    }
    if result.chip is not None:
        from spinnaker2_backend.plots_run import save_run_plots

        report = result.chip.report()
        (out / "chip_report.json").write_text(report.to_json())
        save_run_plots(result.chip, out)
        print(report.table())
    (out / "lava_run.json").write_text(json.dumps(info, indent=2))
    log.info(
        "%s: %d steps in %.2f s (+%.2f s start-up), %.1f steps/s; outputs in %s",
        result.backend,
        result.num_steps,
        result.run_s,
        result.startup_s,
        result.steps_per_s,
        out,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lava_procs",
        description="Run an EGRU deployment artifact as a Lava process graph, on the "
        "floating-point models or on the simulated-SpiNNaker2 models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run an artifact as a Lava graph",
        description="Build the EGRUNetwork of ARTIFACT, run it over INPUTS, save outputs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("artifact", metavar="ARTIFACT", help="deployment artifact (.npz)")
    run.add_argument("--inputs", required=True, help=".npy of token ids (T,) or features (T, I)")
    run.add_argument(
        "--backend",
        choices=["floating_pt", "spinnaker2"],
        default="floating_pt",
        help="process models: numpy reference or simulated SpiNNaker2 (default floating_pt)",
    )
    run.add_argument("--out", required=True, help="folder for outputs.npz and the reports")
    run.add_argument("--steps", type=int, default=None, help="steps to run (default: all)")
    run.add_argument(
        "--weight-format", choices=["csr", "event", "dense"], default="csr", help="chip only"
    )
    run.add_argument("--max-units-per-pe", type=int, default=None, help="chip only")
    run.add_argument("--clock-mhz", type=float, default=None, help="chip only: 150 or 300")
    run.add_argument("--no-events", action="store_true", help="do not record layer events")
    run.add_argument("--timeout", type=float, default=None, help="limit in seconds for the run")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except Exception as err:
        if args.verbose:
            raise
        # MappingError (does not fit) can only have been raised if its module was imported
        mapping = sys.modules.get("spinnaker2_backend.mapping")
        user = isinstance(err, UserError) or (
            mapping is not None and isinstance(err, mapping.MappingError)
        )
        print(f"error: {err}", file=sys.stderr)
        return 2 if user else 1
