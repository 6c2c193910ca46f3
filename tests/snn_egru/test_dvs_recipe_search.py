"""scripts/dvs_recipe_search.py: a sweep DVS point judged on a validation split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dvs_recipe_search.py"


def _load():
    spec = importlib.util.spec_from_file_location("dvs_recipe_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_point_reports_validation_accuracy_sparsity_and_dead_units(tmp_path, capsys):
    log = tmp_path / "search.jsonl"
    args = ["--preset", "tiny", "--width", "8", "--steps", "2", "--val-samples", "3"]
    args += ["--thresholds", "0", "--recipe", "learn_threshold=false"]
    args += ["--cache", str(tmp_path / "train"), "--val-cache", str(tmp_path / "val")]
    assert _load().main([*args, "--log", str(log)]) == 0
    record = json.loads(log.read_text())
    assert record == json.loads(capsys.readouterr().out)
    assert record["val_samples"] == 3 and record["val_seed"] == 7
    assert 0.0 <= record["val_accuracy"] <= 1.0
    assert record["val_curve"][-1] == [2, round(record["val_accuracy"], 4)]
    assert len(record["dead_units"]) == 2 and all(0 <= d <= 8 for d in record["dead_units"])
    assert 0.0 <= record["activity_sparsity"] <= 1.0 and record["macs_per_frame"] > 0
    # the validation recordings are not the sweep's test recordings (another data seed)
    assert {p.name.split("-")[2] for p in (tmp_path / "val").iterdir()} == {"seed7"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--val-seed", "0"], "--val-seed 0 is the sweep's own data seed"),
        (["--recipe", "no_such_field=1", "--preset", "tiny"], "no_such_field"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert _load().main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
