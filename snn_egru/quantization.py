"""Quantisation-aware training (QAT) and post-training quantisation (PTQ) of EGRU stacks.

The arithmetic is :func:`snn_egru.reference.quantized_egru_step`'s (``docs/quantisation.md``):
symmetric int8 weights, one float32 scale per output row or gate block, and ``"float"``
products (int8 weights x float32 events: the Arm core) or ``"int8"`` products (inputs and
events quantised with one scale per vector: the MAC array; layer ``k + 1``'s input scale is
layer ``k``'s event scale, an event is quantised once). Optionally the stored cell state is
replaced by the nearest level of snnTorch's ``state_quant`` tables (``state="uniform"`` or
the threshold-centred ``"threshold"``); as in snnTorch the switch is a callable
(:func:`state_quant`) or ``False``.

:func:`prepare_qat` attaches an :class:`EGRUQuantizer` to a model's ``EGRUSequence``.
Training mode fake-quantises with straight-through estimators: weights
``w + (q s - w).detach()`` with scales that follow the weights (a pruned zero stays zero),
inputs/events with LSQ (learned step size, in log space) or calibrated fixed scales, the
state with an identity gradient. Evaluation mode computes the deployed integer arithmetic:
``"int8"`` products are bit-exact against the reference, ``"float"`` products equal it to
float32 summation order, and the point-wise update differs from numpy's by the <= 2 ulp of
torch's ``sigmoid``/``tanh`` (whole steps agree to about 1e-7). :func:`quantized_layers`
gives the exact codes and scales (what export writes);
:func:`quantize_artifact` is PTQ of a float artifact with input/event scales calibrated
from recorded activity. The fake quantisers and the state quantiser are in
:mod:`snn_egru.fake_quant`, the trainers' ``--quantize`` options in
:mod:`snn_egru.quantization_cli`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn_egru.fake_quant import (
    StateQuant,
    _activation_codes,
    fake_quantize_activation,
    fake_quantize_weight,
    state_quant,
    weight_codes,
    weight_scales_torch,
)
from snn_egru.functional import (
    EGRUCellState,
    candidate_state,
    egru_layer_loop,
    fire_and_reset,
)
from snn_egru.reference import (
    INT8_MAX,
    PRODUCT_MODES,
    WEIGHT_GRANULARITIES,
    EGRUParams,
    QuantizedEGRUParams,
    QuantizedWeight,
    quantize_params,
)

__all__ = [
    "ACTIVATION_SCALE_MODES",
    "QUANTIZE_CHOICES",
    "STATE_SCHEMES",
    "EGRUQuantizer",
    "QuantizationConfig",
    "StateQuant",
    "calibrate",
    "coerce_quantization",
    "fake_quantize_activation",
    "fake_quantize_weight",
    "first_batch",
    "prepare_from_checkpoint",
    "prepare_qat",
    "quantize_artifact",
    "quantized_layers",
    "state_quant",
    "weight_codes",
    "weight_scales_torch",
]

#: Values of ``--quantize`` (the weight format).
QUANTIZE_CHOICES = ("int8",)
#: How the int8 input/event scales are obtained.
ACTIVATION_SCALE_MODES = ("learned", "calibrated")
#: State quantisation schemes (``None``: float32 state).
STATE_SCHEMES = ("uniform", "threshold")


@dataclass
class QuantizationConfig:
    """What to quantise and how (a field of the LM and DVS training configs).

    Attributes:
        weights: weight format; ``"int8"`` (symmetric, codes in ``[-127, 127]``).
        granularity: one weight scale per output ``"row"`` or per ``"gate"`` block.
        products: ``"float"`` (int8 weights x float32 events, the Arm core) or ``"int8"``
            (inputs and events quantised too, the MAC array).
        activation_scales: with ``products="int8"``: ``"learned"`` (LSQ, initialised by
            calibration) or ``"calibrated"`` (max |x| / 127 over the calibration batches,
            then fixed).
        state: ``None`` (float32 state), ``"uniform"`` or ``"threshold"`` (snnTorch's
            threshold-centred levels, centred on each layer's mean threshold).
        state_bits: bits of the state levels (``2**state_bits`` levels; 8 or 16 typical).
        state_range: ``(low, high)`` of the levels; ``c`` stays in ``(-1, 1)`` (it is a convex
            mix of the old state and ``tanh``, minus the threshold after an event).
    """

    weights: str = "int8"
    granularity: str = "row"
    products: str = "float"
    activation_scales: str = "learned"
    state: str | None = None
    state_bits: int = 8
    state_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        self.state_range = tuple(float(v) for v in self.state_range)
        checks = (
            ("weights", self.weights, QUANTIZE_CHOICES),
            ("granularity", self.granularity, WEIGHT_GRANULARITIES),
            ("products", self.products, PRODUCT_MODES),
            ("activation_scales", self.activation_scales, ACTIVATION_SCALE_MODES),
            ("state", self.state, (None, *STATE_SCHEMES)),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"quantization {name} must be one of {allowed}, got {value!r}")
        if not (isinstance(self.state_bits, int) and 2 <= self.state_bits <= 16):
            raise ValueError(f"state_bits must be an int in [2, 16], got {self.state_bits!r}")
        low, high = self.state_range
        if len(self.state_range) != 2 or not low < 0 < high:
            raise ValueError(f"state_range must be (low < 0, high > 0), got {self.state_range}")

    def describe(self) -> str:
        """Short label, e.g. ``int8/row/int8-products/uniform-state``."""
        parts = [self.weights, self.granularity, f"{self.products}-products"]
        if self.products == "int8":
            parts.append(f"{self.activation_scales}-scales")
        if self.state is not None:
            parts.append(f"{self.state}{self.state_bits}-state")
        return "/".join(parts)


def coerce_quantization(value: Any) -> QuantizationConfig | None:
    """``None``, ``"int8"``, a config dict (from a checkpoint) or a config -> config."""
    if value is None or isinstance(value, QuantizationConfig):
        return value
    if isinstance(value, str):
        return QuantizationConfig(weights=value)
    if isinstance(value, Mapping):
        fields = value.get("fields", value)
        return QuantizationConfig(**dict(fields))
    raise TypeError(f"quantize must be None, 'int8' or a QuantizationConfig, got {value!r}")


def _config_state_quant(config: QuantizationConfig, mean_threshold: float) -> StateQuant | None:
    """The state quantiser of one layer from the config (threshold: the layer's mean)."""
    if config.state is None:
        return None
    low, high = config.state_range
    if config.state == "uniform":
        return state_quant(config.state_bits, True, threshold=1.0, lower_limit=-low - 1.0,
                           upper_limit=high - 1.0)  # fmt: skip
    thr = min(max(mean_threshold, 1e-3), 0.999 * high)
    return state_quant(
        config.state_bits,
        False,
        True,
        threshold=thr,
        lower_limit=-low / thr - 1.0,
        upper_limit=high / thr - 1.0,
    )


# ------------------------------------------------------------------------ the quantiser
class EGRUQuantizer(nn.Module):
    """Quantisation state of one :class:`~snn_egru.sequence.EGRUSequence` (see module doc).

    Attach with :func:`prepare_qat` (it becomes ``seq.quantizer``; its scales are saved with
    the model's ``state_dict``). The stack's forward pass then calls :meth:`run_layer`.

    Args:
        seq: the stack to quantise.
        config: a :class:`QuantizationConfig`.
        state_quant: per-layer :class:`StateQuant` (one for all layers, a list, or
            ``False``); default from ``config.state``.

    Attributes:
        activation_scales: with ``products="int8"``, ``L + 1`` float32 scales: entry ``k`` is
            layer ``k``'s input scale, entry ``k + 1`` its event scale (learned in log space
            as ``log_activation_scales`` or calibrated buffers).
    """

    def __init__(
        self,
        seq: nn.Module,
        config: QuantizationConfig,
        *,
        state_quant: StateQuant | Sequence[StateQuant | None] | bool | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_layers = seq.num_layers
        self.hidden_sizes = tuple(seq.hidden_sizes)
        self.recording = False
        self._maxima: list[float] = [0.0] * (self.num_layers + 1)
        if config.products == "int8":
            init = torch.zeros(self.num_layers + 1, dtype=torch.float32)
            if config.activation_scales == "learned":
                self.log_activation_scales = nn.Parameter(init)
            else:
                self.register_buffer("calibrated_scales", torch.ones_like(init))
        if state_quant is None:
            state_quant = [
                _config_state_quant(config, float(seq.threshold(k).detach().mean()))
                for k in range(self.num_layers)
            ]
        elif state_quant is False:
            state_quant = [None] * self.num_layers
        elif isinstance(state_quant, StateQuant):
            state_quant = [state_quant] * self.num_layers
        state_quant = list(state_quant)
        if len(state_quant) != self.num_layers:
            raise ValueError(f"need one state quantiser per layer ({self.num_layers})")
        self.state_quants: list[StateQuant | None] = state_quant
        self.register_buffer("is_calibrated", torch.tensor(False))  # saved with checkpoints
        for k, sq in enumerate(state_quant):
            levels = torch.from_numpy(sq.levels.copy()) if sq is not None else torch.zeros(0)
            self.register_buffer(f"state_levels_l{k}", levels)

    # ------------------------------------------------------------ scales and codes
    @property
    def int8_products(self) -> bool:
        return self.config.products == "int8"

    def activation_scale(self, index: int) -> Tensor:
        """Scale ``index`` (layer ``k``'s input: ``k``; its events: ``k + 1``), float32 0-d."""
        if self.config.activation_scales == "learned":
            return torch.exp(self.log_activation_scales[index])
        return self.calibrated_scales[index]

    def set_activation_scales(self, scales: Sequence[float]) -> None:
        """Set every input/event scale (float32 values > 0)."""
        values = torch.tensor([float(np.float32(s)) for s in scales], dtype=torch.float32)
        if values.shape != (self.num_layers + 1,) or not bool((values > 0).all()):
            raise ValueError(f"need {self.num_layers + 1} positive scales, got {list(scales)}")
        with torch.no_grad():
            if self.config.activation_scales == "learned":
                self.log_activation_scales.copy_(torch.log(values))
            else:
                self.calibrated_scales.copy_(values)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):  # noqa: D102
        # level tables may differ in length from the freshly built ones: take the saved ones
        for k in range(self.num_layers):
            key = f"{prefix}state_levels_l{k}"
            if key in state_dict:
                setattr(self, f"state_levels_l{k}", state_dict[key].detach().clone().float())
        before = len(missing_keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        # a float checkpoint (fine-tuning with QAT) has no quantiser entries: keep ours
        missing_keys[before:] = [k for k in missing_keys[before:] if not k.startswith(prefix)]
        self._sync_state_quants()

    def reset_state_levels(self, seq: nn.Module) -> None:
        """Rebuild the configured state levels from the stack's current thresholds."""
        if self.config.state is None:
            return
        for k in range(self.num_layers):
            sq = _config_state_quant(self.config, float(seq.threshold(k).detach().mean()))
            levels = torch.from_numpy(sq.levels.copy()).to(getattr(self, f"state_levels_l{k}"))
            setattr(self, f"state_levels_l{k}", levels)
        self._sync_state_quants()

    def _sync_state_quants(self) -> None:
        quants: list[StateQuant | None] = []
        for k in range(self.num_layers):
            levels = getattr(self, f"state_levels_l{k}")
            quants.append(StateQuant(levels.cpu().numpy()) if levels.numel() else None)
        self.state_quants = quants

    def _weight(self, w: Tensor, hidden: int) -> tuple[Tensor, Tensor]:
        scale = weight_scales_torch(w, granularity=self.config.granularity, hidden_size=hidden)
        return weight_codes(w, scale), scale

    # ------------------------------------------------------------ calibration
    def _record(self, index: int, x: Tensor) -> None:
        if x.numel():
            self._maxima[index] = max(self._maxima[index], float(x.detach().abs().max()))

    def start_recording(self) -> None:
        self.recording = True
        self._maxima = [0.0] * (self.num_layers + 1)

    def stop_recording(self) -> list[float]:
        """Stop recording; return ``max |x| / 127`` per scale (float64 division, float32)."""
        self.recording = False
        return [float(np.float32(m / INT8_MAX)) if m > 0 else 1.0 for m in self._maxima]

    # ------------------------------------------------------------ forward
    def run_layer(
        self,
        seq: nn.Module,
        k: int,
        x: Tensor,
        state: EGRUCellState,
        params: Any,
        keep_mask: Tensor | None,
        needs_grad: bool,
    ) -> tuple[Tensor, EGRUCellState]:
        """Layer ``k`` of ``seq`` over ``x (T, B, I)`` with quantised arithmetic."""
        if seq.training:
            return self._run_train(seq, k, x, state, params, keep_mask, needs_grad)
        return self._run_exact(seq, k, x, state, params)

    def _run_exact(self, seq, k, x, state, params) -> tuple[Tensor, EGRUCellState]:
        steps, batch = x.shape[0], x.shape[1]
        hidden = self.hidden_sizes[k]
        int8 = self.int8_products and not self.recording
        q_ih, s_ih = self._weight(params.weight_ih, hidden)
        q_hh, s_hh = self._weight(params.weight_hh, hidden)
        s_in = self.activation_scale(k).detach() if int8 else None
        s_ev = self.activation_scale(k + 1).detach() if int8 else None
        if self.recording:
            self._record(k, x)
        gi = _exact_product(x.reshape(steps * batch, -1), q_ih, s_ih, s_in, params.bias_ih)
        gi = gi.view(steps, batch, 3 * hidden)
        sq = self.state_quants[k]
        zoneout = seq.zoneout if seq.zoneout > 0 else 0.0
        y, c = state
        outputs = []
        for t in range(steps):
            gh = _exact_product(y, q_hh, s_hh, s_ev, params.bias_hh)
            c_tilde = candidate_state(gi[t], gh, c)
            if zoneout:
                c_tilde = zoneout * c + (1.0 - zoneout) * c_tilde
            y, c, _ = fire_and_reset(c_tilde, params.threshold, seq.spike_grad)
            if sq is not None:
                c = sq(c)
            outputs.append(y)
        ys = torch.stack(outputs) if outputs else x.new_zeros(0, batch, hidden)
        if self.recording:
            self._record(k + 1, ys)
        return ys, EGRUCellState(y=y, c=c)

    def _run_train(self, seq, k, x, state, params, keep_mask, needs_grad):
        hidden = self.hidden_sizes[k]
        cfg = self.config
        w_ih = fake_quantize_weight(
            params.weight_ih, granularity=cfg.granularity, hidden_size=hidden
        )
        w_hh = fake_quantize_weight(
            params.weight_hh, granularity=cfg.granularity, hidden_size=hidden
        )
        if seq.dropconnect > 0:
            w_hh = F.dropout(w_hh, seq.dropconnect, training=True)
        int8 = self.int8_products and not self.recording
        if int8:
            factor = 1.0 / math.sqrt(max(1, x.numel()) * INT8_MAX)
            x = fake_quantize_activation(x, self.activation_scale(k), grad_factor=factor)
        gi = F.linear(x, w_ih, params.bias_ih)
        sq = self.state_quants[k]
        y, c = state
        if not int8 and sq is None and needs_grad and seq.fused_backward:
            ys, c = egru_layer_loop(
                gi, y, c, w_hh, params.bias_hh, params.threshold,
                spike_fn=seq.spike_grad, keep_mask=keep_mask,
            )  # fmt: skip
            return ys, EGRUCellState(y=ys[-1] if ys.shape[0] else y, c=c)
        s_ev = self.activation_scale(k + 1) if int8 else None
        factor = 1.0 / math.sqrt(max(1, y.numel()) * INT8_MAX)
        outputs = []
        for t in range(gi.shape[0]):
            y_in = fake_quantize_activation(y, s_ev, grad_factor=factor) if int8 else y
            gh = F.linear(y_in, w_hh, params.bias_hh)
            c_tilde = candidate_state(gi[t], gh, c)
            if keep_mask is not None:
                c_tilde = torch.where(keep_mask[t], c, c_tilde)
            y, c, _ = fire_and_reset(c_tilde, params.threshold, seq.spike_grad)
            if sq is not None:
                c = sq(c)
            outputs.append(y)
        ys = torch.stack(outputs) if outputs else gi.new_zeros(0, gi.shape[1], hidden)
        return ys, EGRUCellState(y=y, c=c)

    def extra_repr(self) -> str:
        return self.config.describe()


def _exact_product(
    x: Tensor, codes: Tensor, row_scale: Tensor, x_scale: Tensor | None, bias: Tensor
) -> Tensor:
    """``x @ dequant(W).T + b`` as ``quantized_matvec`` computes it, ``x (N, in)``."""
    x = x.float()
    if x_scale is None:  # "float": integer weights x float32 inputs, then the row scale
        return torch.mm(x, codes.t()) * row_scale + bias
    e = _activation_codes(x, x_scale)
    if codes.shape[1] * INT8_MAX * INT8_MAX < 2**24:  # every partial sum is exact in float32
        acc = torch.mm(e, codes.t())
    else:
        acc = torch.mm(e.double(), codes.double().t()).float()
    return acc * (row_scale * x_scale) + bias


# ------------------------------------------------------------------------ model helpers
def _sequence(model: nn.Module) -> nn.Module:
    from snn_egru.training.common import unwrap_model

    model = unwrap_model(model)
    return model.rnn if hasattr(model, "rnn") else model


def prepare_qat(
    model: nn.Module,
    config: QuantizationConfig | str | None,
    *,
    state_quant: StateQuant | Sequence[StateQuant | None] | bool | None = None,
    calibration: Callable[[nn.Module], Any] | None = None,
) -> EGRUQuantizer | None:
    """Attach an :class:`EGRUQuantizer` to ``model.rnn`` (or an ``EGRUSequence`` itself).

    Args:
        model: a model with an ``rnn`` stack, or the stack.
        config: the :class:`QuantizationConfig` (or ``"int8"``; ``None``: nothing to do).
        state_quant: per-layer state quantisers (default from ``config.state``).
        calibration: ``fn(model)`` running a few batches; with ``products="int8"`` the
            input/event scales start at ``max |x| / 127`` of what it recorded
            (:func:`calibrate`). Without it the scales stay 1 until :func:`calibrate` is called.

    Returns:
        The quantiser (also ``model.rnn.quantizer``). Build the optimizer afterwards, so
        that learned scales are trained.
    """
    config = coerce_quantization(config)
    if config is None:
        return None
    seq = _sequence(model)
    if not hasattr(seq, "hidden_sizes"):
        raise TypeError(f"{type(seq).__name__} is not an EGRUSequence")
    device = next(seq.parameters()).device
    quantizer = EGRUQuantizer(seq, config, state_quant=state_quant).to(device)
    seq.quantizer = quantizer
    if calibration is not None:
        calibrate(model, calibration)
    return quantizer


@torch.no_grad()
def calibrate(
    model: nn.Module, run: Callable[[nn.Module], Any], *, if_needed: bool = False
) -> list[float] | None:
    """Record ``max |x|`` of every layer input and event in evaluation mode; set the scales.

    ``run(model)`` feeds calibration data (the weights are already int8, the activations
    float32 while recording). Returns the scales (``max / 127``). ``if_needed``: do nothing
    for a float model or a quantiser calibrated before (restored from a QAT checkpoint).
    """
    seq = _sequence(model)
    quantizer = seq.quantizer
    if if_needed and (quantizer is None or bool(quantizer.is_calibrated)):
        return None
    if quantizer is None:
        raise ValueError("the model has no quantizer; call prepare_qat first")
    quantizer.reset_state_levels(seq)
    quantizer.is_calibrated.fill_(True)
    was_training = model.training
    model.eval()
    quantizer.start_recording()
    try:
        run(model)
    finally:
        scales = quantizer.stop_recording()
        model.train(was_training)
    if quantizer.int8_products:
        quantizer.set_activation_scales(scales)
    return scales


def first_batch(dataset: Any, size: int) -> Tensor:
    """The inputs of the first ``size`` samples of a map-style dataset, collated."""
    samples = [dataset[i] for i in range(min(len(dataset), size))]
    return torch.utils.data.default_collate(samples)[0]


def prepare_from_checkpoint(model: nn.Module, train_config: Mapping[str, Any] | None) -> bool:
    """Attach the quantiser a checkpoint's training config names (before loading weights).

    Returns ``True`` when the model was prepared.
    """
    if not train_config:
        return False
    fields = train_config.get("fields", train_config)
    config = coerce_quantization(fields.get("quantize"))
    if config is None:
        return False
    prepare_qat(model, config)
    return True


def quantized_layers(model: nn.Module) -> list[QuantizedEGRUParams]:
    """The :class:`~snn_egru.reference.QuantizedEGRUParams` the evaluation forward uses.

    Codes, weight scales, input/event scales and state levels are taken from the same
    tensors as :meth:`EGRUQuantizer.run_layer`, so the numpy reference computes what the
    torch model computes in evaluation mode.
    """
    seq = _sequence(model)
    quantizer: EGRUQuantizer | None = getattr(seq, "quantizer", None)
    if quantizer is None:
        raise ValueError("the model has no quantizer (prepare_qat) to export from")
    layers = []
    for k in range(seq.num_layers):
        p = seq.layer_params(k)
        hidden = seq.hidden_sizes[k]
        weights = []
        for w in (p.weight_ih, p.weight_hh):
            codes, scale = quantizer._weight(w, hidden)
            csr = sp.csr_matrix(codes.cpu().numpy().astype(np.int8))
            csr.eliminate_zeros()
            csr.sort_indices()
            weights.append(QuantizedWeight(values=csr, scale=scale.cpu().numpy()))
        input_scale = event_scale = None
        if quantizer.int8_products:
            input_scale = float(quantizer.activation_scale(k).detach().cpu())
            event_scale = float(quantizer.activation_scale(k + 1).detach().cpu())
        sq = quantizer.state_quants[k]
        layers.append(
            QuantizedEGRUParams(
                weight_ih=weights[0],
                weight_hh=weights[1],
                bias_ih=p.bias_ih.detach().cpu().float().numpy().copy(),
                bias_hh=p.bias_hh.detach().cpu().float().numpy().copy(),
                threshold=p.threshold.detach().cpu().float().numpy().copy(),
                input_scale=input_scale,
                event_scale=event_scale,
                state_levels=None if sq is None else sq.levels.copy(),
            )
        )
    return layers


# ------------------------------------------------------------------------ PTQ of artifacts
def quantize_artifact(
    artifact: Any,
    *,
    mode: str = "float",
    granularity: str = "row",
    calibration_inputs: Iterable[np.ndarray] | np.ndarray | None = None,
    state: str | None = None,
    state_bits: int = 8,
    state_range: tuple[float, float] = (-1.0, 1.0),
) -> Any:
    """Post-training int8 quantisation of a float :class:`~snn_egru.artifact.DeploymentArtifact`.

    Args:
        artifact: the float artifact (layers :class:`~snn_egru.reference.EGRUParams`).
        mode: product mode, ``"float"`` (Arm core) or ``"int8"`` (MAC array).
        granularity: ``"row"`` or ``"gate"`` weight scales.
        calibration_inputs: with ``mode="int8"``: one workload input (token ids ``(T,)`` or
            features ``(T, I)``) or a list of them. The int8-weight network runs on them with
            float32 activity, and every input/event scale is ``max |x| / 127`` of what it
            saw (layer ``k + 1``'s input scale is layer ``k``'s event scale).
        state, state_bits, state_range: optional state quantisation (:class:`QuantizationConfig`).

    Returns:
        A new artifact with :class:`~snn_egru.reference.QuantizedEGRUParams` layers and the
        quantisation recorded in ``metadata["quantization"]``.
    """
    from snn_egru.artifact import ArtifactError

    if mode not in PRODUCT_MODES:
        raise ValueError(f"mode must be one of {PRODUCT_MODES}, got {mode!r}")
    if any(not isinstance(layer, EGRUParams) for layer in artifact.layers):
        raise ArtifactError("the artifact is already quantised; quantise a float artifact")
    config = QuantizationConfig(
        granularity=granularity,
        products=mode,
        activation_scales="calibrated",
        state=state,
        state_bits=state_bits,
        state_range=state_range,
    )
    levels = []
    for layer in artifact.layers:
        sq = _config_state_quant(config, float(np.mean(layer.threshold)))
        levels.append(None if sq is None else sq.levels)
    layers = [
        quantize_params(layer, granularity=granularity, state_levels=lv)
        for layer, lv in zip(artifact.layers, levels)
    ]
    if mode == "int8":
        if calibration_inputs is None:
            raise ValueError(
                "mode='int8' quantises inputs and events too: pass calibration_inputs "
                "(token ids or feature vectors the model will see) to set their scales"
            )
        if isinstance(calibration_inputs, np.ndarray):
            calibration_inputs = [calibration_inputs]
        float_mode = dataclasses.replace(artifact, layers=layers)
        maxima = np.zeros(len(layers) + 1)
        for inputs in calibration_inputs:
            xs = float_mode.layer_inputs(np.asarray(inputs))
            run = float_mode.run_reference(np.asarray(inputs))
            maxima[0] = max(maxima[0], float(np.abs(xs).max(initial=0.0)))
            for k, events in enumerate(run.layer_events):
                maxima[k + 1] = max(maxima[k + 1], float(np.abs(events).max(initial=0.0)))
        scales = [float(np.float32(m / INT8_MAX)) if m > 0 else 1.0 for m in maxima]
        layers = [
            layer._replace(input_scale=scales[k], event_scale=scales[k + 1])
            for k, layer in enumerate(layers)
        ]
    metadata = dict(artifact.metadata)
    metadata["quantization"] = {
        "method": "ptq",
        **{k: v for k, v in dataclasses.asdict(config).items() if k != "weights"},
        "weights": "int8",
    }
    return dataclasses.replace(artifact, layers=layers, metadata=metadata)
