"""``benchmarks/quantization.py``: a smoke run writes the table and the JSON it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quantization.py"


@pytest.mark.slow
def test_smoke_run_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--workloads", "dvs", "--out",
         str(tmp_path / "runs"), "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = results["dvs"]["rows"]
    names = [row["model"] for row in rows]
    assert names[0] == "float32" and any(
        n.startswith("QAT int8 weights + int8 events") for n in names
    )
    for row in rows[1:]:
        if "QAT" in row["model"] or "PTQ" in row["model"]:
            assert row["artifact_version"] == 2 and row["argmax_agreement"] == 1.0
            assert row["max_abs_logit_diff"] < 1e-4
    assert "| DVS | PTQ int8 weights + int8 events |" in proc.stdout
    assert "load average" in proc.stdout
