"""Dense recurrent baselines (``torch.nn.GRU`` / ``torch.nn.LSTM``) behind the interface of
:class:`~snn_egru.sequence.EGRUSequence`, so that the language model and the DVS network
can swap their EGRU stack for a dense one of the same widths (quality comparisons:
``benchmarks/lm_quality.py``, ``benchmarks/dvs_quality.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn_egru.functional import EGRUCellState

__all__ = ["DENSE_CELLS", "DenseRecurrentStack", "locked_dropout"]

#: The dense cells.
DENSE_CELLS: tuple[str, ...] = ("gru", "lstm")


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout of ``x (T, B, F)``: one mask per (stream, feature), shared over T."""
    if not training or p == 0:
        return x
    mask = x.new_empty(1, x.shape[1], x.shape[2]).bernoulli_(1.0 - p).div_(1.0 - p)
    return x * mask


class DenseRecurrentStack(nn.Module):
    """``torch.nn.GRU`` / ``torch.nn.LSTM`` layers behind the interface of
    :class:`~snn_egru.sequence.EGRUSequence` that the language model and its training loop use:
    the dense baselines of the quality comparison (``benchmarks/lm_quality.py``).

    One ``nn.GRU`` / ``nn.LSTM`` per layer (so that layers may differ in width and every
    layer's output is returned), locked dropout between layers and DropConnect on
    ``weight_hh`` (one mask per forward call, as in the EGRU), so that the only difference to
    the EGRU model is the recurrent cell.

    Args:
        cell: ``"gru"`` or ``"lstm"``.
        input_size: input features.
        hidden_sizes: units per layer.
        dropout: locked dropout between layers; dropconnect: on ``weight_hh``.

    Inputs / outputs as :class:`~snn_egru.sequence.EGRUSequence` (``(T, B, I)``); the state
    is a list with one :class:`~snn_egru.functional.EGRUCellState` per layer holding
    ``y = h`` and ``c = h`` (GRU) or ``c`` (LSTM), so checkpoints and carried states work
    unchanged.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_sizes: tuple[int, ...] | list[int],
        *,
        dropout: float = 0.0,
        dropconnect: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in DENSE_CELLS:
            raise ValueError(f"unknown dense cell {cell!r}; valid names: {', '.join(DENSE_CELLS)}")
        for name, p in (("dropout", dropout), ("dropconnect", dropconnect)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} is a probability and must lie in [0, 1), got {p}")
        self.cell = cell
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.num_layers = len(self.hidden_sizes)
        self.dropout = float(dropout)
        self.dropconnect = float(dropconnect)
        kind = nn.GRU if cell == "gru" else nn.LSTM
        sizes = (self.input_size, *self.hidden_sizes[:-1])
        self.layers = nn.ModuleList(kind(i, h) for i, h in zip(sizes, self.hidden_sizes))
        #: no int8 quantisation of the baselines (:mod:`snn_egru.quantization` reads this)
        self.quantizer: nn.Module | None = None

    def clamp_thresholds(self) -> None:
        """No thresholds: nothing to clamp (the training loop calls this on every model)."""

    def _run_layer(self, layer: nn.Module, x: Tensor, hx: Any) -> tuple[Tensor, Any]:
        if self.training and self.dropconnect > 0:
            weight = F.dropout(layer.weight_hh_l0, self.dropconnect, training=True)
            return torch.func.functional_call(layer, {"weight_hh_l0": weight}, (x, hx))
        return layer(x, hx)

    def forward(
        self, x: Tensor, state: Any = None, *, return_all_layers: bool = False
    ) -> tuple[Any, ...]:
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"input must have shape (T, B, {self.input_size}), got {tuple(x.shape)}"
            )
        if state is not None and len(state) != self.num_layers:
            raise ValueError(f"state must hold {self.num_layers} layers, got {len(state)}")
        outputs, new_state = [], []
        for k, layer in enumerate(self.layers):
            if k > 0:
                x = locked_dropout(x, self.dropout, self.training)
            hx = None
            if state is not None:
                y, c = state[k]
                hx = y.unsqueeze(0) if self.cell == "gru" else (y.unsqueeze(0), c.unsqueeze(0))
            x, hn = self._run_layer(layer, x, hx)
            if self.cell == "gru":
                new_state.append(EGRUCellState(y=hn[0], c=hn[0]))
            else:
                new_state.append(EGRUCellState(y=hn[0][0], c=hn[1][0]))
            outputs.append(x)
        if return_all_layers:
            return x, new_state, outputs
        return x, new_state
