"""benchmarks/demo_phases.py splits a demo's wall time from its own records, and
scripts/update_readme_excerpt.py writes README's timing sentence from that split (no demo is
run here: a made-up run folder, so the arithmetic is checked exactly)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(tmp_path: Path) -> tuple[Path, list[tuple[float, str]]]:
    summary = {
        "phases_s": {
            "train": 100.0, "prune": 40.0, "export": 1.0, "map": 2.0, "torch_eval": 0.5,
            "lava_run": 6.0, "accounting": 0.5,
        },
        "train": {"steps": 800, "wall_time_s": 90.0, "total_time_s": 97.0,
                  "test_perplexity": 160.0},
        "prune": {"steps": 300, "wall_time_s": 33.0, "total_time_s": 38.0,
                  "test_perplexity": 185.0},
    }  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    lines = [
        (0.1, "noise"),
        (4.0, "INFO snn_egru.pipeline: train: preset 'small' on ptb -> x"),
        (50.0, "INFO snn_egru.training.lm_task: step 500: valid perplexity 180.00 (2.5 s)"),
        (95.0, "INFO snn_egru.training.lm_task: step 800: valid perplexity 170.00 (2.0 s)"),
        (105.0, "INFO snn_egru.pipeline: prune: to 90 % over 300 fine-tuning steps -> y"),
        (140.0, "INFO snn_egru.training.lm_task: step 300: valid perplexity 190.00 (1.5 s)"),
    ]
    return tmp_path, lines


def test_phases_add_up_to_the_wall_time(tmp_path):
    phases = _load(ROOT / "benchmarks" / "demo_phases.py").phases
    out, lines = _fake_run(tmp_path)
    p = phases(out, lines, wall=160.0)
    assert p["imports_and_checks"] == 4.0
    assert p["train_validation"] == 4.5 and p["train_steps"] == 85.5
    assert p["train_test_eval"] == 7.0 and p["train_stage_overhead"] == 3.0
    assert p["prune_validation"] == 1.5 and p["prune_steps"] == 31.5
    assert p["prune_test_eval"] == 5.0 and p["prune_stage_overhead"] == 2.0
    assert p["lava_run"] == 6.0 and p["report_and_exit"] == 160.0 - 4.0 - 150.0
    assert math.isclose(sum(p.values()), 160.0)


def test_readme_timing_sentence_comes_from_the_report(tmp_path):
    phases = _load(ROOT / "benchmarks" / "demo_phases.py").phases
    sentence = _load(ROOT / "scripts" / "update_readme_excerpt.py").timing_sentence
    out, lines = _fake_run(tmp_path)
    report = {
        "out": "runs/demo", "wall_s": 160.0, "phases_s": phases(out, lines, wall=160.0),
        "peak_rss_mb": 1434.0, "train_steps": 800, "prune_steps": 300,
        "test_perplexity": {"dense": 159.84, "pruned": 185.21},
        "conditions": {"machine": {"torch_threads": 2}, "load_before": [2.04, 1, 1],
                       "load_after": [3.0, 1, 1]},
    }  # fmt: skip
    text = sentence(report)
    for part in ("2 min 40 s", "160.0 s wall", "training 86 s for 800 steps", "validation 4 s",
                 "its test evaluation 7 s", "pruning 32 s for 300 steps", "its test 5 s",
                 "imports and checks 4 s", "Lava run 10 s", "report and exit 6 s",
                 "load average 2.0 before and 3.0 after", "1.4 GB", "159.8 dense",
                 "185.2 pruned", "--out runs/demo"):  # fmt: skip
        assert part in text, part
