"""Fidelity: the simulated chip beside every published SpiNNaker2 measurement it stands in for.

:func:`validate` runs the published deployments the simulator can reproduce, batch 1:

* **LM** (Table I memory, Table II time / energy / power): the calibration workload of
  :mod:`spinnaker2_backend.calibration` (synthetic stand-in of the 1350/1350/750 LM, 95 %
  pruned, CSR, 50 PEs per layer with 27 / 27 / 15 units, receive policy event-list sized
  from the recorded activity, one 70-token sequence, 150 MHz). The memory figures are those
  of the fullest PE (a layer-1 PE with 27 units: the PE Table I's weight figure describes).
* **DVS gestures** (Table III, 128 PEs): the synthetic ``paper-dvs`` network (features of
  size 512 -> EGRU 256 / 256, dense weights, linear readout on the host), 64 PEs per layer
  (4 units each), one sample of :data:`~spinnaker2_backend.results.DVS_FRAMES_PER_SAMPLE`
  frames (68, the project's DVS slice [C]; the paper does not state it) of standard-normal
  features (seed 0). Dense weights are walked row-major over dense input vectors (receive
  policy ``dense``: a dense kernel reads every input, so the layer keeps dense vectors;
  the 2 KB they take fit easily beside 37 KB of weights) [C].

Every published figure gets a row: the model's value, the relative error and its **role**:
``calibrate`` (the figure, or the Table I column, was used to set a constant: time and
energy of the LM fit ``csr_nonzero_cycles`` and ``static_power_w``; the code estimate,
the debug log buffer and the stand-in's activity (hence the event-list capacity) were
chosen with Table I in view), ``held out`` (never used to set anything: the LM weights
column, every DVS figure), or ``given`` (an input of the run, e.g. the PE count).

``python -m spinnaker2_backend validate`` prints the table (:meth:`ValidationResult.table`),
and writes it as markdown (``--markdown docs/fidelity.md``) and JSON (``--json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spinnaker2_backend.calibration import (
    calibration_artifact,
    calibration_inputs,
    calibration_mapping,
    record_calibration_run,
)
from spinnaker2_backend.mapping import map_network
from spinnaker2_backend.results import (
    DVS_FRAMES_PER_SAMPLE,
    PUBLISHED_DVS_SPINNAKER2,
    PUBLISHED_SPINNAKER2,
    PUBLISHED_TABLE_I_BYTES,
    SEQUENCE_TOKENS,
)

__all__ = [
    "CALIBRATED_TOLERANCE",
    "DVS_PES_PER_LAYER",
    "DVS_RECEIVE_POLICY",
    "HELD_OUT_TOLERANCE",
    "VALIDATE_COMMAND",
    "FidelityRow",
    "ValidationResult",
    "dvs_mapping",
    "validate",
]

#: The command that regenerates ``docs/fidelity.md`` and its JSON.
VALIDATE_COMMAND = (
    "python -m spinnaker2_backend validate --markdown docs/fidelity.md --json docs/fidelity.json"
)
#: Relative error a calibrated figure may show (rounding of the fitted constants; the
#: Table I columns are matched to 10 %, the issue's bound, weights to 3 %).
CALIBRATED_TOLERANCE = {"time": 2e-3, "energy": 2e-3, "power": 0.03, "memory": 0.10}
#: Relative error a held-out figure may show: 25 %, the latency accuracy SANA-FE publishes
#: for its Loihi model (weights of Table I: 3 %).
HELD_OUT_TOLERANCE = {"default": 0.25, "weights": 0.03}
#: PEs per layer of the DVS deployment (128 PEs for 2 layers) [A for the total].
DVS_PES_PER_LAYER = 64
#: Receive policy of the DVS program (module docstring) [C].
DVS_RECEIVE_POLICY = "dense"


@dataclass(frozen=True)
class FidelityRow:
    """One published figure beside the model's.

    Attributes:
        deployment: ``"LM"`` or ``"DVS"``.
        figure: what is compared (e.g. ``"time per 70-token sequence"``).
        unit: ``"ms"``, ``"J"``, ``"W"``, ``"KB"`` or ``"PEs"``.
        published: the published value. model: the model's.
        role: ``"calibrate"``, ``"held out"`` or ``"given"``.
        tolerance: the relative error the test allows.
    """

    deployment: str
    figure: str
    unit: str
    published: float
    model: float
    role: str
    tolerance: float

    @property
    def relative_error(self) -> float:
        """``model / published - 1``."""
        return self.model / self.published - 1.0 if self.published else 0.0

    @property
    def within_tolerance(self) -> bool:
        return abs(self.relative_error) <= self.tolerance


@dataclass
class ValidationResult:
    """What :func:`validate` measured (rows, and the runs' context)."""

    rows: list[FidelityRow]
    context: dict[str, Any] = field(default_factory=dict)

    def held_out(self) -> list[FidelityRow]:
        return [r for r in self.rows if r.role == "held out"]

    def calibrated(self) -> list[FidelityRow]:
        return [r for r in self.rows if r.role == "calibrate"]

    @property
    def ok(self) -> bool:
        """Every figure within its tolerance."""
        return all(r.within_tolerance for r in self.rows)

    def table(self) -> str:
        """The fidelity table as plain text."""
        lines = [
            f"{'deployment':<10} {'figure':<34} {'published':>12} {'model':>12} "
            f"{'error':>8}  {'role':<10} {'bound':>6}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.deployment:<10} {r.figure:<34} {_fmt(r.published, r.unit):>12} "
                f"{_fmt(r.model, r.unit):>12} {100 * r.relative_error:>+7.1f}%  {r.role:<10} "
                f"{100 * r.tolerance:>5.3g}%" + ("" if r.within_tolerance else "  OUT")
            )
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table and its context as a markdown page (``docs/fidelity.md``)."""
        c = self.context
        out = [
            "# Fidelity: the simulated chip beside the published measurements",
            "",
            f"Generated by `{VALIDATE_COMMAND}`; do not edit by hand "
            "(a test checks that this page is current).",
            "",
            "Each published figure beside the model's, the relative error, and its role: "
            "**calibrate** (used to set a constant, so it matches by construction), **held "
            "out** (never used to set anything: what tells whether the calibration carries "
            "over), **given** (an input of the run). Held-out figures must be within 25 % "
            "(the latency accuracy SANA-FE publishes for its Loihi model), the Table I "
            "weights within 3 %. See [spinnaker2.md](spinnaker2.md) for the model and "
            "[architecture.md](architecture.md) for the code.",
            "",
            "| deployment | figure | published | model | error | role |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            out.append(
                f"| {r.deployment} | {r.figure} | {_fmt(r.published, r.unit)} | "
                f"{_fmt(r.model, r.unit)} | {100 * r.relative_error:+.1f} % | {r.role} |"
            )
        out += ["", "## What ran", ""]
        out += [f"- **{k}**: {v}" for k, v in c.items()]
        out.append("")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["relative_error"] = r.relative_error
            d["within_tolerance"] = r.within_tolerance
            rows.append(d)
        return {"command": VALIDATE_COMMAND, "rows": rows, "context": self.context}

    def to_json(self, *, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)


def _fmt(value: float, unit: str) -> str:
    if unit == "PEs":
        return f"{value:.0f} PEs"
    if unit == "KB":
        return f"{value:.1f} KB"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "J":
        return f"{value:.4f} J"
    return f"{value:.3f} {unit}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dvs_mapping(artifact=None, *, receive_policy: str = DVS_RECEIVE_POLICY):
    """The DVS deployment: ``paper-dvs`` (dense weights) on 64 + 64 PEs."""
    from spinnaker2_backend.synthetic import synthetic_network

    artifact = artifact if artifact is not None else synthetic_network("paper-dvs", seed=0)
    return map_network(
        artifact,
        weight_format="dense",
        pes_per_layer=DVS_PES_PER_LAYER,
        balance="units",
        receive_policy=receive_policy,
    )


def dvs_inputs(artifact, *, frames: int = DVS_FRAMES_PER_SAMPLE, seed: int = 0) -> np.ndarray:
    """One sample of ``frames`` standard-normal feature vectors (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((frames, artifact.input_size)).astype(np.float32)


def validate() -> ValidationResult:
    """Run the published deployments and compare every published figure (module docstring)."""
    from spinnaker2_backend.simulator import run_mapping

    rows: list[FidelityRow] = []
    cal_t, cal_m = CALIBRATED_TOLERANCE, HELD_OUT_TOLERANCE

    # ---- LM: Table I memory of the fullest PE, Table II time / energy / power ----------
    artifact = calibration_artifact()
    tokens = calibration_inputs(artifact)
    lm = calibration_mapping(artifact, inputs=tokens)
    lm_run = record_calibration_run(lm, tokens)
    lm_report = lm_run.report()
    fullest = lm.memory[lm.report().fullest.pe]
    columns = fullest.table_i_columns()
    for col, role, tol in (
        ("instruction", "calibrate", cal_t["memory"]),
        ("debug", "calibrate", cal_t["memory"]),
        ("weights", "held out", cal_m["weights"]),
        ("variables", "calibrate", cal_t["memory"]),
    ):
        rows.append(
            FidelityRow(
                "LM",
                f"Table I {col} (fullest PE)",
                "KB",
                PUBLISHED_TABLE_I_BYTES[col] / 1024,
                columns[col] / 1024,
                role,
                tol,
            )
        )
    rows += [
        FidelityRow("LM", "PEs", "PEs", 150, lm.num_pes_used, "given", 0.0),
        FidelityRow(
            "LM",
            f"time per {SEQUENCE_TOKENS}-token sequence",
            "ms",
            PUBLISHED_SPINNAKER2.seconds_per_sequence * 1e3,
            lm_report.seconds_per_unit * 1e3,
            "calibrate",
            cal_t["time"],
        ),
        FidelityRow(
            "LM",
            f"energy per {SEQUENCE_TOKENS}-token sequence",
            "J",
            PUBLISHED_SPINNAKER2.energy_j_per_sequence,
            lm_report.energy_per_unit_j,
            "calibrate",
            cal_t["energy"],
        ),
        FidelityRow(
            "LM",
            "average power",
            "W",
            PUBLISHED_SPINNAKER2.power_w,
            lm_report.average_power_w,
            "calibrate",
            cal_t["power"],
        ),
    ]

    # ---- DVS: Table III, held out --------------------------------------------------------
    dvs = dvs_mapping()
    frames = dvs_inputs(dvs.artifact)
    dvs_report = run_mapping(dvs, frames, record=False).report()
    # not a row: the same network with the LM's event lists (columns of fired units only)
    listed = run_mapping(dvs_mapping(receive_policy="event-list"), frames, record=False).report()
    held = cal_m["default"]
    rows += [
        FidelityRow("DVS", "PEs", "PEs", 128, dvs.num_pes_used, "given", 0.0),
        FidelityRow(
            "DVS",
            "time per sample",
            "ms",
            PUBLISHED_DVS_SPINNAKER2.seconds_per_sequence * 1e3,
            dvs_report.seconds_per_sample * 1e3,
            "held out",
            held,
        ),
        FidelityRow(
            "DVS",
            "energy per sample",
            "J",
            PUBLISHED_DVS_SPINNAKER2.energy_j_per_sequence,
            dvs_report.energy_per_sample_j,
            "held out",
            held,
        ),
        FidelityRow(
            "DVS",
            "average power",
            "W",
            PUBLISHED_DVS_SPINNAKER2.power_w,
            dvs_report.average_power_w,
            "held out",
            held,
        ),
    ]
    profile = lm_run.profile
    per_seq = 1e3 * SEQUENCE_TOKENS / lm_run.steps

    def phases(values: dict) -> str:
        grouped = profile.grouped(values)
        return ", ".join(f"{k} {v * per_seq:.2f}" for k, v in grouped.items() if v > 0)

    groups = profile.grouped(profile.critical_phase_seconds())
    pe_seconds = profile.pe_phase_seconds(0)
    busiest = int(np.argmax(sum(pe_seconds.values())))
    policies = []
    for policy, fmt in (
        ("event-list", "csr"),
        ("dense", "csr"),
        ("reused", "csr"),
        ("event-list", "event"),
        ("accumulate", "event"),
    ):
        m = (
            lm
            if (policy, fmt) == ("event-list", "csr")
            else calibration_mapping(
                artifact,
                inputs=tokens,
                receive_policy=policy,
                weight_format=fmt,
                check=False,
            )
        )
        seconds = (
            lm_report.seconds_per_unit
            if m is lm
            else run_mapping(m, tokens, record=False).report().seconds_per_unit
        )
        full = m.memory[m.report().fullest.pe]
        policies.append(
            f"{fmt} + {policy}: {seconds * 1e3:.2f} ms, fullest PE {full.total:,} of "
            f"{full.data_capacity:,} B (receive buffers {full.receive_buffers:,} B, "
            f"Table I variables {full.table_i_columns()['variables'] / 1024:.2f} KB)"
            + ("" if m.fits else ", does NOT fit")
        )
    context = {
        "LM workload": (
            f"synthetic paper-lm stand-in, 95 % pruned, CSR, {lm.num_pes_used} PEs "
            f"({'/'.join(str(len(layer.slices)) for layer in lm.layers)} per layer, "
            f"{'/'.join(str(layer.slices[0].num_units) for layer in lm.layers)} units per PE), "
            f"receive policy {lm.receive_policy} (capacity "
            f"{'/'.join(map(str, lm.receive_capacity))} events), {lm_run.steps} tokens, "
            f"{lm.spec.pe_clock_mhz:g} MHz; activity per layer "
            + ", ".join(f"{100 * a:.1f} %" for a in lm_run.activity())
        ),
        "LM fullest PE": (
            f"PE {fullest.pe}, layer {fullest.layer}, units {fullest.unit_start}.."
            f"{fullest.unit_stop - 1}: "
            + ", ".join(f"{k} {v:,} B" for k, v in fullest.regions().items())
            + f"; code {fullest.code:,} B; free {fullest.free:,} B"
        ),
        "LM profile (ms per sequence, summed over layers)": ", ".join(
            f"{k} {v * per_seq:.2f}" for k, v in groups.items() if v > 0
        )
        + "; recurrent / input product "
        + f"{groups['recurrent product'] / groups['input product']:.2f}",
        **{
            f"LM profile of layer {i} (ms per sequence, slowest PE)": phases(layer)
            for i, layer in enumerate(profile.layer_critical_phase_seconds())
        },
        f"LM profile of the busiest layer-0 PE ({busiest})": phases(
            {k: float(v[busiest]) for k, v in pe_seconds.items()}
        ),
        "LM receive policies (time per sequence with the calibrated constants)": "; ".join(
            policies
        ),
        "DVS workload": (
            f"synthetic paper-dvs (dense weights), {dvs.num_pes_used} PEs "
            f"({DVS_PES_PER_LAYER} per layer, 4 units each), receive policy "
            f"{dvs.receive_policy}, one sample of {len(frames)} frames (frames per sample "
            f"not published: the project's 1.7 s DVS slice, [C]), batch 1; activity per "
            f"layer " + ", ".join(f"{100 * a:.1f} %" for a in dvs_report.activity)
        ),
        "DVS with the LM's receive policy instead (event-list, only the columns of listed "
        "events walked; not a row of the table)": (
            f"{listed.seconds_per_sample * 1e3:.2f} ms, {listed.energy_per_sample_j:.4f} J per "
            f"sample ({100 * (listed.seconds_per_sample / 60.19e-3 - 1):+.1f} % in time)"
        ),
    }
    return ValidationResult(rows=rows, context=context)
