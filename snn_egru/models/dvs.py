"""The DVS gesture network: a CNN feature head per frame, a stack of EGRU layers, a readout.

::

    frames (T, B, 2, 32, 32)  --log1p-->  CNN head, per frame  -->  features (T, B, F=512)
        --> EGRUSequence (2 layers of 256)  -->  y (T, B, 256)  -->  linear readout (O=11)

The CNN head is ``n`` blocks ``conv3x3 -> BatchNorm -> ReLU -> MaxPool2`` then a linear map
(with ReLU) to ``F`` features. As published for the EGRU on DVS128 Gesture, the chip runs only
the recurrent part: it receives the per-frame feature vectors computed ahead
(:meth:`DVSGestureNet.features`), so :meth:`DVSGestureNet.deployment_io` declares
``input_kind="features"``.

Readouts (``DVSGestureConfig.readout_source``):

* ``"y"``: per-step logits ``l_t = W y_t + b`` of the last layer's events, averaged over time:
  ``logits = (1/T) sum_t l_t``. The artifact's :meth:`~snn_egru.artifact.DeploymentArtifact.
  run_reference` returns exactly the ``l_t``.
* ``"trace"``: the low-pass trace ``tr_t = 0.9 tr_{t-1} + 0.1 y_t`` (``tr_0 = 0``,
  :data:`snn_egru.reference.TRACE_DECAY`) read out at the last step:
  ``logits = W tr_T + b``; ``step_logits`` are ``W tr_t + b``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snn_egru.models.dense import DENSE_CELLS, DenseRecurrentStack
from snn_egru.reference import TRACE_DECAY
from snn_egru.sequence import EGRUSequence

__all__ = [
    "DVS_PRESETS",
    "ConvBlock",
    "DVSGestureConfig",
    "DVSGestureNet",
    "DVSGestureOutput",
    "FrameFeatureHead",
    "dvs_preset",
    "low_pass_trace",
]

ReadoutSource = Literal["y", "trace"]


@dataclass(frozen=True)
class DVSGestureConfig:
    """Architecture of :class:`DVSGestureNet` (saved with checkpoints and artifacts).

    Attributes:
        num_classes: output classes (11 for DVS128 Gesture).
        in_channels: frame channels (2 polarities).
        frame_size: frame height = width after pooling (32).
        conv_channels: output channels of the conv blocks (one block per entry; each halves
            the frame size).
        kernel_size: conv kernel size (odd; "same" padding).
        feature_size: length ``F`` of the per-frame feature vector (the EGRU input; 512).
        hidden_sizes: EGRU layer sizes (``(256, 256)``).
        feature_dropout: dropout on the features before the EGRU (training only).
        dropout: dropout between EGRU layers (``EGRUSequence(dropout=)``).
        dropconnect: DropConnect on the recurrent weights.
        zoneout: zoneout on the cell state.
        readout_dropout: dropout on the events before the readout.
        dampening, support: triangle pseudo-derivative ``dampening * max(0, 1 - support|v|)``.
        event_amplitude: ``"state"`` or ``"clamped"``: how a graded event's gradient is
            formed (:class:`~snn_egru.functional.TriangleSurrogate`).
        threshold_init: ``"beta"`` (v0.2: theta ~ Beta, clamped to [0, 1]) or ``"sigmoid"``.
        threshold_mean: mean of the initial thresholds.
        learn_threshold: train the thresholds.
        readout_source: ``"y"`` (per-step logits averaged) or ``"trace"`` (see module doc).
        log_input: feed ``log1p(counts)`` to the CNN (counts of busy pixels vary widely).
        cell: the recurrent layers: ``"egru"``, or a dense baseline ``"gru"`` / ``"lstm"``
            (:class:`~snn_egru.models.dense.DenseRecurrentStack` of the same widths, same
            dropouts; for quality comparisons only, it cannot be exported).
    """

    num_classes: int = 11
    in_channels: int = 2
    frame_size: int = 32
    conv_channels: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3
    feature_size: int = 512
    hidden_sizes: tuple[int, ...] = (256, 256)
    feature_dropout: float = 0.0
    dropout: float = 0.0
    dropconnect: float = 0.0
    zoneout: float = 0.0
    readout_dropout: float = 0.0
    dampening: float = 0.7
    support: float = 1.0
    event_amplitude: str = "state"
    threshold_init: str = "beta"
    threshold_mean: float = 0.3
    learn_threshold: bool = True
    readout_source: ReadoutSource = "y"
    log_input: bool = True
    cell: str = "egru"

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes needs at least one size >= 1, got {self.hidden_sizes}")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels needs at least one block, got {self.conv_channels}")
        if self.frame_size % (2 ** len(self.conv_channels)):
            raise ValueError(
                f"frame_size={self.frame_size} must be divisible by 2**{len(self.conv_channels)}"
                " (each conv block halves it)"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.cell not in ("egru", *DENSE_CELLS):
            raise ValueError(
                f"unknown recurrent cell {self.cell!r}; valid names: "
                f"{', '.join(('egru', *DENSE_CELLS))}"
            )
        if self.readout_source not in ("y", "trace"):
            raise ValueError(f"readout_source must be 'y' or 'trace', got {self.readout_source!r}")
        if self.threshold_init not in ("beta", "sigmoid"):
            raise ValueError(
                f"threshold_init must be 'beta' or 'sigmoid', got {self.threshold_init!r}"
            )
        for name in ("feature_dropout", "dropout", "dropconnect", "zoneout", "readout_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")

    @property
    def pooled_size(self) -> int:
        """Frame side after the conv blocks."""
        return self.frame_size // (2 ** len(self.conv_channels))


#: Named configurations. ``paper``: the published shape (32 x 32 frames of 2 polarities,
#: 512 features per frame, 2 EGRU layers of 256, 11 classes); the conv stack's channels and
#: the (absent) regularisers are this project's choices, not published figures. ``small``:
#: CPU training in minutes. ``tiny``: tests.
DVS_PRESETS: dict[str, DVSGestureConfig] = {
    "paper": DVSGestureConfig(),
    "small": DVSGestureConfig(
        conv_channels=(8, 16, 32), feature_size=128, hidden_sizes=(64, 64), threshold_mean=0.1
    ),
    "tiny": DVSGestureConfig(
        conv_channels=(8, 16), feature_size=32, hidden_sizes=(32, 32), threshold_mean=0.05
    ),
}


def dvs_preset(name: str, **overrides: Any) -> DVSGestureConfig:
    """The preset ``name`` (``paper``, ``small``, ``tiny``), with field overrides."""
    if name not in DVS_PRESETS:
        raise ValueError(f"unknown DVS preset {name!r}; choose one of {sorted(DVS_PRESETS)}")
    return replace(DVS_PRESETS[name], **overrides)


class ConvBlock(nn.Module):
    """``Conv2d(k, same padding) -> BatchNorm2d -> ReLU -> MaxPool2d(2)``: halves the size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)


class FrameFeatureHead(nn.Module):
    """CNN applied to every frame independently: ``(N, C, S, S) -> (N, F)``.

    :class:`ConvBlock` s (conv, batch norm, ReLU, 2x2 max-pool), then
    ``Flatten -> Linear(C_last * (S / 2^n)^2, F) -> ReLU``. Features are non-negative.
    """

    def __init__(self, config: DVSGestureConfig) -> None:
        super().__init__()
        sizes = (config.in_channels, *config.conv_channels)
        self.blocks = nn.Sequential(
            *(ConvBlock(c_in, c_out, config.kernel_size) for c_in, c_out in zip(sizes, sizes[1:]))
        )
        self.project = nn.Linear(sizes[-1] * config.pooled_size**2, config.feature_size)

    def forward(self, frames: Tensor) -> Tensor:
        return torch.relu(self.project(self.blocks(frames).flatten(1)))


class DVSGestureOutput(NamedTuple):
    """What :meth:`DVSGestureNet.forward` returns.

    Attributes:
        logits: ``(B, O)`` class scores of every sequence.
        step_logits: ``(T, B, O)`` readout per step (``y`` or trace, see the module doc).
        state: EGRU state after the last step (pass back in to continue a stream).
        layer_outputs: per layer ``(T, B, H_l)`` events ``y`` (with ``return_all_layers``).
    """

    logits: Tensor
    step_logits: Tensor
    state: Any
    layer_outputs: list[Tensor] | None = None


class DVSGestureNet(nn.Module):
    """CNN feature head + EGRU stack + linear readout for DVS gestures.

    Args:
        config: the architecture (:class:`DVSGestureConfig`; presets in :data:`DVS_PRESETS`).

    Shape:
        frames ``(T, B, C, S, S)`` (time-major) -> logits ``(B, O)``. Batch-major input
        ``(B, T, C, S, S)`` (NeuroBench's and tonic's layout) is accepted only when the call
        says so (``batch_first=True``): both layouts have the same shape rank, so the net
        never guesses. With ``batch_first=True`` ``step_logits`` and ``layer_outputs`` are
        batch-major too.

    Attributes:
        head: :class:`FrameFeatureHead`.
        rnn: :class:`snn_egru.sequence.EGRUSequence` (the part that is deployed).
        readout: ``nn.Linear(H_last, O)``.
    """

    def __init__(self, config: DVSGestureConfig | None = None) -> None:
        super().__init__()
        self.config = config or DVSGestureConfig()
        cfg = self.config
        self.head = FrameFeatureHead(cfg)
        self.feature_dropout = nn.Dropout(cfg.feature_dropout)
        self.rnn: EGRUSequence | DenseRecurrentStack
        if cfg.cell != "egru":
            self.rnn = DenseRecurrentStack(
                cfg.cell,
                cfg.feature_size,
                cfg.hidden_sizes,
                dropout=cfg.dropout,
                dropconnect=cfg.dropconnect,
            )
        else:
            self.rnn = EGRUSequence(
                cfg.feature_size,
                list(cfg.hidden_sizes),
                num_layers=len(cfg.hidden_sizes),
                dropout=cfg.dropout,
                dropconnect=cfg.dropconnect,
                zoneout=cfg.zoneout,
                dampening=cfg.dampening,
                support=cfg.support,
                event_amplitude=cfg.event_amplitude,
                threshold_init=cfg.threshold_init,
                threshold_mean=cfg.threshold_mean,
                learn_threshold=cfg.learn_threshold,
            )
        self.readout_dropout = nn.Dropout(cfg.readout_dropout)
        self.readout = nn.Linear(cfg.hidden_sizes[-1], cfg.num_classes)

    def features(self, frames: Tensor, *, batch_first: bool = False) -> Tensor:
        """Per-frame feature vectors (what the chip receives): ``(T, B, C, S, S) -> (T, B, F)``
        (``(B, T, ...) -> (B, T, F)`` with ``batch_first=True``)."""
        if batch_first:
            return self.features(_swap_time_batch(frames, 5, "frames")).transpose(0, 1)
        cfg = self.config
        expected = (cfg.in_channels, cfg.frame_size, cfg.frame_size)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(
                f"frames must have shape (T, B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(time-major), got {tuple(frames.shape)}"
            )
        steps, batch = frames.shape[:2]
        x = frames.reshape(steps * batch, *expected).to(self.head.project.weight.dtype)
        if cfg.log_input:
            x = torch.log1p(x.clamp_min(0))
        return self.head(x).reshape(steps, batch, cfg.feature_size)

    def forward_features(
        self,
        features: Tensor,
        state: Any = None,
        *,
        return_all_layers: bool = False,
        batch_first: bool = False,
    ) -> DVSGestureOutput:
        """EGRU stack and readout on precomputed features ``(T, B, F)`` (``(B, T, F)`` with
        ``batch_first=True``)."""
        if batch_first:
            out = self.forward_features(
                _swap_time_batch(features, 3, "features"),
                state,
                return_all_layers=return_all_layers,
            )
            return _batch_major(out)
        if features.dim() != 3 or features.shape[-1] != self.config.feature_size:
            raise ValueError(
                f"features must have shape (T, B, {self.config.feature_size}), got "
                f"{tuple(features.shape)}"
            )
        if return_all_layers:
            y, state, layers = self.rnn(
                self.feature_dropout(features), state, return_all_layers=True
            )
        else:
            (y, state), layers = self.rnn(self.feature_dropout(features), state), None
        y = self.readout_dropout(y)
        if self.config.readout_source == "trace":
            source = low_pass_trace(y)
            step_logits = self.readout(source)
            logits = step_logits[-1]
        else:
            step_logits = self.readout(y)
            logits = step_logits.mean(dim=0)
        return DVSGestureOutput(logits, step_logits, state, layers)

    def forward(
        self,
        frames: Tensor,
        state: Any = None,
        *,
        return_all_layers: bool = False,
        batch_first: bool = False,
    ) -> DVSGestureOutput:
        """Classify frame sequences ``(T, B, C, S, S)`` (``(B, T, C, S, S)`` with
        ``batch_first=True``); see :class:`DVSGestureOutput`."""
        if batch_first:
            frames = _swap_time_batch(frames, 5, "frames")
        out = self.forward_features(
            self.features(frames), state, return_all_layers=return_all_layers
        )
        return _batch_major(out) if batch_first else out

    def deployment_io(self) -> dict[str, Any]:
        """What :func:`snn_egru.export.export_artifact` needs besides ``rnn``.

        The chip receives feature vectors (``input_kind="features"``) and reads out the last
        layer with this linear map. A dense baseline (``cell`` gru / lstm) raises
        ``ValueError``.
        """
        if self.config.cell != "egru":
            raise ValueError(
                f"a cell={self.config.cell!r} network is a dense baseline for quality "
                "comparisons and cannot be exported; train with cell='egru'"
            )
        return {
            "input_kind": "features",
            "embedding": None,
            "readout_kind": "linear",
            "readout_weight": self.readout.weight.detach().cpu().float().numpy().copy(),
            "readout_bias": self.readout.bias.detach().cpu().float().numpy().copy(),
            "readout_source": self.config.readout_source,
        }


def low_pass_trace(y: Tensor, *, decay: float = TRACE_DECAY) -> Tensor:
    """``tr_t = decay * tr_{t-1} + (1 - decay) * y_t`` over dim 0, ``tr_0 = 0`` (docs/egru.md)."""
    trace = torch.zeros_like(y[0])
    out = []
    for y_t in y:
        trace = decay * trace + (1.0 - decay) * y_t
        out.append(trace)
    return torch.stack(out)


def _swap_time_batch(x: Tensor, ndim: int, name: str) -> Tensor:
    """``(B, T, ...) -> (T, B, ...)`` for an explicitly batch-major input."""
    if x.dim() != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions (batch_first=True: batch, time, ...), "
            f"got shape {tuple(x.shape)}"
        )
    return x.transpose(0, 1)


def _batch_major(out: DVSGestureOutput) -> DVSGestureOutput:
    layers = None if out.layer_outputs is None else [y.transpose(0, 1) for y in out.layer_outputs]
    return out._replace(step_logits=out.step_logits.transpose(0, 1), layer_outputs=layers)
