"""Sampled softmax: the loss, its sampler, and evaluation on the full softmax."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snn_egru.losses import LogUniformSampler, parse_softmax, sampled_softmax_loss


def test_parse_softmax() -> None:
    assert parse_softmax("full") is None
    assert parse_softmax("sampled:64") == 64
    for bad in ("sampled", "sampled:0", "sampled:x", "adaptive"):
        with pytest.raises(ValueError, match="sampled:K"):
            parse_softmax(bad)


def test_log_uniform_sampler_follows_frequency_ranks() -> None:
    counts = torch.tensor([5.0, 100.0, 1.0, 50.0])  # ranks: id 1, 3, 0, 2
    sampler = LogUniformSampler(counts)
    assert sampler.rank_to_id.tolist() == [1, 3, 0, 2]
    probs = sampler.log_prob.exp()
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)
    assert probs[1] > probs[3] > probs[0] > probs[2]
    assert math.isclose(float(probs[1]), math.log(2) / math.log(5), rel_tol=1e-6)
    draws = sampler.sample(20_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / 20_000
    assert torch.allclose(freq, probs.double(), atol=0.02)


def test_sampled_loss_is_the_softmax_over_true_and_candidates_with_log_q() -> None:
    g = torch.Generator().manual_seed(0)
    hidden, weight, bias = (
        torch.randn(5, 3, generator=g),
        torch.randn(7, 3, generator=g),
        torch.randn(7, generator=g),
    )
    targets = torch.tensor([0, 1, 2, 3, 4])
    candidates = torch.tensor([5, 6, 2])  # 2 is an accidental hit for position 2
    log_prob = torch.log(torch.full((7,), 1 / 7))
    loss = sampled_softmax_loss(hidden, weight, bias, targets, candidates, log_prob)
    logits = hidden @ weight.T + bias - math.log(3 / 7)
    expected = []
    for i, t in enumerate(targets.tolist()):
        others = [c for c in candidates.tolist() if c != t]
        row = torch.cat([logits[i, t : t + 1], logits[i, others]])
        expected.append(-F.log_softmax(row, 0)[0])
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-6)


def test_all_candidates_give_the_full_softmax_up_to_the_constant_correction() -> None:
    """With every word a candidate once and a uniform Q, the sampled loss is the full
    softmax's cross-entropy (the true word appears once: accidental hits removed)."""
    g = torch.Generator().manual_seed(1)
    hidden, weight, bias = (
        torch.randn(6, 4, generator=g),
        torch.randn(9, 4, generator=g),
        torch.randn(9, generator=g),
    )
    targets = torch.randint(0, 9, (6,), generator=g)
    log_prob = torch.log(torch.full((9,), 1 / 9))
    loss = sampled_softmax_loss(hidden, weight, bias, targets, torch.arange(9), log_prob)
    full = F.cross_entropy(hidden @ weight.T + bias, targets)
    assert torch.allclose(loss, full, atol=1e-6)


def _train_tiny(softmax: str):
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.models.lm import lm_preset
    from snn_egru.training.lm import lm_training_preset, train_language_model

    text = " ".join(f"w{(i * 7) % 23}" for i in range(3000)) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    tc = lm_training_preset(
        "tiny", max_steps=6, eval_every=3, log_every=1, bptt=10, softmax=softmax
    )
    return (
        corpus,
        tc,
        train_language_model(
            lm_preset("tiny", vocab_size=24), tc, data=corpus, show_progress=False
        ),
    )


def test_sampled_training_evaluates_on_the_full_softmax() -> None:
    from snn_egru.training.lm_eval import evaluate_perplexity

    corpus, tc, sampled = _train_tiny("sampled:8")
    valid = [r for r in sampled.history if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6]
    full = evaluate_perplexity(
        sampled.model, corpus.valid, batch_size=tc.eval_batch_size, bptt=tc.bptt,
        max_tokens=tc.eval_max_tokens, show_progress=False,
    )  # fmt: skip
    assert valid[-1]["perplexity"] == full.perplexity  # the full softmax, not the sampled one
    train = [r["loss"] for r in sampled.history if r["kind"] == "train"]
    assert all(math.isfinite(x) for x in train)


def test_softmax_spec_on_the_command_line_is_checked(capsys) -> None:
    from snn_egru.training.lm_args import _softmax_spec

    assert _softmax_spec("sampled:5") == "sampled:5"
    with pytest.raises(Exception, match="sampled:K"):
        _softmax_spec("sampled:0")
