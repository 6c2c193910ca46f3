"""The `snn-egru` CLI end to end on tiny settings: the demo, each subcommand, user errors.

The demo runs once per module (tiny LM, a few steps, a 21-token slice through the Lava graph
on the simulated chip); the other subcommands reuse its run folder.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snn_egru.artifact import load_artifact
from snn_egru.cli import main
from snn_egru.pipeline import perplexity_from_logits

EVAL_TOKENS = 21


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    code = main(
        [
            "--quiet",
            "demo",
            "--preset",
            "tiny",
            "--prune-steps",
            "6",
            "--sparsity",
            "0.8",
            "--eval-tokens",
            str(EVAL_TOKENS),
            "--no-full-test",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snn_egru.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_demo_writes_every_product(demo_run: Path) -> None:
    for name in (
        "train/best.pt",
        "prune/last.pt",
        "artifact.npz",
        "mapping/mapping_report.json",
        "mapping/memory.png",
        "chip/outputs.npz",
        "chip/chip_report.json",
        "chip/profile.png",
        "chip/packets.png",
        "tokens.npy",
        "summary.json",
        "summary.txt",
        "activity.png",
    ):
        assert (demo_run / name).is_file(), name


def test_demo_chip_agrees_with_pytorch(demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text())
    ppl = summary["perplexity"]
    assert summary["tokens_evaluated"] == EVAL_TOKENS - 1
    assert math.isfinite(ppl["pytorch"]) and ppl["pytorch"] > 1
    assert ppl["relative_difference"] < 1e-4
    assert ppl["max_abs_logit_difference"] < 1e-3
    # the perplexity in the summary is the one of the chip's logits
    tokens = np.load(demo_run / "tokens.npy")
    with np.load(demo_run / "chip" / "outputs.npz") as npz:
        chip_ppl = perplexity_from_logits(npz["logits"], tokens[1:])
    assert chip_ppl == pytest.approx(ppl["simulated_chip"], rel=1e-12)


def test_demo_sparsity_and_chip_figures_are_consistent(demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text())
    sparsity = summary["sparsity"]
    assert sparsity["weight_sparsity"] == pytest.approx(0.8, abs=0.01)
    assert 0.0 < sparsity["activity_sparsity"] < 1.0
    macs = sparsity["rnn_macs"]
    assert macs["event_driven"] <= macs["weight_sparse"] <= macs["dense"]
    chip = summary["chip"]
    assert chip["steps"] == EVAL_TOKENS - 1
    assert chip["seconds_per_sequence"] == pytest.approx(
        chip["seconds_per_token"] * chip["sequence_tokens"], rel=1e-9
    )
    assert summary["mapping"]["pes_used"] >= 1
    text = (demo_run / "summary.txt").read_text()
    assert "Perplexity: PyTorch" in text and "NVIDIA A100 (published)" in text


def test_report_prints_the_results(demo_run: Path, capsys) -> None:
    assert main(["report", str(demo_run)]) == 0
    out = capsys.readouterr().out
    assert "Perplexity: PyTorch" in out and "Simulated chip time" in out


def test_export_map_and_run_backends_agree(demo_run: Path, tmp_path: Path, capsys) -> None:
    artifact_path = tmp_path / "exported.npz"
    assert main(["export", str(demo_run / "prune" / "last.pt"), "--out", str(artifact_path)]) == 0
    capsys.readouterr()
    artifact = load_artifact(artifact_path)
    assert artifact.readout_kind == "tied_decoder" and artifact.vocabulary is not None
    assert main(["map", str(artifact_path), "--json"]) == 0
    mapped = json.loads(capsys.readouterr().out)
    assert mapped["pes_used"] >= 1
    perplexities = {}
    for backend in ("reference", "torch", "chip"):
        out = tmp_path / backend
        assert (
            main(
                [
                    "run",
                    str(artifact_path),
                    "--backend",
                    backend,
                    "--tokens",
                    "11",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        perplexities[backend] = json.loads((out / "perplexity.json").read_text())["perplexity"]
    assert perplexities["torch"] == pytest.approx(perplexities["reference"], rel=1e-4)
    assert perplexities["chip"] == pytest.approx(perplexities["reference"], rel=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "missing.pt", "--out", "x.npz"], "no checkpoint at missing.pt"),
        (["report", "no-such-run"], "no summary.json in no-such-run"),
        (["demo", "--sparsity", "1.5"], "--sparsity must lie in [0, 1)"),
        (["run", "missing.npz", "--backend", "reference"], "no artifact at missing.npz"),
        (["map", "missing.npz"], "missing.npz"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, monkeypatch, capsys, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_error_has_no_traceback_unless_verbose(tmp_path: Path) -> None:
    proc = _cli("report", "no-such-run", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: no summary.json in no-such-run (run `snn-egru demo --out DIR`)"
    )
    proc = _cli("--verbose", "report", "no-such-run", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_corrupt_artifact_is_a_user_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["run", str(bad), "--backend", "reference"]) == 2
    assert "is not a snn-egru artifact" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["prune"], ["export"], ["run"], ["report"]])
def test_help_reads(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: snn-egru" in capsys.readouterr().out


def test_forwarded_help_of_map_and_train(capsys) -> None:
    for argv, usage in (
        (["map", "--help"], "map"),
        (["train", "lm", "--help"], "snn_egru.training.lm"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert usage in capsys.readouterr().out
