"""The fused decoder loss (:func:`snn_egru.losses.linear_cross_entropy`) against torch's
``cross_entropy(linear(...))``: the same loss and gradients up to float32 rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snn_egru.losses import linear_cross_entropy


def _case(seed: int, n: int = 37, h: int = 16, v: int = 101, sparse: bool = True):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, h, generator=g) * 2
    if sparse:  # decoder inputs are events: mostly zeros
        y = y * (torch.rand(n, h, generator=g) < 0.3)
    weight = torch.randn(v, h, generator=g) * 0.5
    bias = torch.randn(v, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    return y, weight, bias, targets


def _loss_and_grads(fn, y, weight, bias, targets, scale=1.0):
    leaves = [t.clone().requires_grad_() for t in (y, weight, bias)]
    loss = fn(*leaves, targets)
    (loss * scale).backward()
    return loss.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("blas", ["torch", "numpy"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradients_equal_torchs_cross_entropy(blas, seed) -> None:
    case = _case(seed, sparse=seed != 2)
    ref_loss, ref_grads = _loss_and_grads(
        lambda y, w, b, t: F.cross_entropy(F.linear(y, w, b), t), *case, scale=3.0
    )
    loss, grads = _loss_and_grads(
        lambda y, w, b, t: linear_cross_entropy(y, w, b, t, blas=blas), *case, scale=3.0
    )
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_without_bias_and_a_tied_weight_accumulates_both_gradients() -> None:
    y, weight, _, targets = _case(3)
    table = weight.clone().requires_grad_()
    tokens = torch.randint(0, weight.shape[0], (y.shape[0],))
    for fn in ("ref", "fused"):
        table.grad = None
        x = table[tokens] * 0.5 + y  # the embedding is the decoder (tied)
        if fn == "ref":
            F.cross_entropy(F.linear(x, table), targets).backward()
            want = table.grad.clone()
        else:
            linear_cross_entropy(x, table, None, targets).backward()
    torch.testing.assert_close(table.grad, want, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused() -> None:
    y, weight, bias, targets = _case(0)
    with pytest.raises(ValueError, match="blas"):
        linear_cross_entropy(y, weight, bias, targets, blas="mkl")
    with pytest.raises(ValueError, match="float32"):
        linear_cross_entropy(y.double(), weight.double(), bias.double(), targets)


def _train_tiny(softmax: str):
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.training.lm import lm_training_preset, train_language_model
    from tests.snn_egru.conftest import deterministic_tiny_lm

    words = [f"w{(i * 7) % 23}" if i % 3 else "w1" for i in range(3000)]
    text = " ".join(words) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    tc = lm_training_preset("tiny", max_steps=6, eval_every=0, log_every=1, bptt=10)
    tc.save_checkpoints, tc.softmax = False, softmax
    config = deterministic_tiny_lm(len(corpus.vocabulary))
    result = train_language_model(config, tc, data=corpus, show_progress=False)
    return [r["loss"] for r in result.history if r["kind"] in ("train", "test")]


def test_fused_training_follows_the_full_softmax_within_float_rounding() -> None:
    full, fused = _train_tiny("full"), _train_tiny("fused")
    assert len(full) == len(fused) == 7  # six steps and the test
    assert fused == pytest.approx(full, rel=1e-5)


def test_fused_loss_refuses_an_adaptive_decoder() -> None:
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.models.lm import lm_preset
    from snn_egru.training.lm import lm_training_preset, train_language_model

    corpus = corpus_from_texts("a b c a b c\n" * 50, "a b c\n" * 5, "a b c\n" * 5)
    tc = lm_training_preset("tiny", max_steps=1, softmax="fused")
    config = lm_preset("tiny", vocab_size=len(corpus.vocabulary), adaptive_softmax=(2,),
                       tie_weights=False)  # fmt: skip
    with pytest.raises(ValueError, match="single-process only.*not adaptive_softmax"):
        train_language_model(config, tc, data=corpus, show_progress=False)
