"""The deployment artifact: the torch-free contract between training and the chip.

A :class:`DeploymentArtifact` describes a trained EGRU network completely, with numpy and
scipy.sparse float32 arrays only: the EGRU stack (docs/egru.md layout), what turns inputs into
layer-0 inputs (an embedding table, or nothing for feature vectors computed ahead), what
turns the last layer's events into predictions (a decoder tied to the embedding, or a linear
readout), and metadata (vocabulary, class names, training config, metrics).

One ``.npz`` file (no pickles), numpy/scipy only. Layer: core of snn_egru (the chip side's).

File schema, version 1 (every key is a numpy array inside the ``.npz``)::

    format                       str  "snn-egru-artifact"
    version                      int  1
    meta_json                    str  JSON object: input_kind, readout_kind, readout_source,
                                      vocabulary, class_names, metadata, num_layers
    layer{L}.{M}                 dense float32 matrix, M in {weight_ih, weight_hh}, or
    layer{L}.{M}.csr_data        float32 (nnz,)     } scipy CSR of the same matrix
    layer{L}.{M}.csr_indices     int32   (nnz,)     }
    layer{L}.{M}.csr_indptr      int32   (rows+1,)  }
    layer{L}.{M}.csr_shape       int64   (2,)       }
    layer{L}.{bias_ih,bias_hh}   float32 (3H,)
    layer{L}.threshold           float32 (H,)
    embedding                    float32 (V, E)   when input_kind == "embedding"
    readout_weight               float32 (O, H_last)  when readout_kind == "linear"
                                 (a tied decoder reuses ``embedding``; not stored twice)
    readout_bias                 float32 (O,)     when readout_kind is "tied_decoder" or
                                                  "linear" (optional)
    adaptive.*                   the adaptive-softmax head when readout_kind == "adaptive"
                                 (keys and arithmetic: :mod:`snn_egru.adaptive_head`; its
                                 readout returns log-probabilities and runs on the host only)

Version 2 (written only when a layer is int8-quantised; float artifacts stay version 1, so
that older readers keep reading them) adds, for a quantised layer ``L`` (``meta_json``
lists ``"layer_kinds"``: ``"float"`` or ``"int8"`` per layer, and ``"quantization"``: per
layer ``null`` or ``{"granularity": "row"|"gate", "product_mode": "float"|"int8",
"state": bool}``)::

    layer{L}.{M}.q_data          int8    (nnz,)     } CSR of the int8 codes (zero codes not
    layer{L}.{M}.q_indices       int32   (nnz,)     } stored), columns sorted per row;
    layer{L}.{M}.q_indptr        int32   (rows+1,)  } M in {weight_ih, weight_hh}
    layer{L}.{M}.q_shape         int64   (2,)       }
    layer{L}.{M}.scale           float32 (rows,)    dequantised weight = code * scale[row]
    layer{L}.{bias_ih,bias_hh}   float32 (3H,)      as in version 1
    layer{L}.threshold           float32 (H,)
    layer{L}.input_scale         float32 ()         product_mode "int8" only: scale of the
    layer{L}.event_scale         float32 ()         layer input / of its own events
    layer{L}.state_levels        float32 (L,)       optional: stored-state level table

(no zero points: the quantisation is symmetric). The arithmetic is
:func:`snn_egru.reference.quantized_egru_step` (``docs/quantisation.md``).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from snn_egru.adaptive_head import AdaptiveHead, adaptive_keys
from snn_egru.artifact_int8 import (
    check_granularity,
    get_quantized_layer,
    int8_metadata,
    put_quantized_layer,
    validate_quantized_layer,
    weight_granularity,
)
from snn_egru.cliargs import atomic_path, npz_bytes
from snn_egru.errors import ArtifactError
from snn_egru.reference import (
    EGRUParams,
    EGRUState,
    Matrix,
    QuantizedEGRUParams,
    QuantizedWeight,
    egru_step,
    init_state,
    quantized_egru_step,
    validate_params,
)

FORMAT_NAME = "snn-egru-artifact"
#: Version written for float artifacts (readers before int8 support read only this one).
FORMAT_VERSION = 1
#: Version written when a layer is int8-quantised.
QUANTIZED_FORMAT_VERSION = 2
#: Versions this reader reads.
READABLE_VERSIONS = (1, 2)

Layer = EGRUParams | QuantizedEGRUParams

InputKind = Literal["embedding", "features"]
ReadoutKind = Literal["tied_decoder", "linear", "adaptive", "none"]
ReadoutSource = Literal["y", "trace"]

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "QUANTIZED_FORMAT_VERSION",
    "READABLE_VERSIONS",
    "AdaptiveHead",
    "ArtifactError",
    "ArtifactRun",
    "DeploymentArtifact",
    "load_artifact",
    "weight_granularity",
]


@dataclass
class ArtifactRun:
    """Result of :meth:`DeploymentArtifact.run_reference`.

    Attributes:
        logits: ``(T, O)`` readout per step (``None`` when the artifact has no readout).
        layer_events: per layer ``(T, H_l)`` graded events ``y``.
        states: per layer final :class:`EGRUState` (pass back in to continue a stream).
    """

    logits: np.ndarray | None
    layer_events: list[np.ndarray]
    states: list[EGRUState]


def _is_matrix(w: Any) -> bool:
    return sp.issparse(w) or (isinstance(w, np.ndarray) and w.ndim == 2)


@dataclass
class DeploymentArtifact:
    """A trained EGRU network, torch-free (see the module docstring for the file schema).

    Attributes:
        layers: the EGRU stack: :class:`~snn_egru.reference.EGRUParams` (weights dense
            float32 or scipy.sparse CSR float32) or int8
            :class:`~snn_egru.reference.QuantizedEGRUParams` (file version 2).
        input_kind: ``"embedding"`` (inputs are token ids) or ``"features"`` (inputs are
            vectors of size ``layers[0].input_size``).
        embedding: ``(V, E)`` embedding table when ``input_kind == "embedding"``.
        readout_kind: ``"tied_decoder"`` (logits = events @ embedding.T + bias),
            ``"linear"`` (logits = events @ readout_weight.T + bias), ``"adaptive"`` (the
            log-probabilities of an adaptive softmax, :class:`~snn_egru.adaptive_head.
            AdaptiveHead`; not one linear layer, so the host runs it) or ``"none"``.
        readout_weight: ``(O, H_last)`` for ``"linear"``.
        readout_bias: ``(O,)`` for a tied decoder or linear readout (optional).
        adaptive: the :class:`~snn_egru.adaptive_head.AdaptiveHead` for ``"adaptive"``.
        readout_source: read out the events ``"y"`` or their low-pass ``"trace"``.
        vocabulary: token strings (LM), index = token id.
        class_names: class labels (classification).
        metadata: JSON-serialisable extras (training config, metrics, provenance).
    """

    layers: list[Layer]
    input_kind: InputKind = "features"
    embedding: np.ndarray | None = None
    readout_kind: ReadoutKind = "none"
    readout_weight: np.ndarray | None = None
    readout_bias: np.ndarray | None = None
    readout_source: ReadoutSource = "y"
    vocabulary: list[str] | None = None
    class_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    adaptive: AdaptiveHead | None = None

    def __post_init__(self) -> None:
        self.layers = [
            layer if isinstance(layer, QuantizedEGRUParams) else EGRUParams(*layer)
            for layer in self.layers
        ]
        self.validate()

    @property
    def is_quantized(self) -> bool:
        """``True`` when any layer has int8 weights (the file is version 2)."""
        return any(isinstance(layer, QuantizedEGRUParams) for layer in self.layers)

    @property
    def format_version(self) -> int:
        """The file version :meth:`save` writes (1 for float, 2 for quantised artifacts)."""
        return QUANTIZED_FORMAT_VERSION if self.is_quantized else FORMAT_VERSION

    def quantization(self) -> list[dict[str, Any] | None]:
        """Per layer ``None`` (float) or its int8 metadata (granularity, product mode, scales)."""
        return [int8_metadata(layer) for layer in self.layers]

    def dequantized(self) -> DeploymentArtifact:
        """A float artifact whose weights are exactly ``code * scale`` (for float backends).

        The int8 input/event quantisation and the state levels are dropped: use the
        quantised artifact itself to compute what the int8 chip computes.
        """
        layers = [
            layer.dequantize() if isinstance(layer, QuantizedEGRUParams) else layer
            for layer in self.layers
        ]
        return _replace(self, layers=layers)

    # ------------------------------------------------------------------ shapes
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def layer_sizes(self) -> list[int]:
        return [layer.hidden_size for layer in self.layers]

    @property
    def has_readout(self) -> bool:
        """``True`` unless ``readout_kind == "none"``."""
        return self.readout_kind != "none"

    @property
    def output_size(self) -> int | None:
        if self.readout_kind == "adaptive":
            return self.adaptive.num_words
        weight = self.decoder_weight
        return None if weight is None else int(weight.shape[0])

    @property
    def decoder_weight(self) -> np.ndarray | None:
        """``(O, H_last)`` readout matrix (the embedding for a tied decoder); ``None`` without
        a readout and for an adaptive softmax (no single matrix: see ``adaptive``)."""
        if self.readout_kind == "tied_decoder":
            return self.embedding
        if self.readout_kind == "linear":
            return self.readout_weight
        return None

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ArtifactError` naming the first inconsistency found."""
        if not self.layers:
            raise ArtifactError("artifact has no EGRU layers")
        for i, layer in enumerate(self.layers):
            if isinstance(layer, QuantizedEGRUParams):
                validate_quantized_layer(layer, i)
            else:
                for name in ("weight_ih", "weight_hh"):
                    if not _is_matrix(getattr(layer, name)):
                        raise ArtifactError(
                            f"layer {i}: {name} must be a 2-D array or sparse matrix"
                        )
                try:
                    validate_params(layer, name=f"layer {i}")
                except ValueError as err:
                    raise ArtifactError(str(err)) from None
            if i > 0 and layer.input_size != self.layers[i - 1].hidden_size:
                raise ArtifactError(
                    f"layer {i} expects input_size={layer.input_size} but layer {i - 1} has "
                    f"hidden_size={self.layers[i - 1].hidden_size}"
                )
        if self.input_kind not in ("embedding", "features"):
            raise ArtifactError(
                f"input_kind must be 'embedding' or 'features', got {self.input_kind!r}"
            )
        if self.readout_kind not in ("tied_decoder", "linear", "adaptive", "none"):
            raise ArtifactError(
                "readout_kind must be 'tied_decoder', 'linear', 'adaptive' or 'none', "
                f"got {self.readout_kind!r}"
            )
        self._validate_adaptive()
        if self.readout_source not in ("y", "trace"):
            raise ArtifactError(
                f"readout_source must be 'y' or 'trace', got {self.readout_source!r}"
            )
        if self.input_kind == "embedding":
            if self.embedding is None or self.embedding.ndim != 2:
                raise ArtifactError("input_kind='embedding' needs a 2-D embedding table (V, E)")
            if self.embedding.shape[1] != self.input_size:
                raise ArtifactError(
                    f"embedding has width {self.embedding.shape[1]} but layer 0 expects "
                    f"input_size={self.input_size}"
                )
        if self.readout_kind == "tied_decoder" and self.embedding is None:
            raise ArtifactError("readout_kind='tied_decoder' needs an embedding table")
        if self.readout_kind == "linear" and (
            self.readout_weight is None or self.readout_weight.ndim != 2
        ):
            raise ArtifactError("readout_kind='linear' needs a 2-D readout_weight (O, H_last)")
        weight = self.decoder_weight
        if weight is not None:
            if weight.shape[1] != self.layer_sizes[-1]:
                raise ArtifactError(
                    f"readout weight has width {weight.shape[1]} but the last layer has "
                    f"{self.layer_sizes[-1]} units (a tied decoder needs embedding size == "
                    f"last layer size)"
                )
            if self.readout_bias is not None and self.readout_bias.shape != (weight.shape[0],):
                raise ArtifactError(
                    f"readout_bias has shape {self.readout_bias.shape}, expected "
                    f"({weight.shape[0]},)"
                )
        for name in ("embedding", "readout_weight", "readout_bias"):
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value)):
                raise ArtifactError(f"{name} contains NaN or infinite values")
        if self.vocabulary is not None and self.embedding is not None:
            if len(self.vocabulary) != self.embedding.shape[0]:
                raise ArtifactError(
                    f"vocabulary has {len(self.vocabulary)} words but the embedding has "
                    f"{self.embedding.shape[0]} rows"
                )

    def _validate_adaptive(self) -> None:
        head = self.adaptive
        if (self.readout_kind == "adaptive") != (head is not None):
            raise ArtifactError(
                "an adaptive head goes with readout_kind='adaptive' (and only with it)"
            )
        if head is None:
            return
        if self.readout_weight is not None or self.readout_bias is not None:
            raise ArtifactError("readout_kind='adaptive' has no readout_weight / readout_bias")
        head.validate()
        if head.in_features != self.layer_sizes[-1]:
            raise ArtifactError(
                f"the adaptive head reads {head.in_features} values per step but the last "
                f"layer has {self.layer_sizes[-1]} units"
            )
        words = len(self.vocabulary) if self.vocabulary is not None else None
        if words is not None and words != head.num_words:
            raise ArtifactError(
                f"vocabulary has {words} words but the adaptive head {head.num_words}"
            )

    # ------------------------------------------------------------- computation
    def layer_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Turn workload inputs into layer-0 input vectors ``(T, I)`` (float32).

        Token ids ``(T,)`` are looked up in the embedding; feature vectors ``(T, I)`` pass.
        """
        inputs = np.asarray(inputs)
        if self.input_kind == "embedding":
            if inputs.ndim != 1 or not np.issubdtype(inputs.dtype, np.integer):
                raise ValueError(
                    f"this artifact takes token ids: a 1-D integer array, got shape "
                    f"{inputs.shape} dtype {inputs.dtype}"
                )
            vocab = self.embedding.shape[0]
            if inputs.size and (inputs.min() < 0 or inputs.max() >= vocab):
                raise ValueError(
                    f"token ids must lie in [0, {vocab}), got {inputs.min()}..{inputs.max()}"
                )
            return self.embedding[inputs].astype(_layer_dtype(self.layers[0]), copy=False)
        if inputs.ndim != 2 or inputs.shape[1] != self.input_size:
            raise ValueError(
                f"this artifact takes feature vectors of shape (T, {self.input_size}), got "
                f"{inputs.shape}"
            )
        if not np.issubdtype(inputs.dtype, np.floating):
            raise ValueError(f"feature vectors must be floating point, got {inputs.dtype}")
        return inputs.astype(_layer_dtype(self.layers[0]), copy=False)

    def readout(self, events: np.ndarray) -> np.ndarray | None:
        """Logits from the last layer's events (or trace), ``(..., H_last) -> (..., O)``
        (for ``"adaptive"``: log-probabilities, in the dtype of ``events``)."""
        if self.readout_kind == "adaptive":
            return self.adaptive.astype(np.asarray(events).dtype).log_prob(events)
        weight = self.decoder_weight
        if weight is None:
            return None
        logits = events @ weight.T
        if self.readout_bias is not None:
            logits = logits + self.readout_bias
        return logits

    def initial_states(self, *, dtype: np.dtype | type | None = None) -> list[EGRUState]:
        """Zero states for every layer (with a trace on the last layer if it is read out)."""
        states = []
        for i, layer in enumerate(self.layers):
            trace = self.readout_source == "trace" and i == self.num_layers - 1
            states.append(
                init_state(layer.hidden_size, dtype=dtype or _layer_dtype(layer), trace=trace)
            )
        return states

    def run_reference(
        self, inputs: np.ndarray, states: list[EGRUState] | None = None
    ) -> ArtifactRun:
        """Run the numpy reference over a stream of inputs (token ids or feature vectors)."""
        xs = self.layer_inputs(inputs)
        states = list(states) if states is not None else self.initial_states()
        per_layer: list[list[np.ndarray]] = [[] for _ in self.layers]
        for x in xs:
            inp = x
            for i, layer in enumerate(self.layers):
                if isinstance(layer, QuantizedEGRUParams):
                    inp, states[i] = quantized_egru_step(inp, states[i], layer)
                else:
                    inp, states[i] = egru_step(inp, states[i], layer)
                per_layer[i].append(inp)
        events = [
            np.stack(acc) if acc else np.zeros((0, h))
            for acc, h in zip(per_layer, self.layer_sizes)
        ]
        logits = None
        if self.has_readout:
            if self.readout_source == "trace":
                raise NotImplementedError(
                    "run_reference reads out y per step; use the final state's trace for "
                    "trace readouts"
                )
            logits = self.readout(events[-1])
        return ArtifactRun(logits=logits, layer_events=events, states=states)

    # -------------------------------------------------------------- statistics
    def weight_sparsity(self) -> list[dict[str, float]]:
        """Fraction of zero weights per layer and matrix (int8: codes that are zero)."""
        out = []
        for layer in self.layers:
            row = {}
            for name in ("weight_ih", "weight_hh"):
                w = getattr(layer, name)
                if isinstance(w, QuantizedWeight):
                    w = w.values
                nnz = w.count_nonzero() if sp.issparse(w) else int(np.count_nonzero(w))
                row[name] = 1.0 - nnz / (w.shape[0] * w.shape[1])
            out.append(row)
        return out

    def with_sparse_weights(self) -> DeploymentArtifact:
        """A copy whose weight matrices are CSR float32 (explicit zeros dropped)."""
        layers = []
        for layer in self.layers:
            if isinstance(layer, QuantizedEGRUParams):  # int8 weights are CSR already
                layers.append(layer)
                continue
            w_ih = sp.csr_matrix(layer.weight_ih, dtype=np.float32)
            w_hh = sp.csr_matrix(layer.weight_hh, dtype=np.float32)
            w_ih.eliminate_zeros()
            w_hh.eliminate_zeros()
            layers.append(layer._replace(weight_ih=w_ih, weight_hh=w_hh))
        return _replace(self, layers=layers)

    # --------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the artifact to one ``.npz`` file (schema in the module docstring)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT_NAME),
            "version": np.array(self.format_version),
        }
        meta = {
            "num_layers": self.num_layers,
            "input_kind": self.input_kind,
            "readout_kind": self.readout_kind,
            "readout_source": self.readout_source,
            "vocabulary": self.vocabulary,
            "class_names": self.class_names,
            "metadata": self.metadata,
        }
        if self.is_quantized:
            meta["layer_kinds"] = [
                "int8" if isinstance(layer, QuantizedEGRUParams) else "float"
                for layer in self.layers
            ]
            meta["quantization"] = [
                None
                if q is None
                else {
                    "granularity": q["granularity"],
                    "product_mode": q["product_mode"],
                    "state": q["state_levels"] is not None,
                }
                for q in self.quantization()
            ]
        arrays["meta_json"] = np.array(json.dumps(meta))
        for i, layer in enumerate(self.layers):
            if isinstance(layer, QuantizedEGRUParams):
                put_quantized_layer(arrays, f"layer{i}", layer)
            else:
                for name in ("weight_ih", "weight_hh"):
                    _put_matrix(arrays, f"layer{i}.{name}", getattr(layer, name))
            for name in ("bias_ih", "bias_hh", "threshold"):
                arrays[f"layer{i}.{name}"] = np.asarray(getattr(layer, name), dtype=np.float32)
        if self.embedding is not None:
            arrays["embedding"] = np.asarray(self.embedding, dtype=np.float32)
        if self.readout_kind == "linear":
            arrays["readout_weight"] = np.asarray(self.readout_weight, dtype=np.float32)
        if self.readout_bias is not None:
            arrays["readout_bias"] = np.asarray(self.readout_bias, dtype=np.float32)
        if self.adaptive is not None:
            arrays.update(self.adaptive.to_arrays())
        path.parent.mkdir(parents=True, exist_ok=True)
        data = npz_bytes(**arrays)
        with atomic_path(path) as tmp:  # whole or not at all
            tmp.write_bytes(data)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeploymentArtifact:
        """Read an artifact written by :meth:`save`; raises :class:`ArtifactError` clearly."""
        path = Path(path)
        if not path.exists():
            raise ArtifactError(f"no artifact at {path} (create one with `snn-egru export`)")
        try:
            npz = np.load(path, allow_pickle=False)
        except Exception as err:  # zipfile / format errors
            raise ArtifactError(f"{path} is not a snn-egru artifact (.npz): {err}") from None
        with npz:
            try:
                data = {key: npz[key] for key in npz.files}
            except (ValueError, OSError, zipfile.BadZipFile) as err:  # object arrays, damage
                raise ArtifactError(
                    f"{path} has an unreadable entry ({err}); an artifact holds plain numeric "
                    "and string arrays only"
                ) from None
        if data.get("format") is None or str(data["format"]) != FORMAT_NAME:
            raise ArtifactError(f"{path} is not a snn-egru artifact (missing 'format' marker)")
        version = int(data.get("version", -1))
        if version not in READABLE_VERSIONS:
            raise ArtifactError(
                f"{path} has artifact version {version}; this snn-egru reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}: re-export it with this version"
            )
        try:
            meta = json.loads(str(data["meta_json"]))
            if not isinstance(meta, dict):
                raise ArtifactError(
                    f"{path}: meta_json holds a JSON {type(meta).__name__}, not an object "
                    "(file damaged or not written by `snn-egru export`: export it again)"
                )
            input_kind, readout_kind = meta["input_kind"], meta["readout_kind"]
            num_layers = int(meta["num_layers"])
            kinds = meta.get("layer_kinds") if version >= 2 else None
            kinds = kinds or ["float"] * num_layers
            if len(kinds) != num_layers or set(kinds) - {"float", "int8"}:
                raise ArtifactError(
                    f"{path}: meta_json layer_kinds must list 'float' or 'int8' for each of "
                    f"the {num_layers} layers, got {kinds}"
                )
            layers = []
            for i in range(num_layers):
                if kinds[i] == "int8":
                    layers.append(get_quantized_layer(data, f"layer{i}", path))
                    continue
                layers.append(
                    EGRUParams(
                        weight_ih=_get_matrix(data, f"layer{i}.weight_ih"),
                        weight_hh=_get_matrix(data, f"layer{i}.weight_hh"),
                        bias_ih=data[f"layer{i}.bias_ih"],
                        bias_hh=data[f"layer{i}.bias_hh"],
                        threshold=data[f"layer{i}.threshold"],
                    )
                )
            adaptive = None
            if readout_kind == "adaptive":
                adaptive = AdaptiveHead.from_arrays(data)
            elif adaptive_keys(data):
                raise ArtifactError(
                    f"{path} has adaptive-softmax entries but readout_kind={readout_kind!r}"
                )
        except KeyError as err:
            raise ArtifactError(
                f"{path} is missing the entry {err.args[0]!r} (file incomplete)"
            ) from None
        except ArtifactError as err:
            if str(path) in str(err):
                raise
            raise ArtifactError(f"{path}: {err}") from None
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{path}: meta_json is not valid JSON ({err})") from None
        quant_meta = meta.get("quantization") if version >= 2 else None
        for i, entry in enumerate(quant_meta or []):
            if entry and isinstance(layers[i], QuantizedEGRUParams):
                check_granularity(layers[i], i, entry.get("granularity", "row"), path)
        return cls(
            layers=layers,
            input_kind=input_kind,
            embedding=data.get("embedding"),
            readout_kind=readout_kind,
            readout_weight=data.get("readout_weight"),
            readout_bias=data.get("readout_bias"),
            readout_source=meta.get("readout_source", "y"),
            vocabulary=meta.get("vocabulary"),
            class_names=meta.get("class_names"),
            metadata=meta.get("metadata") or {},
            adaptive=adaptive,
        )


def load_artifact(path: str | os.PathLike) -> DeploymentArtifact:
    """Shorthand for :meth:`DeploymentArtifact.load`."""
    return DeploymentArtifact.load(path)


def _replace(artifact: DeploymentArtifact, **changes: Any) -> DeploymentArtifact:
    from dataclasses import replace

    return replace(artifact, **changes)


def _put_matrix(arrays: dict[str, np.ndarray], key: str, w: Matrix) -> None:
    if sp.issparse(w):
        csr = sp.csr_matrix(w, dtype=np.float32)
        arrays[f"{key}.csr_data"] = csr.data.astype(np.float32)
        arrays[f"{key}.csr_indices"] = csr.indices.astype(np.int32)
        arrays[f"{key}.csr_indptr"] = csr.indptr.astype(np.int32)
        arrays[f"{key}.csr_shape"] = np.asarray(csr.shape, dtype=np.int64)
    else:
        arrays[key] = np.asarray(w, dtype=np.float32)


def _get_matrix(data: dict[str, np.ndarray], key: str) -> Matrix:
    if key in data:
        return data[key]
    shape = tuple(int(s) for s in data[f"{key}.csr_shape"])
    try:
        csr = sp.csr_matrix(
            (data[f"{key}.csr_data"], data[f"{key}.csr_indices"], data[f"{key}.csr_indptr"]),
            shape=shape,
        )
        csr.check_format(full_check=True)
    except ValueError as err:
        raise ArtifactError(f"{key}: corrupt CSR matrix ({err})") from None
    return csr


def _layer_dtype(layer: Layer) -> np.dtype:
    return np.dtype(np.float32) if isinstance(layer, QuantizedEGRUParams) else layer.dtype
