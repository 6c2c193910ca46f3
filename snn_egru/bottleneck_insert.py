"""Insert bottlenecks into a trained plain stack: a warm start for a bottlenecked LM.

Bottleneck layers trained from scratch cost perplexity even when they are wide (an extra
layer that the whole stack must learn around), so the usual recipe for inter-chip
bottlenecks is to insert them into a trained network and fine-tune. :func:`init_from_plain`
writes a trained plain model's weights into a bottlenecked model of the same plain stack:

* every plain layer, the embedding and the decoder are copied as they are;
* the bottleneck at boundary ``i`` and the input weights of the layer after it come from a
  truncated SVD of that layer's trained input weights ``W = U S V^T`` (``3 n' x n``): the
  bottleneck projects its input on the leading right singular vectors and the layer after
  it maps the bottleneck's output back with ``U S``, so that the layer after it first sees
  about what it saw in the plain stack (a rank-limited ``W x``).

Kinds (:data:`~snn_egru.bottleneck.BOTTLENECK_KINDS`):

* ``dense`` (``y = tanh(W_n x + b_n)``, every unit sends): ``W_n = alpha V_k^T``, the next
  layer's ``W' = U_k S_k / alpha``, so ``W' y ~= U_k S_k V_k^T x`` (rank ``k``) where
  ``alpha |V^T x|`` is small (``tanh(a) ~= a``);
* ``ff`` (``y = max(0, tanh(W_n x + b_n))``) and ``egru``: one-sided units, so each
  direction takes a pair of units of opposite signs, ``+alpha v`` and ``-alpha v``, read
  back with ``+u s / alpha`` and ``-u s / alpha``: ``relu(tanh(a)) - relu(tanh(-a)) =
  tanh(a)`` (rank ``k // 2``; with an odd ``k`` the last unit starts silent: zero weights).
  An ``egru`` bottleneck starts without memory or recurrence: ``W_hh = 0``, its r and z
  input weights 0 and the z bias :data:`EGRU_Z_BIAS` (``z ~= 0.018``: ``c~ ~= n``), all of
  which then learn.

The biases of the bottleneck's candidate are 0. The threshold of every copied layer is
copied; a bottleneck keeps its own (frozen for ``ff`` / ``dense``; the model config's for
``egru``). Torch only; checks raise :class:`~snn_egru.bottleneck.BottleneckError`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from snn_egru.bottleneck import BottleneckError, plain_sizes

__all__ = ["DEFAULT_ALPHA", "EGRU_Z_BIAS", "init_from_plain"]

#: Scale of the inserted projection. Chosen on validation data (the first 10,000 PTB
#: validation tokens, a trained 256/256 stack, before any fine-tuning): ff n/k = 4 232.7 at
#: 0.3 against 238.3 at 1.0 (plain stack 221.0); n/k = 8 255.4 / 260.8; dense k = 8 324.7 /
#: 331.9: the more nearly linear tanh keeps more of the plain stack.
DEFAULT_ALPHA = 0.3

#: z-gate bias of an ``egru`` bottleneck at insertion: ``sigmoid(-4) = 0.018``, so the
#: new layer starts almost without memory (``c~ ~= n``) and learns how much to keep.
EGRU_Z_BIAS = 4.0

_RNN_KEY = re.compile(r"^rnn\.(?P<name>[a-z_]+?)_l(?P<layer>\d+)(?P<rest>(\..+)?)$")


@torch.no_grad()
def init_from_plain(plain: Any, model: Any, *, alpha: float = DEFAULT_ALPHA) -> dict[str, int]:
    """Write the trained plain LM ``plain`` into the bottlenecked LM ``model`` (module
    docstring); both :class:`~snn_egru.models.lm.EGRULanguageModel`.

    Args:
        alpha: scale of the bottleneck's projection (``alpha |V^T x|`` small: nearly linear).

    Returns:
        ``{boundary: rank}``: the rank of ``W`` each bottleneck carries at the start.

    Raises:
        BottleneckError: ``plain`` has bottlenecks itself, or its layers are not the plain
            stack of ``model``, or another cell, vocabulary or embedding width.
    """
    pc, mc = plain.config, model.config
    if pc.bottleneck_layers:
        raise BottleneckError(
            "the model to start from already has bottleneck layers "
            f"{list(pc.bottleneck_layers)}: start from a plain stack"
        )
    if not mc.bottleneck_layers:
        raise BottleneckError("the model to initialise has no bottleneck layers")
    want = plain_sizes(mc.hidden_sizes, mc.bottleneck_layers)
    if tuple(pc.hidden_sizes) != want or (pc.cell, pc.vocab_size, pc.embedding_size) != (
        mc.cell,
        mc.vocab_size,
        mc.embedding_size,
    ):
        raise BottleneckError(
            f"cannot start a bottlenecked stack {list(mc.hidden_sizes)} (plain "
            f"{list(want)}, vocabulary {mc.vocab_size}, embedding {mc.embedding_size}) from a "
            f"model with layers {list(pc.hidden_sizes)}, vocabulary {pc.vocab_size}, "
            f"embedding {pc.embedding_size}: give the plain stack's trained weights"
        )
    if not alpha > 0:
        raise BottleneckError(f"alpha must be > 0, got {alpha}")
    marks = sorted(int(i) for i in mc.bottleneck_layers)
    expanded = [i for i in range(len(mc.hidden_sizes)) if i not in marks]  # plain i -> index
    after_bottleneck = {i + 1 for i in marks}
    source, target = plain.state_dict(), model.state_dict()
    for key, value in source.items():
        match = _RNN_KEY.match(key)
        if match is None:
            new_key = key
        else:
            layer = expanded[int(match["layer"])]
            new_key = f"rnn.{match['name']}_l{layer}{match['rest']}"
            if match["name"] == "weight_ih" and layer in after_bottleneck:
                continue  # from the SVD below
        if new_key not in target or target[new_key].shape != value.shape:
            raise BottleneckError(
                f"{key} of the model to start from has no place in the bottlenecked model "
                f"({new_key}: {tuple(target[new_key].shape) if new_key in target else 'none'}"
                f", need {tuple(value.shape)})"
            )
        target[new_key] = value.clone()
    ranks: dict[int, int] = {}
    for b in marks:
        plain_next = expanded.index(b + 1)
        w = source[f"rnn.weight_ih_l{plain_next}"].to(torch.float64)
        k = mc.hidden_sizes[b]
        bottleneck, readback, rank = _factor(w, k, mc.bottleneck_kind, alpha)
        ranks[expanded.index(b - 1)] = rank
        w_ih = torch.zeros_like(target[f"rnn.weight_ih_l{b}"])
        w_ih[2 * k :] = bottleneck.to(w_ih.dtype)  # the candidate (n) rows
        target[f"rnn.weight_ih_l{b}"] = w_ih
        b_ih = target[f"rnn.bias_ih_l{b}"]
        b_ih[2 * k :] = 0.0
        if mc.bottleneck_kind == "egru":
            b_ih[:k] = 0.0
            b_ih[k : 2 * k] = -EGRU_Z_BIAS
            target[f"rnn.weight_hh_l{b}"] = torch.zeros_like(target[f"rnn.weight_hh_l{b}"])
            target[f"rnn.bias_hh_l{b}"] = torch.zeros_like(target[f"rnn.bias_hh_l{b}"])
        target[f"rnn.bias_ih_l{b}"] = b_ih
        target[f"rnn.weight_ih_l{b + 1}"] = readback.to(target[f"rnn.weight_ih_l{b + 1}"].dtype)
    model.load_state_dict(target)
    model.apply_fixed_parameters()
    return ranks


def _factor(
    w: torch.Tensor, k: int, kind: str, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(bottleneck (k, n), read-back (3n', k), rank)`` from ``w (3n', n)`` for ``kind``."""
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    bottleneck = w.new_zeros((k, w.shape[1]))
    readback = w.new_zeros((w.shape[0], k))
    if kind == "dense":
        rank = min(k, s.numel())
        bottleneck[:rank] = alpha * vh[:rank]
        readback[:, :rank] = u[:, :rank] * (s[:rank] / alpha)
        return bottleneck, readback, rank
    rank = min(k // 2, s.numel())  # one-sided units: a pair per direction
    bottleneck[:rank] = alpha * vh[:rank]
    bottleneck[rank : 2 * rank] = -alpha * vh[:rank]
    readback[:, :rank] = u[:, :rank] * (s[:rank] / alpha)
    readback[:, rank : 2 * rank] = -readback[:, :rank]
    return bottleneck, readback, rank
