"""Constrained bottleneck layers: ``ff`` and ``dense`` bottlenecks as EGRU layers with
parameters held fixed.

An EGRU step (:mod:`snn_egru.functional`, gate order r, z, n)::

    r  = sigmoid(W_ir x + b_ir + W_hr y + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz y + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn y + b_hn))
    c~ = z * c + (1 - z) * n;   o = H(c~ - theta);   y = o * c~;   c = c~ - o * theta

With ``W_hh = 0``, ``b_hh = 0``, ``W_ir = W_iz = 0``, ``b_ir = 0`` and ``b_iz = -B`` (``B`` =
:data:`FIXED_Z_BIAS`, so large that ``z = sigmoid(-B)`` is exactly 0 in float32 and float64,
also as ``1 / (1 + exp(B))``): ``z = 0``, ``c~ = n = tanh(W_in x + b_in)`` whatever ``c`` was (no
memory), ``y = n H(n - theta)``. A frozen ``theta`` picks the kind
(:data:`~snn_egru.bottleneck.BOTTLENECK_KINDS`):

* ``ff``, ``theta = 0``: ``y = max(0, tanh(W_in x + b_in))``, feed-forward and event-based
  (only non-zero values are sent);
* ``dense``, ``theta`` = :data:`DENSE_THRESHOLD` (below ``-1 < n``): every unit fires every
  step, ``y = tanh(W_in x + b_in)``, a graded (tanh-squashed) linear projection.

Only ``W_in`` and ``b_in`` learn. The layer is an ordinary EGRU layer, so every backend
(reference, torch, Lava, chip) runs it unchanged and the export needs nothing new; the mapper
stores no weight of a zero matrix.

The fixed entries are held by :class:`FixedParameters`, the way pruning masks are
(:mod:`snn_egru.pruning`): gradient hooks zero their gradients (they never enter the
gradient-norm clipping or the optimizer's moments) and :meth:`FixedParameters.apply`, called
after every optimizer step, writes the fixed values back (decoupled weight decay would
otherwise shrink ``-B``). The threshold is a frozen buffer (``learnable=False``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from snn_egru.bottleneck import BOTTLENECK_KINDS, BottleneckError
from snn_egru.thresholds import Threshold

__all__ = [
    "DENSE_THRESHOLD",
    "FIXED_Z_BIAS",
    "KIND_THRESHOLDS",
    "FixedParameters",
    "constrain_bottlenecks",
]

#: ``B`` of the fixed z-gate bias ``b_iz = -B``: ``sigmoid(-B)`` is exactly 0 in float32
#: and float64 (``exp(-1000)`` underflows, ``exp(1000)`` overflows to ``inf``).
FIXED_Z_BIAS = 1000.0
#: The frozen threshold of a ``dense`` bottleneck: below ``-1 < n``, so every unit fires.
DENSE_THRESHOLD = -2.0
#: Frozen threshold per constrained kind.
KIND_THRESHOLDS: dict[str, float] = {"ff": 0.0, "dense": DENSE_THRESHOLD}


class FixedParameters:
    """Entries of parameters held at fixed values (masks and values per parameter).

    Attributes:
        entries: ``[(parameter name, parameter, bool mask of fixed entries, values)]``.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[str, nn.Parameter, Tensor, Tensor]] = []
        self._hooks: list = []

    def hold(self, name: str, param: nn.Parameter, mask: Tensor, values: Tensor) -> None:
        """Hold ``param[mask]`` at ``values[mask]``: writes them now and zeroes their
        gradient from now on."""
        mask = mask.to(device=param.device, dtype=torch.bool)
        values = values.to(device=param.device, dtype=param.dtype)
        self.entries.append((name, param, mask, values))
        self._hooks.append(param.register_hook(lambda g, m=mask: g.masked_fill(m.to(g.device), 0)))
        with torch.no_grad():
            param.copy_(torch.where(mask, values, param))

    @torch.no_grad()
    def apply(self) -> None:
        """Write the fixed values back (call after every optimizer step)."""
        for _, param, mask, values in self.entries:
            if values.device != param.device or values.dtype != param.dtype:
                values = values.to(device=param.device, dtype=param.dtype)
            if mask.device != param.device:
                mask = mask.to(param.device)
            param.copy_(torch.where(mask, values, param))

    def names(self) -> list[str]:
        return [name for name, *_ in self.entries]


def constrain_bottlenecks(rnn: nn.Module, layers: Sequence[int], kind: str) -> FixedParameters:
    """Make layers ``layers`` of the EGRU stack ``rnn`` (:class:`~snn_egru.sequence.
    EGRUSequence`) ``kind`` bottlenecks (module docstring): fixes their parameters and
    replaces their thresholds with frozen ones. Returns the :class:`FixedParameters` to
    :meth:`~FixedParameters.apply` after every optimizer step."""
    if kind not in BOTTLENECK_KINDS or kind == "egru":
        raise BottleneckError(
            f"constrained bottleneck kinds are {', '.join(KIND_THRESHOLDS)}, got {kind!r}"
        )
    fixed = FixedParameters()
    for k in layers:
        h = rnn.hidden_sizes[k]
        w_ih = getattr(rnn, f"weight_ih_l{k}")
        b_ih = getattr(rnn, f"bias_ih_l{k}")
        gates = torch.zeros(3 * h, dtype=torch.bool)
        gates[: 2 * h] = True  # r and z rows
        fixed.hold(
            f"weight_ih_l{k}",
            w_ih,
            gates[:, None].expand_as(w_ih).clone(),
            torch.zeros_like(w_ih),
        )
        bias = torch.zeros_like(b_ih)
        bias[h : 2 * h] = -FIXED_Z_BIAS
        fixed.hold(f"bias_ih_l{k}", b_ih, gates, bias)
        for name in (f"weight_hh_l{k}", f"bias_hh_l{k}"):
            param = getattr(rnn, name)
            fixed.hold(
                name, param, torch.ones_like(param, dtype=torch.bool), torch.zeros_like(param)
            )
        old = rnn.threshold_module(k)
        theta = KIND_THRESHOLDS[kind]
        rnn.add_module(
            f"threshold_l{k}",
            Threshold(
                h,
                init="beta",
                learnable=False,
                value=theta,
                minimum=min(0.0, theta),
                dtype=old.raw.dtype,
            ).to(old.raw.device),
        )
    return fixed
