"""The energy model: golden values, DVFS levels, and how energy follows the work."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend import map_network
from spinnaker2_backend.constants import ChipSpec, EnergyCosts
from spinnaker2_backend.energy import estimate_energy, level_difference
from spinnaker2_backend.simulator import run_mapping
from tests.spinnaker2_backend.conftest import random_zero_bias_layer, runs_at_150_and_300_mhz

COSTS = EnergyCosts(
    static_power_w=0.3,
    pe_leakage_power_w=1e-4,
    pe_cycle_energy_j=2e-3 / 150e6,  # 2 mW while busy at 150 MHz
    packet_energy_j=1e-11,
    packet_hop_energy_j=2e-12,
    chip_link_energy_j=4e-10,
    dram_byte_energy_j=5e-11,
)


#: The run the tests start from (0.1 s at 150 MHz, 100 PEs powered) and its traffic.
RUN = dict(wall_seconds=0.1, busy_cycles=3e6, clock_hz=150e6, pes_powered=100)
TRAFFIC = dict(packets=1000, packet_hops=5000, chip_link_hops=10, dram_bytes=2e5)


def _energy(**kw):
    return estimate_energy(**{**RUN, **TRAFFIC, "costs": COSTS, **kw})


def test_energy_golden():
    e = _energy()
    assert e.baseline_j == pytest.approx(0.3 * 0.1)
    assert e.leakage_j == pytest.approx(100 * 1e-4 * 0.1)
    assert e.static_j == pytest.approx(0.03 + 1e-3)
    assert e.busy_pe_seconds == pytest.approx(0.02)
    assert e.active_j == pytest.approx(2e-3 * 0.02)
    assert e.packet_j == pytest.approx(1e-8)
    assert e.hop_j == pytest.approx(1e-8)
    assert e.chip_link_j == pytest.approx(4e-9)
    assert e.dram_j == pytest.approx(1e-5)
    total = 0.03 + 1e-3 + 4e-5 + 1e-8 + 1e-8 + 4e-9 + 1e-5
    assert e.total_j == pytest.approx(total)
    assert e.average_power_w == pytest.approx(total / 0.1)
    assert e.dynamic_j == pytest.approx(total - 0.031)
    d = e.to_dict()
    assert d["total_j"] == pytest.approx(total) and d["clock_hz"] == 150e6
    assert _energy(chips=2, pes_powered=200).static_j == pytest.approx(2 * e.static_j)
    # by default (pes_powered=None) every PE of the powered chips leaks
    assert _energy(chips=2, pes_powered=None).pes_powered == 2 * ChipSpec().pes_per_chip


def test_more_packets_hops_and_bytes_cost_more_energy():
    base = _energy()
    assert _energy(packets=2000).total_j - base.total_j == pytest.approx(1000 * 1e-11)
    assert _energy(packet_hops=6000).total_j - base.total_j == pytest.approx(1000 * 2e-12)
    assert _energy(chip_link_hops=20).total_j > base.total_j
    assert _energy(dram_bytes=3e5).total_j > base.total_j
    assert _energy(busy_cycles=6e6).active_j == pytest.approx(2 * base.active_j)


def test_levels_scale_dynamic_energy_with_v_squared_and_leakage_with_v():
    assert COSTS.voltage(150e6) == 0.5 and COSTS.voltage(300e6) == 0.8
    ratio = 0.8 / 0.5
    assert COSTS.leakage_power_at(300e6) == pytest.approx(1e-4 * ratio)
    assert COSTS.cycle_energy_at(300e6) == pytest.approx(2e-3 / 150e6 * ratio**2)
    fast = _energy(clock_hz=300e6)
    assert fast.busy_pe_seconds == pytest.approx(0.01)
    # same cycles at twice the clock: dynamic energy x (V_fast / V_slow)^2
    assert fast.active_j == pytest.approx(_energy().active_j * ratio**2)
    assert fast.baseline_j == _energy().baseline_j  # the baseline ignores the PE level
    with pytest.raises(ValueError, match="unknown performance level.*200 MHz"):
        _energy(clock_hz=200e6)


@settings(max_examples=200, deadline=None)
@given(
    busy=st.floats(0.0, 1e9),
    ticks=st.integers(1, 10_000),
    tick_us=st.floats(10.0, 1e4),
    packets=st.floats(0.0, 1e7),
    dram=st.floats(0.0, 1e8),
    static=st.floats(0.0, 2.0),
    leak=st.floats(0.0, 1e-3),
    cycle=st.floats(0.0, 1e-10),
)
def test_timer_driven_a_faster_level_never_costs_less(
    busy, ticks, tick_us, packets, dram, static, leak, cycle
):
    """At fixed work and tick (the work fits the tick at both levels), the wall time is the
    ticks at both levels; the faster level pays V^2 on the cycles and V on the leakage."""
    costs = EnergyCosts(static_power_w=static, pe_leakage_power_w=leak, pe_cycle_energy_j=cycle)
    wall = ticks * tick_us * 1e-6
    energy = {}
    for hz in (150e6, 300e6):
        energy[hz] = estimate_energy(
            wall_seconds=wall,
            busy_cycles=busy,
            packets=packets,
            packet_hops=3 * packets,
            chip_link_hops=0.1 * packets,
            dram_bytes=dram,
            clock_hz=hz,
            costs=costs,
        )
    slow, fast = energy[150e6], energy[300e6]
    assert fast.total_j >= slow.total_j * (1 - 1e-12)
    diff = level_difference(slow, fast)
    assert all(v >= -1e-18 for v in diff.values())  # no term gets cheaper


def test_as_fast_as_possible_the_model_names_the_term_that_saves():
    # the same cycles in half the wall time: baseline and leakage halve, dynamic grows
    slow = _energy(wall_seconds=0.1)
    fast = _energy(wall_seconds=0.05, clock_hz=300e6)
    diff = level_difference(slow, fast)
    assert fast.total_j < slow.total_j
    assert next(iter(diff)) == "baseline_j" and diff["baseline_j"] < 0
    assert diff["active_j"] > 0


def test_bad_energy_figures_raise():
    with pytest.raises(ValueError, match="a faster level needs at least the voltage"):
        EnergyCosts(level_voltages_v=((150_000_000, 0.8), (300_000_000, 0.5)))
    with pytest.raises(ValueError, match="static_power_w must be >= 0"):
        EnergyCosts(static_power_w=-1.0)
    with pytest.raises(ValueError, match="level_voltages_v"):
        EnergyCosts(level_voltages_v=((150_000_000, 0.0),))
    with pytest.raises(ValueError, match="wall_seconds >= 0"):
        _energy(wall_seconds=-1.0)


def _one_layer(threshold: float) -> DeploymentArtifact:
    rng = np.random.default_rng(0)
    layers = [
        random_zero_bias_layer(rng, 16, 32, threshold),
        random_zero_bias_layer(rng, 32, 16, 0.05),
    ]
    return DeploymentArtifact(layers=layers, input_kind="features")


def test_a_run_with_more_events_sends_more_packets_and_spends_more_energy_on_them():
    xs = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    quiet = run_mapping(map_network(_one_layer(0.9), max_units_per_pe=4), xs)
    busy = run_mapping(map_network(_one_layer(0.01), max_units_per_pe=4), xs)
    assert busy.counters.total("events") > 2 * quiet.counters.total("events")
    assert busy.counters.total("packets_sent") > quiet.counters.total("packets_sent")
    network = lambda e: e.packet_j + e.hop_j  # noqa: E731
    assert network(busy.energy) > network(quiet.energy)
    assert busy.energy.total_j > quiet.energy.total_j


def test_run_energy_is_the_model_applied_to_the_run_and_follows_the_clock():
    artifact = _one_layer(0.1)
    xs = np.random.default_rng(2).standard_normal((15, 16)).astype(np.float32)
    slow, fast = runs_at_150_and_300_mhz(artifact, xs, max_units_per_pe=4)
    counters = slow.counters
    again = estimate_energy(
        wall_seconds=slow.seconds,
        busy_cycles=float(sum(c.phase_cycles.sum() for c in counters.layers)),
        packets=counters.total("packets_sent"),
        packet_hops=counters.total("packet_hops"),
        chip_link_hops=counters.total("chip_link_hops"),
        dram_bytes=sum(c.dram_bytes for c in counters.layers),
        clock_hz=150e6,
    )
    assert slow.energy.total_j == pytest.approx(again.total_j)
    assert again.dram_j > 0 and again.packet_j > 0
    assert fast.seconds < 0.55 * slow.seconds
    assert fast.energy.baseline_j == pytest.approx(
        slow.energy.baseline_j * (fast.seconds / slow.seconds)
    )
    assert fast.energy.leakage_j == pytest.approx(
        slow.energy.leakage_j * (fast.seconds / slow.seconds) * 1.6
    )
    # same cycles (DRAM transfers take a few more cycles at the faster clock)
    assert fast.energy.active_j == pytest.approx(slow.energy.active_j * 1.6**2, rel=2e-3)
