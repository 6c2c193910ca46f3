"""``EGRUSequence``: a stack of EGRU layers run over whole sequences (``nn.GRU``-like).

Every layer computes the step of ``docs/egru.md`` (see :mod:`snn_egru.functional`).
How the sequence is computed:

- the input projection ``x_t @ weight_ih.T + bias_ih`` of ALL time steps is one matrix
  product per layer; the time loop does only the recurrent product and point-wise work;
- training (gradients needed) runs the fused loop
  :func:`~snn_egru.functional.egru_layer_loop` whose hand-written backward computes the
  same gradients as the step-by-step autograd graph, with ``dW_hh`` as one matrix product;
- when no gradient is needed (``torch.no_grad()`` / inference), the recurrent product only
  reads the rows of ``weight_hh.T`` (the columns of ``weight_hh``) of the units that sent an
  event at the previous step, weighted by the events
  (:func:`~snn_egru.functional.event_driven_recurrent`): the activity sparsity of the EGRU.
  Exact up to floating-point summation order; falls back to the dense product when more
  than half of the units (over the batch) are active, and by default is used for layers of
  at least ``EVENT_DRIVEN_MIN_HIDDEN`` units only (below, finding the active units costs
  more than the small dense product);
- both time loops run compiled (C++, :mod:`snn_egru._fastloop`, built on first use) when
  they can: same step, same backward, without Python's per-step overhead; the Python loops
  above are the fallback (other spike functions, GPU, other dtypes, no compiler) and what
  the tests compare the compiled loop with.

Regularisers (training mode only, EvNN's recipe):

- ``dropconnect``: element-wise dropout of ``weight_hh`` (scaled by ``1/(1-p)``), one mask
  per forward call and layer;
- ``zoneout``: per unit and step, the candidate state keeps its old value with probability
  ``p``: ``c~ <- c_{t-1}`` (before the event and the reset). In evaluation the expectation is
  used: ``c~ <- p * c_{t-1} + (1 - p) * c~`` (the reference's pure-PyTorch path wrongly mixes
  the old state with itself);
- ``dropout``: variational dropout of the events passed from one layer to the next (one mask
  per forward call, shared over time, scaled by ``1/(1-p)``); not after the last layer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn_egru import _fastloop
from snn_egru.functional import (
    DEFAULT_DAMPENING,
    DEFAULT_SUPPORT,
    EGRUCellState,
    EGRUTensorParams,
    SpikeFn,
    candidate_state,
    check_finite_tensors,
    check_input_tensor,
    egru_layer_loop,
    event_driven_recurrent,
    fire_and_reset,
    triangle,
    warn_silent_layer,
)
from snn_egru.thresholds import Threshold, ThresholdInit

__all__ = [
    "EVENT_DRIVEN_MIN_HIDDEN",
    "STATE_SEMANTICS",
    "EGRUSequence",
    "EGRUSequenceState",
    "EGRUStateSequence",
]

logger = logging.getLogger(__name__)

#: With ``event_driven=None`` layers of at least this many units use the event-driven
#: recurrent product in inference (measured crossover on CPU between H = 256 and 512).
EVENT_DRIVEN_MIN_HIDDEN = 384

#: A stack's state: one ``(y, c)`` per layer.
EGRUSequenceState = list[EGRUCellState]

#: What a stack's state holds: ``"yc"`` (this project: events and cell state) or ``"y"``
#: (EvNN: events only, the cell state starts at 0 in every call).
StateSemantics = Literal["yc", "y"]
STATE_SEMANTICS: tuple[str, ...] = ("yc", "y")


class EGRUStateSequence(NamedTuple):
    """Per-step internals of one layer (``return_state_sequence=True``), as EvNN returns them.

    Attributes:
        c: ``(T, B, H)`` cell state after each step's reset (EvNN's ``h``).
        o: ``(T, B, H)`` event indicator ``H(c~ - theta)`` (0/1) of each step; differentiable
            through the spike function's surrogate gradient (EvNN's ``o``), e.g. for EvNN's
            activity regulariser on ``c`` and ``o``.
    """

    c: Tensor
    o: Tensor


def _check_probability(value: float, name: str, *, allow_one: bool) -> float:
    value = float(value)
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value >= 0.0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} is a probability and must lie in {interval}, got {value}")
    return value


class EGRUSequence(nn.Module):
    r"""A stack of EGRU layers over whole sequences, ``torch.nn.GRU``-style.

    Args:
        input_size: number of input features ``I``.
        hidden_size: units per layer: an int (same for every layer) or a per-layer list
            (e.g. ``[1350, 1350, 750]``).
        num_layers: number of layers; default 1, or ``len(hidden_size)`` for a list (a given
            value must agree with the list).
        batch_first: input/output as ``(B, T, F)`` instead of ``(T, B, F)``. The state is
            always ``(B, H_l)``.
        dropout: variational dropout probability between layers, in ``[0, 1)``.
        dropconnect: DropConnect probability on ``weight_hh``, in ``[0, 1)``.
        zoneout: zoneout probability on the cell state, in ``[0, 1]``.
        dampening: height of the triangle pseudo-derivative (default 0.7; LM recipe 3.6).
        support: inverse half-width of the triangle (default 1.0; LM recipe 3.6).
        event_amplitude: how the graded event's gradient is formed, ``"state"`` (EvNN,
            default) or ``"clamped"`` (:class:`~snn_egru.functional.TriangleSurrogate`).
        threshold_init: ``"beta"`` (EvNN v0.2, default) or ``"sigmoid"`` (EvNN v0.1), see
            :mod:`snn_egru.thresholds`.
        threshold_mean: mean of the initial thresholds, in ``(0, 1)``; ``None``: 0.3 for
            ``"beta"``, 0.5 for ``"sigmoid"`` (EvNN v0.2 / v0.1, :mod:`snn_egru.thresholds`).
        learn_threshold: thresholds are parameters (``True``) or frozen buffers.
        spike_grad: a spike function ``v -> H(v)`` with surrogate gradient (any snnTorch
            surrogate); default ``triangle(dampening, support)``. When given, ``dampening``
            and ``support`` are not used.
        fused_backward: train with the fused time loop and its hand-written backward
            (:func:`~snn_egru.functional.egru_layer_loop`, default); ``False`` builds the
            step-by-step autograd graph instead (same gradients, slower; allows double
            backward).
        event_driven: without gradients, compute the recurrent product from the active
            units only (``True``), always densely (``False``), or (``None``, default) event-
            driven for layers with at least :data:`EVENT_DRIVEN_MIN_HIDDEN` units, where the
            recurrent product outweighs the cost of finding the active units.
        state_semantics: ``"yc"`` (default): the state of a layer is ``(y, c)`` and both are
            carried from call to call. ``"y"``: EvNN's convention: the state of a layer is its
            events ``y`` only, ``(B, H)`` or EvNN's ``(1, B, H)``; ``c`` starts at 0 in every
            call (EvNN's LM carries only ``y`` across BPTT windows); the returned state is
            ``(1, B, H)`` per layer (``(H,)`` for unbatched input).
        return_state_sequence: also return the per-step cell state ``c`` and event
            indicator ``o`` of every layer (:class:`EGRUStateSequence`, EvNN's ``(h, o)``);
            the forward argument of the same name overrides it per call. Gradients flow
            through both (``o`` with the surrogate gradient); the step-by-step autograd loop
            is used for such calls (slower than the fused loop).
        device, dtype: where and in which floating type to create the parameters.

    Parameters (names as in ``nn.GRU``), for layer ``k``:
        ``weight_ih_l{k}`` ``(3H_k, I_k)``, ``weight_hh_l{k}`` ``(3H_k, H_k)``,
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(3H_k,)``, gate order (r, z, n); and the
        submodule ``threshold_l{k}`` (:class:`~snn_egru.thresholds.Threshold`) holding the
        per-unit thresholds (``threshold_l{k}.theta`` or ``.logit``). ``I_0 = input_size``,
        ``I_k = H_{k-1}``. Xavier-normal weights, zero biases.

    Inputs: ``x``, ``state``
        ``x``: ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``) or unbatched ``(T, I)``.
        ``state``: ``None`` (zeros) or a list with one ``(y, c)`` per layer, each ``(B, H_l)``
        (``(H_l,)`` for unbatched input).

    Outputs: ``output``, ``state`` [, ``layer_outputs``] [, ``state_sequences``]
        ``output``: ``(T, B, H_last)`` events ``y`` of the last layer (batch-major if
        ``batch_first``); ``state``: list of :class:`~snn_egru.functional.EGRUCellState`
        ``(y, c)`` per layer after the last step (``y`` ``(1, B, H)`` tensors with
        ``state_semantics="y"``); with ``return_all_layers=True`` also ``layer_outputs``,
        the list of every layer's events (same layout as ``output``), before inter-layer
        dropout, for activity accounting; with ``return_state_sequence`` also
        ``state_sequences``, one :class:`EGRUStateSequence` ``(c, o)`` per layer (same
        layout as ``output``).

    Running a sequence in two parts with the state carried equals running it whole (in
    evaluation mode; in training mode the random masks are drawn per call).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        *,
        batch_first: bool = False,
        dropout: float = 0.0,
        dropconnect: float = 0.0,
        zoneout: float = 0.0,
        dampening: float = DEFAULT_DAMPENING,
        support: float = DEFAULT_SUPPORT,
        event_amplitude: str = "state",
        threshold_init: ThresholdInit = "beta",
        threshold_mean: float | None = None,
        learn_threshold: bool = True,
        spike_grad: SpikeFn | None = None,
        fused_backward: bool = True,
        event_driven: bool | None = None,
        state_semantics: StateSemantics = "yc",
        return_state_sequence: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if state_semantics not in STATE_SEMANTICS:
            raise ValueError(
                f"state_semantics must be one of {STATE_SEMANTICS} ('yc': state (y, c); 'y': "
                f"EvNN's events-only state), got {state_semantics!r}"
            )
        if isinstance(hidden_size, int):
            layers = 1 if num_layers is None else num_layers
            if not (isinstance(layers, int) and layers >= 1):
                raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
            hidden_sizes = (hidden_size,) * layers
        else:
            hidden_sizes = tuple(hidden_size)
            if not hidden_sizes:
                raise ValueError("hidden_size list must not be empty")
            if num_layers is not None and num_layers != len(hidden_sizes):
                raise ValueError(
                    f"num_layers={num_layers} disagrees with hidden_size={list(hidden_sizes)} "
                    f"({len(hidden_sizes)} layers); leave num_layers out with a list"
                )
        for size in (input_size, *hidden_sizes):
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"input_size and hidden sizes must be positive ints, got {size!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size if isinstance(hidden_size, int) else list(hidden_sizes)
        self.hidden_sizes: tuple[int, ...] = hidden_sizes
        self.num_layers = len(hidden_sizes)
        self.batch_first = bool(batch_first)
        self.dropout = _check_probability(dropout, "dropout", allow_one=False)
        self.dropconnect = _check_probability(dropconnect, "dropconnect", allow_one=False)
        self.zoneout = _check_probability(zoneout, "zoneout", allow_one=True)
        self.spike_grad: SpikeFn = (
            triangle(dampening, support, event_amplitude) if spike_grad is None else spike_grad
        )
        self.threshold_init = threshold_init
        self.fused_backward = bool(fused_backward)
        self.event_driven = event_driven
        self.state_semantics = state_semantics
        self.return_state_sequence = bool(return_state_sequence)
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        in_sizes = (input_size, *hidden_sizes[:-1])
        for k, (n_in, n_hid) in enumerate(zip(in_sizes, hidden_sizes)):
            self.register_parameter(
                f"weight_ih_l{k}", nn.Parameter(torch.empty(3 * n_hid, n_in, **factory))
            )
            self.register_parameter(
                f"weight_hh_l{k}", nn.Parameter(torch.empty(3 * n_hid, n_hid, **factory))
            )
            self.register_parameter(
                f"bias_ih_l{k}", nn.Parameter(torch.empty(3 * n_hid, **factory))
            )
            self.register_parameter(
                f"bias_hh_l{k}", nn.Parameter(torch.empty(3 * n_hid, **factory))
            )
            threshold = Threshold(
                n_hid,
                init=threshold_init,
                mean=threshold_mean,
                learnable=learn_threshold,
                dtype=factory["dtype"],
            )
            self.add_module(f"threshold_l{k}", threshold.to(device=device))
        self.reset_parameters()
        #: Optional int8 quantisation (:func:`snn_egru.quantization.prepare_qat`).
        self.quantizer: nn.Module | None = None
        self._checked_key: tuple | None = None
        self._transposed_cache: dict[int, tuple[tuple, Tensor]] = {}
        self._silent_warned: set[int] = set()  # layers that warned of a silent batch

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Xavier-normal weights and zero biases (the reference's initialisation).

        Thresholds keep their values (re-create the module for a new draw).
        """
        for k in range(self.num_layers):
            nn.init.xavier_normal_(getattr(self, f"weight_ih_l{k}"))
            nn.init.xavier_normal_(getattr(self, f"weight_hh_l{k}"))
            nn.init.zeros_(getattr(self, f"bias_ih_l{k}"))
            nn.init.zeros_(getattr(self, f"bias_hh_l{k}"))

    def threshold_module(self, layer: int) -> Threshold:
        """The :class:`~snn_egru.thresholds.Threshold` of ``layer``."""
        self._check_layer(layer)
        return getattr(self, f"threshold_l{layer}")

    def threshold(self, layer: int) -> Tensor:
        """Effective thresholds ``theta`` ``(H_layer,)`` of ``layer`` (differentiable)."""
        return self.threshold_module(layer).effective()

    def layer_params(self, layer: int) -> EGRUTensorParams:
        """Effective tensors of ``layer`` (the parameters themselves, and the effective theta).

        Returns:
            :class:`~snn_egru.functional.EGRUTensorParams`
            ``(weight_ih, weight_hh, bias_ih, bias_hh, threshold)``.
        """
        self._check_layer(layer)
        return EGRUTensorParams(
            weight_ih=getattr(self, f"weight_ih_l{layer}"),
            weight_hh=getattr(self, f"weight_hh_l{layer}"),
            bias_ih=getattr(self, f"bias_ih_l{layer}"),
            bias_hh=getattr(self, f"bias_hh_l{layer}"),
            threshold=self.threshold(layer),
        )

    def clamp_thresholds(self) -> None:
        """Clamp every ``"beta"`` threshold to ``[0, 1]``; call after ``optimizer.step()``."""
        for k in range(self.num_layers):
            self.threshold_module(k).clamp_()

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range (num_layers={self.num_layers})")

    @property
    def param_dtype(self) -> torch.dtype:
        return self.weight_ih_l0.dtype

    def _check_params(self) -> None:
        """Check parameters for NaN and thresholds for their range (cached on versions)."""
        tensors = dict(self.named_parameters())
        tensors.update(dict(self.named_buffers()))
        key = tuple((name, t.data_ptr(), t._version) for name, t in tensors.items())
        if key == self._checked_key:
            return
        check_finite_tensors(tensors, name=type(self).__name__)
        for k in range(self.num_layers):
            self.threshold_module(k).check(name=f"{type(self).__name__}: threshold_l{k}")
        self._checked_key = key

    # ------------------------------------------------------------------ state
    def _initial_states(self, state: Sequence | None, batch: int, x: Tensor) -> list[EGRUCellState]:
        name = type(self).__name__
        if state is None:
            return [
                EGRUCellState(
                    y=x.new_zeros(batch, h),
                    c=x.new_zeros(batch, h),
                )
                for h in self.hidden_sizes
            ]
        if isinstance(state, Tensor) and self.state_semantics == "y" and self.num_layers == 1:
            state = [state]  # EvNN's single layer takes its (1, B, H) state tensor bare
        if isinstance(state, Tensor) or len(state) != self.num_layers:
            got = "a tensor" if isinstance(state, Tensor) else f"{len(state)} entries"
            raise ValueError(
                f"{name}: state must be a list with one (y, c) pair per layer "
                f"({self.num_layers} layers), got {got}"
            )
        states = []
        for k, (layer_state, h) in enumerate(zip(state, self.hidden_sizes)):
            if self.state_semantics == "y":
                y_only = _evnn_y_state(layer_state, k, batch, h, name)
                layer_state = (y_only, torch.zeros_like(y_only))  # EvNN: c starts at 0
            elif isinstance(layer_state, Tensor) or len(layer_state) != 2:
                raise ValueError(f"{name}: state[{k}] must be a (y, c) pair of tensors")
            y, c = layer_state
            for label, t in (("y", y), ("c", c)):
                if not isinstance(t, Tensor):
                    raise TypeError(f"{name}: state[{k}].{label} must be a tensor")
                if tuple(t.shape) != (batch, h):
                    raise ValueError(
                        f"{name}: state[{k}].{label} has shape {tuple(t.shape)}, expected "
                        f"{(batch, h)} (batch, hidden size of layer {k})"
                    )
                if t.dtype != x.dtype:
                    raise TypeError(
                        f"{name}: state[{k}].{label} has dtype {t.dtype}, expected {x.dtype}"
                    )
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{name}: state[{k}].{label} contains NaN or infinite values")
            states.append(EGRUCellState(y=y, c=c))
        return states

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: Tensor,
        state: Sequence | None = None,
        *,
        return_all_layers: bool = False,
        return_state_sequence: bool | None = None,
    ) -> tuple:
        """Run the stack over a sequence (see the class docstring for shapes)."""
        collect = (
            self.return_state_sequence
            if return_state_sequence is None
            else bool(return_state_sequence)
        )
        check_input_tensor(
            x,
            input_size=self.input_size,
            dtype=self.param_dtype,
            ndims=(2, 3),
            name=type(self).__name__,
        )
        if not torch.compiler.is_compiling():  # value checks: data-dependent, eager only
            self._check_params()
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
            if state is not None and self.state_semantics == "y":
                state = [t.unsqueeze(0) if isinstance(t, Tensor) else t for t in _as_list(state)]
            elif state is not None:
                state = _add_batch_dim(state, type(self).__name__)
        elif self.batch_first:
            x = x.transpose(0, 1)
        states = self._initial_states(state, x.shape[1], x)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad
            or any(p.requires_grad for p in self.parameters())
            or any(t.requires_grad for s in states for t in s)
        )
        layer_input = x
        layer_outputs: list[Tensor] = []
        final_states: list[EGRUCellState] = []
        sequences: list[EGRUStateSequence] = []
        for k, layer_state in enumerate(states):
            ys, final, internals = self._layer_forward(
                k, layer_input, layer_state, needs_grad, collect
            )
            if internals is not None:
                sequences.append(internals)
            if self.training:
                self._check_silence(k, ys)
            layer_outputs.append(ys)
            final_states.append(final)
            layer_input = ys
            if k < self.num_layers - 1 and self.training and self.dropout > 0:
                mask = torch.empty(1, x.shape[1], ys.shape[-1], dtype=x.dtype, device=x.device)
                mask.bernoulli_(1.0 - self.dropout).div_(1.0 - self.dropout)
                layer_input = ys * mask
        return self._outputs(
            layer_outputs, final_states, sequences, unbatched, return_all_layers, collect
        )

    def _layer_forward(
        self, k: int, layer_input: Tensor, layer_state: EGRUCellState, needs_grad: bool, collect
    ) -> tuple[Tensor, EGRUCellState, EGRUStateSequence | None]:
        """Layer ``k`` over the whole sequence ``layer_input`` ``(T, B, I_k)``: its events
        ``(T, B, H_k)``, final state and (``collect``) per-step internals."""
        steps, batch = layer_input.shape[0], layer_input.shape[1]
        params = self.layer_params(k)
        weight_hh = params.weight_hh
        if self.training and self.dropconnect > 0 and self.quantizer is None:
            weight_hh = F.dropout(weight_hh, self.dropconnect, training=True)
        hidden = self.hidden_sizes[k]
        keep_mask = None
        if self.training and self.zoneout > 0:
            keep_mask = torch.rand(steps, batch, hidden, device=layer_input.device) < self.zoneout
        if self.quantizer is not None:  # int8 (snn_egru.quantization); does DropConnect
            if collect:
                raise ValueError(
                    f"{type(self).__name__}: return_state_sequence is not available with "
                    "a quantizer (int8 QAT); switch it off"
                )
            ys, final = self.quantizer.run_layer(
                self, k, layer_input, layer_state, params, keep_mask, needs_grad
            )
            return ys, final, None
        gi = torch.addmm(
            params.bias_ih,
            layer_input.reshape(steps * batch, layer_input.shape[-1]),
            params.weight_ih.t(),
        ).view(steps, batch, 3 * hidden)
        recurrent_t = None
        if self._event_driven_layer(hidden) and not needs_grad and steps > 0:
            recurrent_t = self._transposed(k, weight_hh, cached=weight_hh is params.weight_hh)
        return self._run_layer(
            gi,
            layer_state,
            weight_hh,
            params.bias_hh,
            params.threshold,
            keep_mask,
            recurrent_t,
            needs_grad,
            collect=collect,
        )

    def _check_silence(self, k: int, ys: Tensor) -> None:
        """Training: warn once per layer when layer ``k`` sent no event in this batch (one
        reduction and one host sync per layer and call, none once it has warned)."""
        if k in self._silent_warned or ys.numel() == 0 or torch.compiler.is_compiling():
            return
        if not bool(ys.detach().ne(0).any()):
            self._silent_warned.add(k)
            name = f"{type(self).__name__} layer {k}"
            warn_silent_layer(name, self.hidden_sizes[k], self.threshold(k))

    def _outputs(
        self,
        layer_outputs: list[Tensor],
        final_states: list[EGRUCellState],
        sequences: list[EGRUStateSequence],
        unbatched: bool,
        return_all_layers: bool,
        collect: bool,
    ) -> tuple:
        """The forward's return value, in the caller's layout (see the class docstring)."""
        if unbatched:
            layer_outputs = [ys.squeeze(1) for ys in layer_outputs]
            final_states = [EGRUCellState(s.y.squeeze(0), s.c.squeeze(0)) for s in final_states]
            sequences = [EGRUStateSequence(q.c.squeeze(1), q.o.squeeze(1)) for q in sequences]
        elif self.batch_first:
            layer_outputs = [ys.transpose(0, 1) for ys in layer_outputs]
            sequences = [
                EGRUStateSequence(q.c.transpose(0, 1), q.o.transpose(0, 1)) for q in sequences
            ]
        returned_state: list = final_states
        if self.state_semantics == "y":
            returned_state = [s.y if unbatched else s.y.unsqueeze(0) for s in final_states]
        result: tuple = (layer_outputs[-1], returned_state)
        if return_all_layers:
            result += (layer_outputs,)
        if collect:
            result += (sequences,)
        return result

    def _event_driven_layer(self, hidden: int) -> bool:
        if self.event_driven is None:
            return hidden >= EVENT_DRIVEN_MIN_HIDDEN
        return bool(self.event_driven)

    def _transposed(self, layer: int, weight_hh: Tensor, *, cached: bool) -> Tensor:
        """``weight_hh.T`` contiguous ``(H, 3H)``: rows are the fan-out of one unit's event."""
        if not cached or torch.compiler.is_compiling():
            return weight_hh.detach().t().contiguous()
        key = (weight_hh.data_ptr(), weight_hh._version, weight_hh.dtype, weight_hh.device)
        hit = self._transposed_cache.get(layer)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = weight_hh.detach().t().contiguous()
        self._transposed_cache[layer] = (key, value)
        return value

    def _run_layer(
        self,
        gi: Tensor,
        state: EGRUCellState,
        weight_hh: Tensor,
        bias_hh: Tensor,
        threshold: Tensor,
        keep_mask: Tensor | None,
        recurrent_t: Tensor | None,
        needs_grad: bool,
        *,
        collect: bool = False,
    ) -> tuple[Tensor, EGRUCellState, EGRUStateSequence | None]:
        """The time loop of one layer given the input projections ``gi`` ``(T, B, 3H)``.

        The compiled loop of :mod:`snn_egru._fastloop` (C++) when it applies (not with
        ``collect``); otherwise, with gradients: the fused loop
        :func:`~snn_egru.functional.egru_layer_loop` (or the step-by-step autograd graph when
        ``fused_backward`` is off); without: a plain loop.
        ``recurrent_t`` (``weight_hh.T`` contiguous) switches on the event-driven recurrent
        product. ``collect`` also returns the per-step ``c`` and ``o`` (step-by-step loop).
        """
        if torch.is_autocast_enabled(gi.device.type):
            # mixed precision (bf16 autocast): the projections in low precision, the time
            # loop, its state and its backward in float32 (the threshold comparisons and
            # the state carried over thousands of steps must not round to 8 bits)
            with torch.autocast(gi.device.type, enabled=False):
                return self._run_layer(
                    gi.float(),
                    EGRUCellState(y=state.y.float(), c=state.c.float()),
                    weight_hh.float(),
                    bias_hh.float(),
                    threshold.float(),
                    keep_mask,
                    None if recurrent_t is None else recurrent_t.float(),
                    needs_grad,
                    collect=collect,
                )
        y, c = state
        zoneout_eval = self.zoneout if (not self.training and self.zoneout > 0) else 0.0
        # what the compiled loop and the fused Python loop both take
        step = {"spike_fn": self.spike_grad, "keep_mask": keep_mask, "zoneout_eval": zoneout_eval}
        if not collect:
            compiled = _fastloop.run_layer(
                gi,
                state,
                weight_hh,
                bias_hh,
                threshold,
                **step,
                recurrent_t=recurrent_t,
                needs_grad=needs_grad,
                fused_backward=self.fused_backward,
            )
            if compiled is not None:
                return (*compiled, None)
        if needs_grad and self.fused_backward and not collect:
            ys, c = egru_layer_loop(gi, y, c, weight_hh, bias_hh, threshold, **step)
            y = ys[-1] if ys.shape[0] else y
            return ys, EGRUCellState(y=y, c=c), None
        weight_hh_t = weight_hh.t()
        outputs = []
        cs: list[Tensor] = []
        os_: list[Tensor] = []
        for t in range(gi.shape[0]):
            if recurrent_t is not None:
                gh = event_driven_recurrent(y, recurrent_t, bias_hh)
            else:
                gh = torch.addmm(bias_hh, y, weight_hh_t)
            c_tilde = candidate_state(gi[t], gh, c)
            if keep_mask is not None:
                c_tilde = torch.where(keep_mask[t], c, c_tilde)
            elif zoneout_eval:
                c_tilde = zoneout_eval * c + (1.0 - zoneout_eval) * c_tilde
            y, c, o = fire_and_reset(c_tilde, threshold, self.spike_grad)
            outputs.append(y)
            if collect:
                cs.append(c)
                os_.append(o)
        internals = None
        if collect:
            empty = gi.new_zeros(0, gi.shape[1], c.shape[-1])
            internals = EGRUStateSequence(
                torch.stack(cs) if cs else empty, torch.stack(os_) if os_ else empty
            )
        if outputs:
            return torch.stack(outputs), EGRUCellState(y=y, c=c), internals
        return gi.new_zeros(0, gi.shape[1], c.shape[-1]), EGRUCellState(y=y, c=c), internals

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}", f"{self.hidden_size}"]
        if self.num_layers > 1 and isinstance(self.hidden_size, int):
            parts.append(f"num_layers={self.num_layers}")
        for name in ("batch_first", "dropout", "dropconnect", "zoneout"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        parts.append(f"spike_grad={self.spike_grad!r}")
        return ", ".join(parts)


def _add_batch_dim(state: Sequence, name: str) -> list[tuple[Tensor, Tensor]]:
    """Unbatched input: turn per-layer ``(y, c)`` of shape ``(H_l,)`` into ``(1, H_l)``."""
    layers = []
    for k, layer_state in enumerate(state):
        if isinstance(layer_state, Tensor) or len(layer_state) != 2:
            raise ValueError(f"{name}: state[{k}] must be a (y, c) pair of tensors")
        for label, t in zip("yc", layer_state):
            if not isinstance(t, Tensor) or t.ndim != 1:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(
                    f"{name}: unbatched input (T, I) takes state[{k}].{label} of shape (H,), "
                    f"got {shape}"
                )
        layers.append((layer_state[0].unsqueeze(0), layer_state[1].unsqueeze(0)))
    return layers


def _as_list(state: Sequence | Tensor) -> list:
    return [state] if isinstance(state, Tensor) else list(state)


def _evnn_y_state(value: object, layer: int, batch: int, hidden: int, name: str) -> Tensor:
    """``state_semantics="y"``: a layer's state is ``y`` ``(B, H)`` or EvNN's ``(1, B, H)``."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name}: with state_semantics='y' state[{layer}] must be the events y, a tensor "
            f"(B, H) or EvNN's (1, B, H), got {type(value).__name__}"
        )
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if tuple(value.shape) != (batch, hidden):
        raise ValueError(
            f"{name}: state[{layer}] has shape {tuple(value.shape)}, expected ({batch}, "
            f"{hidden}) or EvNN's (1, {batch}, {hidden}) (state_semantics='y')"
        )
    return value
