"""Post-training int8 quantisation (PTQ) of a float deployment artifact.

:func:`quantize_artifact` quantises every layer's weights (:func:`~snn_egru.reference.
quantize_params`) and, for ``"int8"`` products, sets the input/event scales from the
activity the int8-weight network shows on calibration inputs. Numpy only at run time; the
arithmetic is the one QAT trains for (:mod:`snn_egru.quantization`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from snn_egru.quantization import QuantizationConfig, _config_state_quant
from snn_egru.reference import INT8_MAX, PRODUCT_MODES, EGRUParams, quantize_params

__all__ = ["quantize_artifact"]


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
