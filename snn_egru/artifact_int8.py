"""The int8 layers of a deployment artifact (file version 2): validation and ``.npz`` I/O.

Split from :mod:`snn_egru.artifact` (the schema is in its docstring); the arithmetic is
:func:`snn_egru.reference.quantized_egru_step`. Layer: core of snn_egru (torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from snn_egru.errors import ArtifactError
from snn_egru.reference import (
    INT8_MAX,
    QuantizedEGRUParams,
    QuantizedWeight,
    validate_quantized_params,
)

__all__ = [
    "check_granularity",
    "get_quantized_layer",
    "int8_metadata",
    "put_quantized_layer",
    "validate_quantized_layer",
    "weight_granularity",
]


_REQUANTIZE = (
    "re-export it (`snn-egru export --quantize int8`) or re-quantise it with "
    "snn_egru.quantization.quantize_artifact"
)


def weight_granularity(layer: QuantizedEGRUParams) -> str:
    """``"gate"`` when both weight scales are constant over each gate block, else ``"row"``."""
    h = layer.hidden_size
    for qw in (layer.weight_ih, layer.weight_hh):
        blocks = np.asarray(qw.scale).reshape(-1, h)
        if np.any(blocks != blocks[:, :1]):
            return "row"
    return "gate"


def int8_metadata(layer: Any) -> dict[str, Any] | None:
    if not isinstance(layer, QuantizedEGRUParams):
        return None
    levels = layer.state_levels
    return {
        "granularity": weight_granularity(layer),
        "product_mode": layer.product_mode,
        "input_scale": layer.input_scale,
        "event_scale": layer.event_scale,
        "state_levels": None if levels is None else int(levels.shape[0]),
    }


def validate_quantized_layer(layer: QuantizedEGRUParams, i: int) -> None:
    for name in ("weight_ih", "weight_hh"):
        qw = getattr(layer, name)
        if not isinstance(qw, QuantizedWeight):
            raise ArtifactError(
                f"layer {i}: {name} of an int8 layer must be a QuantizedWeight (codes, scale)"
            )
        scale = np.asarray(qw.scale)
        rows = qw.values.shape[0] if hasattr(qw.values, "shape") else None
        if rows is not None and scale.shape != (rows,):
            raise ArtifactError(
                f"layer {i}: {name} scale has shape {scale.shape}, expected ({rows},): one "
                f"float32 scale per output row; {_REQUANTIZE}"
            )
    try:
        validate_quantized_params(layer, name=f"layer {i}")
    except ValueError as err:
        raise ArtifactError(f"{err} ({_REQUANTIZE})") from None
    for field_name in ("bias_ih", "bias_hh", "threshold"):
        value = np.asarray(getattr(layer, field_name))
        if value.dtype != np.float32 or not np.all(np.isfinite(value)):
            raise ArtifactError(f"layer {i}: {field_name} must hold finite float32 values")
    if np.shape(layer.threshold) != (layer.hidden_size,) or np.any(layer.threshold < 0):
        raise ArtifactError(f"layer {i}: thresholds must be (H,) values >= 0")


def check_granularity(layer: QuantizedEGRUParams, i: int, granularity: str, path: Path) -> None:
    if granularity not in ("row", "gate"):
        raise ArtifactError(f"{path}: layer {i} granularity must be 'row' or 'gate'")
    if granularity == "gate" and weight_granularity(layer) != "gate":
        raise ArtifactError(
            f"{path}: layer {i} claims gate granularity but its scales differ within a gate "
            f"block; {_REQUANTIZE}"
        )


def put_quantized_layer(arrays: dict[str, np.ndarray], key: str, layer: QuantizedEGRUParams):
    for name in ("weight_ih", "weight_hh"):
        qw: QuantizedWeight = getattr(layer, name)
        csr = sp.csr_matrix(qw.values)
        csr.sort_indices()
        arrays[f"{key}.{name}.q_data"] = csr.data.astype(np.int8)
        arrays[f"{key}.{name}.q_indices"] = csr.indices.astype(np.int32)
        arrays[f"{key}.{name}.q_indptr"] = csr.indptr.astype(np.int32)
        arrays[f"{key}.{name}.q_shape"] = np.asarray(csr.shape, dtype=np.int64)
        arrays[f"{key}.{name}.scale"] = np.asarray(qw.scale, dtype=np.float32)
    if layer.input_scale is not None:
        arrays[f"{key}.input_scale"] = np.array(layer.input_scale, dtype=np.float32)
        arrays[f"{key}.event_scale"] = np.array(layer.event_scale, dtype=np.float32)
    if layer.state_levels is not None:
        arrays[f"{key}.state_levels"] = np.asarray(layer.state_levels, dtype=np.float32)


def get_quantized_layer(data: dict[str, np.ndarray], key: str, path: Path) -> QuantizedEGRUParams:
    weights = []
    for name in ("weight_ih", "weight_hh"):
        k = f"{key}.{name}"
        codes = data[f"{k}.q_data"]
        if not np.issubdtype(codes.dtype, np.integer):
            raise ArtifactError(f"{path}: {k}.q_data must hold int8 codes, got {codes.dtype}")
        if codes.size and int(np.abs(codes.astype(np.int64)).max()) > INT8_MAX:
            raise ArtifactError(
                f"{path}: {k} has int8 codes outside [-{INT8_MAX}, {INT8_MAX}] (symmetric "
                f"int8, -128 unused); {_REQUANTIZE}"
            )
        if codes.dtype != np.int8:
            raise ArtifactError(f"{path}: {k}.q_data must be stored as int8, got {codes.dtype}")
        shape = tuple(int(s) for s in data[f"{k}.q_shape"])
        try:
            csr = sp.csr_matrix((codes, data[f"{k}.q_indices"], data[f"{k}.q_indptr"]), shape=shape)
            csr.check_format(full_check=True)
        except ValueError as err:
            raise ArtifactError(f"{path}: {k}: corrupt CSR matrix of codes ({err})") from None
        scale = data[f"{k}.scale"]
        if scale.dtype != np.float32 or scale.shape != (shape[0],):
            raise ArtifactError(
                f"{path}: {k}.scale must be float32 of shape ({shape[0]},) (one per output "
                f"row), got {scale.dtype} {scale.shape}; {_REQUANTIZE}"
            )
        weights.append(QuantizedWeight(values=csr, scale=scale))
    scales = {}
    for name in ("input_scale", "event_scale"):
        value = data.get(f"{key}.{name}")
        if value is not None and value.shape != ():
            raise ArtifactError(
                f"{path}: {key}.{name} must be one float32 number, got {value.shape}"
            )
        scales[name] = None if value is None else float(value)
    return QuantizedEGRUParams(
        weight_ih=weights[0],
        weight_hh=weights[1],
        bias_ih=data[f"{key}.bias_ih"],
        bias_hh=data[f"{key}.bias_hh"],
        threshold=data[f"{key}.threshold"],
        input_scale=scales["input_scale"],
        event_scale=scales["event_scale"],
        state_levels=data.get(f"{key}.state_levels"),
    )
