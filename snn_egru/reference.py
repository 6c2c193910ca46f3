"""The numpy reference of the EGRU cell: the one definition every backend is tested against.

Layer: core of snn_egru (torch-free; what spinnaker2_backend and lava_procs may import).

This module is torch-free and Lava-free (numpy and scipy only), so that
``spinnaker2_backend`` and ``lava_procs`` can import it without pulling in PyTorch.

One step of one layer (``docs/egru.md``), parameters in ``torch.nn.GRU``
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

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

Matrix = np.ndarray | sp.spmatrix | sp.sparray

#: Decay of the optional low-pass trace of the events (docs/egru.md).
TRACE_DECAY = 0.9

__all__ = [
    "INT8_MAX",
    "PRODUCT_MODES",
    "TRACE_DECAY",
    "WEIGHT_GRANULARITIES",
    "EGRUParams",
    "EGRUState",
    "Matrix",
    "QuantizedEGRUParams",
    "QuantizedWeight",
    "egru_pointwise",
    "egru_sequence",
    "egru_stack_sequence",
    "egru_stack_step",
    "egru_step",
    "gate_matvec",
    "heaviside",
    "init_state",
    "quantize_codes",
    "quantize_params",
    "quantize_state",
    "quantize_weight",
    "quantized_egru_step",
    "quantized_matvec",
    "recurrent_preactivation",
    "state_levels",
    "validate_params",
    "without_memory",
    "validate_quantized_params",
    "validate_quantized_weight",
    "validate_state_levels",
    "weight_scales",
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
    if np.any(params.threshold < 0) and not without_memory(params):
        raise ValueError(
            f"{name}: thresholds must be >= 0 (an event is sent when c > theta), "
            f"got min {float(np.min(params.threshold)):.4g} (below 0 only in a layer without "
            "memory, z = 0: a dense bottleneck, snn_egru.bottleneck_layers)"
        )


def without_memory(params: EGRUParams) -> bool:
    """``True`` when ``z = 0`` exactly for every input (``weight_hh`` and the z rows of
    ``weight_ih`` all zero, ``expit(b_iz + b_hz) == 0``): ``c~ = n`` every step, so a
    threshold below 0 (a unit firing every step: a ``dense`` bottleneck) is valid."""
    h = params.threshold.shape[0]
    z_rows = (params.weight_hh, params.weight_ih[h : 2 * h])
    if any((w.count_nonzero() if sp.issparse(w) else np.count_nonzero(w)) for w in z_rows):
        return False
    bias = np.asarray(params.bias_ih)[h : 2 * h] + np.asarray(params.bias_hh)[h : 2 * h]
    return bool(np.all(expit(bias) == 0))


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


def recurrent_preactivation(state: EGRUState, params: EGRUParams) -> np.ndarray:
    """``weight_hh @ y_prev + bias_hh``: the part of a step that does not need ``x``."""
    return gate_matvec(params.weight_hh, state.y) + params.bias_hh


def egru_step(
    x: np.ndarray,
    state: EGRUState | None,
    params: EGRUParams,
    *,
    gh: np.ndarray | None = None,
) -> tuple[np.ndarray, EGRUState]:
    """One EGRU step (see module docstring).

    Args:
        x: ``(..., I)`` layer input.
        state: previous :class:`EGRUState`, or ``None`` for zeros (no trace).
        params: the layer's :class:`EGRUParams`.
        gh: ``recurrent_preactivation(state, params)`` computed ahead (e.g. while a
            process waits for ``x``); ``None``: computed here. The result is the same.

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
    if gh is None:
        gh = recurrent_preactivation(state, params)
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


# ----------------------------------------------------------------------------------------
# Quantised EGRU step (int8 weights), the reference the int8 chip formats must equal
# bit-exactly. Documented in docs/quantisation.md.
#
# Weights: symmetric int8 with one float32 scale per output row of the (3H, in) matrix
# ("row") or per gate block of H rows ("gate"); q = clip(rint(w / s), -127, 127) with
# round-half-to-even, -128 unused, so that dequantised weights are q * s. A pruned zero stays
# an exact zero (its q is 0 and it is not stored).
#
# Two product modes, one per kind of chip arithmetic:
#
# * "float" (the Arm core: formats csr-int8, event-int8): the int8 weight is widened to
#   float32 and multiplied by the float32 event; each output row accumulates in float32 in
#   increasing column order (the order a CSR row walk and an ordered column walk both use),
#   then ``acc * s_row + bias``.  The order is part of the definition: it is what makes a
#   simulated PE equal this reference bit for bit.
# * "int8" (the 16 x 4 MAC array: format mac-int8): the input vector is quantised too,
#   ``e = clip(rint(x / s_x), -127, 127)`` with one float32 scale per input vector
#   (``input_scale`` for weight_ih, ``event_scale`` -- the scale of the layer's own events --
#   for weight_hh); int8 x int8 products are accumulated exactly in int32 (the order does not
#   matter), then ``float32(acc) * float32(s_row * s_x) + bias``.  An int32 accumulator cannot
#   overflow while ``in_features * 127 * 127 < 2**31`` (checked).
#
# The point-wise update (gates, threshold, reset) stays float32, as on the Arm core's FPU.
# ----------------------------------------------------------------------------------------

#: Largest magnitude of a symmetric int8 code (-128 is never produced).
INT8_MAX = 127
#: Quantisation granularities of the weight scales.
WEIGHT_GRANULARITIES = ("row", "gate")
#: Product modes of the quantised step.
PRODUCT_MODES = ("float", "int8")


class QuantizedWeight(NamedTuple):
    """An int8 weight matrix with one float32 scale per output row.

    Attributes:
        values: ``(rows, cols)`` scipy CSR matrix with int8 data (only non-zero codes stored).
        scale: ``(rows,)`` float32 scales; the dequantised matrix is ``values * scale[:, None]``.
    """

    values: sp.csr_matrix
    scale: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.values.shape)

    def dequantize(self) -> sp.csr_matrix:
        """float32 CSR of ``q * s`` with the same stored pattern."""
        out = self.values.astype(np.float32)
        out.data *= np.repeat(self.scale, np.diff(out.indptr))
        return out


def weight_scales(w: Matrix, *, granularity: str = "row", hidden_size: int | None = None):
    """float32 scales ``max|w| / 127`` per output row (``"row"``) or per gate block.

    An all-zero row (or block) gets scale 1.0 so that every code stays 0 and no division by
    zero occurs.
    """
    if granularity not in WEIGHT_GRANULARITIES:
        raise ValueError(f"granularity must be one of {WEIGHT_GRANULARITIES}, got {granularity!r}")
    if sp.issparse(w):
        absmax = np.asarray(abs(sp.csr_matrix(w)).max(axis=1).todense()).ravel()
    else:
        absmax = np.max(np.abs(np.asarray(w)), axis=1) if w.shape[1] else np.zeros(w.shape[0])
    absmax = absmax.astype(np.float64)
    if granularity == "gate":
        rows = absmax.shape[0]
        hidden = hidden_size if hidden_size is not None else rows // 3
        if hidden <= 0 or rows % hidden:
            raise ValueError(
                f"gate granularity needs rows divisible by H, got {rows} rows, H={hidden}"
            )
        absmax = np.repeat(absmax.reshape(-1, hidden).max(axis=1), hidden)
    scale = (absmax / INT8_MAX).astype(np.float32)
    scale[scale == 0] = 1.0
    return scale


def quantize_codes(values: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """``clip(rint(values / scale), -127, 127)`` as int8 (round half to even), in float32."""
    v = np.asarray(values, dtype=np.float32) / np.asarray(scale, dtype=np.float32)
    return np.clip(np.rint(v), -INT8_MAX, INT8_MAX).astype(np.int8)


def quantize_weight(
    w: Matrix,
    *,
    granularity: str = "row",
    scale: np.ndarray | None = None,
    hidden_size: int | None = None,
) -> QuantizedWeight:
    """Post-training symmetric int8 quantisation of a weight matrix (zero pattern kept).

    ``scale`` overrides the computed per-row scales (e.g. scales learned during
    quantisation-aware training); it must have one float32 entry per row.
    """
    csr = sp.csr_matrix(w, dtype=np.float32)
    csr.eliminate_zeros()
    if scale is None:
        scale = weight_scales(csr, granularity=granularity, hidden_size=hidden_size)
    scale = np.asarray(scale, dtype=np.float32)
    if scale.shape != (csr.shape[0],):
        raise ValueError(
            f"weight scale has shape {scale.shape}, expected ({csr.shape[0]},): one scale per "
            "output row"
        )
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("weight scales must be finite and > 0")
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    codes = quantize_codes(csr.data, scale[rows])
    q = sp.csr_matrix((codes, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    q.eliminate_zeros()  # a weight that rounds to 0 is not stored
    q.sort_indices()
    return QuantizedWeight(values=q, scale=scale)


def validate_quantized_weight(qw: QuantizedWeight, *, name: str = "weight") -> None:
    """Raise ``ValueError`` naming the problem if ``qw`` is not a valid int8 weight."""
    if not sp.issparse(qw.values) or qw.values.dtype != np.int8:
        raise ValueError(f"{name}: int8 values must be a scipy CSR matrix of dtype int8")
    if qw.values.nnz and int(np.abs(qw.values.data.astype(np.int16)).max()) > INT8_MAX:
        raise ValueError(
            f"{name}: int8 codes must lie in [-{INT8_MAX}, {INT8_MAX}] (symmetric); re-quantise"
        )
    scale = np.asarray(qw.scale)
    if scale.shape != (qw.values.shape[0],):
        raise ValueError(f"{name}: scale has shape {scale.shape}, expected ({qw.values.shape[0]},)")
    if scale.dtype != np.float32 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{name}: scales must be finite positive float32 values")


def quantized_matvec(
    qw: QuantizedWeight, x: np.ndarray, *, x_scale: float | None = None
) -> np.ndarray:
    """``x @ dequant(qw).T`` computed as the chip does (float32 result, shape ``(..., rows)``).

    ``x_scale=None``: "float" mode (int8 weight x float32 input, float32 row accumulation in
    column order).  A number: "int8" mode (the input is quantised with that scale and the
    products accumulate exactly in int32).
    """
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-1])
    if x_scale is None:
        acc = np.asarray(qw.values.astype(np.float32) @ flat.T).T  # scipy: row walk, col order
        out = acc * qw.scale
    else:
        cols = qw.values.shape[1]
        if cols * INT8_MAX * INT8_MAX >= 2**31:
            raise ValueError(f"{cols} input columns could overflow an int32 accumulator")
        codes = quantize_codes(flat, x_scale).astype(np.int32)
        acc = np.asarray(qw.values.astype(np.int32) @ codes.T).T
        combined = (qw.scale * np.float32(x_scale)).astype(np.float32)
        out = acc.astype(np.float32) * combined
    return out.astype(np.float32, copy=False).reshape(*x.shape[:-1], qw.values.shape[0])


class QuantizedEGRUParams(NamedTuple):
    """One int8-weight EGRU layer (biases, thresholds and state stay float32).

    Attributes:
        weight_ih / weight_hh: :class:`QuantizedWeight` in nn.GRU layout (r, z, n).
        bias_ih / bias_hh / threshold: float32 as in :class:`EGRUParams`.
        input_scale: scale of this layer's input vector in "int8" mode (None: "float" mode).
        event_scale: scale of this layer's own events ``y`` in "int8" mode (None: "float").
        state_levels: optional sorted float32 level table ``(L,)`` of the stored cell state:
            after the reset, ``c`` is replaced by its nearest level (:func:`quantize_state`;
            ``None``: float32 state).
    """

    weight_ih: QuantizedWeight
    weight_hh: QuantizedWeight
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    threshold: np.ndarray
    input_scale: float | None = None
    event_scale: float | None = None
    state_levels: np.ndarray | None = None

    @property
    def hidden_size(self) -> int:
        return int(self.threshold.shape[0])

    @property
    def input_size(self) -> int:
        return int(self.weight_ih.values.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """float32: the dtype of inputs, state and events of a quantised layer."""
        return np.dtype(np.float32)

    @property
    def product_mode(self) -> str:
        return "float" if self.input_scale is None else "int8"

    def dequantize(self) -> EGRUParams:
        """The float32 layer whose weights are exactly ``q * s`` (for float backends)."""
        return EGRUParams(
            weight_ih=self.weight_ih.dequantize(),
            weight_hh=self.weight_hh.dequantize(),
            bias_ih=np.asarray(self.bias_ih, dtype=np.float32),
            bias_hh=np.asarray(self.bias_hh, dtype=np.float32),
            threshold=np.asarray(self.threshold, dtype=np.float32),
        )


def quantize_params(
    params: EGRUParams,
    *,
    granularity: str = "row",
    input_scale: float | None = None,
    event_scale: float | None = None,
    state_levels: np.ndarray | None = None,
) -> QuantizedEGRUParams:
    """Post-training quantisation of one float layer (give both scales for "int8" mode;
    ``state_levels`` from :func:`state_levels` quantises the stored cell state)."""
    if (input_scale is None) != (event_scale is None):
        raise ValueError("give both input_scale and event_scale (int8 mode) or neither (float)")
    h = params.hidden_size
    return QuantizedEGRUParams(
        weight_ih=quantize_weight(params.weight_ih, granularity=granularity, hidden_size=h),
        weight_hh=quantize_weight(params.weight_hh, granularity=granularity, hidden_size=h),
        bias_ih=np.asarray(params.bias_ih, dtype=np.float32),
        bias_hh=np.asarray(params.bias_hh, dtype=np.float32),
        threshold=np.asarray(params.threshold, dtype=np.float32),
        input_scale=None if input_scale is None else float(np.float32(input_scale)),
        event_scale=None if event_scale is None else float(np.float32(event_scale)),
        state_levels=None if state_levels is None else np.asarray(state_levels, np.float32),
    )


def validate_quantized_params(params: QuantizedEGRUParams, *, name: str = "layer") -> None:
    """Raise ``ValueError`` naming the problem if ``params`` is not a valid int8 layer."""
    h = params.hidden_size
    validate_quantized_weight(params.weight_ih, name=f"{name}: weight_ih")
    validate_quantized_weight(params.weight_hh, name=f"{name}: weight_hh")
    if params.weight_ih.shape[0] != 3 * h or params.weight_hh.shape != (3 * h, h):
        raise ValueError(
            f"{name}: weight shapes {params.weight_ih.shape} / {params.weight_hh.shape} do not "
            f"match H={h} (expected (3H, I) and (3H, H))"
        )
    for field in ("bias_ih", "bias_hh"):
        if np.shape(getattr(params, field)) != (3 * h,):
            raise ValueError(f"{name}: {field} must have shape ({3 * h},)")
    if (params.input_scale is None) != (params.event_scale is None):
        raise ValueError(f"{name}: input_scale and event_scale must both be set or both None")
    for field in ("input_scale", "event_scale"):
        s = getattr(params, field)
        if s is not None and not (np.isfinite(s) and s > 0):
            raise ValueError(f"{name}: {field} must be finite and > 0, got {s}")
    if params.state_levels is not None:
        validate_state_levels(params.state_levels, name=f"{name}: state_levels")


def quantized_egru_step(
    x: np.ndarray, state: EGRUState | None, params: QuantizedEGRUParams
) -> tuple[np.ndarray, EGRUState]:
    """One EGRU step with int8 weights (products as in the module section above)."""
    x = _as_dtype(x, np.dtype(np.float32), "x")
    if x.shape[-1] != params.input_size:
        raise ValueError(
            f"input has {x.shape[-1]} features, the layer expects input_size={params.input_size}"
        )
    if state is None:
        state = init_state(params.hidden_size, x.shape[:-1], dtype=np.float32)
    gi = quantized_matvec(params.weight_ih, x, x_scale=params.input_scale) + params.bias_ih
    gh = quantized_matvec(params.weight_hh, state.y, x_scale=params.event_scale) + params.bias_hh
    y, c, _ = egru_pointwise(gi, gh, state.c, params.threshold)
    if params.state_levels is not None:
        c = quantize_state(c, params.state_levels)
    trace = None
    if state.trace is not None:
        trace = (TRACE_DECAY * state.trace + (1 - TRACE_DECAY) * y).astype(np.float32)
    return y, EGRUState(c=c, y=y, trace=trace)


# ----------------------------------------------------------------------------------------
# Optional quantisation of the stored cell state (snnTorch's ``state_quant`` levels).
#
# After the reset, ``c`` is replaced by the nearest entry of a sorted float32 level table;
# a value exactly half-way between two levels goes to the lower one. The midpoints are
# ``(l[i] + l[i+1]) * 0.5`` in float32, so every backend that computes them so and compares
# with ``<=`` picks the same level. The tables are snnTorch's
# (``snntorch.functional.quant.state_quant``): ``uniform`` (``2**num_bits`` evenly spaced
# levels) or, with ``uniform=False, thr_centered=True``, exponentially spaced levels that
# are densest at the threshold.
# ----------------------------------------------------------------------------------------


def state_levels(
    num_bits: int = 8,
    *,
    uniform: bool = True,
    thr_centered: bool = True,
    threshold: float = 1.0,
    lower_limit: float = 0.0,
    upper_limit: float = 0.2,
    multiplier: float | None = None,
) -> np.ndarray:
    """The level table of ``snntorch.functional.quant.state_quant`` with the same arguments.

    Levels span ``[-threshold * (1 + lower_limit), threshold * (1 + upper_limit)]``;
    ``2**num_bits`` of them (``uniform``), or snnTorch's exponential spacing (densest at the
    threshold with ``thr_centered``, at 0 without). Returned sorted, float32, with
    duplicates removed (the exponential increments underflow for many bits).
    """
    if not (isinstance(num_bits, int) and 1 <= num_bits <= 16):
        raise ValueError(f"num_bits must be an int in [1, 16], got {num_bits!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    num_levels = 2 << num_bits - 1
    max_val = threshold + threshold * upper_limit
    min_val = -(threshold + threshold * lower_limit)
    if not max_val > min_val:
        raise ValueError(f"empty level range [{min_val}, {max_val}]")
    if uniform:
        levels = np.linspace(min_val, max_val, num_levels)
    else:
        if multiplier is None:
            multiplier = {1: 0.05, 2: 0.1, 3: 0.3, 4: 0.5, 5: 0.7, 6: 0.9, 7: 0.925}.get(
                num_bits, 0.95
            )
        centre = threshold if thr_centered else 0.0
        if not min_val < centre < max_val:
            raise ValueError(
                f"the centre {centre} must lie inside the level range [{min_val}, {max_val}]"
            )
        overall = max_val - min_val
        lower_range, upper_range = centre - min_val, max_val - centre
        lower_bits = math.floor(num_levels * (lower_range / overall))
        upper_bits = num_levels - lower_bits
        values: list[float] = []
        if lower_bits:  # same float arithmetic, in the same order, as snnTorch
            total = 0.0
            for j in reversed(range(lower_bits)):
                total += multiplier**j
            room = total / lower_range
            acc = min_val
            for j in range(lower_bits):
                values.append(acc)
                acc += multiplier**j / room
        if upper_bits:
            total = 0.0
            for j in reversed(range(upper_bits)):
                total += multiplier**j
            room = total / upper_range
            acc = centre
            for j in reversed(range(upper_bits)):
                acc += multiplier**j / room
                values.append(acc)
        levels = np.array(values)
    return np.unique(levels.astype(np.float32))


def validate_state_levels(levels: np.ndarray, *, name: str = "state_levels") -> None:
    """Raise ``ValueError`` unless ``levels`` is a strictly increasing finite float32 table."""
    levels = np.asarray(levels)
    if levels.ndim != 1 or not 2 <= levels.shape[0] <= 2**16:
        raise ValueError(f"{name} must be a 1-D table of 2..65536 levels, got {levels.shape}")
    if levels.dtype != np.float32 or not np.all(np.isfinite(levels)):
        raise ValueError(f"{name} must hold finite float32 values")
    if np.any(np.diff(levels) <= 0):
        raise ValueError(f"{name} must be strictly increasing (sort and de-duplicate it)")


def quantize_state(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Nearest level of ``levels`` for every entry of ``values`` (ties to the lower level)."""
    levels = np.asarray(levels, dtype=np.float32)
    mids = (levels[:-1] + levels[1:]) * np.float32(0.5)
    index = np.searchsorted(mids, np.asarray(values, dtype=np.float32), side="left")
    return levels[index]
