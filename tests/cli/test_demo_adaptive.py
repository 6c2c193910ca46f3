"""`snn-egru demo --adaptive-softmax`: an adaptive-softmax model trained, pruned (its head
left dense), exported, mapped and run on the simulated chip, its log-probabilities computed
on the host; the chip's perplexity is PyTorch's, and every `snn-egru run` backend agrees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from snn_egru.artifact import load_artifact
from snn_egru.cli import main
from snn_egru.pipeline import perplexity_from_logits


def test_demo_settings_build_an_untied_adaptive_model_and_refuse_bad_cutoffs() -> None:
    from snn_egru.cli_commands import DEMO_ADAPTIVE_SOFTMAX
    from snn_egru.errors import UserError
    from snn_egru.pipeline import DemoSettings
    from snn_egru.pipeline_training import train_configs

    settings = DemoSettings(adaptive_softmax=(2000, 6000))
    model, _ = train_configs("small", steps=5, seed=0, full_test=False, **_adaptive(settings))
    assert model.adaptive_softmax == (2000, 6000) and not model.tie_weights
    full, _ = train_configs("small", steps=5, seed=0, full_test=False)
    assert full.adaptive_softmax == () and full.tie_weights
    with pytest.raises(UserError, match="--adaptive-softmax: adaptive_softmax cutoffs"):
        train_configs("small", steps=5, seed=0, full_test=False, adaptive_softmax=(6000, 2000))
    assert set(DEMO_ADAPTIVE_SOFTMAX) == {"tiny", "small"}


def _adaptive(settings) -> dict:
    return {"adaptive_softmax": settings.train_options()["adaptive_softmax"]}


@pytest.mark.slow
def test_adaptive_demo_runs_end_to_end_and_backends_agree(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    demo = ["--quiet", "demo", "--preset", "tiny", "--prune-steps", "6", "--sparsity", "0.8"]
    demo += ["--eval-tokens", "21", "--no-full-test", "--adaptive-softmax", "2000,6000"]
    assert main([*demo, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["adaptive_softmax"] == [2000, 6000]
    ppl = summary["perplexity"]
    assert ppl["relative_difference"] < 1e-5 and ppl["max_abs_logit_difference"] < 1e-4

    artifact = load_artifact(out / "artifact.npz")
    assert artifact.readout_kind == "adaptive" and artifact.adaptive.cutoffs == (2000, 6000)
    sparsity = [row["weight_hh"] for row in artifact.weight_sparsity()]
    assert sparsity == pytest.approx([0.8] * 2, abs=1e-3)  # round(0.8 * size) zeros
    assert np.count_nonzero(artifact.adaptive.head_weight) == artifact.adaptive.head_weight.size
    tokens = np.load(out / "tokens.npy")
    with np.load(out / "chip" / "outputs.npz") as npz:
        log_prob = npz["logits"]
    # log-probabilities: each row sums to 1, and the perplexity reads them as they are
    np.testing.assert_allclose(np.logaddexp.reduce(log_prob.astype(np.float64), 1), 0, atol=1e-5)
    direct = float(np.exp(-log_prob[np.arange(20), tokens[1:]].astype(np.float64).mean()))
    assert perplexity_from_logits(log_prob, tokens[1:]) == pytest.approx(direct, rel=1e-5)

    perplexities = {}
    for backend in ("reference", "torch", "chip"):
        run = ["run", str(out / "artifact.npz"), "--backend", backend, "--tokens", "11"]
        assert main([*run, "--out", str(tmp_path / backend)]) == 0
        result = json.loads((tmp_path / backend / "perplexity.json").read_text())
        perplexities[backend] = result["perplexity"]
    assert perplexities["torch"] == pytest.approx(perplexities["reference"], rel=1e-5)
    assert perplexities["chip"] == pytest.approx(perplexities["reference"], rel=1e-5)
