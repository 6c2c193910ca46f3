"""Training losses that skip most of a large output layer (evaluation stays on the full one).

:func:`sampled_softmax_loss` is TensorFlow's ``sampled_softmax_loss`` with a log-uniform
(Zipf) candidate sampler: per batch, ``K`` candidate words are drawn (with replacement) from

    P(rank r) = (log(r + 2) - log(r + 1)) / log(V + 1),

ranks ordered by training-set frequency (:class:`LogUniformSampler` takes the counts), and
the softmax runs over the true word and the ``K`` candidates only, each logit corrected by
``- log(K P(w))`` (the expected count of ``w`` among the candidates: the logQ correction
that makes the sampled loss's gradient an unbiased-in-the-limit estimate of the full
softmax's). Candidates equal to a position's target are removed from that position's softmax
("accidental hits"). The decoder's cost per position drops from ``V`` to ``K + 1`` columns.

This is a training objective only: perplexity is always the full softmax
(:func:`snn_egru.training.lm_eval.evaluate_perplexity` runs the model's full logits).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DECODER_BLAS",
    "FULL_SOFTMAX",
    "LogUniformSampler",
    "linear_cross_entropy",
    "parse_softmax",
    "sampled_softmax_loss",
]


#: The full-softmax training losses: ``"full"`` (torch's ``cross_entropy`` of the logits)
#: and the fused decoder loss of :func:`linear_cross_entropy` (the same loss), with the
#: matrix products of torch (``"fused"``) or numpy (``"fused-numpy"``).
FULL_SOFTMAX: dict[str, str | None] = {"full": None, "fused": "torch", "fused-numpy": "numpy"}


def parse_softmax(spec: str) -> int | None:
    """A full softmax (:data:`FULL_SOFTMAX`) -> ``None``; ``"sampled:K"`` -> ``K``
    (``K >= 1``); else ``ValueError``."""
    if spec in FULL_SOFTMAX:
        return None
    kind, _, count = spec.partition(":")
    if kind == "sampled" and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ValueError(
        f"softmax must be one of {', '.join(repr(k) for k in FULL_SOFTMAX)} or 'sampled:K' "
        f"with K >= 1, got {spec!r}"
    )


class LogUniformSampler:
    """Log-uniform candidates over word ids ranked by ``counts`` (most frequent: rank 0).

    Args:
        counts: ``(V,)`` training-set frequency of every word id.
    """

    def __init__(self, counts: Tensor) -> None:
        vocab = counts.numel()
        self.rank_to_id = torch.argsort(counts.double(), descending=True, stable=True)
        ranks = torch.arange(vocab, dtype=torch.float64)
        prob = (torch.log(ranks + 2) - torch.log(ranks + 1)) / math.log(vocab + 1)
        self.rank_prob = prob.float()
        self.log_prob = torch.empty(vocab)  # by word id
        self.log_prob[self.rank_to_id] = torch.log(prob).float()

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """``num`` word ids (with replacement)."""
        ranks = torch.multinomial(self.rank_prob, num, replacement=True, generator=generator)
        return self.rank_to_id[ranks]


def sampled_softmax_loss(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor,
    targets: Tensor,
    candidates: Tensor,
    log_prob: Tensor,
) -> Tensor:
    """Mean sampled-softmax cross-entropy (see the module docstring).

    Args:
        hidden: ``(N, H)`` decoder inputs; weight: ``(V, H)``; bias: ``(V,)``.
        targets: ``(N,)`` word ids; candidates: ``(K,)`` sampled word ids.
        log_prob: ``(V,)`` log sampling probability of every word id.
    """
    num = candidates.numel()
    log_expected = log_prob.to(hidden.device) + math.log(num)
    true_logit = (hidden * weight[targets]).sum(-1) + bias[targets] - log_expected[targets]
    sampled = F.linear(hidden, weight[candidates], bias[candidates])
    sampled = sampled - log_expected[candidates]
    hits = targets.unsqueeze(1) == candidates.unsqueeze(0)
    sampled = sampled.masked_fill(hits, float("-inf"))
    logits = torch.cat([true_logit.unsqueeze(1), sampled], dim=1).float()
    return F.cross_entropy(logits, torch.zeros_like(targets))


# --------------------------------------------------------------------------- full softmax
#: Matrix-product back ends of :func:`linear_cross_entropy`: ``"torch"`` (torch's BLAS:
#: MKL in the PyPI wheels) and ``"numpy"`` (numpy's BLAS: OpenBLAS in the PyPI wheels,
#: whose AVX2 kernels run the decoder's products 1.4-1.6x faster than MKL's on AMD CPUs:
#: docs/training_speed.md).
DECODER_BLAS = ("torch", "numpy")


def _product(a: Tensor, b: Tensor, out: Tensor, blas: str) -> Tensor:
    """``out = a @ b`` (2-D float32; ``a`` / ``b`` may be transposed views)."""
    if blas == "numpy":
        import numpy as np

        np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.numpy())
        return out
    return torch.mm(a, b, out=out)


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean ``cross_entropy(y @ W.T + b, targets)``; the gradients are made in the forward
    pass, into the logits' own buffer (see :func:`linear_cross_entropy`)."""

    @staticmethod
    def forward(ctx, y, weight, bias, targets, blas):  # noqa: D102
        n = y.shape[0]
        logits = torch.empty(n, weight.shape[0], dtype=torch.float32, device=y.device)
        _product(y, weight.t(), logits, blas)
        if bias is not None:
            logits.add_(bias)
        torch.log_softmax(logits, 1, out=logits)  # row by row, in place
        rows = torch.arange(n, device=y.device)
        losses = logits[rows, targets].neg()
        loss = losses.mean()
        if any(ctx.needs_input_grad[:3]):
            grad = logits.exp_()  # softmax
            grad[rows, targets] -= 1.0
            grad_y = (
                _product(grad, weight, torch.empty_like(y), blas)
                if ctx.needs_input_grad[0]
                else None
            )
            grad_w = (
                _product(grad.t(), y, torch.empty_like(weight), blas)
                if ctx.needs_input_grad[1]
                else None
            )
            grad_b = grad.sum(0) if bias is not None and ctx.needs_input_grad[2] else None
            ctx.grads = (grad_y, grad_w, grad_b)
            ctx.scale = 1.0 / n
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # noqa: D102
        scale = grad_loss * ctx.scale
        grads = tuple(g * scale if g is not None else None for g in ctx.grads)
        ctx.grads = None
        return (*grads, None, None)


def linear_cross_entropy(
    y: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, *, blas: str = "torch"
) -> Tensor:
    """``F.cross_entropy(F.linear(y, weight, bias), targets)`` (mean over rows), the same
    numbers up to float32 rounding, for a large output layer on a CPU.

    The ``(N, V)`` logits live in one buffer: the log-softmax is taken in place, the loss is
    read from it, then it becomes the gradient ``softmax - onehot`` (in place), which the
    two products of the backward pass read right away; torch's own path allocates and
    walks four such buffers (logits, log-probabilities, the loss's zero-filled gradient,
    the logits' gradient). The gradients are made during the forward pass (the loss is the
    end of the graph in training) and scaled by the incoming gradient in ``backward``.

    Args:
        y: ``(N, H)`` float32 decoder inputs; weight: ``(V, H)``; bias: ``(V,)`` or ``None``.
        targets: ``(N,)`` word ids.
        blas: ``"torch"`` or ``"numpy"`` (:data:`DECODER_BLAS`): whose matrix products.
            ``"numpy"`` needs CPU tensors.

    Returns:
        The mean cross-entropy (a 0-d tensor).
    """
    if blas not in DECODER_BLAS:
        raise ValueError(f"blas must be one of {DECODER_BLAS}, got {blas!r}")
    if y.dtype != torch.float32 or weight.dtype != torch.float32:
        raise ValueError(f"linear_cross_entropy wants float32, got {y.dtype} / {weight.dtype}")
    if blas == "numpy" and (y.device.type != "cpu" or weight.device.type != "cpu"):
        raise ValueError("blas='numpy' needs CPU tensors")
    with torch.autocast(y.device.type, enabled=False):  # float32 products and softmax
        return _LinearCrossEntropy.apply(y.float().contiguous(), weight, bias, targets, blas)
