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


def test_console_script_error_has_no_traceback_unless_verbose(tmp_path: Path) -> None:
    proc = _cli("report", "no-such-run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "snn-egru report: error: no run folder at no-such-run (no such folder; run "
        "`snn-egru demo --out DIR`)"
    )
    proc = _cli("--verbose", "report", "no-such-run", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_corrupt_artifact_is_a_user_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["run", str(bad), "--backend", "reference"]) == 2
    assert "is not a snn-egru artifact" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["prune"], ["export"], ["run"], ["report"], ["map"], ["train"]]
)
def test_help_reads(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: snn-egru" in capsys.readouterr().out


def test_forwarded_help_of_map_and_train(capsys) -> None:
    for argv, usage in (
        (["map", "--help"], "usage: snn-egru map"),
        (["train", "lm", "--help"], "usage: snn-egru train lm"),
        (["train", "dvs", "--help"], "usage: snn-egru train dvs"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert usage in capsys.readouterr().out


# --------------------------------------------------------------------------- re-runs
def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    import hashlib

    return {n: hashlib.sha1((folder / n).read_bytes()).hexdigest() for n in names}


CHECKPOINTS = ["train/best.pt", "train/last.pt", "prune/last.pt", "train/metrics.csv"]


def test_demo_summary_describes_what_ran(demo_run: Path) -> None:
    from snn_egru.training.common import load_checkpoint

    summary = json.loads((demo_run / "summary.json").read_text())
    settings, ckpts = summary["settings"], summary["checkpoints"]
    assert settings["preset"] == "tiny" and settings["prune_sparsity"] == 0.8
    assert settings["train_steps"] == load_checkpoint(demo_run / ckpts["train"]).step
    assert ckpts["prune"].endswith("prune/last.pt") and not ckpts["train_reused"]
    pruned = load_checkpoint(demo_run / "prune" / "last.pt").train_config
    assert pruned["fields"]["pruning"]["fields"]["target_sparsity"] == 0.8
    assert "Infinity" not in (demo_run / "summary.json").read_text()
    phases = summary["phases_s"]  # seconds per stage (benchmarks/demo_phases.py reads them)
    assert list(phases) == [
        "train", "prune", "export", "map", "torch_eval", "lava_run", "accounting",
    ]  # fmt: skip
    assert all(s >= 0 for s in phases.values()) and sum(phases.values()) <= summary["wall_time_s"]


def test_demo_refuses_checkpoints_made_with_other_settings(demo_run: Path, capsys) -> None:
    before = _digests(demo_run, [*CHECKPOINTS, "summary.json"])
    base = ["demo", "--preset", "tiny", "--eval-tokens", str(EVAL_TOKENS), "--out", str(demo_run)]
    for change, named in (
        (["--sparsity", "0.5", "--prune-steps", "6"], "sparsity 0.8 (now 0.5)"),
        (["--sparsity", "0.8", "--prune-steps", "7"], "prune steps 6 (now 7)"),
        (["--sparsity", "0.8", "--prune-steps", "6", "--seed", "3"], "seed 0 (now 3)"),
        (["--sparsity", "0.8", "--prune-steps", "6", "--train-steps", "4"], "max_steps 10"),
        (
            ["--sparsity", "0.8", "--prune-steps", "6", "--adaptive-softmax", "2000,6000"],
            "adaptive_softmax",
        ),
    ):
        assert main([*base, *change]) == 2
        err = capsys.readouterr().err.strip()
        assert named in err and "--re" in err and len(err.splitlines()) == 1, err
    assert main([*base[:2], "small", *base[3:], "--sparsity", "0.8", "--prune-steps", "6"]) == 2
    assert "hidden_sizes" in capsys.readouterr().err
    assert _digests(demo_run, [*CHECKPOINTS, "summary.json"]) == before


def test_commands_refuse_to_replace_a_trained_model(demo_run: Path, capsys) -> None:
    before = _digests(demo_run, [*CHECKPOINTS, "artifact.npz"])
    proc = _cli("train", "lm", "--preset", "tiny", "--out", str(demo_run / "train"))
    assert proc.returncode == 2 and "--resume" in proc.stderr and "--overwrite" in proc.stderr
    assert main(["prune", str(demo_run / "train" / "best.pt"), "--out", str(demo_run)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    artifact = str(demo_run / "artifact.npz")
    assert main(["export", str(demo_run / "prune" / "last.pt"), "--out", artifact]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert _digests(demo_run, [*CHECKPOINTS, "artifact.npz"]) == before


@pytest.mark.slow
def test_demo_rerun_reuses_equal_checkpoints_and_labels_the_backend(
    demo_run: Path, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "again"
    shutil.copytree(demo_run, run)
    kept = _digests(run, CHECKPOINTS)
    code = main(
        ["-q", "demo", "--preset", "tiny", "--prune-steps", "6", "--sparsity", "0.8",
         "--eval-tokens", str(EVAL_TOKENS), "--no-full-test", "--out", str(run),
         "--backend", "floating_pt"]
    )  # fmt: skip
    assert code == 0
    assert _digests(run, CHECKPOINTS) == kept  # reused, not retrained
    summary = json.loads((run / "summary.json").read_text())
    assert summary["checkpoints"]["train_reused"] and summary["checkpoints"]["prune_reused"]
    assert summary["perplexity"]["lava_backend"] == "floating_pt" and summary["chip"] is None
    text = (run / "summary.txt").read_text()
    assert "floating_pt models (no chip)" in text and "simulated SpiNNaker2" not in text
    assert "train/best.pt reused (same settings)" in text
    assert "prune/last.pt reused (same settings)" in text
    assert not (run / "chip").exists() and (run / "lava_float" / "outputs.npz").is_file()
    first = json.loads((demo_run / "summary.json").read_text())["perplexity"]["pytorch"]
    assert summary["perplexity"]["pytorch"] == pytest.approx(first, rel=1e-12)


@pytest.mark.slow
def test_every_backend_takes_custom_inputs_of_any_artifact(tmp_path: Path) -> None:
    """Feature-vector (DVS-like) artifacts through Lava and the chip, from the CLI."""
    from spinnaker2_backend.synthetic import synthetic_network

    artifact = synthetic_network(
        layer_sizes=(8,), input_size=6, readout_kind="linear", num_classes=3, sparsity=0.3
    )
    path = artifact.save(tmp_path / "feat.npz")
    inputs = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", inputs)
    expected = artifact.run_reference(inputs).logits
    for backend in ("reference", "chip", "floating_pt"):
        out = tmp_path / backend
        argv = ["run", str(path), "--backend", backend, "--inputs", str(tmp_path / "x.npy")]
        assert main([*argv, "--out", str(out)]) == 0, backend
        np.testing.assert_allclose(np.load(out / "logits.npy"), expected, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "chip" / "chip_report.json").is_file()
    assert (tmp_path / "floating_pt" / "lava_stdout.txt").is_file()
