"""The energy model: golden values, DVFS levels, and how energy follows the work."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUParams
from spinnaker2_backend import map_network
from spinnaker2_backend.constants import EnergyCosts
from spinnaker2_backend.energy import estimate_energy
from spinnaker2_backend.simulator import run_mapping
from tests.spinnaker2_backend.conftest import runs_at_150_and_300_mhz

COSTS = EnergyCosts(
    static_power_w=0.3,
    pe_active_power_w=2e-3,
    packet_energy_j=1e-11,
    packet_hop_energy_j=2e-12,
    chip_link_energy_j=4e-10,
    dram_byte_energy_j=5e-11,
)


def _energy(**kw):
    args = dict(
        wall_seconds=0.1,
        busy_cycles=3e6,
        packets=1000,
        packet_hops=5000,
        chip_link_hops=10,
        dram_bytes=2e5,
        clock_hz=150e6,
        costs=COSTS,
    )
    args.update(kw)
    return estimate_energy(**args)


def test_energy_golden():
    e = _energy()
    assert e.static_j == pytest.approx(0.3 * 0.1)
    assert e.busy_pe_seconds == pytest.approx(0.02)
    assert e.active_j == pytest.approx(2e-3 * 0.02)
    assert e.packet_j == pytest.approx(1e-8)
    assert e.hop_j == pytest.approx(1e-8)
    assert e.chip_link_j == pytest.approx(4e-9)
    assert e.dram_j == pytest.approx(1e-5)
    total = 0.03 + 4e-5 + 1e-8 + 1e-8 + 4e-9 + 1e-5
    assert e.total_j == pytest.approx(total)
    assert e.average_power_w == pytest.approx(total / 0.1)
    assert e.dynamic_j == pytest.approx(total - 0.03)
    d = e.to_dict()
    assert d["total_j"] == pytest.approx(total) and d["clock_hz"] == 150e6
    assert _energy(chips=2).static_j == pytest.approx(2 * e.static_j)


def test_more_packets_hops_and_bytes_cost_more_energy():
    base = _energy()
    assert _energy(packets=2000).total_j - base.total_j == pytest.approx(1000 * 1e-11)
    assert _energy(packet_hops=6000).total_j - base.total_j == pytest.approx(1000 * 2e-12)
    assert _energy(chip_link_hops=20).total_j > base.total_j
    assert _energy(dram_bytes=3e5).total_j > base.total_j
    assert _energy(busy_cycles=6e6).active_j == pytest.approx(2 * base.active_j)


def test_dvfs_levels_scale_static_and_active_power():
    assert COSTS.voltage(150e6) == 0.5 and COSTS.voltage(300e6) == 0.6
    assert COSTS.static_power_at(300e6) == pytest.approx(0.3 * (0.6 / 0.5) ** 2)
    assert COSTS.pe_active_power_at(300e6) == pytest.approx(2e-3 * 2 * (0.6 / 0.5) ** 2)
    fast = _energy(clock_hz=300e6)
    assert fast.busy_pe_seconds == pytest.approx(0.01)
    # same cycles at twice the clock: half the busy time at 2.88x the power
    assert fast.active_j == pytest.approx(_energy().active_j * 1.44)
    with pytest.raises(ValueError, match="no supply voltage known for a 200 MHz"):
        _energy(clock_hz=200e6)


def test_bad_energy_figures_raise():
    with pytest.raises(ValueError, match="static_power_w must be >= 0"):
        EnergyCosts(static_power_w=-1.0)
    with pytest.raises(ValueError, match="level_voltages_v"):
        EnergyCosts(level_voltages_v=((150_000_000, 0.0),))
    with pytest.raises(ValueError, match="wall_seconds >= 0"):
        _energy(wall_seconds=-1.0)


def _one_layer(threshold: float) -> DeploymentArtifact:
    rng = np.random.default_rng(0)
    h, i = 32, 16
    layer = EGRUParams(
        weight_ih=rng.standard_normal((3 * h, i)).astype(np.float32),
        weight_hh=rng.standard_normal((3 * h, h)).astype(np.float32) * 0.3,
        bias_ih=np.zeros(3 * h, np.float32),
        bias_hh=np.zeros(3 * h, np.float32),
        threshold=np.full(h, threshold, np.float32),
    )
    return DeploymentArtifact(layers=[layer, _second(rng, h)], input_kind="features")


def _second(rng, i: int) -> EGRUParams:
    h = 16
    return EGRUParams(
        weight_ih=rng.standard_normal((3 * h, i)).astype(np.float32),
        weight_hh=rng.standard_normal((3 * h, h)).astype(np.float32) * 0.3,
        bias_ih=np.zeros(3 * h, np.float32),
        bias_hh=np.zeros(3 * h, np.float32),
        threshold=np.full(h, 0.05, np.float32),
    )


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
    assert fast.energy.static_j == pytest.approx(
        slow.energy.static_j * (fast.seconds / slow.seconds) * 1.44
    )
    # same cycles (DRAM transfers take a few more cycles at the faster clock)
    assert fast.energy.active_j == pytest.approx(slow.energy.active_j * 1.44, rel=2e-3)
