"""Synthetic EGRU networks for what-if mapping studies, without training.

A synthetic network has the shapes of a real deployment and weights drawn the way the
reference initialises them (``docs/egru.md``): Xavier-normal weight matrices,
zero biases, thresholds from ``Beta(3m / (1 - m), 3)`` (mean ``m``, clamped to [0, 1]); then
every weight matrix is magnitude-pruned to the requested sparsity (the largest ``(1 - s)``
fraction of ``|w|`` kept, per matrix). The weights are random, so the network computes
nothing useful: use it to study memory, placement, time and energy, not accuracy.

A large matrix is never held dense: above :data:`DENSE_PRUNE_ELEMENTS` elements it is drawn
in chunks and only the weights near or above the pruning threshold are kept
(:func:`pruned_xavier_normal`): the same numbers from the same seed as drawing it dense and
pruning it, bit for bit, unless the threshold value is shared by kept and dropped weights
(then up to :data:`TIE_DENSE_ELEMENTS` elements the dense path decides, beyond it the tied
weights at the lowest positions are kept, logged).

Presets (``PRESETS``):

``paper-lm``
    the published SpiNNaker2 language model: token ids -> embedding (vocabulary 10,000,
    size 750) -> EGRU 1350 -> 1350 -> 750 -> decoder tied to the embedding; 95 % sparse
    weights (stored CSR). Its thresholds are tuned so that each layer fires like a trained
    EGRU language model: :data:`TRAINED_LM_ACTIVITY` (20 %) of its units per step on the
    tuning workload (:func:`activity_workload`); see that constant for where the figure
    comes from. ``activity=`` (``--activity`` on the command line) sets another target.
``paper-dvs``
    the DVS gesture deployment: CNN features of size 512 computed ahead -> EGRU 256 -> 256
    -> linear readout to 11 classes; dense weights.

With a target ``activity`` (one fraction, or one per layer), :func:`tune_thresholds` shifts
each layer's drawn thresholds (one offset per layer, found by bisection, layer after layer)
until the fraction of its units that fire per step on the workload is within
:data:`ACTIVITY_TOLERANCE` of the target; the artifact's ``metadata["synthetic"]`` records
the target, the activity reached and the most events of one step per layer
(``peak_events``). A target the network cannot reach (more than fire with thresholds near 0)
raises :class:`ActivityError`.

Example::

    artifact = synthetic_network("paper-lm", sparsity=0.95, seed=0)
    artifact = synthetic_network("paper-lm", activity=(0.25, 0.2, 0.15))
    artifact = synthetic_network(layer_sizes=(512, 512), input_size=128, sparsity=0.9)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy import special

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import (
    INT8_MAX,
    PRODUCT_MODES,
    EGRUParams,
    egru_pointwise,
    init_state,
    quantize_params,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIVITY_TOLERANCE",
    "ACTIVITY_WORKLOAD_STEPS",
    "PRESETS",
    "TRAINED_LM_ACTIVITY",
    "ActivityError",
    "activity_workload",
    "published_receive",
    "tune_thresholds",
    "SyntheticPreset",
    "magnitude_prune",
    "pruned_xavier_normal",
    "quantize_for_format",
    "quantize_network",
    "sample_thresholds",
    "synthetic_network",
    "xavier_normal",
]

#: Scale of the uniform embedding initialisation (the AWD-LSTM / EGRU LM recipe:
#: ``U(-0.1, 0.1)``).
EMBEDDING_INIT_RANGE = 0.1

#: Fraction of units that fire per step in a trained EGRU language model, the target of the
#: ``paper-lm`` stand-in (every layer). This project's own trained LMs: the demo's pruned
#: PTB model fires 24.9 % of its units per step (README, "Sparsity: activity 75.1 % of
#: unit-steps silent"), the 1000-step comparison's EGRU 18.8 % (docs/lm_quality.md, 81.2 %
#: activity sparsity); the EGRU papers report about 80 % activity sparsity for their LMs
#: (docs/egru.md). 20 % lies inside the project's measured range and equals the papers'
#: figure. Those trained models have one layer; per layer the target is therefore the same.
#: The published SpiNNaker2 run's activity is not published.
TRAINED_LM_ACTIVITY = 0.20
#: How close (absolute fraction of units) the tuned activity must come to its target.
ACTIVITY_TOLERANCE = 0.005
#: Steps of the tuning workload: one 70-token sequence, the published time unit.
ACTIVITY_WORKLOAD_STEPS = 70


#: Head room of the published receive design's capacity over the stand-in's recorded peak
#: (other inputs than the tuning workload fire a little differently). [C]
RECEIVE_MARGIN = 0.10


class ActivityError(ValueError):
    """A target activity the synthetic network cannot reach (the message names the most
    that fires)."""


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
        activity: target fraction of units firing per step (one, or one per layer), or
            ``None`` to keep the drawn thresholds.
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
    activity: float | tuple[float, ...] | None = None
    description: str = ""


PRESETS: dict[str, SyntheticPreset] = {
    "paper-lm": SyntheticPreset(
        layer_sizes=(1350, 1350, 750),
        input_size=750,
        input_kind="embedding",
        vocab_size=10_000,
        readout_kind="tied_decoder",
        sparsity=0.95,
        threshold_mean=0.01,  # the LM recipe's threshold mean (docs/egru.md): the shape
        activity=TRAINED_LM_ACTIVITY,  # thresholds shifted to fire like a trained LM
        description="word-level LM 750 -> 1350/1350/750, vocabulary 10,000, tied decoder, "
        "thresholds firing like a trained LM",
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
    keep = _kept(size, sparsity)
    flat = weight.reshape(-1)
    if keep >= size:
        kept = np.arange(size)
    elif keep == 0:
        kept = np.zeros(0, dtype=np.int64)
    else:
        kept = np.argpartition(np.abs(flat), size - keep)[size - keep :]
        kept.sort()
    return _csr(kept, flat[kept], rows, cols)


def _kept(size: int, sparsity: float) -> int:
    return int(round((1.0 - sparsity) * size))


def _csr(kept: np.ndarray, values: np.ndarray, rows: int, cols: int) -> sp.csr_matrix:
    """CSR of the weights at the sorted flat positions ``kept``."""
    row_of = kept // cols
    indptr = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(row_of, minlength=rows), out=indptr[1:])
    return sp.csr_matrix((values, (kept % cols).astype(np.int32), indptr), shape=(rows, cols))


#: Matrices up to this many elements are drawn dense and pruned (:func:`magnitude_prune`,
#: 16 bytes per element at its peak); larger ones are streamed (:func:`pruned_xavier_normal`).
DENSE_PRUNE_ELEMENTS = 1 << 24
#: A streamed matrix whose threshold value is shared by weights some of which are kept
#: and some not (a tie ``np.argpartition`` breaks in its own way) is drawn again dense up
#: to this many elements, so it equals the dense path; beyond it the tied weights at the
#: lowest positions are kept (logged).
TIE_DENSE_ELEMENTS = 1 << 27
#: Elements drawn per chunk by the streamed path.
STREAM_CHUNK = 1 << 22


def pruned_xavier_normal(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    sparsity: float,
    *,
    dtype: type = np.float32,
    dense_limit: int | None = None,
    tie_limit: int | None = None,
    chunk: int | None = None,
) -> sp.csr_matrix:
    """``magnitude_prune(xavier_normal(rng, rows, cols), sparsity)`` without the dense matrix.

    The generator draws the same numbers in chunks (the stream of a Generator does not
    depend on how the draws are split) and keeps the candidates above a bound a little
    below the expected threshold (``N(0, std)`` quantile); a bound too high is lowered and
    the chunks drawn again from the saved state. The kept weights are those above the
    exact threshold (the ``keep``-th largest ``|w|``) and the ties at it: the same CSR,
    bit for bit, as the dense path, and ``rng`` is left in the same state. Only when the
    threshold value is shared by kept and dropped weights (``argpartition`` breaks such a
    tie in an order of its own) can the two differ: up to ``tie_limit`` elements the
    matrix is then drawn dense (the dense path itself); beyond it the tied weights at the
    lowest positions are kept.

    Peak memory: the candidates (12 bytes each, about 1.2x the kept weights) and one
    chunk, not ``16 * rows * cols`` bytes.
    """
    dense_limit = DENSE_PRUNE_ELEMENTS if dense_limit is None else dense_limit
    tie_limit = TIE_DENSE_ELEMENTS if tie_limit is None else tie_limit
    chunk = STREAM_CHUNK if chunk is None else max(int(chunk), 1)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    size = rows * cols
    if size <= dense_limit:
        return magnitude_prune(xavier_normal(rng, rows, cols, dtype=dtype), sparsity)
    keep = _kept(size, sparsity)
    std = np.float32(np.sqrt(2.0 / (rows + cols)))
    start = rng.bit_generator.state
    # |N(0, std)| exceeds std * z with probability 2 (1 - Phi(z)): aim 20 % (and 4096
    # weights) below the kept fraction, lower the bound until enough candidates are found
    fraction = min(1.0, 1.2 * keep / size + 4096 / size)
    while True:
        bound = 0.0 if fraction >= 1.0 else float(std) * float(special.ndtri(1 - fraction / 2))
        positions, values = _candidates(rng, size, std, dtype, np.dtype(dtype).type(bound), chunk)
        if len(positions) >= keep or bound == 0.0:
            break
        fraction = min(1.0, 2.0 * fraction)
        rng.bit_generator.state = start
    end = rng.bit_generator.state
    if keep == 0:
        return _csr(np.zeros(0, np.int64), values[:0], rows, cols)
    magnitude = np.abs(values)
    threshold = np.partition(magnitude, len(magnitude) - keep)[len(magnitude) - keep]
    above = magnitude > threshold
    tied = magnitude == threshold
    need = keep - int(above.sum())
    if need != int(tied.sum()):  # kept and dropped weights share the threshold value
        if size <= tie_limit:
            rng.bit_generator.state = start
            out = magnitude_prune(xavier_normal(rng, rows, cols, dtype=dtype), sparsity)
            rng.bit_generator.state = end
            return out
        logger.info(
            "pruning a %d x %d matrix: %d of %d weights tied at the threshold kept (the "
            "lowest positions; the dense path may keep others)",
            rows,
            cols,
            need,
            int(tied.sum()),
        )
        tied[np.flatnonzero(tied)[need:]] = False
    kept = above | tied
    return _csr(positions[kept], values[kept], rows, cols)


def _candidates(rng, size: int, std, dtype, bound, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions (sorted) and values of the weights with ``|w| >= bound``, drawn
    chunk by chunk as :func:`xavier_normal` draws them."""
    positions, values = [], []
    for offset in range(0, size, chunk):
        w = rng.standard_normal(min(chunk, size - offset), dtype=np.float32)
        w *= std
        w = w.astype(dtype, copy=False)
        at = np.flatnonzero(np.abs(w) >= bound)
        positions.append(at + offset)
        values.append(w[at])
    return np.concatenate(positions), np.concatenate(values)


def sample_thresholds(
    rng: np.random.Generator, size: int, mean: float, *, dtype: type = np.float32
) -> np.ndarray:
    """Thresholds from ``Beta(3m / (1 - m), 3)`` (mean ``m``), clamped to [0, 1] (docs/egru.md)."""
    if not 0.0 < mean < 1.0:
        raise ValueError(f"the threshold mean must be in (0, 1), got {mean}")
    return np.clip(rng.beta(3.0 * mean / (1.0 - mean), 3.0, size=size), 0.0, 1.0).astype(dtype)


def _config(preset: str | None, overrides: dict) -> SyntheticPreset:
    """The preset (or a custom shape) with the given overrides, checked."""
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[preset]
    else:
        if overrides.get("layer_sizes") is None or overrides.get("input_size") is None:
            raise ValueError("a custom synthetic network needs layer_sizes and input_size")
        base = SyntheticPreset(
            layer_sizes=tuple(overrides["layer_sizes"]), input_size=int(overrides["input_size"])
        )
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
    _activity_targets(cfg.activity, len(cfg.layer_sizes))  # checks the targets
    return cfg


def _activity_targets(activity, num_layers: int) -> tuple[float, ...] | None:
    """``activity`` as one target per layer (or None), each in (0, 1)."""
    if activity is None:
        return None
    values = (
        [float(activity)] * num_layers if np.isscalar(activity) else [float(a) for a in activity]
    )
    if len(values) != num_layers:
        raise ActivityError(
            f"give one activity, or one per layer ({num_layers}), got {len(values)}"
        )
    for a in values:
        if not 0.0 < a < 1.0:
            raise ActivityError(
                f"an activity is the fraction of units firing per step, in (0, 1), got {a:g}"
            )
    return tuple(values)


def _layers(cfg: SyntheticPreset, rng: np.random.Generator, dtype) -> list[EGRUParams]:
    """Xavier-normal weights (magnitude-pruned when sparse), zero biases, Beta thresholds."""
    layers = []
    fan_in = cfg.input_size
    for hidden in cfg.layer_sizes:
        mats = []
        for cols in (fan_in, hidden):
            if cfg.sparsity > 0:  # never the dense matrix of a large layer
                mats.append(pruned_xavier_normal(rng, 3 * hidden, cols, cfg.sparsity, dtype=dtype))
            else:
                mats.append(xavier_normal(rng, 3 * hidden, cols, dtype=dtype))
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
    return layers


def _readout(cfg: SyntheticPreset, rng: np.random.Generator, dtype) -> dict:
    """Embedding and readout arrays of the artifact."""
    out = {"embedding": None, "readout_weight": None, "readout_bias": None}
    if cfg.input_kind == "embedding":
        out["embedding"] = rng.uniform(
            -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE, size=(cfg.vocab_size, cfg.input_size)
        ).astype(dtype)
    if cfg.readout_kind == "linear":
        out["readout_weight"] = xavier_normal(
            rng, cfg.num_classes, cfg.layer_sizes[-1], dtype=dtype
        )
        out["readout_bias"] = np.zeros(cfg.num_classes, dtype=dtype)
    elif cfg.readout_kind == "tied_decoder":
        out["readout_bias"] = np.zeros(cfg.vocab_size or 0, dtype=dtype)
    return out


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
    activity: float | Sequence[float] | None = None,
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
        seed: random seed (same seed, same network; also seeds the tuning workload).
        input_kind: ``"embedding"`` or ``"features"``.
        vocab_size: embedding rows for ``"embedding"``.
        readout_kind: ``"tied_decoder"`` (needs ``input_size == layer_sizes[-1]``),
            ``"linear"`` or ``"none"``.
        num_classes: outputs of a linear readout.
        threshold_mean: mean of the drawn thresholds. Given without ``activity``, the
            thresholds are kept as drawn (the preset's activity target is dropped).
        activity: target fraction of units firing per step, one or one per layer
            (:func:`tune_thresholds`); the ``paper-lm`` preset's default is
            :data:`TRAINED_LM_ACTIVITY`.
        dtype: float type of every array (float32 for deployment).

    Returns:
        The artifact; its ``metadata["synthetic"]`` records how it was made.

    Raises:
        ActivityError: an activity outside (0, 1), or one the network cannot reach.
    """
    overrides = {
        "layer_sizes": tuple(int(h) for h in layer_sizes) if layer_sizes is not None else None,
        "input_size": input_size,
        "input_kind": input_kind,
        "vocab_size": vocab_size,
        "readout_kind": readout_kind,
        "num_classes": num_classes,
        "sparsity": sparsity,
        "threshold_mean": threshold_mean,
        "activity": tuple(activity) if isinstance(activity, Sequence) else activity,
    }
    cfg = _config(preset, overrides)
    if threshold_mean is not None and activity is None:
        cfg = replace(cfg, activity=None)
    rng = np.random.default_rng(seed)
    layers = _layers(cfg, rng, dtype)
    artifact = DeploymentArtifact(
        layers=layers,
        input_kind=cfg.input_kind,
        readout_kind=cfg.readout_kind,
        **_readout(cfg, rng, dtype),
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
    targets = _activity_targets(cfg.activity, len(cfg.layer_sizes))
    if targets is None:
        return artifact
    return tune_thresholds(artifact, targets, inputs=activity_workload(artifact, seed=seed))


def activity_workload(
    artifact: DeploymentArtifact, *, steps: int = ACTIVITY_WORKLOAD_STEPS, seed: int = 0
) -> np.ndarray:
    """The workload thresholds are tuned on: ``steps`` token ids drawn uniformly from the
    vocabulary, or ``steps`` standard-normal feature vectors (seeded). For token inputs these
    are the calibration's tokens (:func:`spinnaker2_backend.calibration.calibration_inputs`)."""
    rng = np.random.default_rng(seed)
    if artifact.input_kind == "embedding":
        return rng.integers(0, artifact.embedding.shape[0], size=steps)
    return rng.standard_normal((steps, artifact.input_size)).astype(np.float32)


def _layer_activity(gi: np.ndarray, layer: EGRUParams, threshold: np.ndarray) -> np.ndarray:
    """``(T,)`` units that fire per step of one layer with ``threshold``, its input product
    ``gi`` (``(T, 3H)``, bias included) computed ahead."""
    state = init_state(layer.hidden_size, dtype=gi.dtype)
    c, y = state.c, state.y
    fired = np.zeros(len(gi), dtype=np.int64)
    w_hh, b_hh = layer.weight_hh, layer.bias_hh
    for t in range(len(gi)):
        gh = w_hh @ y + b_hh
        y, c, o = egru_pointwise(gi[t], np.asarray(gh, dtype=gi.dtype), c, threshold)
        fired[t] = int(np.count_nonzero(o))
    return fired


def _layer_events(gi: np.ndarray, layer: EGRUParams) -> np.ndarray:
    """``(T, H)`` events of one layer (input product ``gi`` computed ahead)."""
    state = init_state(layer.hidden_size, dtype=gi.dtype)
    c, y = state.c, state.y
    out = np.zeros((len(gi), layer.hidden_size), dtype=gi.dtype)
    for t in range(len(gi)):
        gh = np.asarray(layer.weight_hh @ y + layer.bias_hh, dtype=gi.dtype)
        y, c, _ = egru_pointwise(gi[t], gh, c, layer.threshold)
        out[t] = y
    return out


def _shifted(base: np.ndarray, shift: float) -> np.ndarray:
    """``clip(base + shift, 0, 1)`` in the thresholds' dtype."""
    return np.clip(base + shift, 0.0, 1.0).astype(base.dtype)


def _shift_for(gi, layer, base, target, tolerance, index) -> tuple[float, np.ndarray]:
    """Bisection on the shift ``d`` of ``threshold = clip(drawn + d, 0, 1)``: activity falls
    from its most (``d = -1``: every threshold 0) to none (``d = 1``: every threshold 1)."""
    hidden = layer.hidden_size

    def activity(shift: float) -> tuple[float, np.ndarray]:
        fired = _layer_activity(gi, layer, _shifted(base, shift))
        return float(fired.mean()) / hidden, fired

    most, fired = activity(-1.0)
    if target > most + tolerance:
        raise ActivityError(
            f"layer {index} cannot fire {100 * target:.1f} % of its units per step: with "
            f"thresholds near 0 at most {100 * most:.1f} % fire on this network; give a lower "
            "--activity"
        )
    low, high = -1.0, 1.0
    shift, got = -1.0, most
    for _ in range(60):
        if abs(got - target) <= tolerance:
            break
        shift = 0.5 * (low + high)
        got, fired = activity(shift)
        low, high = (shift, high) if got > target else (low, shift)
    if abs(got - target) > tolerance:
        raise ActivityError(
            f"layer {index}: no threshold shift gives {100 * target:.1f} % activity "
            f"(closest {100 * got:.1f} %); give another --activity"
        )
    return shift, fired


def tune_thresholds(
    artifact: DeploymentArtifact,
    activity: Sequence[float],
    *,
    inputs: np.ndarray,
    tolerance: float = ACTIVITY_TOLERANCE,
) -> DeploymentArtifact:
    """Scale each layer's thresholds so that ``activity[l]`` of its units fire per step.

    Layer after layer (a layer's input is the tuned layer before it): one shift ``d`` per
    layer, ``threshold = clip(drawn + d, 0, 1)``, found by bisection on the mean fraction of units
    that fire per step on ``inputs`` (within ``tolerance``).

    Returns:
        A copy of ``artifact`` with the tuned thresholds; ``metadata["synthetic"]`` gains
        ``activity_target``, ``activity`` (reached), ``peak_events`` (most units of the layer
        firing in one step), ``threshold_shift`` and ``activity_workload``.

    Raises:
        ActivityError: a layer cannot reach its target.
    """
    targets = _activity_targets(tuple(activity), artifact.num_layers)
    xs = np.asarray(artifact.layer_inputs(inputs))
    layers, reached, peaks, shifts = [], [], [], []
    for index, (layer, target) in enumerate(zip(artifact.layers, targets)):
        gi = np.asarray(xs @ layer.weight_ih.T, dtype=xs.dtype) + layer.bias_ih
        base = np.asarray(layer.threshold)
        shift, fired = _shift_for(gi, layer, base, target, tolerance, index)
        layer = layer._replace(threshold=_shifted(base, shift))
        layers.append(layer)
        reached.append(float(fired.mean()) / layer.hidden_size)
        peaks.append(int(fired.max(initial=0)))
        shifts.append(shift)
        xs = _layer_events(gi, layer)
    metadata = dict(artifact.metadata)
    synthetic = dict(metadata.get("synthetic", {}))
    synthetic.update(
        activity_target=list(targets),
        activity=reached,
        peak_events=peaks,
        threshold_shift=shifts,
        activity_workload=f"{len(inputs)} steps, {artifact.input_kind} inputs, seeded",
    )
    metadata["synthetic"] = synthetic
    return replace(artifact, layers=layers, metadata=metadata)


def published_receive(
    artifact: DeploymentArtifact, weight_format: str, input_source: str = "dram"
) -> tuple[str, list[int] | None]:
    """``(receive policy, capacity per layer)`` of the published deployment for this network.

    The ``paper-lm`` stand-in with CSR weights fed from DRAM gets the design that reproduces
    Table I (``bitmap16``), each layer's capacity the most events of one product in one
    step of its tuning workload (its own ``y`` or its input layer's) plus
    :data:`RECEIVE_MARGIN`; every other network ``("dense", None)``.
    """
    meta = artifact.metadata.get("synthetic", {}) if artifact.metadata else {}
    peaks = meta.get("peak_events")
    if meta.get("preset") != "paper-lm" or weight_format != "csr" or input_source != "dram":
        return "dense", None
    if not peaks or len(peaks) != artifact.num_layers:
        return "dense", None
    need = [max(p, peaks[i - 1] if i else 0) for i, p in enumerate(peaks)]
    return "bitmap16", [int(np.ceil(n * (1.0 + RECEIVE_MARGIN))) for n in need]


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
