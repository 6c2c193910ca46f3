"""Evaluation of a language model: perplexity of a split and per-unit firing rates.

Used by :mod:`snn_egru.training.lm` (validation, final test) and by the quality benchmark
(``benchmarks/lm_quality.py``); both work with the EGRU model and the dense baselines
(``LanguageModelConfig.cell``), which have no events to count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from snn_egru.data.text import batchify, bptt_windows, get_batch
from snn_egru.functional import EGRUCellState
from snn_egru.models.lm import EGRULanguageModel
from snn_egru.sparsity import SparsityAccount, SparsityProbe
from snn_egru.training.common import progress, unwrap_model

__all__ = [
    "EvalResult",
    "RecurrentThreads",
    "detach_state",
    "evaluate_perplexity",
    "unit_firing_rates",
]


class RecurrentThreads:
    """Run a model's recurrent time loop on one torch thread, everything else on all.

    The time loop (``model.rnn``: per step a ``(B, H) x (H, 3H)`` product and point-wise
    gates, the same backwards) is thousands of tiny sequential operations: a second
    intra-op thread only adds a hand-over per operation, and when the machine is shared
    and that thread is not running, every operation waits for it (measured in
    docs/training_speed.md). The large products (the decoder over the vocabulary, its
    gradients) keep every thread. The numbers do not change: torch's CPU kernels give the
    same bits for one or two threads (tests compare losses and perplexities bit for bit).

    ``install()`` puts hooks on ``model.rnn``: its forward runs on one thread; with
    ``backward=True`` a gradient hook on its output switches to one thread when the
    backward pass reaches the time loop, and one on its input switches back when it has
    left it. ``remove()`` takes the hooks off and restores the thread count (a training
    step installs before its forward pass and removes after the optimizer step). Does
    nothing on a non-CPU model, with one thread (the count when it was made), or for a
    model without ``rnn``.
    """

    def __init__(self, model: torch.nn.Module, *, backward: bool = False) -> None:
        self.model, self.backward = unwrap_model(model), backward
        self.threads = torch.get_num_threads()
        self._handles: list[Any] = []

    def _active(self) -> bool:
        rnn = getattr(self.model, "rnn", None)
        if rnn is None or self.threads <= 1:
            return False
        param = next(rnn.parameters(), None)
        return param is not None and param.device.type == "cpu"

    def _one(self, *_: Any) -> None:
        torch.set_num_threads(1)

    def _all(self, *_: Any) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _pre(self, _module: Any, args: tuple, kwargs: dict) -> None:
        self._one()
        x = args[0] if args else kwargs.get("x")
        if self.backward and isinstance(x, Tensor) and x.requires_grad:
            x.register_hook(self._all)  # the time loop's backward has ended

    def _post(self, _module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
        self._all()
        y = output[0] if isinstance(output, tuple) else output
        if self.backward and isinstance(y, Tensor) and y.requires_grad:
            y.register_hook(self._one)  # the backward reaches the time loop

    def install(self) -> RecurrentThreads:
        if self._active() and not self._handles:
            rnn = self.model.rnn
            self._handles = [
                rnn.register_forward_pre_hook(self._pre, with_kwargs=True),
                rnn.register_forward_hook(self._post, with_kwargs=True),
            ]
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._all()

    def __enter__(self) -> RecurrentThreads:
        return self.install()

    def __exit__(self, *_exc: Any) -> None:
        self.remove()


@dataclass
class EvalResult:
    """Perplexity of a split: ``exp(loss)``, ``loss`` the mean cross-entropy (nats/token)."""

    loss: float
    perplexity: float
    tokens: int
    sparsity: SparsityAccount | None = None


def detach_state(state: Any) -> Any:
    """The per-layer ``(y, c)`` states with their autograd history cut (between windows)."""
    if state is None:
        return None
    return [EGRUCellState(*(t.detach() for t in s)) for s in state]


@torch.no_grad()
def evaluate_perplexity(
    model: EGRULanguageModel,
    data: Tensor,
    *,
    batch_size: int = 10,
    bptt: int = 70,
    device: torch.device | str | None = None,
    max_tokens: int | None = None,
    measure_sparsity: bool = False,
    show_progress: bool = True,
) -> EvalResult:
    """Perplexity of ``model`` on a 1-D id stream, state carried across windows (eval mode).

    Args:
        model: the language model (a DDP wrapper is unwrapped).
        data: ``(N,)`` token ids.
        batch_size: number of parallel streams (1 reproduces the standard test number).
        bptt: window length.
        device: where to run (default: the model's device).
        max_tokens: evaluate only the first ``max_tokens`` tokens (quick checks).
        measure_sparsity: also count activity sparsity and MACs (:mod:`snn_egru.sparsity`);
            ignored for a dense baseline (``cell`` gru / lstm: no events to count).
        show_progress: progress bar on the main rank.

    Returns:
        :class:`EvalResult`; ``loss = sum of token cross-entropies / number of tokens``.
    """
    model = unwrap_model(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if max_tokens is not None:
        data = data[: max_tokens + 1]
    source = batchify(data, batch_size).to(device)
    was_training = model.training
    model.eval()
    event_based = getattr(model, "is_event_based", True)
    adaptive = getattr(model, "adaptive", None) is not None  # logits: exact log-probabilities
    # an adaptive softmax has no single readout matrix: its MACs are not counted
    probe = (
        SparsityProbe(model, include_readout=not adaptive)
        if measure_sparsity and event_based
        else None
    )
    total_loss, total_tokens, state = 0.0, 0, None
    windows = list(bptt_windows(source.shape[0], bptt, random_length=False))
    threads = RecurrentThreads(model).install()
    try:
        if probe is not None:
            probe.__enter__()
        for window in progress(
            windows, desc="eval", leave=False, disable=not show_progress or None
        ):
            inputs, targets = get_batch(source, window.start, window.seq_len)
            if adaptive:  # each target's log-probability alone (its cluster only), not all V
                y, state, _ = model.decoder_inputs(inputs, state)
                loss = model.adaptive_loss(y, targets, reduction="sum")
            else:
                out = model(inputs, state)
                state = out.state
                loss = F.cross_entropy(
                    out.logits.reshape(-1, out.logits.shape[-1]),
                    targets.reshape(-1),
                    reduction="sum",
                )
            total_loss += float(loss)
            total_tokens += targets.numel()
    finally:
        if probe is not None:
            probe.__exit__(None, None, None)
        threads.remove()
        model.train(was_training)
    mean = total_loss / max(1, total_tokens)
    return EvalResult(
        loss=mean,
        perplexity=math.exp(min(mean, 700.0)),
        tokens=total_tokens,
        sparsity=probe.result() if probe is not None else None,
    )


@torch.no_grad()
def unit_firing_rates(
    model: EGRULanguageModel,
    data: Tensor,
    *,
    batch_size: int = 10,
    bptt: int = 70,
    max_tokens: int | None = None,
) -> list[Tensor]:
    """Per layer, the fraction of steps on which each unit sent an event ``(H_l,)``.

    Runs ``model`` in eval mode over ``data`` (state carried, like
    :func:`evaluate_perplexity`). A rate of 0 is a dead unit, 1 a unit that fires on every
    step. Dense baselines have no events: ``ValueError``.
    """
    model = unwrap_model(model)
    if not getattr(model, "is_event_based", True):
        raise ValueError(f"a cell={model.config.cell!r} model has no events to count")
    device = next(model.parameters()).device
    if max_tokens is not None:
        data = data[: max_tokens + 1]
    source = batchify(data, batch_size).to(device)
    was_training = model.training
    model.eval()
    counts: list[Tensor] | None = None
    steps, state = 0, None
    try:
        for window in bptt_windows(source.shape[0], bptt, random_length=False):
            inputs, _ = get_batch(source, window.start, window.seq_len)
            out = model(inputs, state)
            state = out.state
            fired = [(y != 0).sum(dim=(0, 1)).double() for y in out.layer_outputs]
            counts = fired if counts is None else [a + b for a, b in zip(counts, fired)]
            steps += inputs.numel()
    finally:
        model.train(was_training)
    return [(c / max(1, steps)).float().cpu() for c in counts or []]
