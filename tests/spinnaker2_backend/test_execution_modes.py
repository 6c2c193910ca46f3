"""Execution modes (issue 22, item 4): as fast as possible vs timer-driven, deadlines."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend import map_network
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.timing import deadline_report, tick_work_seconds
from tests.spinnaker2_backend.conftest import random_zero_bias_layer, timing_info


def _net() -> DeploymentArtifact:
    layer = random_zero_bias_layer(np.random.default_rng(0), 12, 24, 0.1)
    return DeploymentArtifact(layers=[layer], input_kind="features")


@pytest.fixture(scope="module")
def setting():
    mapping = map_network(_net(), max_units_per_pe=6)
    xs = np.random.default_rng(1).standard_normal((12, 12)).astype(np.float32)
    return mapping, xs


def test_fixed_step_cycles_are_the_named_parts():
    c = CycleCosts()
    assert c.fixed_step_cycles == (
        c.tick_interrupt_cycles + c.host_wait_cycles + c.sync_cycles + c.step_overhead_cycles
    )
    more = CycleCosts(host_wait_cycles=1000.0)
    assert more.fixed_step_cycles == c.fixed_step_cycles + 1000.0


def test_timer_driven_wall_time_is_the_ticks_when_the_work_fits(setting):
    mapping, xs = setting
    free = run_mapping(mapping, xs)
    work = tick_work_seconds(
        free.profile.layer_cycles, free.profile.layer_tails, clock_hz=150e6, pipelined=False
    )
    assert free.profile.wall_seconds == pytest.approx(work.sum())  # as fast as possible
    tick_us = float(np.ceil(work.max() * 1e6)) + 5.0
    timed = run_mapping(mapping, xs, tick_us=tick_us)
    assert timed.profile.wall_seconds == pytest.approx(len(xs) * tick_us * 1e-6)
    report = deadline_report(timed.profile)
    assert report.ok and report.missed_ticks == 0
    # the PEs idle for the rest of each tick: same busy cycles, more static energy
    assert timed.energy.active_j == pytest.approx(free.energy.active_j)
    assert timed.energy.static_j > free.energy.static_j
    with pytest.raises(ValueError, match="no deadlines"):
        deadline_report(free.profile)


def test_a_tick_shorter_than_the_work_reports_the_misses(setting):
    mapping, xs = setting
    free = run_mapping(mapping, xs)
    work_us = (
        tick_work_seconds(
            free.profile.layer_cycles, free.profile.layer_tails, clock_hz=150e6, pipelined=False
        )
        * 1e6
    )
    tick = float(np.median(work_us))
    short = run_mapping(mapping, xs, tick_us=tick)
    report = deadline_report(short.profile)
    assert report.missed_ticks == int(np.count_nonzero(work_us > tick)) > 0
    assert short.profile.deadline_missed  # flagged on the PEs too
    assert report.shortest_tick_us == np.ceil(work_us.max())
    assert f"at least {report.shortest_tick_us:g} us" in report.message()
    fits = run_mapping(mapping, xs, tick_us=report.shortest_tick_us)
    assert deadline_report(fits.profile).ok


def test_a_batch_shares_the_weight_loads_only_when_the_program_loops_weights_outside():
    from spinnaker2_backend.constants import ChipSpec
    from spinnaker2_backend.timing import OP_INDEX, PHASE_INDEX, cost_matrix

    def per_weight(batch: int, shared: bool) -> float:
        info = timing_info("csr", 1, batch_size=batch)
        costs = CycleCosts(batch_shares_weight_loads=shared)
        m = cost_matrix(info, costs=costs, spec=ChipSpec())
        return m[PHASE_INDEX["recurrent_product"], OP_INDEX["recurrent_weights"]]

    c = CycleCosts()
    walk = c.csr_nonzero_cycles + c.mac_cycles
    assert per_weight(1, True) == per_weight(4, False) == pytest.approx(walk)
    # 4 samples: the value and index loads (3 cycles) once per weight, not 4 times
    assert 4 * per_weight(4, True) == pytest.approx(4 * walk - 3 * c.weight_load_cycles)
