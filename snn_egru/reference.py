"""The numpy reference of the EGRU cell: the one definition every backend is tested against.

This module is torch-free and Lava-free (numpy and scipy only), so that
``spinnaker2_backend`` and ``lava_procs`` can import it without pulling in PyTorch.

One step of one layer (``../shared/design/EGRU.md``), parameters in ``torch.nn.GRU``
layout and gate order ``(r, z, n)``::

    gi  = weight_ih @ x_t + bias_ih             -> (gi_r, gi_z, gi_n)
    gh  = weight_hh @ y_{t-1} + bias_hh         -> (gh_r, gh_z, gh_n)
    r   = sigmoid(gi_r + gh_r)
    z   = sigmoid(gi_z + gh_z)
    n   = tanh(gi_n + r * gh_n)
    c~  = z * c_{t-1} + (1 - z) * n
    o   = H(c~ - theta)                          H(v) = 1 if v > 0 else 0
    y_t = o * c~                                 graded event
    c_t = c~ - o * theta                         reset by subtraction
    trace_t = 0.9 * trace_{t-1} + 0.1 * y_t      optional

Weights may be dense ``numpy.ndarray`` or ``scipy.sparse`` matrices (CSR after pruning).
The computation runs in the floating-point type of the parameters (float32 for
deployment, float64 for exactness checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

Matrix = np.ndarray | sp.spmatrix | sp.sparray

#: Decay of the optional low-pass trace of the events (EGRU.md).
TRACE_DECAY = 0.9

__all__ = [
    "TRACE_DECAY",
    "EGRUParams",
    "EGRUState",
    "Matrix",
    "egru_pointwise",
    "egru_sequence",
    "egru_stack_sequence",
    "egru_stack_step",
    "egru_step",
    "gate_matvec",
    "heaviside",
    "init_state",
    "validate_params",
]


class EGRUParams(NamedTuple):
    """Parameters of one EGRU layer in ``torch.nn.GRU`` layout, gate order (r, z, n).

    Attributes:
        weight_ih: ``(3H, I)`` input weights, dense or scipy.sparse.
        weight_hh: ``(3H, H)`` recurrent weights (applied to the events ``y``), dense or sparse.
        bias_ih: ``(3H,)`` input bias.
        bias_hh: ``(3H,)`` recurrent bias (inside the reset gate product for ``n``).
        threshold: ``(H,)`` per-unit threshold ``theta``.
    """

    weight_ih: Matrix
    weight_hh: Matrix
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    threshold: np.ndarray

    @property
    def hidden_size(self) -> int:
        return int(self.threshold.shape[0])

    @property
    def input_size(self) -> int:
        return int(self.weight_ih.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.bias_ih.dtype)


class EGRUState(NamedTuple):
    """State carried from one step to the next.

    Attributes:
        c: ``(..., H)`` cell state after the reset.
        y: ``(..., H)`` graded events of the last step (zero where no event).
        trace: ``(..., H)`` low-pass trace of ``y``, or ``None`` when not tracked.
    """

    c: np.ndarray
    y: np.ndarray
    trace: np.ndarray | None = None


def init_state(
    hidden_size: int,
    batch_shape: tuple[int, ...] = (),
    *,
    dtype: np.dtype | type = np.float32,
    trace: bool = False,
) -> EGRUState:
    """Zero state for ``hidden_size`` units (and a zero trace when ``trace=True``)."""
    shape = (*batch_shape, hidden_size)
    zeros = np.zeros(shape, dtype=dtype)
    return EGRUState(c=zeros, y=zeros.copy(), trace=zeros.copy() if trace else None)


def validate_params(params: EGRUParams, *, name: str = "layer") -> None:
    """Raise ``ValueError`` naming the problem if ``params`` is not a valid EGRU layer."""
    h = params.threshold.shape[0] if np.ndim(params.threshold) == 1 else None
    if h is None:
        raise ValueError(
            f"{name}: threshold must be a 1-D array of size H, got shape "
            f"{np.shape(params.threshold)}"
        )
    expected = {
        "weight_ih": (3 * h, params.weight_ih.shape[1] if params.weight_ih.ndim == 2 else -1),
        "weight_hh": (3 * h, h),
        "bias_ih": (3 * h,),
        "bias_hh": (3 * h,),
    }
    for field, shape in expected.items():
        got = tuple(getattr(params, field).shape)
        if got != shape:
            raise ValueError(
                f"{name}: {field} has shape {got}, expected {shape} "
                f"(nn.GRU layout, gate order r, z, n, hidden size H={h})"
            )
    for field in EGRUParams._fields:
        value = getattr(params, field)
        data = value.data if sp.issparse(value) else np.asarray(value)
        if not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"{name}: {field} must be floating point, got dtype {data.dtype}")
        if not np.all(np.isfinite(data)):
            raise ValueError(f"{name}: {field} contains NaN or infinite values")
    if np.any(params.threshold < 0):
        raise ValueError(
            f"{name}: thresholds must be >= 0 (an event is sent when c > theta), "
            f"got min {float(np.min(params.threshold)):.4g}"
        )


def heaviside(v: np.ndarray) -> np.ndarray:
    """``H(v) = 1 if v > 0 else 0`` (``H(0) = 0``), in the dtype of ``v``."""
    return (v > 0).astype(v.dtype)


def gate_matvec(weight: Matrix, x: np.ndarray) -> np.ndarray:
    """``x @ weight.T`` for dense or sparse ``weight`` and ``x`` of shape ``(..., in)``."""
    if sp.issparse(weight):
        flat = x.reshape(-1, x.shape[-1])
        out = np.asarray((weight @ flat.T).T)
        return out.reshape(*x.shape[:-1], weight.shape[0])
    return x @ weight.T


def egru_pointwise(
    gi: np.ndarray,
    gh: np.ndarray,
    c_prev: np.ndarray,
    threshold: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The point-wise part of the step, given both gate pre-activations (biases included).

    Args:
        gi: ``(..., 3H)`` ``weight_ih @ x + bias_ih``.
        gh: ``(..., 3H)`` ``weight_hh @ y_prev + bias_hh``.
        c_prev: ``(..., H)`` previous cell state.
        threshold: ``(H,)`` thresholds.

    Returns:
        ``(y, c, o)``: graded events, reset cell state, event indicator (0/1).

    Backends that compute the matrix products their own way (per PE, event-driven) call
    this for the rest of the step, so that all of them share one point-wise definition.
    """
    hidden = threshold.shape[-1]
    gi_r, gi_z, gi_n = gi[..., :hidden], gi[..., hidden : 2 * hidden], gi[..., 2 * hidden :]
    gh_r, gh_z, gh_n = gh[..., :hidden], gh[..., hidden : 2 * hidden], gh[..., 2 * hidden :]
    r = expit(gi_r + gh_r)
    z = expit(gi_z + gh_z)
    n = np.tanh(gi_n + r * gh_n)
    c_tilde = z * c_prev + (1 - z) * n
    o = heaviside(c_tilde - threshold)
    y = o * c_tilde
    c = c_tilde - o * threshold
    return y, c, o


def _as_dtype(x: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{what} must be a floating-point array, got dtype {x.dtype}")
    return x.astype(dtype, copy=False)


def egru_step(
    x: np.ndarray, state: EGRUState | None, params: EGRUParams
) -> tuple[np.ndarray, EGRUState]:
    """One EGRU step (see module docstring).

    Args:
        x: ``(..., I)`` layer input.
        state: previous :class:`EGRUState`, or ``None`` for zeros (no trace).
        params: the layer's :class:`EGRUParams`.

    Returns:
        ``(y, new_state)`` with ``y`` of shape ``(..., H)``.
    """
    dtype = params.dtype
    x = _as_dtype(x, dtype, "x")
    if x.shape[-1] != params.input_size:
        raise ValueError(
            f"input has {x.shape[-1]} features, the layer expects input_size={params.input_size}"
        )
    if state is None:
        state = init_state(params.hidden_size, x.shape[:-1], dtype=dtype)
    gi = gate_matvec(params.weight_ih, x) + params.bias_ih
    gh = gate_matvec(params.weight_hh, state.y) + params.bias_hh
    y, c, _ = egru_pointwise(gi, gh, state.c, params.threshold)
    trace = None
    if state.trace is not None:
        trace = TRACE_DECAY * state.trace + (1 - TRACE_DECAY) * y
        trace = trace.astype(dtype, copy=False)
    return y, EGRUState(c=c, y=y, trace=trace)


def egru_sequence(
    xs: np.ndarray, params: EGRUParams, state: EGRUState | None = None
) -> tuple[np.ndarray, EGRUState]:
    """Run one layer over ``xs`` of shape ``(T, ..., I)``; returns ``(ys (T, ..., H), state)``."""
    ys = []
    for x in xs:
        y, state = egru_step(x, state, params)
        ys.append(y)
    return np.stack(ys), state


def egru_stack_step(
    x: np.ndarray,
    states: Sequence[EGRUState | None] | None,
    layers: Sequence[EGRUParams],
) -> tuple[list[np.ndarray], list[EGRUState]]:
    """One step through a stack of layers; returns every layer's events and new states."""
    if states is None:
        states = [None] * len(layers)
    ys, new_states = [], []
    inp = x
    for params, state in zip(layers, states):
        inp, state = egru_step(inp, state, params)
        ys.append(inp)
        new_states.append(state)
    return ys, new_states


def egru_stack_sequence(
    xs: np.ndarray,
    layers: Sequence[EGRUParams],
    states: Sequence[EGRUState | None] | None = None,
) -> tuple[list[np.ndarray], list[EGRUState]]:
    """Run a stack over ``xs (T, ..., I)``; returns per-layer events and final states."""
    if states is None:
        states = [None] * len(layers)
    per_layer: list[list[np.ndarray]] = [[] for _ in layers]
    states = list(states)
    for x in xs:
        ys, states = egru_stack_step(x, states, layers)
        for acc, y in zip(per_layer, ys):
            acc.append(y)
    return [np.stack(acc) for acc in per_layer], states
