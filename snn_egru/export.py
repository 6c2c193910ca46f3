"""Export a trained torch model to the torch-free deployment artifact.

The deployment protocol
-----------------------
Any model can be exported when it exposes

* ``rnn``: the :class:`~snn_egru.sequence.EGRUSequence` that runs on the chip, and
* ``deployment_io() -> dict`` with the keys

  ============== ====================================================================
  input_kind     ``"embedding"`` (inputs are token ids) or ``"features"`` (vectors of
                 size ``rnn.input_size`` computed ahead, e.g. by a CNN head)
  embedding      ``(V, E)`` table for ``"embedding"``, else ``None``
  readout_kind   ``"tied_decoder"`` (logits = y @ embedding.T + bias), ``"linear"``
                 (logits = y @ readout_weight.T + bias) or ``"none"``
  readout_weight ``(O, H_last)`` for ``"linear"``, else ``None``
  readout_bias   ``(O,)`` or ``None``
  readout_source ``"y"`` (the last layer's events) or ``"trace"`` (their low-pass trace)
  adaptive       optional, with ``readout_kind="adaptive"``: ``(module, word_rank)``, a
                 ``torch.nn.AdaptiveLogSoftmaxWithLoss`` (or a
                 :class:`~snn_egru.adaptive_head.AdaptiveHead`) and the ``(V,)`` frequency
                 rank of every word id
  ============== ====================================================================

  Arrays may be numpy arrays or torch tensors; they are stored as float32.

:class:`~snn_egru.models.lm.EGRULanguageModel` (embedding, tied decoder) and
:class:`~snn_egru.models.dvs.DVSGestureNet` (features, linear readout) implement it.

The EGRU weights come from :func:`snn_egru.interop.sequence_to_reference` (effective
thresholds, docs/egru.md layout). Weight matrices that are at least ``sparse_threshold`` zeros
(default 50 %) are stored as scipy CSR when ``sparse`` is ``None`` (auto); ``True`` stores
every matrix as CSR, ``False`` every matrix dense.

The artifact's EGRU step has no zoneout: a model trained with zoneout computes
``c~ <- p c_{t-1} + (1 - p) c~`` in evaluation, which the artifact cannot express, so such a
model is refused unless ``allow_zoneout=True`` (then the artifact runs without it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from snn_egru.adaptive_head import AdaptiveHead
from snn_egru.artifact import ArtifactError, DeploymentArtifact
from snn_egru.reference import EGRUParams, QuantizedWeight

logger = logging.getLogger(__name__)

#: Keys every ``deployment_io()`` dictionary must have.
DEPLOYMENT_IO_KEYS: tuple[str, ...] = (
    "input_kind",
    "embedding",
    "readout_kind",
    "readout_weight",
    "readout_bias",
    "readout_source",
)
#: Auto mode stores a matrix as CSR when at least this fraction of it is zero.
DEFAULT_SPARSE_THRESHOLD = 0.5

__all__ = [
    "DEFAULT_SPARSE_THRESHOLD",
    "DEPLOYMENT_IO_KEYS",
    "export_artifact",
    "export_language_model_checkpoint",
    "sparsify_layers",
]


def _as_float32(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.array(value, dtype=np.float32)


def _zero_fraction(matrix: Any) -> float:
    if isinstance(matrix, QuantizedWeight):
        matrix = matrix.values
    nnz = matrix.count_nonzero() if sp.issparse(matrix) else int(np.count_nonzero(matrix))
    return 1.0 - nnz / max(1, matrix.shape[0] * matrix.shape[1])


def _as_csr(matrix: Any) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.eliminate_zeros()
    return csr


def sparsify_layers(
    layers: Sequence[EGRUParams],
    *,
    sparse: bool | None = None,
    sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
) -> list[EGRUParams]:
    """Store each ``weight_ih`` / ``weight_hh`` dense or CSR (see the module docstring)."""
    if not 0.0 <= sparse_threshold <= 1.0:
        raise ValueError(f"sparse_threshold must lie in [0, 1], got {sparse_threshold}")
    out = []
    for layer in layers:
        matrices = {}
        for name in ("weight_ih", "weight_hh"):
            w = getattr(layer, name)
            use_csr = sparse if sparse is not None else _zero_fraction(w) >= sparse_threshold
            if use_csr:
                matrices[name] = _as_csr(w)
            else:
                matrices[name] = (w.toarray() if sp.issparse(w) else np.asarray(w)).astype(
                    np.float32
                )
        out.append(layer._replace(**matrices))
    return out


def _check_json(metadata: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(metadata)))
    except TypeError as err:
        raise TypeError(
            f"metadata must be JSON-serialisable (numbers, strings, lists, dicts): {err}"
        ) from None


def export_artifact(
    model: Any,
    *,
    vocabulary: Sequence[str] | Any = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    sparse: bool | None = None,
    sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
    allow_zoneout: bool = False,
    quantize: Any = None,
    calibration_inputs: Any = None,
) -> DeploymentArtifact:
    """Build the :class:`~snn_egru.artifact.DeploymentArtifact` of a trained model.

    A model trained with quantisation (its ``rnn`` has a quantiser, see
    :mod:`snn_egru.quantization`) is exported with int8 layers holding exactly the codes and
    scales its evaluation forward uses (artifact version 2). A float model is exported in
    float32, or, with ``quantize="int8"`` (or a
    :class:`~snn_egru.quantization.QuantizationConfig`), quantised after training
    (:func:`~snn_egru.quantization.quantize_artifact`; ``products="int8"`` needs
    ``calibration_inputs``).

    Args:
        model: a model following the deployment protocol (module docstring); DDP wrappers
            are looked through.
        vocabulary: token strings (a list or a :class:`~snn_egru.data.text.Vocabulary`).
        class_names: class labels (classification).
        metadata: JSON-serialisable extras. The model's ``config`` dataclass (if any), its
            class name and per-matrix weight sparsity are added under ``"model"``.
        sparse: ``None`` (auto: CSR for matrices with >= ``sparse_threshold`` zeros),
            ``True`` (all CSR) or ``False`` (all dense).
        sparse_threshold: the auto-mode cut-off.
        allow_zoneout: export a model trained with zoneout anyway (the artifact runs without
            zoneout, so its outputs differ from the torch model's evaluation mode).

    Returns:
        The validated artifact (float32; save it with ``.save(path)``).

    Raises:
        TypeError: the model does not follow the protocol, or metadata is not JSON.
        ValueError: zoneout without ``allow_zoneout``, or an inconsistent model
            (:class:`~snn_egru.artifact.ArtifactError` from validation).
    """
    from snn_egru.training.common import unwrap_model

    model = unwrap_model(model)
    io = _deployment_io(model, allow_zoneout=allow_zoneout)
    layers, quant_meta = _layers(model, quantize, sparse=sparse, sparse_threshold=sparse_threshold)
    if quant_meta is not None:
        quantize = None  # a QAT model is exported with the codes it was trained with
    if vocabulary is not None and hasattr(vocabulary, "to_list"):
        vocabulary = vocabulary.to_list()
    meta = _check_json(metadata or {})
    meta.setdefault("model", _model_metadata(model, layers))
    if quant_meta is not None:
        meta["quantization"] = _check_json(quant_meta)
    artifact = DeploymentArtifact(
        layers=layers,
        input_kind=io["input_kind"],
        embedding=_as_float32(io["embedding"]),
        readout_kind=io["readout_kind"],
        readout_weight=_as_float32(io["readout_weight"]),
        readout_bias=_as_float32(io["readout_bias"]),
        readout_source=io["readout_source"],
        vocabulary=list(vocabulary) if vocabulary is not None else None,
        class_names=list(class_names) if class_names is not None else None,
        metadata=meta,
        adaptive=_adaptive_head(io.get("adaptive")),
    )
    if quantize is not None:
        from snn_egru.quantization import coerce_quantization, quantize_artifact

        cfg = coerce_quantization(quantize)
        artifact = quantize_artifact(
            artifact,
            mode=cfg.products,
            granularity=cfg.granularity,
            calibration_inputs=calibration_inputs,
            state=cfg.state,
            state_bits=cfg.state_bits,
            state_range=cfg.state_range,
        )
    logger.info(
        "exported %s: layers %s, weight sparsity %s",
        type(model).__name__,
        artifact.layer_sizes,
        artifact.weight_sparsity(),
    )
    return artifact


def _adaptive_head(entry: Any) -> AdaptiveHead | None:
    """The artifact's adaptive head from ``deployment_io()["adaptive"]``: torch's
    ``head`` / ``tail[i][0]`` / ``tail[i][1]`` weights as they are (float32)."""
    if entry is None:
        return None
    module, word_rank = entry
    if isinstance(module, AdaptiveHead):
        return module
    bias = module.head.bias
    return AdaptiveHead(
        cutoffs=tuple(int(c) for c in module.cutoffs[:-1]),  # torch appends n_classes
        head_weight=_as_float32(module.head.weight),
        head_bias=None if bias is None else _as_float32(bias),
        tail_projections=[_as_float32(cluster[0].weight) for cluster in module.tail],
        tail_outputs=[_as_float32(cluster[1].weight) for cluster in module.tail],
        word_rank=np.asarray(word_rank, dtype=np.int64),
    )


def _deployment_io(model: Any, *, allow_zoneout: bool) -> dict[str, Any]:
    """The model's ``deployment_io()``, after checking that the model can be exported."""
    rnn = getattr(model, "rnn", None)
    if rnn is None or not callable(getattr(model, "deployment_io", None)):
        raise TypeError(
            f"{type(model).__name__} cannot be exported: a model needs an 'rnn' attribute "
            "(EGRUSequence) and a 'deployment_io()' method (see snn_egru.export)"
        )
    if getattr(rnn, "zoneout", 0.0) > 0 and not allow_zoneout:
        raise ValueError(
            f"the model uses zoneout={rnn.zoneout}, which the artifact's EGRU step does not "
            "have (evaluation mixes the old and new cell state); pass allow_zoneout=True to "
            "export it without zoneout"
        )
    io = dict(model.deployment_io())
    missing = [key for key in DEPLOYMENT_IO_KEYS if key not in io]
    if missing:
        raise TypeError(
            f"{type(model).__name__}.deployment_io() lacks the keys {missing} (see snn_egru.export)"
        )
    return io


def _layers(
    model: Any, quantize: Any, *, sparse: bool | None, sparse_threshold: float
) -> tuple[list[Any], dict[str, Any] | None]:
    """The artifact's layers and, for a QAT model, its quantisation metadata: the int8 codes
    and scales its evaluation forward uses (``quantize`` may only repeat its settings);
    otherwise the float32 layers, CSR where sparse enough."""
    from snn_egru.interop import sequence_to_reference

    quantizer = getattr(model.rnn, "quantizer", None)
    if quantizer is None:
        float_layers = sequence_to_reference(model.rnn, dtype=np.float32)
        return sparsify_layers(float_layers, sparse=sparse, sparse_threshold=sparse_threshold), None
    from snn_egru.quantization import coerce_quantization, quantized_layers

    requested = coerce_quantization(quantize)
    trained = quantizer.config

    def key(c: Any) -> tuple:
        return (c.granularity, c.products, c.state, c.state_bits if c.state else None)

    if requested is not None and key(requested) != key(trained):
        raise ArtifactError(
            f"the model was trained with quantisation {trained.describe()}; export writes "
            f"those codes, not {requested.describe()}: leave --quantize out"
        )
    return quantized_layers(model), {"method": "qat", **dataclasses.asdict(quantizer.config)}


def _model_metadata(model: Any, layers: list[Any]) -> dict[str, Any]:
    """``metadata["model"]``: class, layer sizes, weight sparsity and the config."""
    from snn_egru.training.common import config_to_dict

    model_meta: dict[str, Any] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "layer_sizes": [layer.hidden_size for layer in layers],
        "weight_sparsity": [
            {name: _zero_fraction(getattr(layer, name)) for name in ("weight_ih", "weight_hh")}
            for layer in layers
        ],
    }
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        model_meta["config"] = config_to_dict(config)
    return model_meta


def export_language_model_checkpoint(
    checkpoint: str | os.PathLike,
    artifact_path: str | os.PathLike,
    *,
    sparse: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    quantize: Any = None,
    calibration_inputs: Any = None,
) -> DeploymentArtifact:
    """Load a language-model checkpoint, export it and save the artifact to ``artifact_path``.

    The checkpoint's metrics are added to the metadata under ``"metrics"``; ``quantize`` /
    ``calibration_inputs`` as in :func:`export_artifact`.
    """
    from snn_egru.training.lm import load_language_model

    model, vocabulary, metrics = load_language_model(checkpoint)
    meta = dict(metadata or {})
    meta.setdefault("metrics", metrics)
    meta.setdefault("source_checkpoint", str(Path(checkpoint)))
    artifact = export_artifact(
        model,
        vocabulary=vocabulary,
        metadata=meta,
        sparse=sparse,
        quantize=quantize,
        calibration_inputs=calibration_inputs,
    )
    artifact.save(artifact_path)
    return artifact
