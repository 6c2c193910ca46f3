"""Fake quantisers of quantisation-aware training (torch) and the cell-state quantiser.

Weights: symmetric int8 with float32 scales per output row or gate block
(:func:`weight_scales_torch`, exactly :func:`snn_egru.reference.weight_scales`), fake-quantised
with a straight-through estimator (:func:`fake_quantize_weight`); activations: LSQ-style
:func:`fake_quantize_activation`; the cell state: :func:`state_quant` (snnTorch's level
tables, nearest level, identity gradient). :mod:`snn_egru.quantization` builds QAT on these.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from snn_egru.reference import INT8_MAX, WEIGHT_GRANULARITIES, state_levels

__all__ = [
    "StateQuant",
    "fake_quantize_activation",
    "fake_quantize_weight",
    "state_quant",
    "weight_codes",
    "weight_scales_torch",
]


def weight_scales_torch(w: Tensor, *, granularity: str = "row", hidden_size: int | None = None):
    """float32 scales ``max|w| / 127`` per row or gate block, computed exactly as
    :func:`snn_egru.reference.weight_scales` (float64 division, then float32; 1 for zeros)."""
    w = w.detach()
    if w.shape[1] == 0:
        absmax = w.new_zeros(w.shape[0])
    else:
        absmax = w.abs().amax(dim=1)
    if granularity == "gate":
        hidden = hidden_size if hidden_size is not None else w.shape[0] // 3
        absmax = absmax.view(-1, hidden).amax(dim=1).repeat_interleave(hidden)
    elif granularity != "row":
        raise ValueError(f"granularity must be one of {WEIGHT_GRANULARITIES}, got {granularity!r}")
    scale = (absmax.double() / INT8_MAX).to(torch.float32)
    return torch.where(scale == 0, torch.ones_like(scale), scale)


def weight_codes(w: Tensor, scale: Tensor) -> Tensor:
    """``clip(rint(w / s), -127, 127)`` per row, as float32 integers (no gradient)."""
    return torch.clamp(torch.round(w.detach().float() / scale[:, None]), -INT8_MAX, INT8_MAX)


def fake_quantize_weight(
    w: Tensor, *, granularity: str = "row", hidden_size: int | None = None
) -> Tensor:
    """``q * s`` in the forward pass, the identity in the backward pass (STE)."""
    scale = weight_scales_torch(w, granularity=granularity, hidden_size=hidden_size)
    dequant = (weight_codes(w, scale) * scale[:, None]).to(w.dtype)
    return w + (dequant - w).detach()


def _grad_scaled(s: Tensor, factor: float) -> Tensor:
    """``s`` in the forward pass, gradient multiplied by ``factor`` (LSQ's gradient scale)."""
    return (s - s * factor).detach() + s * factor


def fake_quantize_activation(x: Tensor, scale: Tensor, *, grad_factor: float = 1.0) -> Tensor:
    """LSQ fake quantisation ``round(clip(x / s, -127, 127)) * s``.

    Gradients: ``dx`` is 1 inside the range and 0 outside (clipped); ``ds`` is
    ``round(v) - v`` inside and ``+-127`` outside (``v = x / s``), times ``grad_factor``.
    """
    s = _grad_scaled(scale, grad_factor)
    v = torch.clamp(x / s, -INT8_MAX, INT8_MAX)
    return (torch.round(v) - v).detach().add(v) * s


def _activation_codes(x: Tensor, scale: Tensor) -> Tensor:
    """``clip(rint(x / s), -127, 127)`` in float32 (the reference's ``quantize_codes``)."""
    return torch.clamp(torch.round(x / scale), -INT8_MAX, INT8_MAX)


class _StateQuantFn(torch.autograd.Function):
    """Nearest level (ties to the lower one); identity gradient (snnTorch's StateQuant)."""

    @staticmethod
    def forward(ctx, x: Tensor, levels: Tensor, mids: Tensor) -> Tensor:  # type: ignore[override]
        index = torch.searchsorted(mids, x.detach().contiguous(), right=False)
        return levels[index]

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None, None


class StateQuant:
    """A state quantiser ``c -> nearest level`` (snnTorch's ``state_quant`` callable).

    Attributes:
        levels: sorted float32 numpy level table (what the artifact stores).
    """

    def __init__(self, levels: np.ndarray) -> None:
        levels = np.unique(np.asarray(levels, dtype=np.float32))
        if levels.ndim != 1 or levels.shape[0] < 2:
            raise ValueError("a state quantiser needs at least 2 distinct levels")
        self.levels = levels
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def tables(self, like: Tensor) -> tuple[Tensor, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            levels = torch.from_numpy(self.levels).to(device=like.device, dtype=like.dtype)
            self._cache[key] = (levels, (levels[:-1] + levels[1:]) * 0.5)
        return self._cache[key]

    def __call__(self, x: Tensor) -> Tensor:
        levels, mids = self.tables(x)
        return _StateQuantFn.apply(x, levels, mids)

    def __repr__(self) -> str:
        return f"StateQuant({self.levels.shape[0]} levels in [{self.levels[0]}, {self.levels[-1]}])"


def state_quant(
    num_bits: int = 8,
    uniform: bool = True,
    thr_centered: bool = True,
    threshold: float = 1.0,
    lower_limit: float = 0.0,
    upper_limit: float = 0.2,
    multiplier: float | None = None,
) -> StateQuant:
    """snnTorch's ``snntorch.functional.quant.state_quant`` for the EGRU cell state.

    Same arguments and level tables (:func:`snn_egru.reference.state_levels`); the result
    is a :class:`StateQuant` callable that also exposes its ``levels`` for export.
    """
    return StateQuant(
        state_levels(
            num_bits,
            uniform=uniform,
            thr_centered=thr_centered,
            threshold=threshold,
            lower_limit=lower_limit,
            upper_limit=upper_limit,
            multiplier=multiplier,
        )
    )
