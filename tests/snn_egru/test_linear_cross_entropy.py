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
