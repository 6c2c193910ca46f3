"""Helpers for training loops with EGRU modules anywhere inside a model.

- :func:`reset`: zero the hidden state of every stateful neuron in a model (EGRU and any
  snnTorch neuron with ``reset_mem``), unlike ``snntorch.utils.reset`` which only knows the
  built-in classes and works through global instance lists;
- :func:`detach` / :func:`detach_states`: cut carried state from the graph (truncated BPTT);
- :func:`clamp_thresholds`: clamp every ``"beta"`` threshold to ``[0, 1]`` after
  ``optimizer.step()``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from torch import Tensor, nn

from snn_egru.thresholds import Threshold

__all__ = ["clamp_thresholds", "detach", "detach_states", "reset"]

StateT = TypeVar("StateT")


def reset(net: nn.Module) -> int:
    """Zero and detach the stored hidden state of every neuron in ``net`` (``net`` included).

    Every submodule with a ``reset_mem()`` method is reset: :class:`snn_egru.neuron.EGRU`
    (state ``y``, ``c``) and snnTorch's neurons. Returns how many modules were reset.
    """
    count = 0
    for module in net.modules():
        reset_mem = getattr(module, "reset_mem", None)
        if callable(reset_mem):
            reset_mem()
            count += 1
    return count


def detach(state: StateT) -> StateT:
    """Detach every tensor in a (nested) state: tensor, NamedTuple, tuple, list or dict.

    The structure is rebuilt with the same types (e.g. a list of
    :class:`~snn_egru.functional.EGRUCellState` stays one); ``None`` and non-tensors pass
    through. Use between truncated-BPTT windows:
    ``out, state = seq(x, state); ...; state = detach(state)``.
    """
    return _detach(state)


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_detach(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {key: _detach(v) for key, v in value.items()}
    return value


def detach_states(net: nn.Module) -> int:
    """Detach the state stored inside the modules of ``net`` (``init_hidden=True`` neurons).

    Every buffer that carries an autograd graph (a ``grad_fn``: only state computed in a
    forward pass does) is replaced by its detached value. Works for EGRU and snnTorch neurons
    alike. Returns the number of tensors detached.
    """
    count = 0
    for module in net.modules():
        for name, buffer in list(module._buffers.items()):
            if isinstance(buffer, Tensor) and buffer.grad_fn is not None:
                setattr(module, name, buffer.detach())
                count += 1
    return count


def clamp_thresholds(net: nn.Module) -> int:
    """Clamp every ``"beta"`` EGRU threshold in ``net`` to ``[0, 1]`` (in place).

    Call right after ``optimizer.step()``. ``"sigmoid"`` thresholds need no clamping and are
    left as they are. Returns the number of :class:`~snn_egru.thresholds.Threshold` modules
    visited.
    """
    count = 0
    for module in net.modules():
        if isinstance(module, Threshold):
            module.clamp_()
            count += 1
    return count
