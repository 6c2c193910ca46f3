"""Synthetic EGRU networks for what-if mapping studies, without training.

A synthetic network has the shapes of a real deployment and weights drawn the way the
reference initialises them (``docs/egru.md``): Xavier-normal weight matrices,
zero biases, thresholds from ``Beta(3m / (1 - m), 3)`` (mean ``m``, clamped to [0, 1]); then
every weight matrix is magnitude-pruned to the requested sparsity (the largest ``(1 - s)``
fraction of ``|w|`` kept, per matrix). The weights are random, so the network computes
nothing useful: use it to study memory, placement, time and energy, not accuracy.

Presets (``PRESETS``):

``paper-lm``
    the published SpiNNaker2 language model: token ids -> embedding (vocabulary 10,000,
    size 750) -> EGRU 1350 -> 1350 -> 750 -> decoder tied to the embedding; 95 % sparse
    weights (stored CSR).
``paper-dvs``
    the DVS gesture deployment: CNN features of size 512 computed ahead -> EGRU 256 -> 256
    -> linear readout to 11 classes; dense weights.

Example::

    artifact = synthetic_network("paper-lm", sparsity=0.95, seed=0)
    artifact = synthetic_network(layer_sizes=(512, 512), input_size=128, sparsity=0.9)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import INT8_MAX, PRODUCT_MODES, EGRUParams, quantize_params

__all__ = [
    "PRESETS",
    "SyntheticPreset",
    "magnitude_prune",
    "quantize_for_format",
    "quantize_network",
    "sample_thresholds",
    "synthetic_network",
    "xavier_normal",
]

#: Scale of the uniform embedding initialisation (the AWD-LSTM / EGRU LM recipe:
#: ``U(-0.1, 0.1)``).
EMBEDDING_INIT_RANGE = 0.1


@dataclass(frozen=True)
class SyntheticPreset:
    """Shape and defaults of a synthetic network.

    Attributes:
        layer_sizes: units per EGRU layer.
        input_size: size of the layer-0 input vector (embedding size or feature size).
        input_kind: ``"embedding"`` (token ids) or ``"features"``.
        vocab_size: embedding rows (``input_kind="embedding"``).
        readout_kind: ``"tied_decoder"``, ``"linear"`` or ``"none"``.
        num_classes: outputs of a linear readout.
        sparsity: default weight sparsity (0 = dense weights).
        threshold_mean: mean ``m`` of the threshold distribution.
        description: one line for help texts.
    """

    layer_sizes: tuple[int, ...]
    input_size: int
    input_kind: str = "features"
    vocab_size: int | None = None
    readout_kind: str = "none"
    num_classes: int | None = None
    sparsity: float = 0.0
    threshold_mean: float = 0.3
    description: str = ""


PRESETS: dict[str, SyntheticPreset] = {
    "paper-lm": SyntheticPreset(
        layer_sizes=(1350, 1350, 750),
        input_size=750,
        input_kind="embedding",
        vocab_size=10_000,
        readout_kind="tied_decoder",
        sparsity=0.95,
        threshold_mean=0.01,  # the LM recipe's threshold mean (docs/egru.md)
        description="word-level LM 750 -> 1350/1350/750, vocabulary 10,000, tied decoder",
    ),
    "paper-dvs": SyntheticPreset(
        layer_sizes=(256, 256),
        input_size=512,
        input_kind="features",
        readout_kind="linear",
        num_classes=11,
        sparsity=0.0,
        threshold_mean=0.3,  # the reference's default threshold mean (docs/egru.md)
        description="DVS gesture: features 512 -> 256/256, linear readout to 11 classes, dense",
    ),
}


def xavier_normal(
    rng: np.random.Generator, rows: int, cols: int, *, dtype: type = np.float32
) -> np.ndarray:
    """``(rows, cols)`` Xavier-normal matrix: ``N(0, 2 / (fan_in + fan_out))``.

    ``fan_in = cols``, ``fan_out = rows`` (``torch.nn.init.xavier_normal_`` on a 2-D weight).
    """
    std = np.sqrt(2.0 / (rows + cols))
    w = rng.standard_normal((rows, cols), dtype=np.float32)
    w *= np.float32(std)
    return w.astype(dtype, copy=False)


def magnitude_prune(weight: np.ndarray, sparsity: float) -> sp.csr_matrix:
    """Keep the ``round((1 - sparsity) * size)`` largest-magnitude weights, as CSR.

    Args:
        weight: dense ``(R, C)`` matrix.
        sparsity: fraction of weights set to zero, in ``[0, 1)``.

    Returns:
        ``scipy.sparse.csr_matrix`` with exactly that many stored weights (sorted columns).
        Ties at the threshold are broken by position (``np.argpartition``).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    rows, cols = weight.shape
    size = rows * cols
    keep = int(round((1.0 - sparsity) * size))
    flat = weight.reshape(-1)
    if keep >= size:
        kept = np.arange(size)
    elif keep == 0:
        kept = np.zeros(0, dtype=np.int64)
    else:
        kept = np.argpartition(np.abs(flat), size - keep)[size - keep :]
        kept.sort()
    row_of = kept // cols
    indptr = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(row_of, minlength=rows), out=indptr[1:])
    return sp.csr_matrix((flat[kept], (kept % cols).astype(np.int32), indptr), shape=(rows, cols))


def sample_thresholds(
    rng: np.random.Generator, size: int, mean: float, *, dtype: type = np.float32
) -> np.ndarray:
    """Thresholds from ``Beta(3m / (1 - m), 3)`` (mean ``m``), clamped to [0, 1] (docs/egru.md)."""
    if not 0.0 < mean < 1.0:
        raise ValueError(f"the threshold mean must be in (0, 1), got {mean}")
    return np.clip(rng.beta(3.0 * mean / (1.0 - mean), 3.0, size=size), 0.0, 1.0).astype(dtype)


def synthetic_network(
    preset: str | None = None,
    *,
    layer_sizes: Sequence[int] | None = None,
    input_size: int | None = None,
    sparsity: float | None = None,
    seed: int = 0,
    input_kind: str | None = None,
    vocab_size: int | None = None,
    readout_kind: str | None = None,
    num_classes: int | None = None,
    threshold_mean: float | None = None,
    dtype: type = np.float32,
) -> DeploymentArtifact:
    """A random, magnitude-pruned EGRU network as a :class:`DeploymentArtifact`.

    Args:
        preset: ``"paper-lm"``, ``"paper-dvs"`` or ``None`` (custom; then ``layer_sizes`` and
            ``input_size`` are required). Any keyword below overrides the preset.
        layer_sizes: units per layer.
        input_size: layer-0 input size (embedding size for token inputs).
        sparsity: fraction of zero weights per matrix, in ``[0, 1)``; ``0`` gives dense
            weights, anything else CSR.
        seed: random seed (same seed, same network).
        input_kind: ``"embedding"`` or ``"features"``.
        vocab_size: embedding rows for ``"embedding"``.
        readout_kind: ``"tied_decoder"`` (needs ``input_size == layer_sizes[-1]``),
            ``"linear"`` or ``"none"``.
        num_classes: outputs of a linear readout.
        threshold_mean: mean of the thresholds.
        dtype: float type of every array (float32 for deployment).

    Returns:
        The artifact; its ``metadata["synthetic"]`` records how it was made.
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[preset]
    else:
        if layer_sizes is None or input_size is None:
            raise ValueError("a custom synthetic network needs layer_sizes and input_size")
        base = SyntheticPreset(layer_sizes=tuple(layer_sizes), input_size=int(input_size))
    overrides = {
        "layer_sizes": tuple(int(h) for h in layer_sizes) if layer_sizes is not None else None,
        "input_size": input_size,
        "input_kind": input_kind,
        "vocab_size": vocab_size,
        "readout_kind": readout_kind,
        "num_classes": num_classes,
        "sparsity": sparsity,
        "threshold_mean": threshold_mean,
    }
    cfg = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    if not cfg.layer_sizes or min(cfg.layer_sizes) < 1 or cfg.input_size < 1:
        raise ValueError(
            f"layer sizes and input size must be >= 1, got {cfg.layer_sizes}, {cfg.input_size}"
        )
    if not 0.0 <= cfg.sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {cfg.sparsity}")
    if cfg.input_kind == "embedding" and not cfg.vocab_size:
        raise ValueError("input_kind='embedding' needs vocab_size")
    if cfg.readout_kind == "linear" and not cfg.num_classes:
        raise ValueError("readout_kind='linear' needs num_classes")

    rng = np.random.default_rng(seed)
    layers = []
    fan_in = cfg.input_size
    for hidden in cfg.layer_sizes:
        mats = []
        for cols in (fan_in, hidden):
            w = xavier_normal(rng, 3 * hidden, cols, dtype=dtype)
            mats.append(magnitude_prune(w, cfg.sparsity) if cfg.sparsity > 0 else w)
        layers.append(
            EGRUParams(
                weight_ih=mats[0],
                weight_hh=mats[1],
                bias_ih=np.zeros(3 * hidden, dtype=dtype),
                bias_hh=np.zeros(3 * hidden, dtype=dtype),
                threshold=sample_thresholds(rng, hidden, cfg.threshold_mean, dtype=dtype),
            )
        )
        fan_in = hidden

    embedding = None
    if cfg.input_kind == "embedding":
        embedding = rng.uniform(
            -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE, size=(cfg.vocab_size, cfg.input_size)
        ).astype(dtype)
    readout_weight = readout_bias = None
    if cfg.readout_kind == "linear":
        readout_weight = xavier_normal(rng, cfg.num_classes, cfg.layer_sizes[-1], dtype=dtype)
        readout_bias = np.zeros(cfg.num_classes, dtype=dtype)
    elif cfg.readout_kind == "tied_decoder":
        readout_bias = np.zeros(cfg.vocab_size or 0, dtype=dtype)
    return DeploymentArtifact(
        layers=layers,
        input_kind=cfg.input_kind,
        embedding=embedding,
        readout_kind=cfg.readout_kind,
        readout_weight=readout_weight,
        readout_bias=readout_bias,
        metadata={
            "synthetic": {
                "preset": preset,
                "layer_sizes": list(cfg.layer_sizes),
                "input_size": cfg.input_size,
                "sparsity": cfg.sparsity,
                "seed": seed,
                "threshold_mean": cfg.threshold_mean,
                "init": "xavier_normal weights, zero biases, magnitude pruning per matrix",
            }
        },
    )


def quantize_network(
    artifact: DeploymentArtifact,
    *,
    mode: str = "float",
    granularity: str = "row",
    calibration_inputs: np.ndarray | None = None,
) -> DeploymentArtifact:
    """Post-training int8 quantisation of a float artifact, torch-free (for what-if studies).

    The weights as :func:`snn_egru.reference.quantize_params`; with ``mode="int8"`` (the
    MAC array's products) every input/event scale is ``max |x| / 127`` of what the int8-weight
    network sees on ``calibration_inputs`` (layer ``k + 1``'s input scale is layer ``k``'s
    event scale), as :func:`snn_egru.quantization.quantize_artifact` calibrates them (that
    one needs torch; this one gives the same layers for the same inputs).
    """

    if mode not in PRODUCT_MODES:
        raise ValueError(f"mode must be one of {PRODUCT_MODES}, got {mode!r}")
    layers = [quantize_params(layer, granularity=granularity) for layer in artifact.layers]
    if mode == "int8":
        if calibration_inputs is None:
            raise ValueError("mode='int8' needs calibration_inputs to set the input/event scales")
        float_mode = replace(artifact, layers=layers)
        xs = float_mode.layer_inputs(np.asarray(calibration_inputs))
        run = float_mode.run_reference(np.asarray(calibration_inputs))
        maxima = [float(np.abs(xs).max(initial=0.0))]
        maxima += [float(np.abs(ev).max(initial=0.0)) for ev in run.layer_events]
        scales = [float(np.float32(m / INT8_MAX)) if m > 0 else 1.0 for m in maxima]
        layers = [
            layer._replace(input_scale=scales[k], event_scale=scales[k + 1])
            for k, layer in enumerate(layers)
        ]
    metadata = dict(artifact.metadata)
    metadata["quantization"] = {"method": "ptq", "products": mode, "granularity": granularity}
    return replace(artifact, layers=layers, metadata=metadata)


def quantize_for_format(
    artifact: DeploymentArtifact, weight_format: str, *, seed: int = 0
) -> DeploymentArtifact:
    """The PTQ an int8 weight format needs: ``"float"`` products for ``csr-int8`` /
    ``event-int8``; ``"int8"`` for ``mac-int8``, its scales calibrated on 70 random inputs
    (token ids, or standard-normal feature vectors; seeded)."""
    if weight_format != "mac-int8":
        return quantize_network(artifact, mode="float")
    rng = np.random.default_rng(seed)
    if artifact.input_kind == "embedding":
        calibration = rng.integers(0, artifact.embedding.shape[0], size=70)
    else:
        calibration = rng.standard_normal((70, artifact.input_size)).astype(np.float32)
    return quantize_network(artifact, mode="int8", calibration_inputs=calibration)
