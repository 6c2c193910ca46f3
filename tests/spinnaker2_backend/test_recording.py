"""Recording windows: per-step detail of the last N steps, totals of every step, bounded
memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import spinnaker2_backend.simulator as simulator_module
from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.calibration import sequence_profile
from spinnaker2_backend.cli import main
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.simulator import NetworkSimulator, run_mapping
from tests.spinnaker2_backend.test_simulator import random_artifact


@pytest.fixture(scope="module")
def mapping():
    rng = np.random.default_rng(5)
    art = random_artifact(rng, [12, 9], 6, sparsity=0.5, dtype=np.float32)
    return map_network(art, max_units_per_pe=4)


def _features(mapping, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, mapping.artifact.input_size)).astype(np.float32)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_window_keeps_the_last_steps_and_the_totals_of_every_step(mapping, pipelined):
    xs = _features(mapping, 30)
    kw = dict(tick_us=3.0, pipelined=pipelined)
    full = run_mapping(mapping, xs, **kw)
    win = run_mapping(mapping, xs, record_window=7, **kw)
    assert full.recorded_steps is None and full.profile.recorded_steps is None
    assert np.array_equal(win.recorded_steps, np.arange(23, 30))
    assert np.array_equal(win.profile.recorded_steps, np.arange(23, 30))
    # totals, the profile and the energy: every step, bit for bit
    for a, b in zip(full.counters.layers, win.counters.layers):
        assert np.array_equal(a.ops, b.ops) and np.array_equal(a.phase_cycles, b.phase_cycles)
        assert a.layer_cycles == b.layer_cycles and np.array_equal(
            a.deadline_missed, b.deadline_missed
        )
    assert np.array_equal(full.step_totals, win.step_totals)
    for name in ("layer_cycles", "layer_tails", "critical_phase_cycles", "start_cycles"):
        assert np.array_equal(getattr(full.profile, name), getattr(win.profile, name))
    assert full.profile.wall_seconds == win.profile.wall_seconds
    assert full.profile.deadlines_missed_total == win.profile.deadlines_missed_total > 0
    for a, b in zip(full.profile.pe_phase_cycles, win.profile.pe_phase_cycles):
        assert np.array_equal(a, b)
    assert full.energy == win.energy
    assert full.report().to_dict() == win.report().to_dict()
    # the detail: the last 7 steps of the full recording
    for layer in range(2):
        assert np.array_equal(full.step_ops[layer][-7:], win.step_ops[layer])
        assert np.array_equal(full.layer_events[layer][-7:], win.layer_events[layer])
        assert np.array_equal(full.profile.timer_ticks[layer][-7:], win.profile.timer_ticks[layer])
        assert np.array_equal(
            full.profile.time_done_us[layer][-7:], win.profile.time_done_us[layer]
        )
    assert np.array_equal(full.logits[-7:], win.logits)
    # a window as long as the run keeps everything, as without one
    same = run_mapping(mapping, xs, record_window=30, **kw)
    assert same.recorded_steps is None and np.array_equal(same.logits, full.logits)
    with pytest.raises(ValueError, match="every step recorded"):
        sequence_profile(win, CycleCosts())


def test_bad_windows_raise_clear_errors(mapping):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="record_window must be a positive number"):
            NetworkSimulator(mapping, record_window=bad)


def test_long_inputs_are_converted_chunk_by_chunk(monkeypatch):
    art = synthetic_network(
        layer_sizes=(16, 12), input_size=8, vocab_size=40, sparsity=0.6, input_kind="embedding"
    )
    mapping = map_network(art, max_units_per_pe=6)
    tokens = np.random.default_rng(1).integers(0, 40, 23)
    whole = NetworkSimulator(mapping).run_layer_inputs(art.layer_inputs(tokens))
    monkeypatch.setattr(simulator_module, "INPUT_CHUNK", 5)
    chunked = NetworkSimulator(mapping).run(tokens)
    assert chunked.steps == 23
    assert all(np.array_equal(a, b) for a, b in zip(whole.layer_events, chunked.layer_events))
    assert np.array_equal(whole.logits, chunked.logits)
    assert np.array_equal(whole.step_totals, chunked.step_totals)


def test_cli_run_takes_a_record_window(tmp_path, capsys):
    net = synthetic_network(layer_sizes=(30, 20), input_size=10, sparsity=0.8, seed=0)
    path = net.save(tmp_path / "net.npz")
    argv = ["run", str(path), "--steps", "12", "--json"]
    assert main(argv + ["--record-window", "3"]) == 0
    windowed = capsys.readouterr().out
    assert main(argv + ["--record-window", "0"]) == 0
    assert capsys.readouterr().out == windowed  # the report covers every step either way
    assert main(argv + ["--record-window", "-1"]) == 2  # a user mistake: one line, status 2
    assert "--record-window: must be >= 0" in capsys.readouterr().err


def _peak_bytes(mapping, xs, **kw) -> int:
    tracemalloc.start()
    try:
        run_mapping(mapping, xs, progress=False, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_per_step_does_not_grow_with_a_window():
    art = synthetic_network(
        layer_sizes=(64, 32),
        input_size=32,
        vocab_size=200,
        sparsity=0.7,
        input_kind="embedding",
        readout_kind="tied_decoder",
    )
    mapping = map_network(art, max_units_per_pe=8)
    short, long = 200, 1400
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 200, long)
    xs_short, xs_long = tokens[:short], tokens  # token ids: embedded chunk by chunk
    layers = len(art.layers)
    # what a step keeps always: the layer totals, float64 (simulator.recording)
    totals_per_step = layers * (2 + 8 + 23) * 8
    full = run_mapping(mapping, xs_long, progress=False)
    detail_per_step = (
        sum(o.nbytes for o in full.step_ops)
        + sum(e.nbytes for e in full.layer_events)
        + full.logits.nbytes
    ) / long
    growth_full = (_peak_bytes(mapping, xs_long) - _peak_bytes(mapping, xs_short)) / (long - short)
    growth_window = (
        _peak_bytes(mapping, xs_long, record_window=16)
        - _peak_bytes(mapping, xs_short, record_window=16)
    ) / (long - short)
    assert growth_full > detail_per_step  # the test can fail: a full recording grows
    assert growth_window < 4 * totals_per_step + 256, (growth_window, totals_per_step)
    assert growth_window < detail_per_step / 4
