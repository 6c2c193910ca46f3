"""Helpers for training loops with EGRU modules anywhere inside a model.

- :func:`reset`: zero the hidden state of every stateful neuron in a model (EGRU and any
  snnTorch neuron with ``reset_mem``), unlike ``snntorch.utils.reset`` which only knows the
  built-in classes and works through global instance lists;
- :func:`detach` / :func:`detach_states`: cut carried state from the graph (truncated BPTT);
- :func:`clamp_thresholds`: clamp every ``"beta"`` threshold to ``[0, 1]`` after
  ``optimizer.step()``;
- :func:`use_with_snntorch`: make snnTorch's own ``snntorch.utils.reset`` (and so
  ``snntorch.backprop.BPTT`` and NeuroBench's ``SNNTorchModel``, which call it) reset every
  EGRU anywhere in the net.

Why :func:`use_with_snntorch` exists: snnTorch 1.0's ``utils.reset(net)`` only looks at
``net``'s top-level children, knows its built-in neuron classes by ``isinstance`` and resets
them class-wide through the global ``SpikingNeuron.instances`` list; it has no extension
hook. Upstream has since merged the fix (snnTorch PR #414: walk ``net.modules()``, nested
containers included; PR #449: reset only the given net, through each neuron's instance-level
``reset_mem()``), not yet in a release. :func:`use_with_snntorch` applies that behaviour to
every :class:`~snn_egru.neuron.EGRU` (and leaves snnTorch's built-in neurons to snnTorch's
own code, so nets without an EGRU behave exactly as before). It checks first whether the
installed snnTorch already resets an EGRU nested in a container; if so it changes nothing.
It also teaches ``snntorch.utils._final_layer_check`` (used by ``snntorch.backprop``) that a
net ending in an EGRU returns two values ``(y, c)``. Importing :mod:`snn_egru.neuron` (i.e.
using ``snn_egru.EGRU``) switches it on, so snnTorch's tutorial loops run unchanged with
``EGRU`` in place of ``snn.Leaky``; ``use_with_snntorch(False)`` switches it off.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from torch import Tensor, nn

from snn_egru.thresholds import Threshold

__all__ = [
    "clamp_thresholds",
    "detach",
    "detach_states",
    "register_snntorch_neuron",
    "reset",
    "snntorch_resets_egru",
    "use_with_snntorch",
]

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


# ------------------------------------------------------------------ snnTorch's own helpers
_EXTENSION_FLAG = "_snn_egru_extension"
#: The neuron classes the extension resets; :mod:`snn_egru.neuron` registers ``EGRU`` when it
#: is imported (this module does not import it: no import circle).
_NEURON_CLASSES: list[type] = []
#: Whether the installed snnTorch was checked for resetting EGRUs itself.
_PROBED = {"done": False}


def register_snntorch_neuron(cls: type) -> None:
    """Have :func:`use_with_snntorch` reset instances of ``cls`` (``reset_mem()``)."""
    if cls not in _NEURON_CLASSES:
        _NEURON_CLASSES.append(cls)


def _reset_egrus(net: nn.Module) -> int:
    """Instance-level reset of every EGRU in ``net.modules()`` (snnTorch PRs #414 + #449)."""
    classes = tuple(_NEURON_CLASSES)
    count = 0
    for module in net.modules() if classes else ():
        if isinstance(module, classes):
            module.reset_mem()
            count += 1
    return count


def snntorch_resets_egru(reset_fn: Any = None) -> bool:
    """Whether ``reset_fn`` (default: the installed ``snntorch.utils.reset``, unextended)
    already zeroes an EGRU nested inside a container, as snnTorch after PR #414/#449 does."""
    import torch

    if not _NEURON_CLASSES:
        raise RuntimeError("import snn_egru.neuron first (it registers the EGRU class)")
    import snntorch.utils as snn_utils

    if reset_fn is None:
        reset_fn = snn_utils.reset
    probe = _NEURON_CLASSES[0](1, 1, init_hidden=True, threshold=0.5)
    net = nn.Sequential(nn.Sequential(probe))
    probe.y, probe.c = torch.ones(1, 1), torch.ones(1, 1)
    patched = snn_utils._layer_check
    snn_utils._layer_check = getattr(patched, "_snn_egru_original", patched)  # unextended
    try:
        reset_fn(net)
    except Exception:  # an snnTorch that cannot reset this net certainly does not do it
        return False
    finally:
        snn_utils._layer_check = patched
    return bool((probe.y == 0).all() and (probe.c == 0).all())


#: The functions of ``snntorch.utils`` the extension wraps. ``reset`` itself is NOT replaced:
#: ``from snntorch.utils import reset`` (run before ``import snn_egru``) binds the original
#: function object, which looks ``_layer_check`` up in its module's globals on every call,
#: so extending ``_layer_check`` reaches every reference to ``reset``, whatever the import
#: order. ``_final_layer_check`` is read the same way by ``snntorch.backprop``.
_WRAPPED = ("_layer_check", "_final_layer_check")


def _extension_installed(snn_utils: Any) -> bool:
    return bool(getattr(snn_utils._layer_check, _EXTENSION_FLAG, False))


def use_with_snntorch(enable: bool = True) -> bool:
    """Extend ``snntorch.utils.reset`` to every EGRU anywhere in the net (see module doc).

    The extension wraps ``snntorch.utils._layer_check`` (which ``reset`` calls through its
    module's globals), so a ``reset`` imported by name before this ran is extended too.

    Args:
        enable: ``True`` installs the extension (idempotent); ``False`` restores snnTorch's
            original functions.

    Returns:
        Whether the extension is active afterwards: ``False`` after ``enable=False``, and
        also when the installed snnTorch already resets EGRUs itself (then nothing is
        patched: the extension is a no-op once a snnTorch release carries PR #414/#449).
    """
    import snntorch.utils as snn_utils

    installed = _extension_installed(snn_utils)
    if not enable:
        if installed:
            for name in _WRAPPED:
                current = getattr(snn_utils, name)
                setattr(snn_utils, name, getattr(current, "_snn_egru_original", current))
        return False
    if installed:
        if _NEURON_CLASSES and not _PROBED["done"]:  # installed before EGRU was registered
            _PROBED["done"] = True
            if snntorch_resets_egru():
                return use_with_snntorch(False)
        return True
    if _NEURON_CLASSES:
        _PROBED["done"] = True
        if snntorch_resets_egru():
            return False
    original_check = snn_utils._layer_check
    original_final = snn_utils._final_layer_check

    @functools.wraps(original_check)
    def layer_check_with_egru(net: nn.Module) -> None:
        original_check(net)
        _reset_egrus(net)  # reset() calls _layer_check(net) then _layer_reset()

    @functools.wraps(original_final)
    def final_layer_check_with_egru(net: nn.Module) -> int:
        children = list(net._modules.values())
        if children and _NEURON_CLASSES and isinstance(children[-1], tuple(_NEURON_CLASSES)):
            return 2  # (y, c), like snn.Leaky's (spk, mem) with output=True
        return original_final(net)

    for wrapper, original in (
        (layer_check_with_egru, original_check),
        (final_layer_check_with_egru, original_final),
    ):
        setattr(wrapper, _EXTENSION_FLAG, True)
        wrapper._snn_egru_original = original  # type: ignore[attr-defined]
    snn_utils._layer_check = layer_check_with_egru
    snn_utils._final_layer_check = final_layer_check_with_egru
    return True
