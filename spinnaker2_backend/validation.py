"""Fidelity: the simulated chip beside every published SpiNNaker2 measurement it stands in for.

:func:`validate` runs the published deployments the simulator can reproduce, batch 1:

* **LM** (Table I memory, Table II time / energy / power): the calibration workload of
  :mod:`spinnaker2_backend.calibration` (the ``paper-lm`` stand-in firing like a trained LM,
  95 % pruned, CSR, 50 PEs per layer with 27 / 27 / 15 units, the receive design that
  reproduces Table I, one 70-token sequence, 150 MHz). The memory figures are those of the
  fullest PE (a layer-1 PE with 27 units: the PE Table I's weight figure describes).
* **DVS gestures** (Table III, 128 PEs): the synthetic ``paper-dvs`` network (features of
  size 512 -> EGRU 256 / 256, dense weights, linear readout on the host), 64 PEs per layer
  (4 units each), one sample of :data:`~spinnaker2_backend.results.DVS_FRAMES_PER_SAMPLE`
  frames (68, the project's DVS slice; the paper does not state it) of standard-normal
  features (seed 0), dense weights walked row-major over dense input vectors.

Every published figure gets a row with its **role** (:data:`ROLES`):

``fitted``
    a constant was set so that the model matches it (time and energy of the LM fit
    ``csr_nonzero_cycles`` and ``static_power_w``; the program-size estimate is made to sum
    to Table I's instruction column, the log buffer to its debug column);
``chosen to match``
    a discrete modelling choice was picked because it matches (the 50 / 50 / 50 split and
    the reading 1 KB = 1024 B for the weights column; the receive design for the variables
    column, :mod:`spinnaker2_backend.receive_designs`);
``derived``
    computed from other rows (power = energy / time);
``held out``
    nothing about it was tuned, not even a choice of option: only these rows are
    validation (the DVS time and energy; :mod:`spinnaker2_backend.sensitivity` shows how
    they move under every alternative assumption);
``given``
    an input of the run (the PE counts).

The report also predicts the DVS deployment at batch 1, 2, 4, 6 and 8 (Table III's larger
batch is a prediction, never fitted) and tabulates the receive designs.

``python -m spinnaker2_backend validate`` prints the table (:meth:`ValidationResult.table`)
and writes it as markdown (``--markdown docs/fidelity.md``) and JSON (``--json``).
"""

from __future__ import annotations

import dataclasses
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
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.mapping import map_network
from spinnaker2_backend.results import (
    DVS_FRAMES_PER_SAMPLE,
    PUBLISHED_DVS_SPINNAKER2,
    PUBLISHED_SPINNAKER2,
    PUBLISHED_TABLE_I_BYTES,
    SEQUENCE_TOKENS,
)
from spinnaker2_backend.validation_report import (
    VALIDATE_COMMAND,
    VALIDATE_RUN_COMMAND,
    _fmt,
    context,
    markdown,
)

__all__ = [
    "BATCH_SIZES",
    "DVS_PES_PER_LAYER",
    "DVS_RECEIVE_POLICY",
    "HELD_OUT_TOLERANCE",
    "ROLES",
    "ROLE_TOLERANCE",
    "VALIDATE_COMMAND",
    "VALIDATE_RUN_COMMAND",
    "FidelityRow",
    "ValidationResult",
    "dvs_inputs",
    "dvs_mapping",
    "validate",
]

#: Roles of a row (module docstring); only ``held out`` rows are validation.
ROLES: tuple[str, ...] = ("fitted", "chosen to match", "derived", "held out", "given")
#: Relative error a row of each role may show: fitted rows match up to the rounding of the
#: fitted constants (the Table I columns to 10 %), chosen rows to 10 % (weights 3 %),
#: held-out rows to 25 % (the latency accuracy SANA-FE publishes for its Loihi model).
ROLE_TOLERANCE = {
    "time": 2e-3,
    "energy": 2e-3,
    "memory": 0.10,
    "weights": 0.03,
    "derived": 0.05,
    "held out": 0.25,
}
#: Kept for callers: the held-out bound.
HELD_OUT_TOLERANCE = {"default": ROLE_TOLERANCE["held out"], "weights": ROLE_TOLERANCE["weights"]}
#: PEs per layer of the DVS deployment (128 PEs for 2 layers) [A for the total].
DVS_PES_PER_LAYER = 64
#: Receive policy of the DVS program: a dense kernel reads every input [C].
DVS_RECEIVE_POLICY = "dense"
#: Batch sizes the DVS deployment is predicted at (Table III's larger batch among them).
BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 6, 8)


@dataclass(frozen=True)
class FidelityRow:
    """One published figure beside the model's.

    Attributes:
        deployment: ``"LM"`` or ``"DVS"``.
        figure: what is compared (e.g. ``"time per 70-token sequence"``).
        unit: ``"ms"``, ``"J"``, ``"W"``, ``"KB"`` or ``"PEs"``.
        published: the published value. model: the model's.
        role: one of :data:`ROLES`.
        tolerance: the relative error the test allows.
        why: what the role rests on (one phrase).
    """

    deployment: str
    figure: str
    unit: str
    published: float
    model: float
    role: str
    tolerance: float
    why: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; roles: {', '.join(ROLES)}")

    @property
    def relative_error(self) -> float:
        """``model / published - 1``."""
        return self.model / self.published - 1.0 if self.published else 0.0

    @property
    def within_tolerance(self) -> bool:
        return abs(self.relative_error) <= self.tolerance


@dataclass
class ValidationResult:
    """What :func:`validate` measured: rows, the runs' context, the sensitivity of the
    held-out prediction, the DVS batch predictions and the receive-design study."""

    rows: list[FidelityRow]
    context: dict[str, Any] = field(default_factory=dict)
    sensitivity: list = field(default_factory=list)
    batches: list[dict[str, float]] = field(default_factory=list)
    designs: list = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def held_out(self) -> list[FidelityRow]:
        return [r for r in self.rows if r.role == "held out"]

    def by_role(self, role: str) -> list[FidelityRow]:
        return [r for r in self.rows if r.role == role]

    @property
    def ok(self) -> bool:
        """Every figure within its tolerance."""
        return all(r.within_tolerance for r in self.rows)

    def table(self) -> str:
        """The fidelity table as plain text, and the equivalent ``run`` command."""
        lines = [
            f"{'deployment':<10} {'figure':<34} {'published':>12} {'model':>12} "
            f"{'error':>8}  {'role':<15} {'bound':>6}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.deployment:<10} {r.figure:<34} {_fmt(r.published, r.unit):>12} "
                f"{_fmt(r.model, r.unit):>12} {100 * r.relative_error:>+7.1f}%  {r.role:<15} "
                f"{100 * r.tolerance:>5.3g}%" + ("" if r.within_tolerance else "  OUT")
            )
        lines.append(
            f"only held-out rows are validation; the LM deployment: {VALIDATE_RUN_COMMAND}"
        )
        return "\n".join(lines)

    def markdown(self) -> str:
        """The tables and their context as a markdown page (``docs/fidelity.md``)."""
        return markdown(self)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["relative_error"] = r.relative_error
            d["within_tolerance"] = r.within_tolerance
            rows.append(d)
        return {
            "command": VALIDATE_COMMAND,
            "run_command": VALIDATE_RUN_COMMAND,
            "rows": rows,
            "sensitivity": [asdict(s) for s in self.sensitivity],
            "batches": self.batches,
            "receive_designs": [asdict(d) for d in self.designs],
            "profile_evidence": self.evidence,
            "context": self.context,
        }

    def to_json(self, *, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dvs_mapping(
    artifact=None, *, receive_policy: str = DVS_RECEIVE_POLICY, batch_size: int = 1, **kwargs
):
    """The DVS deployment: ``paper-dvs`` (dense weights) on 64 + 64 PEs."""
    from spinnaker2_backend.synthetic import synthetic_network

    artifact = artifact if artifact is not None else synthetic_network("paper-dvs", seed=0)
    return map_network(
        artifact,
        weight_format="dense",
        pes_per_layer=DVS_PES_PER_LAYER,
        balance="units",
        receive_policy=receive_policy,
        batch_size=batch_size,
        **kwargs,
    )


def dvs_inputs(
    artifact, *, frames: int = DVS_FRAMES_PER_SAMPLE, seed: int = 0, batch: int = 1
) -> np.ndarray:
    """``batch`` samples of ``frames`` standard-normal feature vectors (seeded); one sample
    is ``(frames, I)``, a batch ``(batch, frames, I)`` (the first sample is the same)."""
    rng = np.random.default_rng(seed)
    first = rng.standard_normal((frames, artifact.input_size)).astype(np.float32)
    if batch == 1:
        return first
    more = rng.standard_normal((batch - 1, frames, artifact.input_size)).astype(np.float32)
    return np.concatenate([first[None], more])


def _memory_rows(lm) -> list[FidelityRow]:
    fullest = lm.memory[lm.report().fullest.pe]
    columns = fullest.table_i_columns()
    t = ROLE_TOLERANCE
    spec = (
        ("instruction", "fitted", t["memory"], "program-size estimate made to sum to 17.9 KiB"),
        ("debug", "fitted", t["memory"], "log buffer sized so that it and heap + stack give 5 KB"),
        (
            "weights",
            "chosen to match",
            t["weights"],
            "50/50/50 split and 1 KB = 1024 B chosen because they match",
        ),
        (
            "variables",
            "chosen to match",
            t["memory"],
            f"receive design {lm.receive_policy} chosen because it reproduces it",
        ),
    )
    return [
        FidelityRow(
            "LM",
            f"Table I {col} (fullest PE)",
            "KB",
            PUBLISHED_TABLE_I_BYTES[col] / 1024,
            columns[col] / 1024,
            role,
            tol,
            why,
        )
        for col, role, tol, why in spec
    ]


def _lm_rows(lm, report) -> list[FidelityRow]:
    t = ROLE_TOLERANCE
    return _memory_rows(lm) + [
        FidelityRow("LM", "PEs", "PEs", 150, lm.num_pes_used, "given", 0.0, "the published count"),
        FidelityRow(
            "LM",
            f"time per {SEQUENCE_TOKENS}-token sequence",
            "ms",
            PUBLISHED_SPINNAKER2.seconds_per_sequence * 1e3,
            report.seconds_per_unit * 1e3,
            "fitted",
            t["time"],
            "csr_nonzero_cycles fitted to it",
        ),
        FidelityRow(
            "LM",
            f"energy per {SEQUENCE_TOKENS}-token sequence",
            "J",
            PUBLISHED_SPINNAKER2.energy_j_per_sequence,
            report.energy_per_unit_j,
            "fitted",
            t["energy"],
            "static_power_w fitted to it",
        ),
        FidelityRow(
            "LM",
            "average power",
            "W",
            PUBLISHED_SPINNAKER2.power_w,
            report.average_power_w,
            "derived",
            t["derived"],
            "fitted energy / fitted time",
        ),
    ]


def _dvs_rows(dvs, report) -> list[FidelityRow]:
    held = ROLE_TOLERANCE["held out"]
    return [
        FidelityRow("DVS", "PEs", "PEs", 128, dvs.num_pes, "given", 0.0, "the published count"),
        FidelityRow(
            "DVS",
            "time per sample",
            "ms",
            PUBLISHED_DVS_SPINNAKER2.seconds_per_sequence * 1e3,
            report.seconds_per_sample * 1e3,
            "held out",
            held,
            "predicted with the LM's constants; see the sensitivity table",
        ),
        FidelityRow(
            "DVS",
            "energy per sample",
            "J",
            PUBLISHED_DVS_SPINNAKER2.energy_j_per_sequence,
            report.energy_per_sample_j,
            "held out",
            held,
            "predicted with the LM's constants; see the sensitivity table",
        ),
        FidelityRow(
            "DVS",
            "average power",
            "W",
            PUBLISHED_DVS_SPINNAKER2.power_w,
            report.average_power_w,
            "derived",
            ROLE_TOLERANCE["held out"],
            "predicted energy / predicted time",
        ),
    ]


def _dvs_run(policy: str, frames: int, *, batch: int = 1, record: bool = True, costs=None):
    from spinnaker2_backend.simulator import receive_capacity_from_run, run_mapping

    mapping = dvs_mapping(receive_policy=policy, batch_size=batch)
    xs = dvs_inputs(mapping.artifact, frames=frames, batch=batch)
    if policy in ("event-list", "bitmap16"):  # size the lists from the recorded activity
        probe = run_mapping(mapping, xs, record=True, batch_size=batch)
        capacity = receive_capacity_from_run(probe)
        mapping = dvs_mapping(receive_policy=policy, batch_size=batch, receive_capacity=capacity)
    return run_mapping(mapping, xs, record=record, batch_size=batch, costs=costs)


def _batch_predictions() -> list[dict[str, float]]:
    """The DVS deployment at every batch size of :data:`BATCH_SIZES`, per sample, under
    both loop orders of a batch (:data:`~spinnaker2_backend.sensitivity.BATCH_LOOPS`)."""
    from spinnaker2_backend.sensitivity import BATCH_LOOPS

    out = []
    for outer, loop in BATCH_LOOPS.items():
        costs = dataclasses.replace(CycleCosts(), batch_shares_weight_loads=outer)
        for batch in BATCH_SIZES:
            run = _dvs_run(
                DVS_RECEIVE_POLICY, DVS_FRAMES_PER_SAMPLE, batch=batch, record=False, costs=costs
            )
            report = run.report()
            out.append(
                {
                    "batch": batch,
                    "loop": loop,
                    "ms_per_sample": report.seconds_per_sample * 1e3,
                    "mj_per_sample": report.energy_per_sample_j * 1e3,
                    "power_w": report.average_power_w,
                }
            )
    return out


def _lm_run_at(activity: float):
    from spinnaker2_backend.synthetic import synthetic_network

    artifact = synthetic_network("paper-lm", activity=activity)
    tokens = calibration_inputs(artifact)
    mapping = calibration_mapping(artifact, inputs=tokens, check=False)
    return record_calibration_run(mapping, tokens)


def validate(*, study: bool = True) -> ValidationResult:
    """Run the published deployments, compare every published figure, and add the
    sensitivity table, the DVS batch predictions and (``study``) the receive designs."""
    from spinnaker2_backend.mapping.base import RECEIVE_POLICIES
    from spinnaker2_backend.sensitivity import sensitivity

    artifact = calibration_artifact()
    tokens = calibration_inputs(artifact)
    lm = calibration_mapping(artifact, inputs=tokens)
    lm_run = record_calibration_run(lm, tokens)
    lm_report = lm_run.report()
    dvs_run = _dvs_run(DVS_RECEIVE_POLICY, DVS_FRAMES_PER_SAMPLE)
    dvs_report = dvs_run.report()
    rows = _lm_rows(lm, lm_report) + _dvs_rows(dvs_run, dvs_report)
    policies = tuple(p for p in ("dense", "reused", "event-list") if p in RECEIVE_POLICIES)
    runs = {(DVS_RECEIVE_POLICY, DVS_FRAMES_PER_SAMPLE): dvs_run}

    def dvs_run_for(policy: str, frames: int):
        if (policy, frames) not in runs:
            runs[policy, frames] = _dvs_run(policy, frames)
        return runs[policy, frames]

    spread = sensitivity(
        lm_run=lm_run,
        dvs_run_for=dvs_run_for,
        lm_run_at_activity=_lm_run_at,
        dvs_policies=policies,
    )
    from spinnaker2_backend.profile_check import layer_weight_counts, profile_evidence

    evidence = {
        "alternatives": [
            {
                "name": a.name,
                "walk_cycles": a.walk_cycles,
                "groups": a.groups,
                "paper_ranking": a.paper_ranking,
            }
            for a in profile_evidence(lm_run)
        ],
        "weights": layer_weight_counts(lm, lm_run),
    }
    designs = []
    if study:
        from spinnaker2_backend.receive_designs import design_study

        designs = design_study()
    return ValidationResult(
        rows=rows,
        context=context(artifact, tokens, lm, lm_run, dvs_run),
        sensitivity=spread,
        batches=_batch_predictions(),
        designs=designs,
        evidence=evidence,
    )
