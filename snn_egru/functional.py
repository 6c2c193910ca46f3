"""The EGRU step in PyTorch: the surrogate spike function and a pure step function.

This is the differentiable twin of :func:`snn_egru.reference.egru_step` (numpy). One step of
one layer, parameters in ``torch.nn.GRU`` layout and gate order ``(r, z, n)``
(``docs/egru.md``)::

    gi  = x_t @ weight_ih.T + bias_ih             -> (gi_r, gi_z, gi_n)
    gh  = y_{t-1} @ weight_hh.T + bias_hh         -> (gh_r, gh_z, gh_n)   recurrent input is y
    r   = sigmoid(gi_r + gh_r)
    z   = sigmoid(gi_z + gh_z)
    n   = tanh(gi_n + r * gh_n)                    "reset after" the matmul (nn.GRU, cuDNN)
    c~  = z * c_{t-1} + (1 - z) * n                z weights the OLD state
    o   = H(c~ - theta)                            H(v) = 1 if v > 0 else 0, H(0) = 0
    y_t = o * c~                                   graded event
    c_t = c~ - o * theta                           reset by subtraction, in the same step

Gradients: ``H`` is replaced in the backward pass by a pseudo-derivative (surrogate
gradient); the default is the EGRU triangle
``dH/dv = dampening * max(0, 1 - support * |v|)`` (:class:`EGRUSpike`). The reset term
``o * theta`` is NOT detached: ``theta`` receives gradient from the event (through ``v``) and
from the reset, and ``c~`` from both as well.

Any snnTorch surrogate (``snntorch.surrogate.fast_sigmoid()``, ``atan()``, ...) can be used as
``spike_fn``: a callable ``v -> spikes`` whose forward is ``H(v)`` (``v > 0``).

Contents: :func:`egru_step_torch` (one step, autograd through every operation);
:func:`egru_layer_loop` (a whole layer's time loop with a hand-written backward, used by
:class:`snn_egru.sequence.EGRUSequence` for training); :func:`event_driven_recurrent` (the
recurrent product from the active units only, for inference); the spike functions
:class:`EGRUSpike` / :func:`triangle`; the typed tuples :class:`EGRUCellState`,
:class:`EGRUStepOutput`, :class:`EGRUTensorParams`; input/parameter checks shared by the
modules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_DAMPENING",
    "DEFAULT_SUPPORT",
    "EVENT_AMPLITUDES",
    "EGRUCellState",
    "EGRULayerLoop",
    "EGRUSpike",
    "EGRUStepOutput",
    "EGRUTensorParams",
    "SpikeFn",
    "TriangleSurrogate",
    "candidate_state",
    "check_finite_tensors",
    "check_input_tensor",
    "egru_layer_loop",
    "egru_pointwise_torch",
    "egru_step_torch",
    "event_amplitude",
    "event_driven_recurrent",
    "fire_and_reset",
    "heaviside_no_grad",
    "pseudo_derivative",
    "triangle",
]

#: Default dampening factor of the triangle pseudo-derivative (EvNN default).
DEFAULT_DAMPENING = 0.7
#: Default support of the triangle pseudo-derivative (EvNN default); the LM recipe uses 3.6.
DEFAULT_SUPPORT = 1.0

#: How the surrogate gradient of a graded event ``y = o * c~`` is formed (``TriangleSurrogate``'s
#: ``amplitude``): ``"state"``, the product rule, ``dy/dv = c~ * dH/dv`` (EvNN, the default);
#: ``"clamped"``, ``dy/dv = max(c~, theta) * dH/dv``: never of the wrong sign below zero.
EVENT_AMPLITUDES: tuple[str, ...] = ("state", "clamped")

#: A spike function: ``v -> H(v)`` with some surrogate gradient (snnTorch's convention).
SpikeFn = Callable[[Tensor], Tensor]


class EGRUCellState(NamedTuple):
    """State of one EGRU layer carried from one step to the next.

    Attributes:
        y: ``(B, H)`` (or ``(H,)``) graded events of the last step (zero where no event).
        c: ``(B, H)`` (or ``(H,)``) cell state after the reset.
    """

    y: Tensor
    c: Tensor


class EGRUTensorParams(NamedTuple):
    """Effective parameters of one EGRU layer as tensors (``nn.GRU`` layout, gates r, z, n).

    Attributes:
        weight_ih: ``(3H, I)``.
        weight_hh: ``(3H, H)``.
        bias_ih: ``(3H,)``.
        bias_hh: ``(3H,)``.
        threshold: ``(H,)`` effective thresholds ``theta`` (whatever their parametrisation).
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor
    threshold: Tensor


class EGRUStepOutput(NamedTuple):
    """Result of one EGRU step.

    Attributes:
        y: ``(B, H)`` graded events ``o * c~``.
        c: ``(B, H)`` cell state after the reset ``c~ - o * theta``.
        o: ``(B, H)`` event indicator ``H(c~ - theta)`` (0/1, carries the surrogate gradient).
    """

    y: Tensor
    c: Tensor
    o: Tensor


def pseudo_derivative(
    v: Tensor, dampening: float = DEFAULT_DAMPENING, support: float = DEFAULT_SUPPORT
) -> Tensor:
    """The EGRU triangle pseudo-derivative ``dampening * max(0, 1 - support * |v|)``.

    Its integral over ``v`` is ``dampening / support`` (1 for the LM recipe 3.6/3.6).
    """
    return dampening * torch.clamp(1.0 - support * v.abs(), min=0.0)


class EGRUSpike(torch.autograd.Function):
    """Heaviside step with the EGRU triangle surrogate gradient.

    Forward: ``H(v) = 1 if v > 0 else 0`` (``H(0) = 0``), in the dtype of ``v``.

    Backward: ``dL/dv = dL/dH * dampening * max(0, 1 - support * |v|)``.

    Call as ``EGRUSpike.apply(v, dampening, support)``; :func:`triangle` wraps it in
    snnTorch's surrogate style.
    """

    @staticmethod
    def forward(ctx, v: Tensor, dampening: float, support: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.dampening = float(dampening)
        ctx.support = float(support)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad_output * pseudo_derivative(v, ctx.dampening, ctx.support), None, None


class TriangleSurrogate:
    """Spike function ``v -> H(v)`` with the EGRU triangle pseudo-derivative.

    A picklable callable in snnTorch's surrogate style (``spike_grad=triangle()``).

    Args:
        dampening: height of the triangle at ``v = 0`` (``> 0``).
        support: inverse half-width: the pseudo-derivative is zero for ``|v| >= 1/support``
            (``> 0``).
        amplitude: how the layer forms the gradient of its graded event ``y = o * c~``
            through ``o`` (:data:`EVENT_AMPLITUDES`). ``"state"`` (default, EvNN): the product
            rule, ``dy/dv = c~ * dH/dv``, which has the wrong sign for a unit whose state is
            below zero (it says: lower the state to get a larger event). ``"clamped"``:
            ``dy/dv = max(c~, theta) * dH/dv``, the same at and above the threshold, the
            height ``theta`` of the jump below it. The forward pass is the same for both.
    """

    def __init__(
        self,
        dampening: float = DEFAULT_DAMPENING,
        support: float = DEFAULT_SUPPORT,
        amplitude: str = "state",
    ):
        if not dampening > 0:
            raise ValueError(f"dampening must be > 0, got {dampening}")
        if not support > 0:
            raise ValueError(f"support must be > 0, got {support}")
        if amplitude not in EVENT_AMPLITUDES:
            raise ValueError(
                f"amplitude must be one of {', '.join(EVENT_AMPLITUDES)}, got {amplitude!r}"
            )
        self.dampening = float(dampening)
        self.support = float(support)
        self.amplitude = amplitude

    def __setstate__(self, state: dict) -> None:  # pickles from before ``amplitude``
        self.__dict__.update({"amplitude": "state", **state})

    def __call__(self, v: Tensor) -> Tensor:
        return EGRUSpike.apply(v, self.dampening, self.support)

    def __repr__(self) -> str:
        extra = "" if self.amplitude == "state" else f", amplitude={self.amplitude!r}"
        return f"triangle(dampening={self.dampening}, support={self.support}{extra})"


def triangle(
    dampening: float = DEFAULT_DAMPENING, support: float = DEFAULT_SUPPORT, amplitude: str = "state"
) -> TriangleSurrogate:
    """EGRU triangle surrogate, snnTorch style: ``spike_grad = triangle(3.6, 3.6)``.

    Returns a callable ``v -> H(v)`` whose backward is
    ``dampening * max(0, 1 - support * |v|)``; ``amplitude`` (:class:`TriangleSurrogate`)
    chooses how the graded event's gradient is formed.
    """
    return TriangleSurrogate(dampening, support, amplitude)


def event_amplitude(spike_fn: SpikeFn) -> str:
    """The :data:`EVENT_AMPLITUDES` entry of a spike function (``"state"`` unless it says)."""
    return getattr(spike_fn, "amplitude", "state")


class _ClampedEvent(torch.autograd.Function):
    """``y = o * c~`` whose gradient through ``o`` is ``max(c~, theta)`` instead of ``c~``."""

    @staticmethod
    def forward(ctx, o: Tensor, c_tilde: Tensor, threshold: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(o, torch.maximum(c_tilde, threshold))
        return o * c_tilde

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        o, amplitude = ctx.saved_tensors
        return grad_y * amplitude, grad_y * o, None


def heaviside_no_grad(v: Tensor) -> Tensor:
    """``H(v)`` with zero gradient (snnTorch's ``surrogate_disable=True``)."""
    return (v > 0).to(v.dtype).detach()


def candidate_state(gi: Tensor, gh: Tensor, c_prev: Tensor) -> Tensor:
    """The GRU part of the step: ``c~ = z * c_prev + (1 - z) * n``.

    Args:
        gi: ``(..., 3H)`` ``x @ weight_ih.T + bias_ih``.
        gh: ``(..., 3H)`` ``y_prev @ weight_hh.T + bias_hh``.
        c_prev: ``(..., H)`` previous cell state.

    Returns:
        ``(..., H)`` candidate cell state ``c~`` (before the event and the reset).
    """
    hidden = c_prev.shape[-1]
    rz = torch.sigmoid(gi[..., : 2 * hidden] + gh[..., : 2 * hidden])
    r, z = rz[..., :hidden], rz[..., hidden:]
    n = torch.tanh(gi[..., 2 * hidden :] + r * gh[..., 2 * hidden :])
    return z * c_prev + (1 - z) * n


def fire_and_reset(c_tilde: Tensor, threshold: Tensor, spike_fn: SpikeFn) -> EGRUStepOutput:
    """Event and reset: ``o = H(c~ - theta)``, ``y = o * c~``, ``c = c~ - o * theta``.

    With a spike function of ``amplitude="clamped"`` (:class:`TriangleSurrogate`) the event's
    gradient through ``o`` is ``max(c~, theta)`` instead of ``c~``; the values are the same.

    The reset is differentiable (not detached). ``spike_fn``'s output is cast to the dtype of
    ``c_tilde`` (snnTorch surrogates return float32).
    """
    o = spike_fn(c_tilde - threshold)
    if o.dtype != c_tilde.dtype:
        o = o.to(c_tilde.dtype)
    if event_amplitude(spike_fn) == "clamped":
        y = _ClampedEvent.apply(o, c_tilde, threshold.to(c_tilde.dtype))
    else:
        y = o * c_tilde
    return EGRUStepOutput(y=y, c=c_tilde - o * threshold, o=o)


def egru_pointwise_torch(
    gi: Tensor, gh: Tensor, c_prev: Tensor, threshold: Tensor, spike_fn: SpikeFn | None = None
) -> EGRUStepOutput:
    """The point-wise part of the step given both gate pre-activations (biases included).

    Torch twin of :func:`snn_egru.reference.egru_pointwise`; ``spike_fn`` defaults to
    :func:`triangle` with the default dampening/support.
    """
    spike_fn = _default_spike_fn if spike_fn is None else spike_fn
    return fire_and_reset(candidate_state(gi, gh, c_prev), threshold, spike_fn)


_default_spike_fn = TriangleSurrogate()


def egru_step_torch(
    x: Tensor,
    state_y: Tensor,
    state_c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
    threshold: Tensor,
    *,
    spike_fn: SpikeFn | None = None,
) -> EGRUStepOutput:
    """One EGRU step (module docstring), differentiable in every argument.

    Args:
        x: ``(B, I)`` or ``(I,)`` input.
        state_y: ``(B, H)`` previous events ``y_{t-1}``.
        state_c: ``(B, H)`` previous cell state ``c_{t-1}``.
        weight_ih: ``(3H, I)`` input weights, gate order (r, z, n).
        weight_hh: ``(3H, H)`` recurrent weights (applied to ``y``).
        bias_ih: ``(3H,)`` input bias.
        bias_hh: ``(3H,)`` recurrent bias (inside the reset-gate product for ``n``).
        threshold: ``(H,)`` per-unit thresholds ``theta``.
        spike_fn: ``v -> H(v)`` with a surrogate gradient; default :func:`triangle` ().

    Returns:
        :class:`EGRUStepOutput` ``(y, c, o)``, each ``(B, H)``.

    This function does not validate shapes (it is the inner loop); the modules
    :class:`snn_egru.neuron.EGRU` and :class:`snn_egru.sequence.EGRUSequence` do.
    """
    gi = torch.nn.functional.linear(x, weight_ih, bias_ih)
    gh = torch.nn.functional.linear(state_y, weight_hh, bias_hh)
    return egru_pointwise_torch(gi, gh, state_c, threshold, spike_fn)


def check_input_tensor(
    x: Tensor, *, input_size: int, dtype: torch.dtype, ndims: tuple[int, ...], name: str
) -> None:
    """Raise a clear error if ``x`` is not a finite floating tensor of the expected form.

    Args:
        x: the tensor to check.
        input_size: expected size of the last dimension (features).
        dtype: the floating-point type of the module's parameters.
        ndims: accepted numbers of dimensions.
        name: how the error message calls the module.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: input must be floating point, got dtype {x.dtype} (convert with .to({dtype}))"
        )
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):  # autocast mixes
        raise TypeError(
            f"{name}: input dtype {x.dtype} differs from the parameters' dtype {dtype} "
            f"(convert the input with .to({dtype}) or the module with .to({x.dtype}))"
        )
    if x.ndim not in ndims:
        raise ValueError(
            f"{name}: input must have {' or '.join(map(str, ndims))} dimensions, "
            f"got shape {tuple(x.shape)}{_flatten_hint(x, input_size, max(ndims))}"
        )
    if x.shape[-1] != input_size:
        raise ValueError(
            f"{name}: input has {x.shape[-1]} features (last dimension), "
            f"the layer expects input_size={input_size}"
        )
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: input contains NaN or infinite values")


def _flatten_hint(x: Tensor, input_size: int, max_ndim: int) -> str:
    """The fix for an input with too many dimensions (e.g. a ``Conv2d``'s ``(B, C, H, W)``):
    an ``nn.Flatten`` before the layer, and the feature size it produces."""
    if x.ndim <= max_ndim:
        return ""
    lead = max_ndim - 1  # dimensions kept: (B,) for one step, (T, B) for a sequence
    features = math.prod(x.shape[lead:])
    flatten = "nn.Flatten()" if lead == 1 else f"nn.Flatten(start_dim={lead})"
    fit = (
        "matches this layer's input_size"
        if features == input_size
        else f"so build the layer with input_size={features} (it has input_size={input_size})"
    )
    return (
        f"; after a Conv2d/Conv1d put {flatten} before it: that gives "
        f"{tuple(x.shape[:lead]) + (features,)}, {features} features, {fit}"
    )


#: Where the warning of :func:`warn_silent_layer` sends the user.
SILENT_LAYER_FIX = (
    "for an output layer lower the thresholds (e.g. EGRU(..., threshold_mean=0.05)) or "
    "train on the cell state c / a Linear readout of a hidden layer's events; see "
    "docs/ecosystems.md, 'EGRU as the output layer'"
)


def warn_silent_layer(name: str, units: int, threshold: Tensor) -> None:
    """Warn (``RuntimeWarning``) that a layer sent no event during a whole training batch.

    The caller warns once per layer: it keeps its own flag.
    """
    theta = threshold.detach()
    warnings.warn(
        f"{name} ({units} units) sent no event during a whole training batch (thresholds: "
        f"mean {float(theta.mean()):.3g}, min {float(theta.min()):.3g}): no gradient reaches "
        f"it through its events, so a rate/count loss on them cannot train it; "
        f"{SILENT_LAYER_FIX}. (Warned once for this layer.)",
        RuntimeWarning,
        stacklevel=3,
    )


def check_finite_tensors(named: dict[str, Tensor], *, name: str) -> None:
    """Raise ``ValueError`` naming the first tensor of ``named`` that has NaN/inf values."""
    for key, value in named.items():
        if not bool(torch.isfinite(value.detach()).all()):
            raise ValueError(
                f"{name}: parameter {key} contains NaN or infinite values "
                "(diverged training? lower the learning rate or clip gradients)"
            )


# ----------------------------------------------------------------------------- whole layer
def _spike_forward(v: Tensor, spike_fn: SpikeFn) -> Tensor:
    if isinstance(spike_fn, TriangleSurrogate):
        return (v > 0).to(v.dtype)
    o = spike_fn(v)
    return o if o.dtype == v.dtype else o.to(v.dtype)


def _spike_backward(v: Tensor, grad_o: Tensor, spike_fn: SpikeFn) -> Tensor:
    """``grad_o * dS/dv`` for the spike function's surrogate derivative at ``v``."""
    if isinstance(spike_fn, TriangleSurrogate):
        return grad_o * pseudo_derivative(v, spike_fn.dampening, spike_fn.support)
    with torch.enable_grad():
        leaf = v.detach().requires_grad_(True)
        o = spike_fn(leaf)
        if not o.requires_grad:  # e.g. heaviside_no_grad: no surrogate
            return torch.zeros_like(v)
        (grad_v,) = torch.autograd.grad(o, leaf, grad_outputs=grad_o.to(o.dtype))
    return grad_v.to(v.dtype)


def recurrent_parameter_grads(
    need: tuple[bool, ...], d_gh: torch.Tensor, y0: torch.Tensor, ys: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``weight_hh`` and ``bias_hh`` of a whole-layer backward, one product each.

    ``d_gh`` is ``(T, B, 3H)``, ``y0`` the initial events ``(B, H)``, ``ys`` the layer's events
    ``(T, B, H)``; ``need`` is ``ctx.needs_input_grad`` with the weight at index 3 and the
    bias at index 4 (the layout of :class:`EGRULayerLoop` and the compiled loop).
    """
    steps, batch, hidden = ys.shape
    d_weight = d_bias = None
    if need[3]:
        y_prev = torch.cat([y0.unsqueeze(0), ys[:-1]], dim=0).reshape(steps * batch, hidden)
        d_weight = d_gh.reshape(steps * batch, 3 * hidden).t() @ y_prev
    if need[4]:
        d_bias = d_gh.sum(dim=(0, 1))
    return d_weight, d_bias


class EGRULayerLoop(torch.autograd.Function):
    """The time loop of one EGRU layer with a hand-written backward pass (BPTT).

    Forward: for ``t = 0..T-1`` the step of the module docstring, given the precomputed input
    projections ``gi[t] = x_t @ weight_ih.T + bias_ih``, with optional zoneout on ``c~``
    (training: ``c~ <- c_{t-1}`` where ``keep_mask``; evaluation: ``c~ <- p c_{t-1} +
    (1 - p) c~``). Backward: the exact derivative of that forward with ``dH/dv`` replaced by
    the spike function's surrogate, accumulated as autograd would (the reset is not
    detached), but with ``dW_hh`` and ``db_hh`` as one matrix product over all steps and
    without per-operation autograd bookkeeping.

    Use :func:`egru_layer_loop`.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        gi: Tensor,
        y0: Tensor,
        c0: Tensor,
        weight_hh: Tensor,
        bias_hh: Tensor,
        threshold: Tensor,
        keep_mask: Tensor | None,
        zoneout_eval: float,
        spike_fn: SpikeFn,
    ) -> tuple[Tensor, Tensor]:
        steps, batch, _ = gi.shape
        hidden = c0.shape[-1]
        h2 = 2 * hidden
        w_t = weight_hh.t()
        ys = gi.new_empty(steps, batch, hidden)
        c_prev_all = gi.new_empty(steps, batch, hidden)
        gates = gi.new_empty(steps, batch, 3 * hidden)  # r, z, n
        gh_n_all = gi.new_empty(steps, batch, hidden)
        c_tilde_all = gi.new_empty(steps, batch, hidden)
        o_all = gi.new_empty(steps, batch, hidden)
        y, c = y0, c0
        for t in range(steps):
            c_prev_all[t] = c
            gh = torch.addmm(bias_hh, y, w_t)
            gate = gates[t]
            torch.sigmoid(gi[t, :, :h2] + gh[:, :h2], out=gate[:, :h2])
            r, z = gate[:, :hidden], gate[:, hidden:h2]
            gh_n_all[t] = gh[:, h2:]
            torch.tanh(torch.addcmul(gi[t, :, h2:], r, gh[:, h2:]), out=gate[:, h2:])
            n = gate[:, h2:]
            c_tilde = z * c + (1 - z) * n
            if keep_mask is not None:
                c_tilde = torch.where(keep_mask[t], c, c_tilde)
            elif zoneout_eval:
                c_tilde = zoneout_eval * c + (1.0 - zoneout_eval) * c_tilde
            o = _spike_forward(c_tilde - threshold, spike_fn)
            c_tilde_all[t] = c_tilde
            o_all[t] = o
            y = torch.mul(o, c_tilde, out=ys[t])
            c = c_tilde - o * threshold
        ctx.save_for_backward(
            y0, weight_hh, threshold, gates, gh_n_all, c_prev_all, c_tilde_all, o_all, ys
        )
        ctx.keep_mask = keep_mask
        ctx.zoneout_eval = zoneout_eval
        ctx.spike_fn = spike_fn
        return ys, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ys: Tensor | None, grad_c_last: Tensor | None):  # type: ignore[override]
        (y0, weight_hh, threshold, gates, gh_n_all, c_prev_all, c_tilde_all, o_all, ys) = (
            ctx.saved_tensors
        )
        keep_mask, p_eval, spike_fn = ctx.keep_mask, ctx.zoneout_eval, ctx.spike_fn
        clamped = event_amplitude(spike_fn) == "clamped"
        steps, batch, hidden = ys.shape
        h2 = 2 * hidden
        if grad_ys is None:
            grad_ys = torch.zeros_like(ys)
        dc = torch.zeros_like(y0) if grad_c_last is None else grad_c_last
        dy_rec = torch.zeros_like(y0)  # dL/dy_t through step t+1's recurrent product
        d_gi = gates.new_empty(steps, batch, 3 * hidden)
        d_gh = gates.new_empty(steps, batch, 3 * hidden)
        d_theta = torch.zeros_like(threshold)
        for t in range(steps - 1, -1, -1):
            dy = grad_ys[t] + dy_rec
            c_tilde, o = c_tilde_all[t], o_all[t]
            # y = o c~, c = c~ - o theta, o = H(c~ - theta)
            amplitude = torch.maximum(c_tilde, threshold) if clamped else c_tilde
            dv = _spike_backward(c_tilde - threshold, dy * amplitude - dc * threshold, spike_fn)
            d_c_tilde = dy * o + dc + dv
            d_theta -= (dc * o + dv).sum(0)
            c_prev = c_prev_all[t]
            if keep_mask is not None:
                d_cand = torch.where(keep_mask[t], 0.0, d_c_tilde)
                dc_prev = torch.where(keep_mask[t], d_c_tilde, 0.0)
            elif p_eval:
                d_cand = (1.0 - p_eval) * d_c_tilde
                dc_prev = p_eval * d_c_tilde
            else:
                d_cand = d_c_tilde
                dc_prev = None
            gate = gates[t]
            r, z, n = gate[:, :hidden], gate[:, hidden:h2], gate[:, h2:]
            # c~ = z c_prev + (1 - z) n
            dc_from_z = d_cand * z
            dc = dc_from_z if dc_prev is None else dc_prev + dc_from_z
            d_a_n = d_cand * (1 - z) * (1 - n * n)
            d_gi[t, :, hidden:h2] = d_cand * (c_prev - n) * z * (1 - z)
            d_gi[t, :, :hidden] = d_a_n * gh_n_all[t] * r * (1 - r)
            d_gi[t, :, h2:] = d_a_n
            d_gh[t, :, :h2] = d_gi[t, :, :h2]
            d_gh[t, :, h2:] = d_a_n * r
            dy_rec = d_gh[t] @ weight_hh
        need = ctx.needs_input_grad
        d_weight, d_bias = recurrent_parameter_grads(need, d_gh, y0, ys)
        return (
            d_gi if need[0] else None,
            dy_rec if need[1] else None,
            dc if need[2] else None,
            d_weight,
            d_bias,
            d_theta if need[5] else None,
            None,
            None,
            None,
        )


def egru_layer_loop(
    gi: Tensor,
    y0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor,
    threshold: Tensor,
    *,
    spike_fn: SpikeFn | None = None,
    keep_mask: Tensor | None = None,
    zoneout_eval: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Run one layer over ``T`` steps with a fused, hand-written backward (training path).

    Args:
        gi: ``(T, B, 3H)`` input projections ``x_t @ weight_ih.T + bias_ih``.
        y0, c0: ``(B, H)`` initial events and cell state.
        weight_hh: ``(3H, H)`` (after DropConnect, if any).
        bias_hh: ``(3H,)``.
        threshold: ``(H,)`` effective thresholds.
        spike_fn: spike function (default :func:`triangle` ()); its surrogate gives
            ``dH/dv`` in the backward pass.
        keep_mask: ``(T, B, H)`` bool zoneout mask (training): ``True`` keeps ``c_{t-1}``.
        zoneout_eval: zoneout probability ``p`` for evaluation-mode mixing (0 = none).

    Returns:
        ``(ys, c_T)``: events ``(T, B, H)`` and the last cell state ``(B, H)``; the last
        events are ``ys[-1]``. Gradients flow to ``gi``, ``y0``, ``c0``, ``weight_hh``,
        ``bias_hh`` and ``threshold``; the result equals the step-by-step autograd graph of
        :func:`egru_step_torch` (tests check it).
    """
    if gi.shape[0] == 0:
        return gi.new_zeros(0, *c0.shape), c0
    spike_fn = _default_spike_fn if spike_fn is None else spike_fn
    return EGRULayerLoop.apply(
        gi, y0, c0, weight_hh, bias_hh, threshold, keep_mask, float(zoneout_eval), spike_fn
    )


def event_driven_recurrent(
    y: Tensor, weight_hh_t: Tensor, bias_hh: Tensor, *, max_active_fraction: float = 0.5
) -> Tensor:
    """``y @ weight_hh.T + bias_hh`` reading only the rows of ``weight_hh.T`` of active units.

    Each sample ``b`` sums the rows ``weight_hh.T[j]`` of its units ``j`` with ``y[b, j] != 0``,
    weighted by ``y[b, j]`` (``embedding_bag`` in ``"sum"`` mode: the event-driven
    accumulation of the hardware; the gathered rows are never materialised). When more than
    ``max_active_fraction`` of all ``B * H`` entries are active the dense product is used.
    No gradient (inference only).

    Args:
        y: ``(B, H)`` events of the previous step.
        weight_hh_t: ``(H, 3H)`` contiguous ``weight_hh.T`` (row ``j`` = fan-out of unit ``j``).
        bias_hh: ``(3H,)``.
    """
    batch, hidden = y.shape
    index = y.nonzero()
    n_events = index.shape[0]
    if n_events == 0:
        return bias_hh.expand(batch, -1).clone()
    if n_events > max_active_fraction * batch * hidden:
        return torch.addmm(bias_hh, y, weight_hh_t)
    rows, units = index[:, 0], index[:, 1]
    if batch == 1:
        offsets = torch.zeros(1, dtype=torch.long, device=y.device)
    else:
        counts = torch.bincount(rows, minlength=batch)
        offsets = torch.cumsum(counts, 0) - counts
    summed = torch.nn.functional.embedding_bag(
        units, weight_hh_t, offsets, mode="sum", per_sample_weights=y[rows, units]
    )
    return summed + bias_hh
