"""Moving EGRU weights between this project's modules and other formats.

(a) the numpy reference (:mod:`snn_egru.reference`): :func:`sequence_to_reference`,
    :func:`neuron_to_reference` (float32 numpy, effective thresholds) and the inverse
    :func:`load_reference_params` (works for both modules);
(b) checkpoints of the public reference implementation EvNN, which stores per layer
    ``kernel (I, 3H)``, ``recurrent_kernel (H, 3H)``, ``bias (3H)``, ``recurrent_bias (3H)``,
    the thresholds (v0.2: ``thr (H)``; v0.1: ``thr_reparam (H)`` with ``theta =
    sigmoid(thr_reparam)``) and three ``(1,)`` parameters without gradient: ``_max_norm``
    (gradient clipping, -1 = off), ``dampening_factor`` and ``pseudo_derivative_support`` (the
    triangle pseudo-derivative), with gate chunks ordered ``(z, r, g)``; this project uses
    ``nn.GRU`` layout ``(3H, I)`` and order ``(r, z, n)``. Converting transposes AND reorders
    the gate chunks (EvNN's own converter only transposes): :func:`evnn_layer_to_params`,
    :func:`params_to_evnn_layer`, :func:`load_evnn_state_dict`, :func:`export_evnn_state_dict`.
    EvNN's state is the events ``y`` only (``(1, B, H)``, the cell state starts at 0 in every
    call; its LM carries only ``y`` across BPTT windows): build the
    :class:`~snn_egru.sequence.EGRUSequence` with ``state_semantics="y"`` to run a loaded
    model exactly as EvNN does, and ``return_state_sequence=True`` for EvNN's per-step ``c``
    (its ``h``) and ``o``;
(c) ``torch.nn.GRU``: :func:`copy_from_gru`, :func:`copy_to_gru` (same layout and gate order;
    only the layout carries over, the dynamics differ: docs/egru.md).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from snn_egru.functional import EGRUTensorParams, TriangleSurrogate, triangle
from snn_egru.neuron import EGRU
from snn_egru.reference import EGRUParams, validate_params
from snn_egru.sequence import EGRUSequence
from snn_egru.thresholds import Threshold

__all__ = [
    "EVNN_KEYS",
    "EVNN_SCALAR_KEYS",
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

#: Per-layer tensor names in an EvNN (v0.2) EGRU state dict (v0.1: ``thr_reparam``, a logit,
#: instead of ``thr``).
EVNN_KEYS: tuple[str, ...] = ("kernel", "recurrent_kernel", "bias", "recurrent_bias", "thr")
#: The ``(1,)`` parameters (``requires_grad=False``) every EvNN EGRU layer also holds, in
#: its registration order (``_max_norm`` first: EvNN sets up gradient clipping before the
#: weights).
EVNN_SCALAR_KEYS: tuple[str, ...] = ("_max_norm", "dampening_factor", "pseudo_derivative_support")
#: The v0.1 threshold logit.
EVNN_V01_THRESHOLD_KEY = "thr_reparam"
_EVNN_WEIGHT_KEYS = EVNN_KEYS[:4]

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
        low = float(np.min(layer.threshold)) if np.size(layer.threshold) else 0.0
        if low < 0:  # a layer without memory (validated): a dense bottleneck
            old = module.threshold_module(k)
            module.add_module(
                f"threshold_l{k}",
                Threshold(
                    old.hidden_size, learnable=False, value=0.0, minimum=low, dtype=old.raw.dtype
                ).to(old.raw.device),
            )
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
    required = list(_EVNN_WEIGHT_KEYS)
    v01 = "thr" not in layer and EVNN_V01_THRESHOLD_KEY in layer
    required.append(EVNN_V01_THRESHOLD_KEY if v01 else "thr")
    missing = [key for key in required if key not in layer]
    if missing:
        raise KeyError(
            f"{name}: missing EvNN keys {missing} (an EvNN EGRU layer has {list(EVNN_KEYS)}; "
            f"v0.1 layers '{EVNN_V01_THRESHOLD_KEY}' instead of 'thr')"
        )
    t = {key: _as_tensor(layer[key]) for key in required}
    if v01:
        t["thr"] = torch.sigmoid(t.pop(EVNN_V01_THRESHOLD_KEY))
    thr = _clamp_evnn_thresholds(t["thr"], name)
    t["thr"] = thr
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


def _clamp_evnn_thresholds(thr: Tensor, name: str) -> Tensor:
    """EvNN clamps ``thr`` to ``[0, 1]`` in every forward pass: do the same, with a warning."""
    if not thr.is_floating_point() or not bool(torch.isfinite(thr).all()):
        return thr  # reported by the checks below / when loading
    outside = int(((thr < 0) | (thr > 1)).sum())
    if outside:
        warnings.warn(
            f"{name}: {outside} of {thr.numel()} thresholds lie outside [0, 1] (min "
            f"{float(thr.min()):.4g}, max {float(thr.max()):.4g}); clamped to [0, 1] as EvNN's "
            "forward pass does",
            UserWarning,
            stacklevel=3,
        )
        thr = thr.clamp(0.0, 1.0)
    return thr


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


def _surrogate_of(state_dict: Mapping[str, Any], prefixes: Sequence[str]) -> tuple | None:
    """The checkpoint's ``(dampening_factor, pseudo_derivative_support)``, one for all layers."""
    values = []
    for prefix in prefixes:
        keys = (prefix + "dampening_factor", prefix + "pseudo_derivative_support")
        if not all(key in state_dict for key in keys):
            continue
        values.append(tuple(_stored_scalar(state_dict[key]) for key in keys))
    if not values:
        return None
    if any(v != values[0] for v in values):
        raise ValueError(
            "EvNN layers use different (dampening_factor, pseudo_derivative_support) "
            f"{values}; an EGRUSequence has one spike function: load the layers into separate "
            "modules"
        )
    return values[0]


def _stored_scalar(value: Any) -> float:
    """A ``(1,)`` EvNN constant as the decimal it was written from (float32 3.6 -> 3.6)."""
    t = _as_tensor(value).reshape(-1)[0]
    if t.dtype == torch.float32:
        return float(repr(np.float32(t.item())))
    return float(t)


def _apply_surrogate(module: EGRUModule, surrogate: tuple | None) -> None:
    """Use the checkpoint's triangle pseudo-derivative (forward unchanged, gradients right)."""
    if surrogate is None:
        return
    dampening, support = surrogate
    current = module.spike_grad
    if isinstance(current, TriangleSurrogate):
        if (current.dampening, current.support) != (dampening, support):
            logger.info(
                "EvNN checkpoint: spike function %r -> triangle(%s, %s)",
                current,
                dampening,
                support,
            )
        # the amplitude is the module's training choice (EvNN has only "state")
        module.spike_grad = triangle(dampening, support, current.amplitude)
        return
    warnings.warn(
        f"the EvNN checkpoint was trained with the triangle pseudo-derivative "
        f"(dampening_factor={dampening}, pseudo_derivative_support={support}); the module "
        f"keeps its own spike function {current!r}, so its gradients differ from EvNN's",
        UserWarning,
        stacklevel=3,
    )


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

    Also read: ``dampening_factor`` / ``pseudo_derivative_support`` (the module's spike
    function becomes ``triangle(dampening_factor, pseudo_derivative_support)``, so gradients
    match the training run; a custom spike function is kept, with a warning), v0.1's
    ``thr_reparam`` (``theta = sigmoid(thr_reparam)``; copied exactly into a
    ``threshold_init="sigmoid"`` module's logit). Thresholds outside ``[0, 1]`` are clamped
    with a warning, as EvNN's forward pass clamps them. ``_max_norm`` (EvNN's gradient
    clipping) has no counterpart and is ignored.

    EvNN's recurrent state is ``y`` only (``(1, B, H)``; ``c`` starts at 0 in each call):
    give the module ``state_semantics="y"`` to run the loaded model with EvNN's state.

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
    logits: list[Tensor | None] = []
    for prefix in prefixes:
        keys = (*_EVNN_WEIGHT_KEYS, "thr", EVNN_V01_THRESHOLD_KEY)
        layer = {key: state_dict[prefix + key] for key in keys if prefix + key in state_dict}
        missing = [prefix + key for key in _EVNN_WEIGHT_KEYS if key not in layer]
        if "thr" not in layer and EVNN_V01_THRESHOLD_KEY not in layer:
            missing.append(prefix + "thr")
        if missing:
            raise KeyError(f"EvNN state dict lacks {missing} for the layer with prefix {prefix!r}")
        converted.append(evnn_layer_to_params(layer, name=f"EvNN layer {prefix!r}"))
        logit = layer.get(EVNN_V01_THRESHOLD_KEY) if "thr" not in layer else None
        logits.append(None if logit is None else _as_tensor(logit))
    surrogate = _surrogate_of(state_dict, prefixes)
    if isinstance(module, EGRU):
        targets = [(module.params(), module.thresholds, "EGRU")]
    else:
        targets = [
            (module.layer_params(k), module.threshold_module(k), f"layer {k}")
            for k in range(module.num_layers)
        ]
    for (target, threshold, name), params, logit in zip(targets, converted, logits):
        if threshold.init == "sigmoid" and logit is None:
            # theta in [0, 1]; the logit parametrisation needs (0, 1)
            params = params._replace(threshold=params.threshold.clamp(1e-6, 1.0 - 1e-6))
        _copy_into(target, threshold, params, name=name)
        if logit is not None and threshold.init == "sigmoid":
            with torch.no_grad():  # the v0.1 logit itself, not logit(sigmoid(.)) rounded
                threshold.raw.copy_(logit.to(threshold.raw.dtype).reshape(threshold.raw.shape))
    _apply_surrogate(module, surrogate)
    return module


def export_evnn_state_dict(
    module: EGRUModule, *, prefixes: Sequence[str] | None = None, version: str = "v0.2"
) -> dict[str, Tensor]:
    """Inverse of :func:`load_evnn_state_dict`: an EvNN state dict of every layer.

    Every layer gets all the entries of EvNN's EGRU module, so that EvNN's
    ``load_state_dict(..., strict=True)`` accepts it: the four weight tensors, the thresholds
    (``thr``; v0.1: ``thr_reparam`` = logit of theta) and the ``(1,)`` float32 parameters
    ``_max_norm`` (-1: gradient clipping off, EvNN's default), ``dampening_factor`` and
    ``pseudo_derivative_support`` (from the module's triangle spike function).

    Args:
        module: :class:`~snn_egru.sequence.EGRUSequence` or :class:`~snn_egru.neuron.EGRU`.
        prefixes: key prefix per layer; default ``"rnns.{k}."`` for a stack (EvNN's LM
            benchmark naming) and ``""`` for a neuron.
        version: ``"v0.2"`` (``thr``) or ``"v0.1"`` (``thr_reparam``).

    Raises ``ValueError`` when the module's spike function is not the triangle (EvNN has no
    other pseudo-derivative).
    """
    if version not in ("v0.1", "v0.2"):
        raise ValueError(f"version must be 'v0.1' or 'v0.2', got {version!r}")
    spike = module.spike_grad
    if not isinstance(spike, TriangleSurrogate):
        raise ValueError(
            f"EvNN only has the triangle pseudo-derivative; the module uses {spike!r} "
            "(build it with spike_grad=None and dampening/support instead)"
        )
    if spike.amplitude != "state":
        warnings.warn(
            f"the module trains with amplitude={spike.amplitude!r}, which EvNN does not have: "
            "the checkpoint computes the same values, but training it further in EvNN uses the "
            "product rule (amplitude='state')",
            stacklevel=2,
        )
    scalars = {
        "_max_norm": torch.tensor([-1.0]),
        "dampening_factor": torch.tensor([spike.dampening]),
        "pseudo_derivative_support": torch.tensor([spike.support]),
    }
    if isinstance(module, EGRU):
        layers = [module.params()]
        default = [""]
    else:
        layers = [module.layer_params(k) for k in range(module.num_layers)]
        default = [f"rnns.{k}." for k in range(module.num_layers)]
    prefixes = default if prefixes is None else list(prefixes)
    if len(prefixes) != len(layers):
        raise ValueError(f"got {len(prefixes)} prefixes for {len(layers)} layers")
    thresholds = (
        [module.thresholds]
        if isinstance(module, EGRU)
        else [module.threshold_module(k) for k in range(module.num_layers)]
    )
    out: dict[str, Tensor] = {}
    for prefix, params, threshold in zip(prefixes, layers, thresholds):
        out.update({prefix + key: value.clone() for key, value in scalars.items()})
        for key, value in params_to_evnn_layer(params).items():
            if key == "thr" and version == "v0.1":
                key = EVNN_V01_THRESHOLD_KEY
                if threshold.init == "sigmoid":
                    value = threshold.raw.detach().clone()
                else:
                    value = torch.logit(value.clamp(1e-6, 1.0 - 1e-6))
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
