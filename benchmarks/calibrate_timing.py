"""Calibrate the time and energy constants to the published SpiNNaker2 LM run, and show them.

Reproduces the values shipped in ``spinnaker2_backend/constants.py`` (see
``spinnaker2_backend/calibration.py`` for the method) on the published mapping: 50 PEs per
layer (27 / 27 / 15 units), CSR weights, receive policy event-list sized from the recorded
activity, 150 MHz, one 70-token sequence:

1. prints the fitted ``CycleCosts.csr_nonzero_cycles`` and ``EnergyCosts.static_power_w``,
   the shipped values, and the simulated time / energy / power with them (about 170.25 ms,
   0.0653 J, 0.39 W);
2. prints the profile two ways: summed over the layers (the critical path of a sequence:
   layers run one after another) and per layer, plus the busiest layer-0 PE alone, with the
   ratio recurrent / input product of each view;
3. compares the receive policies (time and fullest PE) and the CSR and event weight layouts
   at the calibration activity, the baseline being the calibrated run itself;
4. sweeps the activity (threshold mean of the stand-in network): the CSR time hardly moves,
   the event layout gets faster as activity gets sparser.

Usage::

    .venv/bin/python benchmarks/calibrate_timing.py [--no-sweep] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from spinnaker2_backend.calibration import (
    CALIBRATION_THRESHOLD_MEAN,
    TARGET_SEQUENCE_ENERGY_J,
    TARGET_SEQUENCE_SECONDS,
    calibrate,
    calibration_artifact,
    calibration_inputs,
    calibration_mapping,
    record_calibration_run,
)
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.timing import PROFILE_GROUPS

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session
except ImportError:  # imported as benchmarks.calibrate_timing
    from benchmarks._timing import Session


def describe(label: str, run, baseline: float, mapping=None) -> tuple[str, dict]:
    report = run.report()
    row = {
        "label": label,
        "activity": float(np.mean(run.activity())),
        "seconds_per_sequence": report.seconds_per_sequence,
        "energy_j_per_sequence": report.energy_per_sequence_j,
        "average_power_w": report.average_power_w,
        "time_vs_calibrated": report.seconds_per_sequence / baseline,
    }
    fullest = ""
    if mapping is not None:
        fullest_pe = mapping.report().fullest
        row["fullest_pe_bytes"] = fullest_pe.total
        fullest = f"  fullest PE {fullest_pe.total:>7,} B" + ("" if mapping.fits else " (NO FIT)")
    text = (
        f"{label:<38} activity {row['activity']:6.1%}  "
        f"{row['seconds_per_sequence'] * 1e3:8.2f} ms  x{row['time_vs_calibrated']:5.3f}  "
        f"{row['energy_j_per_sequence']:.4f} J  {row['average_power_w']:.3f} W{fullest}"
    )
    return text, row


def profile_lines(profile, steps: int) -> tuple[list[str], dict]:
    """Summed-over-layers and per-layer profile (ms per sequence) and the layer-0 PE view."""
    scale = 70 / steps * 1e3
    out: dict = {"summed": {}, "layers": [], "layer0_pe": {}}
    summed = profile.grouped(profile.critical_phase_seconds())
    out["summed"] = {k: v * scale for k, v in summed.items()}
    lines = ["profile, ms per 70-token sequence (critical path: slowest PE of each layer step)"]
    names = [g for g in PROFILE_GROUPS if summed.get(g, 0) > 0]
    lines.append(f"  {'':<18}" + "".join(f"{n:>18}" for n in names) + f"{'rec / in':>10}")

    def row(label: str, values: dict) -> str:
        ratio = values["recurrent product"] / max(values["input product"], 1e-30)
        return (
            f"  {label:<18}"
            + "".join(f"{values.get(n, 0.0) * scale:>18.2f}" for n in names)
            + f"{ratio:>10.2f}"
        )

    lines.append(row("summed (layers)", summed))
    for i, layer in enumerate(profile.layer_critical_phase_seconds()):
        grouped = profile.grouped(layer)
        out["layers"].append({k: v * scale for k, v in grouped.items()})
        lines.append(row(f"layer {i}", grouped))
    pe_seconds = profile.pe_phase_seconds(0)
    busiest = int(np.argmax(sum(pe_seconds.values())))
    pe0 = profile.grouped({k: float(v[busiest]) for k, v in pe_seconds.items()})
    out["layer0_pe"] = {k: v * scale for k, v in pe0.items()}
    lines.append(row(f"layer-0 PE {busiest}", pe0))
    return lines, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sweep", action="store_true", help="skip the activity sweep")
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the receive policies and layouts"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    session = Session("wall (perf_counter), 'seconds' only: the figures are simulated")
    start = time.perf_counter()
    artifact = calibration_artifact()
    tokens = calibration_inputs(artifact)
    mapping = calibration_mapping(artifact, inputs=tokens)
    run = record_calibration_run(mapping, tokens)
    result = calibrate(run=run)
    out: dict = {"calibration": {
        "csr_nonzero_cycles": result.csr_nonzero_cycles,
        "csr_nonzero_cycles_exact": result.csr_nonzero_cycles_exact,
        "static_power_w": result.static_power_w,
        "matches_shipped": result.matches_shipped,
        "sequence_seconds": result.sequence_seconds,
        "sequence_energy_j": result.sequence_energy_j,
        "average_power_w": result.average_power_w,
        "pes_per_layer": result.pes_per_layer,
        "receive_capacity": mapping.receive_capacity,
        "activity": result.activity,
    }}  # fmt: skip
    lines = [
        "calibration workload: synthetic paper-lm (seed 0, threshold mean "
        f"{CALIBRATION_THRESHOLD_MEAN}), 95 % pruned, CSR, PEs per layer "
        f"{result.pes_per_layer} (units {[s.num_units for s in (l.slices[0] for l in mapping.layers)]}),"  # noqa: E501
        f" receive policy {mapping.receive_policy} (capacity {mapping.receive_capacity}), "
        f"{result.clock_hz / 1e6:g} MHz, 70 tokens; activity per layer "
        + ", ".join(f"{a:.1%}" for a in result.activity),
        f"fitted csr_nonzero_cycles = {result.csr_nonzero_cycles_exact:.6f} -> "
        f"{result.csr_nonzero_cycles} (shipped {result.shipped_csr_nonzero_cycles})",
        f"fitted static_power_w     = {result.static_power_w} W "
        f"(shipped {result.shipped_static_power_w})",
        f"shipped constants equal the fit: {result.matches_shipped}",
        f"resulting time  {result.sequence_seconds * 1e3:.3f} ms per 70-token sequence "
        f"(measured {TARGET_SEQUENCE_SECONDS * 1e3:.2f} ms)",
        f"resulting energy {result.sequence_energy_j:.5f} J, {result.average_power_w:.4f} W "
        f"(measured {TARGET_SEQUENCE_ENERGY_J} J, 0.39 W)",
        "",
    ]
    profile = run.profile
    plines, out["profile_ms_per_sequence"] = profile_lines(profile, run.steps)
    lines += plines + [""]
    baseline = run.report().seconds_per_sequence
    lines.append("receive policies and weight layouts at the calibration activity "
                 "(simulated estimates; x = time / calibrated run):")  # fmt: skip
    rows = []
    text, row = describe("csr + event-list (calibrated)", run, baseline, mapping)
    lines.append(text)
    rows.append(row)
    variants = [
        ("csr + dense vectors", dict(receive_policy="dense")),
        ("csr + one reused vector", dict(receive_policy="reused")),
        ("event + event-list", dict(weight_format="event")),
        ("event + accumulate on arrival", dict(weight_format="event", receive_policy="accumulate")),
    ]
    for label, options in [] if args.no_variants else variants:
        m = calibration_mapping(artifact, inputs=tokens, check=False, **options)
        text, row = describe(label, run_mapping(m, tokens), baseline, m)
        lines.append(text)
        rows.append(row)
    if not args.no_variants:
        fast = calibration_mapping(artifact, inputs=tokens, spec=ChipSpec().with_clock_mhz(300))
        text, row = describe("csr + event-list at 300 MHz", run_mapping(fast, tokens), baseline)
        lines.append(text)
        rows.append(row)
    out["variants"] = rows
    if not args.no_sweep:
        lines += ["", "activity sweep (threshold mean of the stand-in network; dense vectors, "
                  "so every activity maps):"]  # fmt: skip
        sweep = []
        for mean in (0.05, 0.1, 0.14, 0.2):
            swept = calibration_artifact(threshold_mean=mean)
            for fmt in ("csr", "event"):
                m = calibration_mapping(
                    swept, weight_format=fmt, receive_policy="dense", check=False
                )
                text, row = describe(
                    f"threshold mean {mean:<5} {fmt}", run_mapping(m, tokens), baseline
                )
                lines.append(text)
                sweep.append(row)
        out["sweep"] = sweep
    out["seconds"] = time.perf_counter() - start
    out["conditions"] = session.finish()
    if args.json:
        print(json.dumps(out, indent=2, default=float))
    else:
        print("\n".join(lines))
        print(f"\n({out['seconds']:.1f} s; {Session.line(out['conditions'])})")


if __name__ == "__main__":
    main()
