"""Recording windows: per-step detail of the last N steps, totals of every step, bounded
memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import spinnaker2_backend.recording as recording
import spinnaker2_backend.simulator as simulator_module
from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.calibration import sequence_profile
from spinnaker2_backend.cli import main
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.recording import BlockSum, RunTotals, read_step_log
from spinnaker2_backend.simulator import NetworkSimulator, run_mapping
from spinnaker2_backend.timing import OPS, PHASES, build_profile
from tests.networks import synthetic_lm
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
    # the per-step rows: the window's steps, as in the full run
    assert np.array_equal(full.step_totals[-7:], win.step_totals)
    assert full.activity() == win.activity()
    for name in (
        "layer_cycles",
        "layer_tails",
        "critical_phase_cycles",
        "start_cycles",
        "finish_cycles",
    ):
        assert np.array_equal(getattr(full.profile, name)[-7:], getattr(win.profile, name))
    # the whole-run sums: bit for bit those of the full run's per-step arrays
    p = full.profile
    assert np.array_equal(win.profile.critical_phase_sum, p.critical_phase_cycles.sum(axis=(0, 1)))
    assert np.array_equal(win.profile.layer_critical_phase_sum, p.critical_phase_cycles.sum(0))
    assert win.profile.tail_cycles_sum == p.layer_tails.sum()
    end = float(np.max(p.finish_cycles + p.layer_tails))
    assert win.profile.compute_seconds == end / p.clock_hz
    assert win.profile.critical_phase_seconds() == p.critical_phase_seconds()
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


# ------------------------------------------------------------------ running totals, exact
@pytest.mark.parametrize("sizes", [[1, 5, 8191, 8192, 8193, 20000], [3] * 7000, [8192, 1, 8192]])
def test_block_sum_is_numpys_sum_bit_for_bit(sizes):
    rng = np.random.default_rng(len(sizes))
    parts = [rng.random(n) * 10.0 ** rng.integers(-3, 6) for n in sizes]
    summed = BlockSum()
    for part in parts:
        summed.add(part)
    whole = np.concatenate(parts)
    assert summed.value == float(np.sum(whole))
    # a copy goes on from the same point without changing the original
    twin = summed.copy()
    twin.add([1.5])
    assert summed.value == float(np.sum(whole))
    assert twin.value == float(np.sum(np.append(whole, 1.5)))


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("tick_us", [None, 9.0])
def test_running_totals_equal_the_sums_over_per_step_arrays(pipelined, tick_us):
    """Many steps of random, non-integer rows (beyond numpy's 8192-element sum blocks): the
    streamed figures are those the profile computes from the whole per-step arrays."""
    rng = np.random.default_rng(3)
    steps, layers, phases = 9000, 3, 8
    cycles = rng.random((steps, layers)) * 1500 + 0.37
    tails = rng.integers(0, 4, (steps, layers)) * 8.0 + rng.random((steps, layers))
    critical = rng.random((steps, layers, phases)) * 200.13
    kw = dict(pipelined=pipelined, tick_us=tick_us, clock_hz=150e6)
    totals = RunTotals(layers, num_phases=phases, **kw)
    start, finish = np.zeros((steps, layers)), np.zeros((steps, layers))
    t = 0
    for n in [1, 2, 255, 256, 3000] * 3:  # blocks of any length
        n = min(n, steps - t)
        block = (a[t : t + n] for a in (cycles, tails, critical, start, finish))
        totals.add_block(*block)
        t += n
    assert t == steps
    profile = build_profile(
        layer_cycles=cycles,
        layer_tails=tails,
        critical_phase_cycles=critical,
        pe_phase_cycles=[np.zeros((phases, 2))] * layers,
        timer_hz=1e6,
        **kw,
    )
    assert np.array_equal(start, profile.start_cycles)
    assert np.array_equal(finish, profile.finish_cycles)
    assert totals.wall_seconds == profile.wall_seconds
    assert totals.end_cycles == profile.end_cycles
    assert totals.tail_cycles_sum == profile.tail_cycles_sum == tails.sum()
    assert np.array_equal(totals.critical_phase_sum, critical.sum(axis=(0, 1)))
    assert np.array_equal(totals.layer_critical_phase_sum, critical.sum(axis=0))


@pytest.mark.parametrize("options", [{}, {"pipelined": True, "tick_us": 3.0}])
def test_a_run_profile_of_running_totals_equals_the_profile_of_its_arrays(mapping, options):
    run = run_mapping(mapping, _features(mapping, 40), record=False, **options)
    p = run.profile
    again = build_profile(
        layer_cycles=p.layer_cycles,
        layer_tails=p.layer_tails,
        critical_phase_cycles=p.critical_phase_cycles,
        pe_phase_cycles=p.pe_phase_cycles,
        clock_hz=p.clock_hz,
        timer_hz=p.timer_hz,
        pipelined=p.pipelined,
        tick_us=p.tick_us,
        deadline_missed_count=p.deadline_missed_count,
    )
    assert again.wall_seconds == p.wall_seconds and again.compute_seconds == p.compute_seconds
    assert again.critical_phase_seconds() == p.critical_phase_seconds()
    assert again.layer_critical_phase_seconds() == p.layer_critical_phase_seconds()
    assert np.array_equal(again.start_cycles, p.start_cycles)
    assert np.array_equal(again.finish_cycles, p.finish_cycles)
    events = run.step_counts("events").sum(axis=0)  # every step kept: the counters agree
    assert run.activity() == [e / (40 * h) for e, h in zip(events, run.layer_sizes)]


# ------------------------------------------------------------------------ the step log
def test_a_step_log_holds_every_step_in_chunks(mapping, tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "LOG_CHUNK", 6)
    xs = _features(mapping, 20)
    full = run_mapping(mapping, xs, pipelined=True)
    path = tmp_path / "steps.npz"
    win = run_mapping(mapping, xs, pipelined=True, record_window=3, step_log=path)
    log = read_step_log(path)
    assert len([m for m in np.load(path).files if m.startswith("layer_cycles.")]) == 4
    p = full.profile
    assert np.array_equal(log["layer_cycles"], p.layer_cycles)
    assert np.array_equal(log["layer_tails"], p.layer_tails)
    assert np.array_equal(log["critical_phase_cycles"], p.critical_phase_cycles)
    assert np.array_equal(log["start_cycles"], p.start_cycles)
    assert np.array_equal(log["finish_cycles"], p.finish_cycles)
    assert np.array_equal(log["op_totals"], full.step_totals)
    assert list(log["phases"]) == list(PHASES) and list(log["ops"]) == list(OPS)
    assert win.report().to_dict() == full.report().to_dict()


def test_read_step_log_refuses_other_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a step log"):
        read_step_log(other)


def test_cli_run_streams_its_steps_and_keeps_a_users_file(tmp_path, capsys):
    net = synthetic_network(layer_sizes=(30, 20), input_size=10, sparsity=0.8, seed=0)
    path = net.save(tmp_path / "net.npz")
    steps = tmp_path / "steps.npz"
    argv = ["run", str(path), "--steps", "12", "--json", "--save-steps", str(steps)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    log = read_step_log(steps)
    assert log["layer_cycles"].shape == (12, 2)
    assert report["counters"]["events"] == log["op_totals"][:, :, OPS.index("events")].sum()
    assert main(argv) == 2  # the file exists: kept, one line
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert main(["run", str(path), "--save-steps", str(tmp_path / "no" / "s.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------ bounded memory
def _traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_a_windowed_run_grows_at_most_50_bytes_per_step():
    """Bounded memory: with a window, the whole run's figures are running sums; what a run
    of 6,144 steps holds at its peak exceeds that of 2,048 steps by at most 50 B per step."""
    art = synthetic_lm((24, 16), 16, sparsity=0.7)
    mapping = map_network(art, max_units_per_pe=8)
    tokens = np.random.default_rng(0).integers(0, 50, 6144)
    # multiples of INPUT_CHUNK (1024): the inputs are converted chunk by chunk alike
    short, long = 2048, 6144

    def growth(**kw) -> float:
        sim = NetworkSimulator(mapping, progress=False, **kw)
        sim.run(tokens[:50])  # warm-up: caches, lazily built tables
        peak_short = _traced_peak(lambda: sim.run(tokens[:short]))
        peak_long = _traced_peak(lambda: sim.run(tokens[:long]))
        return (peak_long - peak_short) / (long - short)

    windowed = growth(record_window=16)
    lean = growth(record=False, record_window=1)
    full = growth(record=True)
    assert windowed <= 50, windowed
    assert lean <= 50, lean
    assert full > 500  # the test can fail: without a window every step is kept
