"""Calibrate the time and energy constants to the published SpiNNaker2 LM run, and show them.

Reproduces the values shipped in ``spinnaker2_backend/constants.py`` (see
``spinnaker2_backend/calibration.py`` for the method):

1. prints the fitted ``CycleCosts.csr_nonzero_cycles`` and ``EnergyCosts.static_power_w``,
   the shipped values, and the simulated time / energy / power of the published LM
   (CSR, 150 PEs, 150 MHz, 70 tokens) with them: about 170.25 ms, 0.0653 J, 0.39 W;
2. compares the CSR and the event weight layouts at the calibration activity;
3. sweeps the activity (threshold mean of the stand-in network): the CSR time hardly moves,
   the event layout gets faster as activity gets sparser.

Usage::

    .venv/bin/python benchmarks/calibrate_timing.py [--no-sweep]
"""

from __future__ import annotations

import argparse
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


def describe(label: str, run) -> str:
    report = run.report()
    return (
        f"{label:<34} activity {np.mean(run.activity()):6.1%}  "
        f"{report.seconds_per_sequence * 1e3:8.2f} ms  {report.energy_per_sequence_j:.4f} J  "
        f"{report.average_power_w:.3f} W"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sweep", action="store_true", help="skip the activity sweep")
    args = parser.parse_args()

    start = time.perf_counter()
    artifact = calibration_artifact()
    mapping = calibration_mapping(artifact)
    tokens = calibration_inputs(artifact)
    run = record_calibration_run(mapping, tokens)
    result = calibrate(run=run)
    print("calibration workload: synthetic paper-lm (seed 0, threshold mean "
          f"{CALIBRATION_THRESHOLD_MEAN}), 95 % pruned, CSR, PEs per layer "
          f"{result.pes_per_layer}, {result.clock_hz / 1e6:g} MHz, 70 tokens; "
          f"activity per layer " + ", ".join(f"{a:.1%}" for a in result.activity))  # fmt: skip
    print(
        f"fitted csr_nonzero_cycles = {result.csr_nonzero_cycles_exact:.6f} -> "
        f"{result.csr_nonzero_cycles} (shipped {result.shipped_csr_nonzero_cycles})"
    )
    print(
        f"fitted static_power_w     = {result.static_power_w} W "
        f"(shipped {result.shipped_static_power_w})"
    )
    print(f"shipped constants equal the fit: {result.matches_shipped}")
    print(
        f"resulting time  {result.sequence_seconds * 1e3:.3f} ms per 70-token sequence "
        f"(measured {TARGET_SEQUENCE_SECONDS * 1e3:.2f} ms)"
    )
    print(
        f"resulting energy {result.sequence_energy_j:.5f} J, {result.average_power_w:.4f} W "
        f"(measured {TARGET_SEQUENCE_ENERGY_J} J, 0.39 W)"
    )
    print()
    print("weight layouts at the calibration activity (simulated estimates):")
    print(describe("csr (published design)", run))
    event_mapping = calibration_mapping(artifact, weight_format="event")
    print(describe("event (columns of fired units)", run_mapping(event_mapping, tokens)))
    fast = calibration_mapping(artifact, spec=ChipSpec().with_clock_mhz(300))
    print(describe("csr at 300 MHz", run_mapping(fast, tokens)))
    if not args.no_sweep:
        print()
        print("activity sweep (threshold mean of the stand-in network):")
        for mean in (0.01, 0.03, 0.05, 0.1, 0.2):
            swept = calibration_artifact(threshold_mean=mean)
            for fmt in ("csr", "event"):
                m = calibration_mapping(swept, weight_format=fmt)
                print(describe(f"threshold mean {mean:<5} {fmt}", run_mapping(m, tokens)))
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
