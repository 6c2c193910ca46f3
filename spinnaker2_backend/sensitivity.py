"""How much the held-out prediction moves under each alternative defensible assumption.

The DVS gesture figures (Table III, batch 1) are the model's held-out check. The prediction
rests on choices nobody published: how the DVS program keeps its received events, how
many 25 ms frames make a sample, the fixed cost of a step, the clock level, the activity of
the LM stand-in the constants are fitted on, and the loop order of a batch.
:func:`sensitivity` re-predicts the DVS time and energy per sample under each alternative,
one assumption at a time (every other one at its default), refitting the LM side where the
assumption enters the fit, so that a reader sees the spread rather than one chosen point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from spinnaker2_backend.calibration import (
    TARGET_SEQUENCE_ENERGY_J,
    TARGET_SEQUENCE_SECONDS,
    energy_for_costs,
    fit_csr_nonzero_cycles,
    fit_static_power,
    sequence_profile,
)
from spinnaker2_backend.constants import ChipSpec, CycleCosts, EnergyCosts
from spinnaker2_backend.results import (
    DVS_FRAMES_PER_SAMPLE,
    PUBLISHED_DVS_SPINNAKER2,
    SEQUENCE_TOKENS,
    Run,
)

__all__ = [
    "ALTERNATIVE_FRAMES",
    "ALTERNATIVE_STEP_OVERHEAD",
    "BATCH_LOOPS",
    "SensitivityRow",
    "sensitivity",
]

#: The two loop orders of a batch (``CycleCosts.batch_shares_weight_loads``): the samples
#: outer (each sample walks the weights) or the weights outer (a weight and its index are
#: loaded once per step and applied to every sample).
BATCH_LOOPS: dict[bool, str] = {False: "samples outer", True: "weights outer"}
#: Frames per DVS sample tried besides the default 68 (1 s, 1.7 s, 2.5 s of 25 ms frames).
ALTERNATIVE_FRAMES: tuple[int, ...] = (40, DVS_FRAMES_PER_SAMPLE, 100)
#: Fixed cycles per PE and step tried (``CycleCosts.fixed_step_cycles``, the set-up part
#: varied; the LM is refit).
ALTERNATIVE_STEP_OVERHEAD: tuple[float, ...] = (60.0, 400.0, 2000.0)


@dataclass(frozen=True)
class SensitivityRow:
    """The DVS prediction under one assumption.

    Attributes:
        assumption: what was varied. value: its value here. default: the value
            ``validate`` uses. seconds, energy_j: DVS time and energy per sample.
        fitted: the refitted ``(csr_nonzero_cycles, static_power_w)`` when the LM was refit.
        note: why there is no prediction (the LM anchor out of reach under it), else "".
    """

    assumption: str
    value: str
    default: bool
    seconds: float
    energy_j: float
    fitted: tuple[float, float] | None = None
    note: str = ""

    @property
    def time_error(self) -> float:
        return self.seconds / PUBLISHED_DVS_SPINNAKER2.seconds_per_sequence - 1.0

    @property
    def energy_error(self) -> float:
        return self.energy_j / PUBLISHED_DVS_SPINNAKER2.energy_j_per_sequence - 1.0


def _refit(lm_run: Run, costs: CycleCosts, energy: EnergyCosts, spec: ChipSpec):
    """``(costs, energy)`` refit to 170.25 ms / 0.0653 J on the recorded LM run."""
    scale = lm_run.steps / SEQUENCE_TOKENS
    walk = fit_csr_nonzero_cycles(
        lm_run, target_seconds=TARGET_SEQUENCE_SECONDS * scale, base_costs=costs, spec=spec
    )
    costs = dataclasses.replace(costs, csr_nonzero_cycles=walk)
    profile = sequence_profile(lm_run, costs, spec=spec)
    static = fit_static_power(
        lm_run,
        profile,
        target_energy_j=TARGET_SEQUENCE_ENERGY_J * scale,
        base_energy=energy,
        clock_hz=spec.pe_clock_hz,
    )
    return costs, dataclasses.replace(energy, static_power_w=static)


def _predict(dvs_run: Run, costs: CycleCosts, energy: EnergyCosts, spec: ChipSpec):
    """``(seconds, joules)`` per sample of a recorded DVS run re-costed."""
    profile = sequence_profile(dvs_run, costs, spec=spec)
    e = energy_for_costs(dvs_run, profile, energy, clock_hz=spec.pe_clock_hz)
    return profile.wall_seconds / dvs_run.batch_size, e.total_j / dvs_run.batch_size


def sensitivity(
    *,
    lm_run: Run,
    dvs_run_for: Callable[[str, int], Run],
    lm_run_at_activity: Callable[[float], Run] | None = None,
    dvs_policies: tuple[str, ...] = ("dense", "reused", "event-list"),
    activities: tuple[float, ...] = (0.15, 0.30),
    costs: CycleCosts | None = None,
    energy: EnergyCosts | None = None,
) -> list[SensitivityRow]:
    """The DVS prediction under each alternative assumption (module docstring).

    Args:
        lm_run: the recorded LM calibration run (every step).
        dvs_run_for: ``(receive policy, frames) -> recorded DVS run`` (batch 1, 150 MHz).
        lm_run_at_activity: ``activity -> recorded LM run`` of the stand-in tuned to that
            activity, mapped as the calibration maps it; omitted: no activity rows.
        dvs_policies: DVS receive policies tried (the first is the default).
        activities: LM stand-in activities tried besides the default.
        costs, energy: the shipped constants (defaults).
    """
    costs = costs if costs is not None else CycleCosts()
    energy = energy if energy is not None else EnergyCosts()
    spec = ChipSpec()
    rows: list[SensitivityRow] = []
    base = dvs_run_for(dvs_policies[0], DVS_FRAMES_PER_SAMPLE)
    for policy in dvs_policies:
        run = base if policy == dvs_policies[0] else dvs_run_for(policy, DVS_FRAMES_PER_SAMPLE)
        t, e = _predict(run, costs, energy, spec)
        rows.append(SensitivityRow("DVS receive policy", policy, policy == dvs_policies[0], t, e))
    for frames in ALTERNATIVE_FRAMES:
        run = base if frames == DVS_FRAMES_PER_SAMPLE else dvs_run_for(dvs_policies[0], frames)
        t, e = _predict(run, costs, energy, spec)
        rows.append(
            SensitivityRow("frames per sample", str(frames), frames == DVS_FRAMES_PER_SAMPLE, t, e)
        )
    for overhead in ALTERNATIVE_STEP_OVERHEAD:
        setup = overhead - (costs.fixed_step_cycles - costs.step_overhead_cycles)
        alt = dataclasses.replace(costs, step_overhead_cycles=max(setup, 0.0))
        rows.append(
            _refit_row(
                "fixed cycles per PE and step (LM refit)",
                f"{overhead:g}",
                overhead == costs.fixed_step_cycles,
                lm_run,
                base,
                alt,
                energy,
                spec,
            )
        )
    for outer in (False, True):  # the batch loop order: samples outer or weights outer
        loop = dataclasses.replace(costs, batch_shares_weight_loads=outer)
        t, e = _predict(base, loop, energy, spec)
        rows.append(
            SensitivityRow(
                "batch loop (held-out run: batch 1)",
                BATCH_LOOPS[outer],
                outer == costs.batch_shares_weight_loads,
                t,
                e,
            )
        )
    for mhz in (150, 300):
        fast = spec.with_clock_mhz(mhz)
        t, e = _predict(base, costs, energy, fast)
        rows.append(SensitivityRow("clock level", f"{mhz} MHz", mhz == 150, t, e))
    for activity in activities if lm_run_at_activity is not None else ():
        rows.append(
            _refit_row(
                "LM stand-in activity (LM refit)",
                f"{100 * activity:g} %",
                False,
                lm_run_at_activity(activity),
                base,
                costs,
                energy,
                spec,
            )
        )
    return rows


def _refit_row(assumption, value, default, lm_run, dvs_run, costs, energy, spec):
    """The DVS prediction after refitting the LM under ``costs``; a row without a
    prediction (``note``) when 170.25 ms is out of reach."""
    try:
        fit_c, fit_e = _refit(lm_run, costs, energy, spec)
    except ValueError as err:
        return SensitivityRow(
            assumption, value, default, float("nan"), float("nan"), note=f"no fit: {err}"
        )
    t, e = _predict(dvs_run, fit_c, fit_e, spec)
    fitted = (fit_c.csr_nonzero_cycles, fit_e.static_power_w)
    return SensitivityRow(assumption, value, default, t, e, fitted)
