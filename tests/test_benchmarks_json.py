"""Every benchmark's ``--json`` carries its figures and the conditions they were taken in.

No timing is asserted: each benchmark runs with its smallest arguments and the test checks
that the keys a later run is compared by are there, with the threads, the load before and
after and the machine (``benchmarks/_timing.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))

from benchmarks import _timing  # noqa: E402


def run_benchmark(
    script: str, *args: str, timeout: int = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python benchmarks/SCRIPT ARGS`` with this tree on PYTHONPATH (output captured)."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_json(script: str, *args: str, timeout: int = 300) -> dict:
    proc = run_benchmark(script, *args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    start = out.index("{") if out.startswith("{") else out.rindex("\n{") + 1
    return json.loads(out[start:])


def check_conditions(conditions: dict) -> None:
    for key in ("machine", "load_before", "load_after", "clock"):
        assert key in conditions, key
    assert len(conditions["load_before"]) == 3 and len(conditions["load_after"]) == 3
    machine = conditions["machine"]
    assert machine["cpu_count"] == os.cpu_count()
    for key in ("torch_threads", "blas_threads", "numba_threads", "blas", "env"):
        assert key in machine, key
    assert machine["blas_threads"] >= 1  # numpy's OpenBLAS at least
    assert all({"library", "threads", "kernel"} <= set(pool) for pool in machine["blas"])


# ------------------------------------------------------------------------ the helper itself
def test_single_threaded_pins_blas_and_restores_it():
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    with _timing.single_threaded():
        inside = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)
    assert after == before


def test_best_of_counts_the_calling_threads_cpu_not_a_sleep():
    # a sleep costs wall time but no CPU of the calling thread
    t = _timing.best_of(lambda: time.sleep(0.02), repeats=2)
    assert t["wall"] >= 0.015 and t["cpu"] < 0.01
    cpu, wall = _timing.interleaved(
        {"a": lambda: np.ones(1000).sum(), "b": lambda: time.sleep(0.01)},
        repeats=2,
        multi_threaded=("b",),
    )
    assert set(cpu) == set(wall) == {"a", "b"}
    assert cpu["b"] == wall["b"] >= 0.005  # a multi-threaded row reports its wall time


def test_session_reports_the_conditions():
    conditions = _timing.Session("test clock").finish()
    check_conditions(conditions)
    assert conditions["clock"] == "test clock"
    line = _timing.Session.line(conditions)
    assert "threads" in line and "load" in line


# ---------------------------------------------------------------------------- the scripts
def test_calibrate_timing_json():
    out = run_json("calibrate_timing.py", "--no-sweep", "--no-variants", "--json")
    assert out["calibration"]["matches_shipped"] is True
    for key in ("profile_ms_per_sequence", "variants", "seconds"):
        assert key in out
    check_conditions(out["conditions"])


def test_int8_capacity_json():
    out = run_json("int8_capacity.py", "--no-lm", "--step", "0.5", "--no-board", "--json")
    assert out["paper_lm"] == []
    rows = out["capacity"]
    assert {r["weight_format"] for r in rows} >= {"csr", "csr-int8"}
    for row in rows:
        for key in ("chips", "scale", "units", "stored_weights", "weights_ratio"):
            assert key in row
    check_conditions(out["conditions"])


@pytest.mark.slow
def test_recurrent_threads_json():
    out = run_json(
        "recurrent_threads.py", "--preset", "tiny", "--steps", "2", "--warmup", "0", "--json"
    )
    for key in ("off_median_ms", "on_median_ms", "off_best_ms", "on_best_ms", "on_over_off"):
        assert out[key] > 0, key
    assert (out["preset"], out["steps"], out["threads"]) == ("tiny", 2, 2)
    check_conditions(out["conditions"])


@pytest.mark.slow
def test_lava_runtime_json():
    out = run_json("lava_runtime.py", "--tiny", "--tokens", "12", "--json")
    for key in (
        "lava_over_reference",
        "lava_spinnaker2_over_direct_chip",
        "reference_steps_per_s",
        "direct_chip_steps_per_s",
        "startup_s",
        "checks",
    ):
        assert key in out, key
    assert set(out["lava_over_reference"]) == {
        "floating_pt",
        "spinnaker2",
        "floating_pt_readout_process",
    }
    assert all(out["checks"].values())
    check_conditions(out["conditions"])


@pytest.mark.slow
def test_egru_layer_json_states_its_conditions():
    out = run_json(
        "egru_layer.py", "--sizes", "small", "--repeats", "1", "--threads", "1", "--clock", "cpu",
        "--json",
    )  # fmt: skip
    assert out["threads"] == 1 and "small_train_over_gru" in out
    check_conditions(out["conditions"])
    assert out["conditions"]["machine"]["torch_threads"] == 1


def test_egru_layer_refuses_a_cpu_clock_on_several_threads():
    proc = run_benchmark("egru_layer.py", "--clock", "cpu", "--threads", "2", timeout=120)
    assert proc.returncode == 2 and "needs --threads 1" in proc.stderr


@pytest.mark.slow
def test_quantization_json_states_its_conditions(tmp_path):
    out = tmp_path / "results.json"
    proc = run_benchmark(
        "quantization.py", "--smoke", "--workloads", "dvs", "--out", str(tmp_path / "runs"),
        "--json", str(out), timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["threads"] == 1 and "dvs" in results
    check_conditions(results["conditions"])


def test_simulator_json():
    out = run_json(
        "simulator.py", "--tokens", "4", "--repeats", "1", "--sweep-tokens", "0", "--rounds", "2",
        "--json",
    )  # fmt: skip
    for key in (
        "floor_ms",
        "sim_csr_ms",
        "sim_event_ms",
        "sim_csr_over_floor",
        "sim_event_over_floor",
        "products_ms",
        "products_over_floor",
        "event_over_csr",
        "sim_csr_over_floor_wall",
        "event_over_csr_wall",
        "sim_csr_record_ms",
        "run_mapping_csr_ms",
        "torch_ms",
        "numpy_ms",
        "activity",
        "sweep",
        "load_average",
    ):
        assert key in out, key
    assert out["sweep"] == [] and out["tokens"] == 4
    assert set(out["paired"]) == {"csr", "event", "products"}
    for row in out["paired"].values():
        assert row["min"] <= row["median"] <= row["max"]
    check_conditions(out["conditions"])
    assert out["conditions"]["machine"]["torch_threads"] == 2


def test_simulator_scaling_json():
    out = run_json("simulator_scaling.py", "--scales", "1", "--tokens", "2", "--repeats", "1",
                   "--json")  # fmt: skip
    (row,) = out["rows"]
    for key in (
        "scale",
        "units",
        "chips",
        "pes",
        "nonzeros",
        "sim_ms",
        "floor_ms",
        "sim_over_floor",
        "sim_ns_per_nonzero",
        "floor_ns_per_nonzero",
        "sim_growth_over_linear",
        "counts_ms",
        "sim_wall_ms",
        "floor_wall_ms",
    ):
        assert key in row, key
    assert row["scale"] == 1 and row["sim_growth_over_linear"] == 1.0
    check_conditions(out["conditions"])


def test_board_json():
    out = run_json("board.py", "--scales", "1", "0.5", "--tokens", "2", "--repeats", "1",
                   "--json")  # fmt: skip
    base, half = out["rows"]
    for row in (base, half):
        for key in (
            "scale",
            "units",
            "input_size",
            "chips",
            "pes",
            "nonzeros",
            "activity",
            "router_entries",
            "pes_over_sram",
            "generate_s",
            "map_s",
            "build_s",
            "ms_per_token",
            "wall_ms_per_token",
            "peak_rss_mb",
            "map_ratio",
            "build_ratio",
            "token_ratio",
            "token_ratio_per_weight",
        ):
            assert key in row, key
        assert set(row["peak_rss_mb"]) == {"generate", "map", "build", "run"}
    assert base["token_ratio"] == 1.0 and half["units"] == [675, 675, 375]
    assert out["baseline_scale"] == 1.0 and out["tokens"] == 2
    check_conditions(out["conditions"])


def test_simulator_benchmarks_refuse_bad_arguments():
    for script, args in (
        ("simulator.py", ["--tokens", "0"]),
        ("simulator_scaling.py", ["--scales", "0"]),
        ("board.py", ["--tokens", "0"]),
    ):
        proc = run_benchmark(script, *args, timeout=120)
        assert proc.returncode == 2 and "must be >= 1" in proc.stderr
