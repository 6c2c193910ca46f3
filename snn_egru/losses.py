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

__all__ = ["LogUniformSampler", "parse_softmax", "sampled_softmax_loss"]


def parse_softmax(spec: str) -> int | None:
    """``"full"`` -> ``None``; ``"sampled:K"`` -> ``K`` (``K >= 1``); else ``ValueError``."""
    if spec == "full":
        return None
    kind, _, count = spec.partition(":")
    if kind == "sampled" and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ValueError(f"softmax must be 'full' or 'sampled:K' with K >= 1, got {spec!r}")


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
