"""benchmarks/egru_layer.py runs and reports the keys a later run is compared by (no timing
is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "egru_layer.py"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_small_size_json_has_the_compared_keys() -> None:
    result = run("--sizes", "small", "--repeats", "1", "--threads", "1", "--clock", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in (
        "small_train_over_gru",
        "small_infer_over_gru",
        "small_infer_event_over_gru",
        "small_infer_dense_over_gru",
        "small_train_python_over_gru",
        "small_infer_python_over_gru",
        "load_start",
        "load_end",
    ):
        assert math.isfinite(report[key]) and report[key] >= 0, key
    assert report["small_infer_default"] == "dense" and report["clock"] == "cpu"
    assert report["small_infer_sparsity"] >= 0.85
    assert not any(key.startswith("lm_") for key in report)
    assert "training fwd+bwd  compiled loop" in result.stderr  # the table goes to stderr
    assert "ratio" in result.stderr and "load" in result.stderr


def test_unknown_size_is_refused() -> None:
    result = run("--sizes", "huge")
    assert result.returncode == 2
    assert "--sizes takes a list of small, lm" in result.stderr
