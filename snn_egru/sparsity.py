"""Sparsity accounting: activity sparsity, event counts, weight sparsity and MACs per token.

For one EGRU layer with input ``x_t`` (size ``I``), events ``y_t`` (size ``H``) and weights
``W_ih (3H, I)``, ``W_hh (3H, H)``, the two matrix products of step ``t`` are
``W_ih @ x_t`` and ``W_hh @ y_{t-1}``. Their multiply-accumulate (MAC) counts per token
(one step of one stream) are counted four ways::

    dense           3H * I                       3H * H
    weight-sparse   nnz(W_ih)                    nnz(W_hh)
    activity-sparse 3H * |{j : x_t[j] != 0}|     3H * |{j : y_{t-1}[j] != 0}|
    event-driven    sum_{j : x_t[j] != 0} nnz(W_ih[:, j])
                                                 sum_{j : y_{t-1}[j] != 0} nnz(W_hh[:, j])

(input product left, recurrent right). "Activity-sparse" only visits the columns of units
that sent an event, with dense weights; "event-driven" also skips pruned weights: that is what
an event-driven chip does, and the two savings compose. The input of layer 0 is whatever
feeds the stack (an embedding vector, usually fully non-zero); the input of layer ``l > 0``
is the events of layer ``l - 1``. The recurrent product of the first step of a stream uses
the events of the state the stream started from (zeros for a fresh state). Counts are
averaged over all tokens seen. A readout ``W_out (O, H_last)`` applied to the last layer's
events is counted the same way and reported separately.

Activity sparsity is the fraction of zero entries of ``y`` over all steps, streams and units
of a layer (overall: over all layers' units together); the event count is ``nnz(y)``.

:class:`SparsityMeter` accumulates counts over chunks (numpy, torch-free);
:class:`SparsityProbe` hooks the ``rnn`` of a model that follows the deployment protocol of
:mod:`snn_egru.export` and feeds the meter while the model runs;
:func:`format_sparsity_report` prints the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "LayerSparsity",
    "MACCounts",
    "SparsityAccount",
    "SparsityMeter",
    "SparsityProbe",
    "column_nnz",
    "format_sparsity_report",
    "product_macs",
]


@dataclass(frozen=True)
class MACCounts:
    """MACs per token of one (or a sum of) matrix-vector products, counted four ways."""

    dense: float = 0.0
    weight_sparse: float = 0.0
    activity_sparse: float = 0.0
    event_driven: float = 0.0

    def __add__(self, other: MACCounts) -> MACCounts:
        return MACCounts(
            self.dense + other.dense,
            self.weight_sparse + other.weight_sparse,
            self.activity_sparse + other.activity_sparse,
            self.event_driven + other.event_driven,
        )

    @property
    def reduction(self) -> float:
        """``dense / event_driven`` (how many times fewer MACs an event-driven chip does)."""
        return self.dense / self.event_driven if self.event_driven > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def column_nnz(weight: Any) -> np.ndarray:
    """Non-zero count of every column of a ``(rows, cols)`` matrix (dense, sparse or torch)."""
    if sp.issparse(weight):
        csc = sp.csc_matrix(weight)
        csc.eliminate_zeros()
        return np.diff(csc.indptr).astype(np.int64)
    return np.count_nonzero(_to_numpy(weight), axis=0).astype(np.int64)


def product_macs(
    weight: Any, inputs: Any, *, nnz_cols: np.ndarray | None = None
) -> tuple[MACCounts, int]:
    """Summed MAC counts of ``weight @ v`` over the input vectors ``inputs (N, cols)``.

    Args:
        weight: ``(rows, cols)`` matrix (dense, sparse or torch).
        inputs: ``(..., cols)`` input vectors.
        nnz_cols: :func:`column_nnz` of ``weight`` when already known.

    Returns:
        ``(summed MACCounts over the N vectors, N)``; divide by ``N`` for per-token values.
    """
    rows, cols = weight.shape
    active = _to_numpy(inputs).reshape(-1, cols) != 0
    n = active.shape[0]
    nnz_cols = column_nnz(weight) if nnz_cols is None else nnz_cols
    counts = MACCounts(
        dense=float(rows * cols * n),
        weight_sparse=float(nnz_cols.sum() * n),
        activity_sparse=float(rows * active.sum()),
        event_driven=float((active @ nnz_cols.astype(np.float64)).sum()),
    )
    return counts, n


def _scale(counts: MACCounts, factor: float) -> MACCounts:
    return MACCounts(*(v * factor for v in counts.to_dict().values()))


@dataclass
class LayerSparsity:
    """Activity, weight sparsity and MACs per token of one layer.

    Attributes:
        index, input_size, hidden_size: the layer.
        tokens: steps x streams seen.
        events: total number of events (non-zero ``y``).
        activity_sparsity: fraction of zero ``y``.
        events_per_token: mean number of events per step and stream.
        input_density: fraction of non-zero input entries.
        weight_sparsity_ih, weight_sparsity_hh: fraction of zero weights.
        input_macs, recurrent_macs: :class:`MACCounts` per token.
        activity_over_time: fraction of units active at each step (mean over streams and
            over the chunks seen), ``(T,)``; empty when not tracked.
    """

    index: int
    input_size: int
    hidden_size: int
    tokens: int
    events: int
    activity_sparsity: float
    events_per_token: float
    input_density: float
    weight_sparsity_ih: float
    weight_sparsity_hh: float
    input_macs: MACCounts
    recurrent_macs: MACCounts
    activity_over_time: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def macs(self) -> MACCounts:
        return self.input_macs + self.recurrent_macs

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no counts, no time series)."""
        return {
            **{name: getattr(self, name) for name in _LAYER_FIGURES},
            "input_macs": self.input_macs.to_dict(),
            "recurrent_macs": self.recurrent_macs.to_dict(),
        }


#: The figures of a layer and of a stack that their ``to_dict`` reports (then their MACs).
_LAYER_FIGURES = (
    "index input_size hidden_size activity_sparsity events_per_token input_density "
    "weight_sparsity_ih weight_sparsity_hh"
).split()
_ACCOUNT_FIGURES = ("tokens", "activity_sparsity", "weight_sparsity", "events_per_token")


@dataclass
class SparsityAccount:
    """Per-layer and total sparsity figures (what :class:`SparsityMeter` returns)."""

    layers: list[LayerSparsity]
    readout_macs: MACCounts | None = None
    tokens: int = 0

    @property
    def activity_sparsity(self) -> float:
        """Fraction of zero ``y`` over all layers' units, steps and streams."""
        units = sum(layer.hidden_size * layer.tokens for layer in self.layers)
        events = sum(layer.events for layer in self.layers)
        return 1.0 - events / units if units else 0.0

    @property
    def weight_sparsity(self) -> float:
        """Fraction of zero weights over every ``W_ih``/``W_hh`` of the stack."""
        total = zeros = 0.0
        for layer in self.layers:
            n_ih = 3 * layer.hidden_size * layer.input_size
            n_hh = 3 * layer.hidden_size * layer.hidden_size
            zeros += layer.weight_sparsity_ih * n_ih + layer.weight_sparsity_hh * n_hh
            total += n_ih + n_hh
        return zeros / total if total else 0.0

    @property
    def events_per_token(self) -> float:
        """Events per token summed over layers."""
        return sum(layer.events_per_token for layer in self.layers)

    @property
    def rnn_macs(self) -> MACCounts:
        """MACs per token of the EGRU stack (all input and recurrent products)."""
        total = MACCounts()
        for layer in self.layers:
            total = total + layer.macs
        return total

    @property
    def total_macs(self) -> MACCounts:
        """EGRU stack plus readout."""
        return self.rnn_macs + (self.readout_macs or MACCounts())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no time series)."""
        return {
            **{name: getattr(self, name) for name in _ACCOUNT_FIGURES},
            "rnn_macs": self.rnn_macs.to_dict(),
            "readout_macs": self.readout_macs.to_dict() if self.readout_macs else None,
            "total_macs": self.total_macs.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }


class SparsityMeter:
    """Accumulate sparsity figures over chunks of a run (numpy; weights fixed).

    Args:
        weights: per layer ``(W_ih (3H, I), W_hh (3H, H))``, dense, scipy.sparse or torch.
        readout_weight: optional ``(O, H_last)`` readout applied to the last layer's events.
        track_time: keep the fraction of active units per step (for plots).
    """

    def __init__(
        self,
        weights: Sequence[tuple[Any, Any]],
        *,
        readout_weight: Any = None,
        track_time: bool = True,
    ) -> None:
        if not weights:
            raise ValueError("SparsityMeter needs at least one layer's weights")
        self.weights = [
            (
                w_ih if sp.issparse(w_ih) else _to_numpy(w_ih),
                w_hh if sp.issparse(w_hh) else _to_numpy(w_hh),
            )
            for w_ih, w_hh in weights
        ]
        for k, (w_ih, w_hh) in enumerate(self.weights):
            hidden = w_hh.shape[1]
            if w_ih.shape[0] != 3 * hidden or w_hh.shape[0] != 3 * hidden:
                raise ValueError(
                    f"layer {k}: weights {w_ih.shape} / {w_hh.shape} are not (3H, I) / (3H, H)"
                )
        self.readout_weight = (
            None
            if readout_weight is None
            else (readout_weight if sp.issparse(readout_weight) else _to_numpy(readout_weight))
        )
        self.track_time = track_time
        self._nnz = [(column_nnz(w_ih), column_nnz(w_hh)) for w_ih, w_hh in self.weights]
        self._readout_nnz = (
            column_nnz(self.readout_weight) if self.readout_weight is not None else None
        )
        n = len(self.weights)
        self._tokens = [0] * n
        self._events = [0] * n
        self._input_nonzero = [0] * n
        self._input_macs = [MACCounts()] * n
        self._recurrent_macs = [MACCounts()] * n
        self._readout = MACCounts()
        self._time_sum: list[np.ndarray] = [np.zeros(0) for _ in range(n)]
        self._time_count: list[np.ndarray] = [np.zeros(0) for _ in range(n)]

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    def update(
        self,
        inputs: Any,
        layer_events: Sequence[Any],
        previous_events: Sequence[Any] | None = None,
    ) -> None:
        """Add one chunk.

        Args:
            inputs: ``(T, B, I)`` (or ``(T, I)``) input of layer 0.
            layer_events: per layer ``(T, B, H_l)`` events ``y``.
            previous_events: per layer ``(B, H_l)`` events of the step before the chunk (the
                incoming state's ``y``); ``None`` for a fresh (zero) state.
        """
        if len(layer_events) != self.num_layers:
            raise ValueError(
                f"got events of {len(layer_events)} layers, the meter has {self.num_layers}"
            )
        layer_input = _to_numpy(inputs)
        for k, (w_ih, w_hh) in enumerate(self.weights):
            events = _to_numpy(layer_events[k])
            hidden = w_hh.shape[1]
            if events.shape[-1] != hidden or layer_input.shape[-1] != w_ih.shape[1]:
                raise ValueError(
                    f"layer {k}: input {layer_input.shape} / events {events.shape} do not match "
                    f"weights {w_ih.shape} / {w_hh.shape}"
                )
            if events.ndim == 2:
                events = events[:, None, :]
            x = layer_input if layer_input.ndim == 3 else layer_input[:, None, :]
            steps, batch = events.shape[:2]
            prev = (
                np.zeros((batch, hidden), dtype=events.dtype)
                if previous_events is None or previous_events[k] is None
                else _to_numpy(previous_events[k]).reshape(batch, hidden)
            )
            recurrent_inputs = np.concatenate([prev[None], events[:-1]], axis=0)
            in_counts, n = product_macs(w_ih, x, nnz_cols=self._nnz[k][0])
            rec_counts, _ = product_macs(w_hh, recurrent_inputs, nnz_cols=self._nnz[k][1])
            self._input_macs[k] = self._input_macs[k] + in_counts
            self._recurrent_macs[k] = self._recurrent_macs[k] + rec_counts
            self._tokens[k] += n
            active = events != 0
            self._events[k] += int(active.sum())
            self._input_nonzero[k] += int(np.count_nonzero(x))
            if self.track_time:
                per_step = active.mean(axis=(1, 2))
                self._time_sum[k] = _add_padded(self._time_sum[k], per_step)
                self._time_count[k] = _add_padded(self._time_count[k], np.ones(steps))
            layer_input = events
        if self.readout_weight is not None:
            counts, _ = product_macs(self.readout_weight, layer_input, nnz_cols=self._readout_nnz)
            self._readout = self._readout + counts

    def result(self) -> SparsityAccount:
        """Per-token figures of everything seen so far."""
        layers = []
        for k, (w_ih, w_hh) in enumerate(self.weights):
            tokens = max(1, self._tokens[k])
            hidden, inputs = w_hh.shape[1], w_ih.shape[1]
            time_series = (
                self._time_sum[k] / np.maximum(1, self._time_count[k])
                if self.track_time
                else np.zeros(0)
            )
            layers.append(
                LayerSparsity(
                    index=k,
                    input_size=inputs,
                    hidden_size=hidden,
                    tokens=self._tokens[k],
                    events=self._events[k],
                    activity_sparsity=1.0 - self._events[k] / (tokens * hidden),
                    events_per_token=self._events[k] / tokens,
                    input_density=self._input_nonzero[k] / (tokens * inputs),
                    weight_sparsity_ih=1.0 - self._nnz[k][0].sum() / (w_ih.shape[0] * inputs),
                    weight_sparsity_hh=1.0 - self._nnz[k][1].sum() / (w_hh.shape[0] * hidden),
                    input_macs=_scale(self._input_macs[k], 1.0 / tokens),
                    recurrent_macs=_scale(self._recurrent_macs[k], 1.0 / tokens),
                    activity_over_time=time_series,
                )
            )
        tokens = self._tokens[-1]
        readout = (
            _scale(self._readout, 1.0 / max(1, tokens)) if self.readout_weight is not None else None
        )
        return SparsityAccount(layers=layers, readout_macs=readout, tokens=tokens)


def _add_padded(acc: np.ndarray, values: np.ndarray) -> np.ndarray:
    if acc.shape[0] < values.shape[0]:
        acc = np.concatenate([acc, np.zeros(values.shape[0] - acc.shape[0])])
    acc = acc.copy()
    acc[: values.shape[0]] += values
    return acc


# --------------------------------------------------------------------------- torch probe
class SparsityProbe:
    """Measure a model's sparsity while it runs, by hooking its ``rnn`` (an EGRUSequence).

    The model follows the deployment protocol of :mod:`snn_egru.export` (attribute ``rnn``,
    method ``deployment_io()``); the readout (tied decoder or linear) is counted when
    ``readout_kind`` is not ``"none"``. Use as a context manager around any number of forward
    passes (state carried or not: the incoming state's ``y`` is read from the call)::

        with SparsityProbe(model) as probe:
            model(tokens)
        print(format_sparsity_report(probe.result()))

    Weights are read when the probe is created (prune before that).
    """

    def __init__(self, model: Any, *, include_readout: bool = True, track_time: bool = True):
        from snn_egru.training.common import unwrap_model

        self.model = unwrap_model(model)
        self.rnn = self.model.rnn
        weights = [
            (
                getattr(self.rnn, f"weight_ih_l{k}").detach(),
                getattr(self.rnn, f"weight_hh_l{k}").detach(),
            )
            for k in range(self.rnn.num_layers)
        ]
        readout = None
        # an ablation whose decoder reads cell states (decoder_input) has no event readout
        reads_events = getattr(getattr(self.model, "config", None), "decoder_input", "events")
        if include_readout and hasattr(self.model, "deployment_io") and reads_events == "events":
            io = self.model.deployment_io()
            if io.get("readout_kind") == "tied_decoder":
                readout = io["embedding"]
            elif io.get("readout_kind") == "linear":
                readout = io["readout_weight"]
        self.meter = SparsityMeter(weights, readout_weight=readout, track_time=track_time)
        self._handles: list[Any] = []
        self._pending: dict[str, Any] | None = None
        self._rerunning = False

    def __enter__(self) -> SparsityProbe:
        self._handles = [
            self.rnn.register_forward_pre_hook(self._pre_hook, with_kwargs=True),
            self.rnn.register_forward_hook(self._post_hook, with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if self._rerunning:
            return
        x = args[0] if args else kwargs["x"]
        state = args[1] if len(args) > 1 else kwargs.get("state")
        self._pending = {"x": x.detach(), "state": state}

    def _post_hook(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        if self._rerunning or self._pending is None:
            return
        x, state = self._pending["x"], self._pending["state"]
        self._pending = None
        if kwargs.get("return_all_layers"):
            layer_outputs = output[2]
        else:
            import torch

            self._rerunning = True
            try:
                with torch.no_grad():
                    layer_outputs = module(x, state, return_all_layers=True)[2]
            finally:
                self._rerunning = False
        batch_first = bool(getattr(module, "batch_first", False))
        layer_outputs = [y.detach() for y in layer_outputs]
        if batch_first:
            x = x.transpose(0, 1) if x.ndim == 3 else x
            layer_outputs = [y.transpose(0, 1) if y.ndim == 3 else y for y in layer_outputs]
        if hasattr(state, "dim"):  # state_semantics="y", one layer: EvNN's bare tensor
            state = [state]
        previous = None if state is None else [getattr(s, "y", s).detach() for s in state]
        self.meter.update(x, layer_outputs, previous)

    def result(self) -> SparsityAccount:
        return self.meter.result()


# --------------------------------------------------------------------------- report
def format_sparsity_report(account: SparsityAccount, *, title: str | None = None) -> str:
    """A plain-text table: per-layer activity and weight sparsity, then MACs per token."""
    lines = []
    if title:
        lines += [title, "=" * len(title)]
    lines.append(
        f"{'layer':>5} {'in':>6} {'H':>6} {'act.sparsity':>12} {'events/tok':>10} "
        f"{'in.density':>10} {'w.sp ih':>8} {'w.sp hh':>8}"
    )
    for layer in account.layers:
        lines.append(
            f"{layer.index:>5} {layer.input_size:>6} {layer.hidden_size:>6} "
            f"{layer.activity_sparsity:>12.4f} {layer.events_per_token:>10.2f} "
            f"{layer.input_density:>10.4f} {layer.weight_sparsity_ih:>8.4f} "
            f"{layer.weight_sparsity_hh:>8.4f}"
        )
    lines.append(
        f"{'all':>5} {'':>6} {sum(x.hidden_size for x in account.layers):>6} "
        f"{account.activity_sparsity:>12.4f} {account.events_per_token:>10.2f} {'':>10} "
        f"{account.weight_sparsity:>8.4f} (stack)"
    )
    lines.append("")
    lines.append(
        f"{'MACs per token':<18} {'dense':>12} {'w-sparse':>12} {'act-sparse':>12} "
        f"{'event-driven':>12} {'dense/event':>11}"
    )
    rows: list[tuple[str, MACCounts]] = []
    for layer in account.layers:
        rows.append((f"L{layer.index} input", layer.input_macs))
        rows.append((f"L{layer.index} recurrent", layer.recurrent_macs))
    rows.append(("EGRU stack", account.rnn_macs))
    if account.readout_macs is not None:
        rows.append(("readout", account.readout_macs))
        rows.append(("total", account.total_macs))
    for name, c in rows:
        lines.append(
            f"{name:<18} {c.dense:>12.4g} {c.weight_sparse:>12.4g} {c.activity_sparse:>12.4g} "
            f"{c.event_driven:>12.4g} {c.reduction:>10.2f}x"
        )
    lines.append(f"({account.tokens} tokens)")
    return "\n".join(lines)
