"""The EGRU word-level language model (embedding -> EGRU stack -> tied decoder).

::

    tokens (T, B)  --embedding (V, E), whole-word dropout-->  (T, B, E)
        --locked input dropout-->  EGRUSequence (H_0, ..., H_last; between-layer dropout,
        DropConnect on weight_hh, zoneout)  -->  y (T, B, H_last)
        --locked output dropout-->  decoder: logits = y @ W_dec.T + b  (T, B, V)

With a tied decoder (the default) ``W_dec`` is the embedding table, which needs
``H_last == E`` (docs/egru.md's published model: 1350/1350/750, embedding 750).

Dropouts (all active in training mode only), with the names of the reference recipe's flags:

* ``word_dropout`` (``--dropout_words``): drops whole rows of the embedding table (a dropped
  word is all zeros everywhere in the batch), scaled by ``1/(1-p)``;
* ``input_dropout`` (``--dropout_emb``): locked (variational) dropout of the embedded inputs,
  one mask per window shared over time;
* ``layer_dropout`` (``--dropout_forward``): locked dropout of the events between layers
  (inside :class:`~snn_egru.sequence.EGRUSequence`);
* ``output_dropout``: locked dropout of the last layer's events before the decoder;
* ``dropconnect`` (``--dropout_connect``): element-wise dropout of ``weight_hh``;
* ``zoneout``: on the cell state (docs/egru.md).

Optional activity regularisation (AWD-LSTM style, on the last layer's events ``y``):
``alpha * mean(y^2) + beta * mean((y_t - y_{t-1})^2)`` (:meth:`EGRULanguageModel.
regularization_loss`), plus an ``L1`` penalty ``gamma * mean(|y|)`` over every layer that
pushes towards fewer events.

The model implements the deployment protocol of :mod:`snn_egru.export`: attribute ``rnn``
and :meth:`EGRULanguageModel.deployment_io`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn_egru.bottleneck import check_bottleneck_kind, check_bottleneck_layers
from snn_egru.errors import UserError
from snn_egru.functional import EVENT_AMPLITUDES
from snn_egru.models.dense import DenseRecurrentStack, locked_dropout
from snn_egru.sequence import EGRUSequence

__all__ = [
    "DECODER_INPUTS",
    "LM_CELLS",
    "LM_DROPOUTS",
    "LM_PRESETS",
    "EGRULanguageModel",
    "LMOutput",
    "LanguageModelConfig",
    "NotDeployableError",
    "embedding_with_word_dropout",
    "locked_dropout",
    "lm_preset",
]

#: Half-width of the uniform initialisation of the embedding table (reference: 0.1).
EMBEDDING_INIT_RANGE = 0.1

#: Recurrent layers a language model can be built with: the EGRU and the dense baselines
#: ``torch.nn.GRU`` / ``torch.nn.LSTM`` of the same widths (same embedding, dropouts, decoder).
LM_CELLS: tuple[str, ...] = ("egru", "gru", "lstm")

#: What the decoder of an EGRU model reads (:attr:`LanguageModelConfig.decoder_input`):
#: ``"events"`` (the model; deployable), or, as ablations that cannot be deployed because the
#: chip sends only events, the last layer's candidate state ``c~`` (``"state"``, signed,
#: every unit every step) or ``max(c~, 0)`` (``"positive-state"``).
DECODER_INPUTS: tuple[str, ...] = ("events", "state", "positive-state")

#: The dropout rates of :class:`LanguageModelConfig` (each in ``[0, 1)``); ``dropconnect``,
#: DropConnect on the recurrent weights, comes on top.
LM_DROPOUTS: tuple[str, ...] = ("word_dropout", "input_dropout", "layer_dropout", "output_dropout")


@dataclass
class LanguageModelConfig:
    """Architecture and regularisation of :class:`EGRULanguageModel`.

    Attributes:
        cell: the recurrent layers, one of :data:`LM_CELLS`: ``"egru"`` (the model of this
            package) or a dense baseline ``"gru"`` / ``"lstm"`` (``torch.nn.GRU`` /
            ``torch.nn.LSTM`` layers of the same widths, same dropouts and DropConnect; the
            threshold, surrogate and zoneout settings do not apply to them).
        vocab_size: number of tokens ``V``.
        embedding_size: embedding width ``E``.
        hidden_sizes: units per EGRU layer; with ``tie_weights`` the last must equal ``E``.
        tie_weights: share the embedding table with the decoder.
        word_dropout, input_dropout, layer_dropout, output_dropout, dropconnect, zoneout:
            see the module docstring (probabilities).
        dampening, support: triangle pseudo-derivative (LM recipe: 3.6, 3.6).
        event_amplitude: ``"state"`` (EvNN: the product rule) or ``"clamped"``: how the
            gradient of a graded event is formed (:class:`~snn_egru.functional.
            TriangleSurrogate`); training only, the model computes the same values.
        threshold_init: ``"beta"`` (EvNN v0.2) or ``"sigmoid"`` (v0.1).
        threshold_mean: mean of the initial thresholds (LM recipe: 0.01).
        threshold_value: start every threshold at this value in ``[0, 1]`` instead of a Beta
            draw (``None``: the Beta draw of ``threshold_init`` / ``threshold_mean``).
        learn_threshold: learn the thresholds (LM recipe: frozen).
        activity_regularization: ``alpha`` (AR on the last layer's events).
        temporal_activity_regularization: ``beta`` (TAR on the last layer's events).
        event_l1: ``gamma``, L1 on every layer's events (sparser activity).
        bottleneck_l1: L1 on the events of the bottleneck layers only, summed over a
            bottleneck's units and averaged over steps and batch: the graded values that
            cross a chip boundary per token (fewer crossing events, a sparse code in a
            wide bottleneck); needs ``bottleneck_layers``; ``0``: none.
        decoder_input: :data:`DECODER_INPUTS`; anything but ``"events"`` is an ablation (what
            the one-sided, sparse events cost the decoder) and cannot be exported.
        adaptive_softmax: cutoffs of an adaptive softmax decoder (Grave et al. 2017,
            ``torch.nn.AdaptiveLogSoftmaxWithLoss``, ``div_value`` 4) over words ranked by
            training-set frequency (:meth:`EGRULanguageModel.set_word_ranks`), e.g.
            ``(2000, 6000)``: a head over the 2,000 most frequent words plus one entry per
            cluster, the rarer words in clusters of reduced width. ``()``: the full softmax.
            The adaptive head has its own output weights, so it needs ``tie_weights=False``
            (the embedding is not shared). Such a model is exported with an adaptive readout
            (:mod:`snn_egru.adaptive_head`): the chip runs the EGRU layers and sends events,
            the host computes the log-probabilities (not on the chip: its readout is one
            linear layer).
        bottleneck_layers: indices in ``hidden_sizes`` of bottleneck layers (narrow EGRU
            layers at a layer boundary, :mod:`snn_egru.bottleneck`; build the sizes with
            :func:`~snn_egru.bottleneck.insert_bottlenecks`); the mapper puts a chip boundary
            after each. ``()``: none.
        bottleneck_kind: what the bottleneck layers compute
            (:data:`~snn_egru.bottleneck.BOTTLENECK_KINDS`): ``"egru"`` (a full EGRU layer,
            the default), ``"ff"`` (``max(0, tanh(W x + b))``, event-based, no recurrence or
            memory) or ``"dense"`` (``tanh(W x + b)``, every unit every step): EGRU layers
            with parameters held fixed (:mod:`snn_egru.bottleneck_layers`); needs
            ``bottleneck_layers`` and no zoneout.
    """

    cell: str = "egru"
    vocab_size: int = 10_000
    embedding_size: int = 750
    hidden_sizes: tuple[int, ...] = (1350, 1350, 750)
    tie_weights: bool = True
    word_dropout: float = 0.1
    input_dropout: float = 0.6
    layer_dropout: float = 0.25
    output_dropout: float = 0.25
    dropconnect: float = 0.7
    zoneout: float = 0.0
    dampening: float = 3.6
    support: float = 3.6
    event_amplitude: str = "state"
    threshold_init: str = "beta"
    threshold_mean: float = 0.01
    threshold_value: float | None = None
    learn_threshold: bool = False
    activity_regularization: float = 0.0
    temporal_activity_regularization: float = 0.0
    event_l1: float = 0.0
    bottleneck_l1: float = 0.0
    decoder_input: str = "events"
    adaptive_softmax: tuple[int, ...] = ()
    bottleneck_layers: tuple[int, ...] = ()
    bottleneck_kind: str = "egru"

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.adaptive_softmax = tuple(int(c) for c in (self.adaptive_softmax or ()))
        self._check_adaptive_softmax()
        self.bottleneck_layers = tuple(int(i) for i in self.bottleneck_layers)
        if self.bottleneck_layers:
            check_bottleneck_layers(self.hidden_sizes, self.bottleneck_layers)
        check_bottleneck_kind(self.bottleneck_kind, self.bottleneck_layers)
        if self.bottleneck_kind != "egru" and (self.cell != "egru" or self.zoneout > 0):
            raise ValueError(
                f"bottleneck_kind={self.bottleneck_kind!r} is an EGRU layer without memory: it "
                "needs cell='egru' and zoneout=0"
            )
        if self.cell not in LM_CELLS:
            raise ValueError(
                f"unknown recurrent cell {self.cell!r}; valid names: {', '.join(LM_CELLS)}"
            )
        if self.event_amplitude not in EVENT_AMPLITUDES:
            raise ValueError(
                f"unknown event_amplitude {self.event_amplitude!r}; valid names: "
                f"{', '.join(EVENT_AMPLITUDES)}"
            )
        if self.decoder_input not in DECODER_INPUTS:
            raise ValueError(
                f"unknown decoder_input {self.decoder_input!r}; valid names: "
                f"{', '.join(DECODER_INPUTS)}"
            )
        if self.cell != "egru" and self.decoder_input != "events":
            raise ValueError(
                f"decoder_input={self.decoder_input!r} is an EGRU ablation; a "
                f"cell={self.cell!r} decoder reads its hidden state: leave decoder_input='events'"
            )
        if self.cell != "egru" and self.zoneout > 0:
            raise ValueError(
                f"zoneout is implemented for the EGRU only; set zoneout=0 for cell={self.cell!r}"
            )
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {self.vocab_size}")
        if self.embedding_size < 1 or not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(
                f"embedding_size and hidden_sizes must be positive, got {self.embedding_size} "
                f"and {list(self.hidden_sizes)}"
            )
        if self.tie_weights and self.hidden_sizes[-1] != self.embedding_size:
            raise ValueError(
                f"a tied decoder reuses the embedding table, so the last EGRU layer must have "
                f"embedding_size={self.embedding_size} units, got hidden_sizes="
                f"{list(self.hidden_sizes)}: set the last hidden size to {self.embedding_size} "
                "or tie_weights=False"
            )
        for name in LM_DROPOUTS:
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")
        if self.threshold_value is not None and not 0.0 <= self.threshold_value <= 1.0:
            raise ValueError(f"threshold_value must lie in [0, 1], got {self.threshold_value}")
        for name in (
            "activity_regularization",
            "temporal_activity_regularization",
            "event_l1",
            "bottleneck_l1",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.bottleneck_l1 > 0 and not self.bottleneck_layers:
            raise ValueError(
                f"bottleneck_l1={self.bottleneck_l1:g} penalises the events of bottleneck "
                "layers, and this stack has none: give bottleneck_layers or set bottleneck_l1=0"
            )

    def _check_adaptive_softmax(self) -> None:
        cutoffs = self.adaptive_softmax
        if not cutoffs:
            return
        if list(cutoffs) != sorted(set(cutoffs)) or cutoffs[0] < 1:
            raise ValueError(
                f"adaptive_softmax cutoffs must be increasing positive word ranks, got "
                f"{list(cutoffs)}"
            )
        if cutoffs[-1] > self.vocab_size - 1:
            raise ValueError(
                f"adaptive_softmax cutoffs must lie below vocab_size - 1 = {self.vocab_size - 1}"
                f", got {list(cutoffs)}"
            )
        if self.tie_weights:
            raise ValueError(
                "adaptive_softmax has its own output weights (its head and tail clusters "
                "cannot share the embedding table): set tie_weights=False"
            )

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)


#: Architectures; training presets (lr, batch, steps) are in :mod:`snn_egru.training.lm`.
LM_PRESETS: dict[str, LanguageModelConfig] = {
    # Unit tests: seconds on a CPU.
    "tiny": LanguageModelConfig(
        embedding_size=16,
        hidden_sizes=(24, 16),
        word_dropout=0.0,
        input_dropout=0.1,
        layer_dropout=0.1,
        output_dropout=0.1,
        dropconnect=0.1,
        threshold_mean=0.05,
    ),
    # PTB on 2 CPU cores in a few minutes. Tuned against nn.GRU / nn.LSTM of the same width
    # (benchmarks/lm_quality.py, docs/lm_quality.md): a wide pseudo-derivative (dampening =
    # support = 1: gradient for every unit within 1 of its threshold) and every threshold at
    # 0, frozen: a unit sends an event whenever its state is positive. Learned thresholds
    # drawn with Beta mean 0.1-0.4 made the model sparser (80-88 %) and cost 7-18 %
    # perplexity after 300 steps; the network keeps most states below zero on its own (72 %
    # activity sparsity after 300 steps, 83 % after 1000), and no unit is dead.
    "small": LanguageModelConfig(
        embedding_size=256,
        hidden_sizes=(256,),
        word_dropout=0.0,
        input_dropout=0.1,
        layer_dropout=0.0,
        output_dropout=0.1,
        dropconnect=0.1,
        dampening=1.0,
        support=1.0,
        threshold_value=0.0,
        learn_threshold=False,
    ),
    # The published PTB model (EvNN LM recipe): 1350/1350/750, embedding 750, tied.
    "paper": LanguageModelConfig(),
}


def lm_preset(name: str, *, vocab_size: int | None = None, **overrides: Any) -> LanguageModelConfig:
    """A copy of preset ``name`` (``tiny``, ``small``, ``paper``) with overrides."""
    if name not in LM_PRESETS:
        raise ValueError(
            f"unknown language-model preset {name!r}; choose one of {list(LM_PRESETS)}"
        )
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    return replace(LM_PRESETS[name], **overrides)


class NotDeployableError(UserError, ValueError):
    """A language model the chip cannot run (a dense baseline, a decoder ablation): a
    ``ValueError`` for library callers, one line (exit 2) on
    the command line (``snn-egru export``)."""


class LMOutput(NamedTuple):
    """What :meth:`EGRULanguageModel.forward` returns.

    Attributes:
        logits: ``(T, B, V)`` next-token scores.
        state: per-layer EGRU state ``(y, c)`` after the last step (pass it to the next window;
            detach it between training windows).
        layer_outputs: per layer ``(T, B, H_l)`` events ``y`` (before dropout).
    """

    logits: Tensor
    state: list[Any]
    layer_outputs: list[Tensor]


def embedding_with_word_dropout(embedding: nn.Embedding, tokens: Tensor, p: float) -> Tensor:
    """Embedding lookup with whole-word dropout: each row of the table is zeroed with
    probability ``p`` (one draw per call) and the kept rows scaled by ``1/(1-p)``."""
    weight = embedding.weight
    if p > 0:
        keep = torch.empty(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
        keep.bernoulli_(1.0 - p).div_(1.0 - p)
        weight = weight * keep
    return F.embedding(tokens, weight)


class EGRULanguageModel(nn.Module):
    """Word-level language model with an EGRU stack (see the module docstring).

    Args:
        config: a :class:`LanguageModelConfig`.

    Inputs: ``tokens (T, B)`` int64, ``state`` (``None`` or the ``state`` of the last call).

    Outputs: :class:`LMOutput` ``(logits (T, B, V), state, layer_outputs)``.

    Attributes:
        embedding: ``nn.Embedding(V, E)``.
        rnn: :class:`~snn_egru.sequence.EGRUSequence` (the part that is deployed).
        decoder_bias: ``(V,)``; decoder_weight: the embedding table when tied, else
            ``decoder.weight`` of an ``nn.Linear(H_last, V, bias=False)``.
        adaptive: with ``adaptive_softmax`` cutoffs, the ``nn.AdaptiveLogSoftmaxWithLoss``
            decoder (then no ``decoder`` / ``decoder_bias``; ``logits`` are its exact
            log-probabilities by word id) and the buffer ``word_rank`` (frequency rank of
            every word id, saved with the model); else ``None``.
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_size)
        self.rnn: EGRUSequence | DenseRecurrentStack
        if cfg.cell == "egru":
            self.rnn = EGRUSequence(
                cfg.embedding_size,
                list(cfg.hidden_sizes),
                dropout=cfg.layer_dropout,
                dropconnect=cfg.dropconnect,
                zoneout=cfg.zoneout,
                dampening=cfg.dampening,
                support=cfg.support,
                event_amplitude=cfg.event_amplitude,
                threshold_init=cfg.threshold_init,
                threshold_mean=cfg.threshold_mean,
                learn_threshold=cfg.learn_threshold,
            )
            if cfg.threshold_value is not None:
                for k in range(self.rnn.num_layers):
                    self.rnn.threshold_module(k).set_(cfg.threshold_value)
            if cfg.bottleneck_kind != "egru":
                from snn_egru.bottleneck_layers import constrain_bottlenecks

                self.fixed_parameters = constrain_bottlenecks(
                    self.rnn, cfg.bottleneck_layers, cfg.bottleneck_kind
                )
        else:
            self.rnn = DenseRecurrentStack(
                cfg.cell,
                cfg.embedding_size,
                cfg.hidden_sizes,
                dropout=cfg.layer_dropout,
                dropconnect=cfg.dropconnect,
            )
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None = None
        if cfg.adaptive_softmax:
            self.decoder = None
            self.register_parameter("decoder_bias", None)
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                cfg.hidden_sizes[-1], cfg.vocab_size, list(cfg.adaptive_softmax), div_value=4.0
            )
            # rank (0: most frequent) of every word id; set_word_ranks fills it from counts
            self.register_buffer("word_rank", torch.arange(cfg.vocab_size))
        else:
            self.decoder = (
                None
                if cfg.tie_weights
                else nn.Linear(cfg.hidden_sizes[-1], cfg.vocab_size, bias=False)
            )
            self.decoder_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        nn.init.uniform_(self.embedding.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        if self.decoder is not None:
            nn.init.uniform_(self.decoder.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)

    #: parameters held fixed (``ff`` / ``dense`` bottlenecks), else ``None``
    fixed_parameters: Any = None

    def apply_fixed_parameters(self) -> None:
        """Write the fixed parameters of constrained bottleneck layers back (call after
        every optimizer step; nothing to do without them)."""
        if self.fixed_parameters is not None:
            self.fixed_parameters.apply()

    def set_word_ranks(self, counts: Tensor) -> None:
        """Order the adaptive softmax's words by ``counts`` (``(V,)`` training-set frequency;
        ties by word id): the most frequent words fall in its head."""
        if self.adaptive is None:
            raise ValueError("set_word_ranks is for a model with adaptive_softmax cutoffs")
        order = torch.argsort(counts.to(torch.float64).cpu(), descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        self.word_rank.copy_(rank.to(self.word_rank.device))

    def adaptive_log_prob(self, y: Tensor) -> Tensor:
        """``(..., V)`` log-probabilities by word id of the adaptive softmax for decoder
        inputs ``y (..., H_last)`` (exact: each row sums to 1 in probability)."""
        flat = y.reshape(-1, y.shape[-1])
        log_prob = self.adaptive.log_prob(flat)[:, self.word_rank]  # rank order -> id order
        return log_prob.reshape(*y.shape[:-1], -1)

    def adaptive_loss(self, y: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood of ``targets`` under the adaptive softmax, their mean (what
        training minimises) or ``reduction="sum"`` (evaluation); only the clusters the
        targets fall in are computed."""
        flat = y.reshape(-1, y.shape[-1])
        out = self.adaptive(flat, self.word_rank[targets.reshape(-1)])
        if reduction == "sum":
            return -out.output.sum()
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        return out.loss

    @property
    def decoder_weight(self) -> Tensor:
        """``(V, H_last)`` decoder matrix (the embedding table when tied)."""
        if self.adaptive is not None:
            raise ValueError(
                "an adaptive_softmax model has no single decoder matrix (head and tail "
                "clusters: see EGRULanguageModel.adaptive)"
            )
        return self.embedding.weight if self.decoder is None else self.decoder.weight

    def forward(self, tokens: Tensor, state: Any = None) -> LMOutput:
        """Next-token logits for ``tokens (T, B)`` (see the class docstring)."""
        y, state, layer_outputs = self.decoder_inputs(tokens, state)
        if self.adaptive is not None:  # log-probabilities: valid logits (log_softmax of them
            logits = self.adaptive_log_prob(y)  # is themselves up to rounding)
        else:
            logits = F.linear(y, self.decoder_weight, self.decoder_bias)
        return LMOutput(logits, state, layer_outputs)

    def decoder_inputs(self, tokens: Tensor, state: Any = None) -> LMOutput:
        """What the decoder reads: ``(y (T, B, H_last), state, layer_outputs)``, ``y`` after
        the output dropout (a training loss that does not need every logit, such as
        :func:`snn_egru.losses.sampled_softmax_loss`, starts here)."""
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"tokens must be an integer tensor of shape (T, B), got {tuple(tokens.shape)} "
                f"{tokens.dtype}"
            )
        cfg = self.config
        word_p = cfg.word_dropout if self.training else 0.0
        x = embedding_with_word_dropout(self.embedding, tokens, word_p)
        x = locked_dropout(x, cfg.input_dropout, self.training)
        if cfg.decoder_input == "events":
            y, state, layer_outputs = self.rnn(x, state, return_all_layers=True)
        else:  # ablation: the decoder reads the last layer's c~ = c + o theta
            y, state, layer_outputs, sequences = self.rnn(
                x, state, return_all_layers=True, return_state_sequence=True
            )
            last = sequences[-1]
            y = last.c + last.o * self.rnn.layer_params(self.rnn.num_layers - 1).threshold
            if cfg.decoder_input == "positive-state":
                y = torch.relu(y)
        y = locked_dropout(y, cfg.output_dropout, self.training)
        return LMOutput(y, state, layer_outputs)

    def regularization_loss(self, layer_outputs: list[Tensor]) -> Tensor:
        """``alpha * mean(y^2) + beta * mean((y_t - y_{t-1})^2)`` on the last layer, plus
        ``gamma * mean(|y|)`` summed over layers, plus ``bottleneck_l1`` times the mean over
        steps and batch of ``sum(|y|)`` over each bottleneck layer's units (zero when all
        are 0)."""
        cfg = self.config
        last = layer_outputs[-1]
        loss = last.new_zeros(())
        if cfg.activity_regularization > 0:
            loss = loss + cfg.activity_regularization * last.pow(2).mean()
        if cfg.temporal_activity_regularization > 0 and last.shape[0] > 1:
            loss = (
                loss + cfg.temporal_activity_regularization * (last[1:] - last[:-1]).pow(2).mean()
            )
        if cfg.event_l1 > 0:
            loss = loss + cfg.event_l1 * sum(y.abs().mean() for y in layer_outputs)
        if cfg.bottleneck_l1 > 0:
            crossing = sum(layer_outputs[i].abs().sum(-1).mean() for i in cfg.bottleneck_layers)
            loss = loss + cfg.bottleneck_l1 * crossing
        return loss

    @property
    def is_event_based(self) -> bool:
        """``True`` for the EGRU, ``False`` for a dense baseline (``cell`` gru / lstm)."""
        return self.config.cell == "egru"

    def deployment_io(self) -> dict[str, Any]:
        """What :func:`snn_egru.export.export_artifact` needs besides ``rnn`` (float32 numpy).

        Token ids are looked up in the embedding (``input_kind="embedding"``); the logits are
        the last layer's events times the decoder matrix plus the bias, or, with
        ``adaptive_softmax``, the adaptive head's log-probabilities (key ``"adaptive"``: the
        ``nn.AdaptiveLogSoftmaxWithLoss`` and the word ranks; computed on the host). Only
        the EGRU is deployable; a dense baseline raises ``ValueError``.
        """
        if not self.is_event_based:
            raise NotDeployableError(
                f"a cell={self.config.cell!r} language model is a dense baseline for quality "
                "comparisons and cannot be exported; train with cell='egru'"
            )

        if self.config.decoder_input != "events":
            raise NotDeployableError(
                f"decoder_input={self.config.decoder_input!r} is an ablation (the decoder reads "
                "cell states the chip does not send) and cannot be exported; train with "
                "decoder_input='events'"
            )

        def numpy(t: Tensor) -> Any:
            return t.detach().cpu().float().numpy().copy()

        if self.adaptive is not None:  # log-probabilities, computed on the host
            return {
                "input_kind": "embedding",
                "embedding": numpy(self.embedding.weight),
                "readout_kind": "adaptive",
                "readout_weight": None,
                "readout_bias": None,
                "readout_source": "y",
                "adaptive": (self.adaptive, self.word_rank.detach().cpu().numpy().copy()),
            }

        return {
            "input_kind": "embedding",
            "embedding": numpy(self.embedding.weight),
            "readout_kind": "tied_decoder" if self.decoder is None else "linear",
            "readout_weight": None if self.decoder is None else numpy(self.decoder.weight),
            "readout_bias": numpy(self.decoder_bias),
            "readout_source": "y",
        }
