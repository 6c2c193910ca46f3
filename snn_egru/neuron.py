"""``EGRU``: the event-based GRU as a drop-in snnTorch neuron (one call = one time step).

The layer computes the step of ``docs/egru.md`` with
:func:`snn_egru.functional.egru_step_torch`; see that module for the equations.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

import torch
from snntorch._neurons.neurons import SpikingNeuron
from torch import Tensor, nn

from snn_egru.functional import (
    DEFAULT_DAMPENING,
    DEFAULT_SUPPORT,
    EGRUCellState,
    EGRUTensorParams,
    SpikeFn,
    check_finite_tensors,
    check_input_tensor,
    egru_step_torch,
    triangle,
    warn_silent_layer,
)
from snn_egru.thresholds import Threshold, ThresholdInit
from snn_egru.utils import register_snntorch_neuron, use_with_snntorch

__all__ = ["EGRU", "use_with_snntorch"]

logger = logging.getLogger(__name__)


#: Every live EGRU, weakly referenced (a module that is garbage collected leaves the set), for
#: the class-level ``EGRU.reset_hidden()`` / ``EGRU.detach_hidden()`` of snnTorch's idiom.
_LIVE: weakref.WeakSet = weakref.WeakSet()
#: Default of ``EGRU.forward``'s ``c``: tells ``egru(x, y)`` (refused) from ``egru(x, y, None)``.
_NOT_GIVEN: Any = object()


class _InstanceOrClassMethod:
    """``obj.f()`` acts on one module; ``EGRU.f()`` on every live EGRU (snnTorch's classmethods)."""

    def __init__(self, func: Callable[[Any], None]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: type) -> Callable[[], None]:
        if obj is not None:
            return lambda: self.func(obj)

        def on_all() -> None:
            for module in list(_LIVE):
                if isinstance(module, owner):
                    self.func(module)

        return on_all


def _remove_from_global_instances(module: nn.Module) -> None:
    """Undo ``SpikingNeuron.__init__``'s append to its global instance list (kept alive)."""
    instances = SpikingNeuron.instances
    for index in range(len(instances) - 1, -1, -1):
        if instances[index] is module:
            del instances[index]
            return


class EGRU(SpikingNeuron):
    r"""Event-based GRU layer as an snnTorch neuron: one call advances one time step.

    .. math::

        g^i = W_{ih} x_t + b_{ih},\quad g^h = W_{hh} y_{t-1} + b_{hh}\\
        r = \sigma(g^i_r + g^h_r),\quad z = \sigma(g^i_z + g^h_z),\quad
        n = \tanh(g^i_n + r\, g^h_n)\\
        \tilde c = z\, c_{t-1} + (1 - z)\, n,\quad o = H(\tilde c - \theta)\\
        y_t = o\, \tilde c,\quad c_t = \tilde c - o\, \theta

    Args:
        input_size: number of input features ``I``.
        hidden_size: number of units ``H``.
        threshold: initial per-unit thresholds ``theta`` (scalar or ``(H,)``); ``None`` draws
            them as ``threshold_init`` says.
        spike_grad: spike function ``v -> H(v)`` with a surrogate gradient (any snnTorch
            surrogate); default the EGRU triangle ``triangle(dampening, support)``.
        surrogate_disable: use ``H`` with zero gradient (gradients still flow through
            ``y = o * c~`` and the reset).
        init_hidden: keep ``(y, c)`` inside the module (for ``nn.Sequential``); ``forward``
            then returns ``y`` (``(y, c)`` with ``output=True``).
        inhibition: must be ``False``.
        learn_threshold: thresholds are parameters (``True``, default) or frozen buffers.
        reset_mechanism: must be ``"subtract"``.
        state_quant: must be ``False``.
        output: with ``init_hidden=True``, also return ``c``.
        graded_spikes_factor: must be 1.0.
        learn_graded_spikes_factor: must be ``False``.
        threshold_init: ``"beta"`` (EvNN v0.2, default) or ``"sigmoid"`` (v0.1).
        threshold_mean: mean of the initial thresholds, in ``(0, 1)``; ``None``: 0.3 for
            ``"beta"``, 0.5 for ``"sigmoid"`` (EvNN v0.2 / v0.1, :mod:`snn_egru.thresholds`).
        dampening, support: the triangle's height and inverse half-width (when
            ``spike_grad`` is ``None``).
        event_amplitude: ``"state"`` (EvNN, default) or ``"clamped"``: how the graded event's
            gradient is formed (:class:`~snn_egru.functional.TriangleSurrogate`; when
            ``spike_grad`` is ``None``).
        device, dtype: where and in which floating type to create the parameters.

    snnTorch arguments that do not apply to the EGRU (refused with ``ValueError``):
        ``reset_mechanism="zero"`` or ``"none"``: the EGRU is defined with reset by
        subtraction of ``theta`` in the same step (docs/egru.md; the trained checkpoints rely on
        it). ``graded_spikes_factor != 1`` / ``learn_graded_spikes_factor=True``: EGRU events
        are already graded (``y = o * c~``); a scale would change the cell (fold it into the
        next layer's weights instead). ``inhibition=True``: winner-take-all firing has no
        EGRU counterpart. ``state_quant``: quantising ``c`` would make the layer differ from
        the reference every backend is tested against.

    Parameters (``nn.GRU`` layout and gate order r, z, n):
        ``weight_ih`` ``(3H, I)``, ``weight_hh`` ``(3H, H)``, ``bias_ih``, ``bias_hh``
        ``(3H,)`` (Xavier-normal weights, zero biases), and ``thresholds``
        (:class:`~snn_egru.thresholds.Threshold`); :attr:`threshold` is the effective
        ``theta`` ``(H,)``.

    Inputs: ``x``, ``y``, ``c`` (or ``x``, ``state``)
        ``x``: ``(B, I)`` or ``(I,)``. ``y``, ``c``: previous state ``(B, H)`` (or ``(H,)``);
        ``None`` (or an empty tensor, snnTorch's ``init_*`` idiom) means zeros. ``state``:
        the ``(y, c)`` pair a previous call (or :meth:`reset_mem`) returned. One state tensor
        alone (snnTorch's ``lif(x, mem)``) raises ``TypeError``. With ``init_hidden=True``
        the state is kept inside and must not be passed.

    Outputs:
        :class:`~snn_egru.functional.EGRUCellState` ``(y, c)``; with ``init_hidden=True``
        only ``y`` (``(y, c)`` if ``output=True``).
        ``y`` are the graded events (the "spikes" passed on), ``c`` the cell state (the
        "membrane").

    The stored state follows the batch: a call with a different batch size starts that batch
    from zeros. The module does not register itself in snnTorch's global
    ``SpikingNeuron.instances`` (a strong list that keeps every module ever built alive).
    ``snntorch.utils.reset(net)`` resets every EGRU anywhere in ``net`` once
    :func:`snn_egru.use_with_snntorch` is active (it is switched on when this module is
    imported); :meth:`reset_mem` / :func:`snn_egru.utils.reset` do the same explicitly.
    snnTorch's class-level idiom works too: ``EGRU.reset_hidden()`` / ``EGRU.detach_hidden()``
    act on every live EGRU (weakly referenced), ``egru.detach_hidden()`` on one.

    Differences from ``snn.Leaky`` (one table in ``docs/ecosystems.md``): the call is
    ``egru(x, y, c)`` or ``egru(x, state)`` (never ``egru(x, mem)``: a single state tensor
    raises ``TypeError``); outputs are graded events ``y = o * c~`` (not 0/1) and the cell
    state ``c`` returned as an :class:`~snn_egru.functional.EGRUCellState`; thresholds are
    per unit, learnable by default, and kept in ``[0, 1]``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        threshold: float | Tensor | None = None,
        spike_grad: SpikeFn | None = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_threshold: bool = True,
        reset_mechanism: str = "subtract",
        state_quant: bool = False,
        output: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        threshold_init: ThresholdInit = "beta",
        threshold_mean: float | None = None,
        dampening: float = DEFAULT_DAMPENING,
        support: float = DEFAULT_SUPPORT,
        event_amplitude: str = "state",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _refuse_inapplicable(
            reset_mechanism=reset_mechanism,
            inhibition=inhibition,
            state_quant=state_quant,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        for label, size in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"{label} must be a positive int, got {size!r}")
        super().__init__(
            threshold=0.0,  # not stored: see _threshold_buffer; thresholds live in .thresholds
            spike_grad=(
                triangle(dampening, support, event_amplitude) if spike_grad is None else spike_grad
            ),
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=False,
            learn_threshold=False,
            reset_mechanism="subtract",
            state_quant=False,
            output=output,
            graded_spikes_factor=1.0,
            learn_graded_spikes_factor=False,
        )
        _remove_from_global_instances(self)
        _LIVE.add(self)
        self.input_size = input_size
        self.hidden_size = hidden_size
        dtype = dtype or torch.get_default_dtype()
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **factory))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **factory))
        self.thresholds = Threshold(
            hidden_size,
            init=threshold_init,
            mean=threshold_mean,
            learnable=learn_threshold,
            value=threshold,
            dtype=dtype,
        ).to(device=device)
        self.register_buffer("y", torch.zeros(0, **factory), persistent=False)
        self.register_buffer("c", torch.zeros(0, **factory), persistent=False)
        self._checked_key: tuple | None = None
        # Silence check (training only): did any event fire since the batch began?
        self._fired: Tensor | None = None
        self._silent_warned = False
        self.reset_parameters()

    # snnTorch's SpikingNeuron.__init__ calls this to store a scalar threshold; the EGRU keeps
    # per-unit thresholds in a Threshold module instead (created after super().__init__).
    def _threshold_buffer(self, threshold: object, learn_threshold: bool) -> None:
        return None

    def reset_parameters(self) -> None:
        """Xavier-normal weights and zero biases (the reference's initialisation)."""
        nn.init.xavier_normal_(self.weight_ih)
        nn.init.xavier_normal_(self.weight_hh)
        nn.init.zeros_(self.bias_ih)
        nn.init.zeros_(self.bias_hh)

    @property
    def threshold(self) -> Tensor:
        """Effective per-unit thresholds ``theta`` ``(H,)`` (differentiable)."""
        return self.thresholds.effective()

    @property
    def mem(self) -> Tensor:
        """snnTorch name for the stored cell state ``c`` (``init_hidden=True``)."""
        return self.c

    def params(self) -> EGRUTensorParams:
        """The layer's effective tensors ``(weight_ih, weight_hh, bias_ih, bias_hh, theta)``."""
        return EGRUTensorParams(
            self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.threshold
        )

    def clamp_thresholds(self) -> None:
        """Clamp ``"beta"`` thresholds to ``[0, 1]``; call after ``optimizer.step()``."""
        self.thresholds.clamp_()

    # ------------------------------------------------------------------ state
    def reset_mem(self) -> EGRUCellState:
        """Zero the stored state (keeping its shape) and detach it; returns it."""
        self._end_batch()
        self.y = torch.zeros_like(self.y)
        self.c = torch.zeros_like(self.c)
        return EGRUCellState(self.y, self.c)

    def init_egru(self) -> EGRUCellState:
        """snnTorch-style initialiser: same as :meth:`reset_mem`."""
        return self.reset_mem()

    def detach_hidden_state(self) -> None:
        """Cut the stored state from the graph (truncated BPTT), keeping its values."""
        self.y = self.y.detach()
        self.c = self.c.detach()

    def _reset_hidden(self) -> None:
        """Zero and detach the stored state (``EGRU.reset_hidden()``: every live EGRU)."""
        self.reset_mem()

    def _detach_hidden(self) -> None:
        """Detach the stored state, keeping its values (``EGRU.detach_hidden()``: all EGRUs)."""
        self.detach_hidden_state()

    #: snnTorch's ``Leaky.reset_hidden()`` idiom: ``egru.reset_hidden()`` zeroes this module's
    #: state, ``EGRU.reset_hidden()`` every live EGRU's.
    reset_hidden = _InstanceOrClassMethod(_reset_hidden)
    #: snnTorch's ``Leaky.detach_hidden()`` idiom (truncated BPTT between windows):
    #: ``egru.detach_hidden()`` for this module, ``EGRU.detach_hidden()`` for every live EGRU.
    detach_hidden = _InstanceOrClassMethod(_detach_hidden)

    def _end_batch(self) -> None:
        """A batch ends (state reset): warn once if the layer trained through it silently."""
        fired, self._fired = self._fired, None
        if fired is not None and not self._silent_warned and not bool(fired):
            self._silent_warned = True
            warn_silent_layer(
                f"EGRU({self.input_size} -> {self.hidden_size})", self.hidden_size, self.threshold
            )

    def _track_events(self, y: Tensor, fresh: bool) -> None:
        """Training: remember whether any event fired since the batch began (no host sync
        per step: one logical OR of tensors; checked when the batch ends)."""
        if fresh:
            self._end_batch()
        if self._silent_warned or torch.compiler.is_compiling():
            return
        fired = y.detach().ne(0).any()
        self._fired = fired if self._fired is None else self._fired.logical_or(fired)

    def _check_params(self) -> None:
        tensors = {
            "weight_ih": self.weight_ih,
            "weight_hh": self.weight_hh,
            "bias_ih": self.bias_ih,
            "bias_hh": self.bias_hh,
            f"thresholds.{self.thresholds.raw_name}": self.thresholds.raw,
        }
        key = tuple((t.data_ptr(), t._version) for t in tensors.values())
        if key == self._checked_key:
            return
        check_finite_tensors(tensors, name="EGRU")
        self.thresholds.check(name="EGRU: threshold")
        self._checked_key = key

    def _state_or_zeros(self, t: Tensor | None, label: str, shape: tuple[int, ...], x: Tensor):
        if t is None or (isinstance(t, Tensor) and t.numel() == 0):
            return x.new_zeros(shape)
        if not isinstance(t, Tensor):
            raise TypeError(f"EGRU: state {label} must be a tensor, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ValueError(
                f"EGRU: state {label} has shape {tuple(t.shape)}, expected {shape} "
                f"(batch shape of the input, hidden_size={self.hidden_size})"
            )
        if t.dtype != x.dtype:
            raise TypeError(f"EGRU: state {label} has dtype {t.dtype}, expected {x.dtype}")
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"EGRU: state {label} contains NaN or infinite values")
        return t

    def _split_state(self, y: Any, c: Any) -> tuple[Tensor | None, Tensor | None]:
        """Accept ``(x, y, c)`` and ``(x, state)``; refuse snnTorch's ``(x, mem)``."""
        if c is not _NOT_GIVEN:
            return y, c
        c = None
        if isinstance(y, tuple):
            if len(y) != 2:
                raise TypeError(
                    f"EGRU: a state passed as one argument must be a (y, c) pair, got a tuple "
                    f"of {len(y)}"
                )
            return y[0], y[1]
        if isinstance(y, Tensor) and y.numel() > 0:
            raise TypeError(
                "EGRU: got one state tensor; the EGRU's state is (y, c): call egru(x, y, c) or "
                "egru(x, state) with state = (y, c) (e.g. state = egru.reset_mem(); "
                "y, c = state = egru(x, state)). snnTorch's `spk, mem = lif(x, mem)` would put "
                "the cell state c in the events' slot y (pass c=None explicitly to start c at 0)"
            )
        return y, c

    # ------------------------------------------------------------------ forward
    def forward(
        self, x: Tensor, y: Tensor | EGRUCellState | None = None, c: Any = _NOT_GIVEN
    ) -> Tensor | EGRUCellState:
        """One time step (see the class docstring for inputs and outputs)."""
        if self.init_hidden and (y is not None or (c is not None and c is not _NOT_GIVEN)):
            raise TypeError(
                "EGRU: y/c must not be passed while init_hidden=True (the state is kept "
                "inside the module; use reset_mem() to clear it)"
            )
        y, c = self._split_state(y, c)
        check_input_tensor(
            x, input_size=self.input_size, dtype=self.weight_ih.dtype, ndims=(1, 2), name="EGRU"
        )
        if not torch.compiler.is_compiling():  # value checks: data-dependent, eager only
            self._check_params()
        shape = (*x.shape[:-1], self.hidden_size)
        fresh = y is None or y.numel() == 0  # a caller's state starting at zeros: new batch
        if self.init_hidden:
            fresh = tuple(self.y.shape) != shape
            if fresh:
                if self.y.numel():
                    logger.debug("EGRU: batch shape changed to %s, state starts at 0", shape)
                self.y, self.c = x.new_zeros(shape), x.new_zeros(shape)
            y, c = self.y, self.c
        else:
            y = self._state_or_zeros(y, "y", shape, x)
            c = self._state_or_zeros(c, "c", shape, x)
        out = egru_step_torch(
            x,
            y,
            c,
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            self.threshold,
            spike_fn=self.spike_grad,
        )
        if self.training:
            self._track_events(out.y, fresh)
        if not self.init_hidden:
            return EGRUCellState(out.y, out.c)
        self.y, self.c = out.y, out.c
        if self.output:
            return EGRUCellState(out.y, out.c)
        return out.y

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, init_hidden={self.init_hidden}, "
            f"output={self.output}, spike_grad={self.spike_grad!r}"
        )


def _refuse_inapplicable(
    *,
    reset_mechanism: str,
    inhibition: bool,
    state_quant: object,
    graded_spikes_factor: float,
    learn_graded_spikes_factor: bool,
) -> None:
    """Raise ``ValueError`` for snnTorch options that have no meaning for the EGRU."""
    if reset_mechanism != "subtract":
        raise ValueError(
            f"EGRU: reset_mechanism={reset_mechanism!r} is not supported: the EGRU resets by "
            "subtracting the threshold in the same step (reset_mechanism='subtract')"
        )
    if inhibition:
        raise ValueError("EGRU: inhibition=True is not supported (no winner-take-all in EGRU)")
    if state_quant is not False and state_quant is not None:
        raise ValueError(
            "EGRU: state_quant is not supported (the cell state must match the float reference)"
        )
    if isinstance(graded_spikes_factor, Tensor):
        graded_spikes_factor = float(graded_spikes_factor)
    if graded_spikes_factor != 1.0 or learn_graded_spikes_factor:
        raise ValueError(
            "EGRU: graded_spikes_factor must be 1.0 and not learned: EGRU events are already "
            "graded (y = o * c~); scale the next layer's weights instead"
        )


# snntorch.utils.reset learns about the EGRU (see snn_egru.utils.use_with_snntorch)
register_snntorch_neuron(EGRU)
use_with_snntorch()
