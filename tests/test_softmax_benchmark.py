"""benchmarks/softmax_cost.py: its ``--json`` has the keys docs/training_speed.md is written
from, with the conditions of the run (no timing is asserted), and ``--write-doc`` fills only
the marked block."""

from __future__ import annotations

import json

import pytest

from tests.test_benchmarks_json import check_conditions, run_benchmark, run_json


@pytest.mark.slow
def test_softmax_cost_json_and_doc_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- softmax-cost:start -->\nold\n<!-- softmax-cost:end -->\nafter\n")
    out = run_json(
        "softmax_cost.py", "--preset", "tiny", "--steps", "3", "--test-tokens", "200",
        "--step-block", "1", "--step-repeats", "1", "--cutoffs", "50,500",
        "--write-doc", str(doc), "--json", timeout=600,
    )  # fmt: skip
    assert set(out["rows"]) == {"full", "adaptive"}
    for row in out["rows"].values():
        for key in ("test_perplexity", "valid_perplexity", "step_ms", "train_wall_s", "steps"):
            assert key in row, key
        assert row["steps"] == 3
    assert out["rows"]["adaptive"]["cutoffs"] == [50, 500]
    assert out["rows"]["adaptive"]["tied"] is False and out["rows"]["full"]["tied"] is True
    assert set(out["adaptive_over_full"]) == {"test_perplexity", "step_time", "train_wall"}
    check_conditions(out["conditions"])
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert f"{out['rows']['full']['test_perplexity']:.2f}" in text
    saved = tmp_path / "saved.json"  # the doc again from the saved report, without a run
    saved.write_text(json.dumps(out))
    doc.write_text("<!-- softmax-cost:start -->\n<!-- softmax-cost:end -->\n")
    proc = run_benchmark("softmax_cost.py", "--from-json", str(saved), "--write-doc", str(doc))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert doc.read_text() == text.removeprefix("before\n").removesuffix("after\n")


@pytest.mark.slow
def test_softmax_cost_refuses_cutoffs_beyond_the_vocabulary():
    proc = run_benchmark("softmax_cost.py", "--preset", "tiny", "--cutoffs", "20000", timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert "adaptive_softmax cutoffs" in proc.stderr
