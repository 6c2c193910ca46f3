"""``examples/neurobench_table.py``: --help, bad options (exit 2, one line), a --smoke run
whose NeuroBench figures equal snn_egru.sparsity's, and a features artifact from --data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_examples import _explain, run_example, run_smoke

pytest.importorskip("neurobench")

NAME = "neurobench_table"


def test_help_and_bad_options(tmp_path: Path) -> None:
    proc = run_example(NAME, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--smoke" in proc.stdout, _explain(proc)
    for args, message in (
        (["--seq-len", "1", "--smoke"], "--seq-len must be >= 2"),
        ([], "give --artifact and --data"),
        (["--artifact", "missing.npz", "--data", "x.npz"], "is not a file"),
    ):
        proc = run_example(NAME, *args, cwd=tmp_path)
        assert proc.returncode == 2, _explain(proc)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_smoke_prints_the_neurobench_table_equal_to_snn_egru(tmp_path: Path) -> None:
    proc = run_smoke(
        NAME,
        "--json",
        cwd=tmp_path,
        prints=(
            "Footprint",
            "ConnectionSparsity",
            "ActivationSparsity",
            "SynapticOperations.Effective_MACs",
            "ClassificationAccuracy",
        ),
    )
    line = re.search(
        r"effective MACs/sample (\S+) \(NeuroBench (\S+)\), activation sparsity (\S+) "
        r"\(NeuroBench (\S+)\)",
        proc.stdout,
    )
    assert line, proc.stdout
    ours, theirs, act_ours, act_theirs = (float(v) for v in line.groups())
    assert ours == pytest.approx(theirs, rel=1e-5) and ours > 0
    assert act_ours == pytest.approx(act_theirs, abs=1e-5)
    results = json.loads((tmp_path / "runs/example_neurobench/results.json").read_text())
    assert results["snn_egru_macs"] == pytest.approx(
        results["neurobench"]["SynapticOperations"]["Effective_MACs"], rel=1e-12
    )
    # a features artifact (the DVS net's EGRU part) with --data
    import torch

    from snn_egru.export import export_artifact
    from snn_egru.models.dvs import DVSGestureNet, dvs_preset

    torch.manual_seed(0)
    model = DVSGestureNet(dvs_preset("tiny", num_classes=3)).eval()
    artifact = export_artifact(model).save(tmp_path / "dvs.npz")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "features.npz",
        features=np.maximum(rng.normal(size=(6, 5, 32)), 0).astype(np.float32),
        labels=rng.integers(0, 3, size=6),
    )
    proc = run_example(
        NAME,
        "--artifact",
        str(artifact),
        "--data",
        "features.npz",
        "--batch-size",
        "3",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, _explain(proc)
    assert "6 samples of 5 steps" in proc.stdout
    ours, theirs = (
        float(v) for v in re.search(r"MACs/sample (\S+) \(NeuroBench (\S+)\)", proc.stdout).groups()
    )
    assert ours == pytest.approx(theirs, rel=1e-5)
