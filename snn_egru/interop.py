"""Moving EGRU weights between this project's modules and other formats.

(a) the numpy reference (:mod:`snn_egru.reference`): :func:`sequence_to_reference`,
    :func:`neuron_to_reference` (float32 numpy, effective thresholds) and the inverse
    :func:`load_reference_params` (works for both modules);
(b) checkpoints of the public reference implementation EvNN (v0.2), which stores per layer
    ``kernel (I, 3H)``, ``recurrent_kernel (H, 3H)``, ``bias (3H)``, ``recurrent_bias (3H)``,
    ``thr (H)`` with gate chunks ordered ``(z, r, g)``; this project uses ``nn.GRU`` layout
    ``(3H, I)`` and order ``(r, z, n)``. Converting transposes AND reorders the gate chunks
    (EvNN's own converter only transposes): :func:`evnn_layer_to_params`,
    :func:`params_to_evnn_layer`, :func:`load_evnn_state_dict`, :func:`export_evnn_state_dict`;
(c) ``torch.nn.GRU``: :func:`copy_from_gru`, :func:`copy_to_gru` (same layout and gate order;
    only the layout carries over, the dynamics differ: docs/egru.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from snn_egru.functional import EGRUTensorParams
from snn_egru.neuron import EGRU
from snn_egru.reference import EGRUParams, validate_params
from snn_egru.sequence import EGRUSequence

__all__ = [
    "EVNN_KEYS",
    "copy_from_gru",
    "copy_to_gru",
    "evnn_layer_to_params",
    "export_evnn_state_dict",
    "load_evnn_state_dict",
    "load_reference_params",
    "neuron_to_reference",
    "params_to_evnn_layer",
    "sequence_to_reference",
]

logger = logging.getLogger(__name__)

#: Per-layer tensor names in an EvNN (v0.2) EGRU state dict.
EVNN_KEYS: tuple[str, ...] = ("kernel", "recurrent_kernel", "bias", "recurrent_bias", "thr")

EGRUModule = EGRU | EGRUSequence


# ---------------------------------------------------------------------------- (a) reference
def _to_numpy(t: Tensor, dtype: np.dtype | type) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=True)


def _tensor_params_to_reference(p: EGRUTensorParams, dtype: np.dtype | type) -> EGRUParams:
    return EGRUParams(*(_to_numpy(t, dtype) for t in p))


def sequence_to_reference(
    seq: EGRUSequence, *, dtype: np.dtype | type = np.float32
) -> list[EGRUParams]:
    """Per-layer :class:`~snn_egru.reference.EGRUParams` (dense numpy, effective thresholds).

    Args:
        seq: the stack.
        dtype: numpy floating type (float32 for deployment, float64 for exactness checks).
    """
    return [_tensor_params_to_reference(seq.layer_params(k), dtype) for k in range(seq.num_layers)]


def neuron_to_reference(neuron: EGRU, *, dtype: np.dtype | type = np.float32) -> EGRUParams:
    """The :class:`~snn_egru.reference.EGRUParams` of a single-step :class:`EGRU` neuron."""
    return _tensor_params_to_reference(neuron.params(), dtype)


def _dense(value: Any) -> np.ndarray:
    return value.toarray() if sp.issparse(value) else np.asarray(value)


@torch.no_grad()
def _copy_into(
    target: EGRUTensorParams, threshold_module: Any, source: EGRUTensorParams, *, name: str
) -> None:
    """Copy ``source`` tensors into the parameters of ``target`` after checking shapes."""
    for field in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "threshold"):
        dst, src = getattr(target, field), getattr(source, field)
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(
                f"{name}: {field} has shape {tuple(src.shape)}, the module expects "
                f"{tuple(dst.shape)}"
            )
    for field in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        dst = getattr(target, field)
        dst.copy_(getattr(source, field).to(dtype=dst.dtype, device=dst.device))
    threshold_module.set_(source.threshold)


def _reference_to_tensors(params: EGRUParams) -> EGRUTensorParams:
    return EGRUTensorParams(*(torch.from_numpy(np.array(_dense(v))) for v in params))


def load_reference_params(
    module: EGRUModule, params: EGRUParams | Sequence[EGRUParams]
) -> EGRUModule:
    """Load reference parameters (numpy, dense or scipy.sparse) into a module, in place.

    Args:
        module: an :class:`~snn_egru.sequence.EGRUSequence` (one ``EGRUParams`` per layer) or
            an :class:`~snn_egru.neuron.EGRU` neuron (one ``EGRUParams``, or a list of one).
        params: validated with :func:`snn_egru.reference.validate_params`; thresholds are
            effective values and must be in the module's allowed range.

    Returns:
        ``module``.
    """
    layers = [params] if isinstance(params, EGRUParams) else list(params)
    if isinstance(module, EGRU):
        if len(layers) != 1:
            raise ValueError(f"an EGRU neuron takes one EGRUParams, got {len(layers)}")
        validate_params(layers[0], name="EGRU")
        _copy_into(
            module.params(), module.thresholds, _reference_to_tensors(layers[0]), name="EGRU"
        )
        return module
    if not isinstance(module, EGRUSequence):
        raise TypeError(f"expected EGRU or EGRUSequence, got {type(module).__name__}")
    if len(layers) != module.num_layers:
        raise ValueError(
            f"got parameters for {len(layers)} layers, the EGRUSequence has {module.num_layers}"
        )
    for k, layer in enumerate(layers):
        validate_params(layer, name=f"layer {k}")
        _copy_into(
            module.layer_params(k),
            module.threshold_module(k),
            _reference_to_tensors(layer),
            name=f"layer {k}",
        )
    return module


# ---------------------------------------------------------------------------- (b) EvNN
def _as_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    return torch.as_tensor(np.asarray(value))


def _reorder_chunks(t: Tensor, order: tuple[int, int, int]) -> Tensor:
    """Reorder the three gate chunks of the first dimension of ``t``."""
    chunks = t.chunk(3, dim=0)
    return torch.cat([chunks[i] for i in order], dim=0)


# (z, r, g) -> (r, z, n): the new chunk i is the old chunk _EVNN_TO_TORCH[i]; the map is its
# own inverse (it swaps the first two chunks).
_EVNN_TO_TORCH = (1, 0, 2)


def evnn_layer_to_params(layer: Mapping[str, Any], *, name: str = "EvNN layer") -> EGRUTensorParams:
    """Convert one EvNN EGRU layer to this project's layout.

    Args:
        layer: mapping with ``kernel (I, 3H)``, ``recurrent_kernel (H, 3H)``, ``bias (3H,)``,
            ``recurrent_bias (3H,)``, ``thr (H,)`` (tensors or arrays), gates ``(z, r, g)``.
        name: how error messages call this layer.

    Returns:
        :class:`~snn_egru.functional.EGRUTensorParams` with ``weight_ih = reorder(kernel.T)``,
        ``weight_hh = reorder(recurrent_kernel.T)``, ``bias_ih = reorder(bias)``,
        ``bias_hh = reorder(recurrent_bias)``, ``threshold = thr`` (``reorder`` maps the gate
        chunks ``(z, r, g)`` to ``(r, z, n)``).
    """
    missing = [key for key in EVNN_KEYS if key not in layer]
    if missing:
        raise KeyError(
            f"{name}: missing EvNN keys {missing} (an EvNN EGRU layer has {list(EVNN_KEYS)})"
        )
    t = {key: _as_tensor(layer[key]) for key in EVNN_KEYS}
    thr = t["thr"]
    if thr.ndim != 1:
        raise ValueError(f"{name}: thr must have shape (H,), got {tuple(t['thr'].shape)}")
    hidden = thr.shape[0]
    kernel = t["kernel"]
    if kernel.ndim != 2 or kernel.shape[1] != 3 * hidden:
        raise ValueError(
            f"{name}: kernel has shape {tuple(kernel.shape)}, expected (I, {3 * hidden}) "
            f"(EvNN layout, H={hidden} from thr)"
        )
    expected = {
        "recurrent_kernel": (hidden, 3 * hidden),
        "bias": (3 * hidden,),
        "recurrent_bias": (3 * hidden,),
    }
    for key, shape in expected.items():
        if tuple(t[key].shape) != shape:
            raise ValueError(
                f"{name}: {key} has shape {tuple(t[key].shape)}, expected {shape} "
                f"(EvNN layout, H={hidden} from thr)"
            )
    for key, value in t.items():
        if not value.is_floating_point():
            raise TypeError(f"{name}: {key} must be floating point, got {value.dtype}")
    return EGRUTensorParams(
        weight_ih=_reorder_chunks(kernel.t(), _EVNN_TO_TORCH).contiguous(),
        weight_hh=_reorder_chunks(t["recurrent_kernel"].t(), _EVNN_TO_TORCH).contiguous(),
        bias_ih=_reorder_chunks(t["bias"], _EVNN_TO_TORCH).contiguous(),
        bias_hh=_reorder_chunks(t["recurrent_bias"], _EVNN_TO_TORCH).contiguous(),
        threshold=thr.clone(),
    )


def params_to_evnn_layer(params: EGRUTensorParams) -> dict[str, Tensor]:
    """Inverse of :func:`evnn_layer_to_params`: this project's layout to EvNN's."""
    detached = EGRUTensorParams(*(t.detach() for t in params))
    return {
        "kernel": _reorder_chunks(detached.weight_ih, _EVNN_TO_TORCH).t().contiguous(),
        "recurrent_kernel": _reorder_chunks(detached.weight_hh, _EVNN_TO_TORCH).t().contiguous(),
        "bias": _reorder_chunks(detached.bias_ih, _EVNN_TO_TORCH).clone(),
        "recurrent_bias": _reorder_chunks(detached.bias_hh, _EVNN_TO_TORCH).clone(),
        "thr": detached.threshold.clone(),
    }


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _discover_evnn_prefixes(state_dict: Mapping[str, Any]) -> list[str]:
    """Prefixes ``p`` such that ``p + "recurrent_kernel"`` is a key, in natural order."""
    suffix = "recurrent_kernel"
    prefixes = [key[: -len(suffix)] for key in state_dict if key.endswith(suffix)]
    return sorted(prefixes, key=_natural_key)


def load_evnn_state_dict(
    module: EGRUModule,
    state_dict: Mapping[str, Any],
    *,
    prefixes: Sequence[str] | None = None,
) -> EGRUModule:
    """Load EvNN EGRU layers from a (checkpoint) state dict into ``module``, in place.

    Args:
        module: :class:`~snn_egru.sequence.EGRUSequence` or :class:`~snn_egru.neuron.EGRU`.
        state_dict: e.g. ``torch.load(path)["model"]``; tensors or arrays.
        prefixes: key prefix of each layer (``["rnns.0.", "rnns.1."]``; ``""`` for a bare
            layer); default: every prefix ``p`` with a key ``p + "recurrent_kernel"``, in
            natural order (``rnns.2`` before ``rnns.10``).

    Returns:
        ``module``. Raises ``KeyError``/``ValueError`` naming the missing key or bad shape.
    """
    if prefixes is None:
        prefixes = _discover_evnn_prefixes(state_dict)
        if not prefixes:
            raise KeyError(
                "no EvNN EGRU layer found: no key ends with 'recurrent_kernel' "
                f"(first keys: {list(state_dict)[:5]})"
            )
    n_layers = module.num_layers if isinstance(module, EGRUSequence) else 1
    if len(prefixes) != n_layers:
        raise ValueError(
            f"found {len(prefixes)} EvNN layers {list(prefixes)}, the module has {n_layers}"
        )
    converted = []
    for prefix in prefixes:
        layer = {key: state_dict[prefix + key] for key in EVNN_KEYS if prefix + key in state_dict}
        missing = [prefix + key for key in EVNN_KEYS if prefix + key not in state_dict]
        if missing:
            raise KeyError(f"EvNN state dict lacks {missing} for the layer with prefix {prefix!r}")
        converted.append(evnn_layer_to_params(layer, name=f"EvNN layer {prefix!r}"))
    if isinstance(module, EGRU):
        _copy_into(module.params(), module.thresholds, converted[0], name="EGRU")
        return module
    for k, params in enumerate(converted):
        _copy_into(module.layer_params(k), module.threshold_module(k), params, name=f"layer {k}")
    return module


def export_evnn_state_dict(
    module: EGRUModule, *, prefixes: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """Inverse of :func:`load_evnn_state_dict`: EvNN-format tensors of every layer.

    Args:
        module: :class:`~snn_egru.sequence.EGRUSequence` or :class:`~snn_egru.neuron.EGRU`.
        prefixes: key prefix per layer; default ``"rnns.{k}."`` for a stack (EvNN's LM
            benchmark naming) and ``""`` for a neuron.
    """
    if isinstance(module, EGRU):
        layers = [module.params()]
        default = [""]
    else:
        layers = [module.layer_params(k) for k in range(module.num_layers)]
        default = [f"rnns.{k}." for k in range(module.num_layers)]
    prefixes = default if prefixes is None else list(prefixes)
    if len(prefixes) != len(layers):
        raise ValueError(f"got {len(prefixes)} prefixes for {len(layers)} layers")
    out: dict[str, Tensor] = {}
    for prefix, params in zip(prefixes, layers):
        for key, value in params_to_evnn_layer(params).items():
            out[prefix + key] = value
    return out


# ---------------------------------------------------------------------------- (c) nn.GRU
def _check_gru_compatible(seq: EGRUSequence, gru: nn.GRU) -> None:
    problems = []
    if gru.bidirectional:
        problems.append("bidirectional GRUs have no EGRU counterpart")
    if not gru.bias:
        problems.append("the nn.GRU must have bias=True")
    if getattr(gru, "proj_size", 0):
        problems.append("proj_size must be 0")
    if gru.num_layers != seq.num_layers:
        problems.append(f"num_layers {gru.num_layers} != {seq.num_layers}")
    if gru.input_size != seq.input_size:
        problems.append(f"input_size {gru.input_size} != {seq.input_size}")
    if any(h != gru.hidden_size for h in seq.hidden_sizes):
        problems.append(f"hidden_size {gru.hidden_size} != {list(seq.hidden_sizes)}")
    if problems:
        raise ValueError("nn.GRU and EGRUSequence layouts differ: " + "; ".join(problems))


_GRU_FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@torch.no_grad()
def copy_from_gru(seq: EGRUSequence, gru: nn.GRU) -> EGRUSequence:
    """Copy ``nn.GRU`` weights and biases into ``seq`` (thresholds untouched); returns ``seq``.

    Same layout and gate order, so this is a plain copy; the EGRU's dynamics still differ
    from the GRU's (recurrent input ``y``, thresholds, reset).
    """
    _check_gru_compatible(seq, gru)
    for k in range(seq.num_layers):
        for field in _GRU_FIELDS:
            getattr(seq, f"{field}_l{k}").copy_(getattr(gru, f"{field}_l{k}"))
    return seq


@torch.no_grad()
def copy_to_gru(seq: EGRUSequence, gru: nn.GRU) -> nn.GRU:
    """Copy ``seq``'s weights and biases into an ``nn.GRU`` of the same layout; returns it."""
    _check_gru_compatible(seq, gru)
    for k in range(seq.num_layers):
        for field in _GRU_FIELDS:
            getattr(gru, f"{field}_l{k}").copy_(getattr(seq, f"{field}_l{k}"))
    return gru
