"""The scripts in ``examples/``: ``--help``, a bad option, and a ``--smoke`` run of each.

Each example runs as a subprocess (``sys.executable``, cwd a fresh temporary folder, so the
default output folders land there) and must exit 0, print its key result lines and write
its files. The smoke runs use tiny sizes (seconds each; the Lava one mostly start-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("language_model", "dvs_gestures", "lava_graph", "lava_stock_graph", "what_if")
#: Wall-clock limit of one example run (s); a smoke run takes seconds.
TIMEOUT_S = 240


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python examples/<name>.py ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def run_smoke(
    name: str, *args: str, cwd: Path, prints: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``run_example(name, "--smoke", *args)``, which must exit 0 and print every text of
    ``prints``."""
    proc = run_example(name, "--smoke", *args, cwd=cwd)
    assert proc.returncode == 0, _explain(proc)
    for text in prints:
        assert text in proc.stdout, _explain(proc)
    return proc


@pytest.mark.parametrize("name", NAMES)
def test_help_exits_zero_and_documents_smoke(name: str, tmp_path: Path) -> None:
    proc = run_example(name, "--help", cwd=tmp_path)
    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout.startswith("usage:")
    assert "--smoke" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("language_model", ["--eval-tokens", "1"], "--eval-tokens must be >= 2"),
        ("language_model", ["--corpus", "wikitext2"], "needs --data-dir"),
        ("dvs_gestures", ["--chip-samples", "-1"], "--chip-samples must be >= 0"),
        ("lava_graph", ["--steps", "1"], "--steps must be >= 2"),
        ("lava_stock_graph", ["--steps", "1"], "--steps must be >= 2"),
        ("what_if", ["--sparsities", "0.9", "1.0"], "--sparsities must lie in [0, 1)"),
        ("what_if", ["--layer-sizes", "64"], "needs both --layer-sizes and --input-size"),
    ],
)
def test_bad_option_exits_2_with_message(
    name: str, args: list[str], message: str, tmp_path: Path
) -> None:
    proc = run_example(name, *args, cwd=tmp_path)
    assert proc.returncode == 2, _explain(proc)
    assert message in proc.stderr


@pytest.mark.slow
def test_language_model_smoke(tmp_path: Path) -> None:
    run_smoke(
        "language_model",
        cwd=tmp_path,
        prints=(
            "== EGRU language model: PyTorch vs simulated SpiNNaker2 ==",
            "perplexity PyTorch",
            "perplexity simulated chip",
            "chip time per 70-token seq",
            "chip energy per 70-token seq",
            "SpiNNaker2 (published)",
        ),
    )
    out = tmp_path / "runs" / "example_lm"
    for name in ("artifact.npz", "mapping_report.txt", "chip_report.json", "train/best.pt"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["corpus"] == "ptb" and results["preset"] == "tiny"
    assert results["predictions"] == 20
    # the chip computes the same float32 network: same perplexity as PyTorch
    assert results["perplexity_chip"] == pytest.approx(results["perplexity_pytorch"], rel=1e-4)
    assert results["max_abs_logit_difference"] < 1e-3
    assert results["chip"]["seconds_per_sequence"] > 0
    assert results["chip"]["energy_per_sequence_j"] > 0
    assert results["mapping"]["pes_used"] >= 2  # one PE per layer at least


@pytest.mark.slow
def test_dvs_gestures_smoke(tmp_path: Path) -> None:
    run_smoke(
        "dvs_gestures",
        cwd=tmp_path,
        prints=(
            "== DVS gestures: PyTorch vs simulated SpiNNaker2 ==",
            "accuracy PyTorch",
            "accuracy simulated chip",
            "chip time per sample",
            "chip energy per sample",
        ),
    )
    out = tmp_path / "runs" / "example_dvs"
    assert (out / "artifact.npz").is_file() and (out / "train" / "last.pt").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 4 and results["frames"] == 12
    assert results["layer_sizes"] == [32, 32]
    # 64 PEs per layer requested, capped at one unit per PE for the 32-unit layers
    assert results["mapping"]["pes_per_layer"] == [32, 32]
    assert results["mapping"]["weight_format"] == "dense"
    assert results["max_abs_logit_difference"] < 1e-3
    for key in ("accuracy_pytorch", "accuracy_reference", "accuracy_chip"):
        assert 0.0 <= results[key] <= 1.0
    assert results["chip"]["seconds_per_sample"] > 0 and results["chip"]["joules_per_sample"] > 0


#: Runs the Lava example in-process and fails if it imported torch.
_LAVA_WITHOUT_TORCH = """
import runpy, sys
sys.argv = [{path!r}, "--smoke"]
try:
    runpy.run_path({path!r}, run_name="__main__")
except SystemExit as exit_:
    code = exit_.code
else:
    code = 0
assert "torch" not in sys.modules, "examples/lava_graph.py imported torch"
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.lava
def test_lava_graph_smoke_agrees_and_never_imports_torch(tmp_path: Path) -> None:
    code = _LAVA_WITHOUT_TORCH.format(path=str(EXAMPLES / "lava_graph.py"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, _explain(proc)
    out = proc.stdout
    assert "== floating_pt: Vars after 2 runs (6 + 2 steps) ==" in out, out
    assert "== spinnaker2 (csr weights): Vars after 2 runs (6 + 2 steps) ==" in out, out
    assert out.count("steps_run 8") == 4  # 2 layers x 2 backends
    assert "chip_total_cycles" in out and "chip_energy_j" in out
    assert "all agree: yes" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-4:-2]}
    assert set(rows) == {"floating_pt", "spinnaker2"}
    for backend in ("floating_pt", "spinnaker2"):
        assert all(float(value) <= 1e-4 for value in rows[backend]), rows


@pytest.mark.lava
def test_lava_stock_graph_smoke_on_both_configs(tmp_path: Path) -> None:
    out = run_smoke("lava_stock_graph", cwd=tmp_path).stdout
    assert "== Loihi2SimCfg(select_tag='floating_pt') ==" in out, out
    assert "== SpiNNaker2SimCfg(weight_format='csr') ==" in out, out
    assert "l0 PyEGRULayerSpiNNaker2, l1 PyEGRULayerSpiNNaker2, RingBuffer PySendModelFloat" in out
    assert "Dense PyDenseModelFloat, LIF PyLifModelFloat" in out
    assert "chip: l0 and l1 mapped together on" in out
    values = [float(line.rsplit(":", 1)[1]) for line in out.splitlines() if "max |" in line]
    assert len(values) == 8 and max(values) <= 1e-4, out
    assert "all agree: yes" in out
    assert list(tmp_path.iterdir()) == []  # writes nothing


@pytest.mark.slow
def test_what_if_smoke(tmp_path: Path) -> None:
    run_smoke(
        "what_if",
        cwd=tmp_path,
        prints=("== What if: custom (64 -> 1100/64) on 1 chip(s) (152 PEs), 3 tokens",),
    )
    out = tmp_path / "runs" / "example_what_if"
    png = out / "what_if.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "what_if.csv").is_file()
    points = json.loads((out / "what_if.json").read_text())["points"]
    assert [(p["sparsity"], p["weight_format"]) for p in points] == [
        (s, f)
        for s in (0.9, 0.98)
        for f in ("csr", "event", "dense", "csr-int8", "event-int8", "mac-int8")
    ]
    for p in points:
        if p["weight_format"] == "dense":  # 1100 dense units overflow one chip
            assert not p["fits"] and "152 PEs" in p["reason"] and p["pes_needed"] > 152
        else:
            assert p["fits"], p
            assert 0 < p["pes_used"] <= 152 and 0 < p["fullest_utilisation"] <= 1
            assert p["seconds_per_sequence"] > 0 and p["energy_per_sequence_j"] > 0
    # CSR walks every stored weight: sparser weights, fewer PEs for the same network
    csr = [p for p in points if p["weight_format"] == "csr"]
    assert csr[1]["pes_used"] < csr[0]["pes_used"]
    # int8 rows: csr-int8 holds the same network on fewer PEs than float32 csr
    int8 = [p for p in points if p["weight_format"] == "csr-int8"]
    assert all(i["pes_used"] < c["pes_used"] for i, c in zip(int8, csr))
