"""benchmarks/int8_capacity.py: the capacity bisection and the paper-LM comparison."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location(
        "int8_capacity", ROOT / "benchmarks" / "int8_capacity.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaled_family_has_the_paper_shape_and_density():
    bench = _module()
    net = bench.scaled_lm(1.0)
    assert net.layer_sizes == [1350, 1350, 750] and net.input_size == 750
    for layer in net.layers:
        density = layer.weight_hh.nnz / (layer.weight_hh.shape[0] * layer.weight_hh.shape[1])
        assert 0.045 < density <= 0.05


@pytest.mark.slow
def test_bisection_finds_the_largest_fitting_scale():
    bench = _module()
    step = 0.25
    k = bench.largest_fitting("csr-int8", 1, step=step)
    assert k >= 1.0  # int8 holds at least the paper LM on one chip
    assert bench._fits(k, "csr-int8", 1) and not bench._fits(k + step, "csr-int8", 1)


@pytest.mark.slow
def test_paper_lm_rows_and_json(capsys):
    bench = _module()
    assert bench.main(["--tokens", "2", "--step", "0.5", "--no-board", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["weight_format"]: r for r in out["paper_lm"]}
    assert set(rows) == set(bench.FORMATS) and rows["csr"]["pes_ratio"] == 1.0
    assert rows["csr-int8"]["pes"] < rows["csr"]["pes"]  # about a quarter of the bytes
    assert rows["csr-int8"]["weight_bytes_ratio"] < 0.45
    assert {r["chips"] for r in out["capacity"]} == {1}
