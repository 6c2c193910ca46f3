"""Stage 1 of the mapping: split each layer's units into contiguous per-PE slices.

:func:`partition_network` splits automatically (the fewest PEs such that every PE's data
memory fits, balanced by bytes, i.e. by stored non-zeros plus per-unit state), by a user
limit ``max_units_per_pe`` (py-spinnaker2's ``max_atoms_per_core``: slices of that many
units, the last one smaller) or by a user PE count per layer ``pes_per_layer``; it returns a
:class:`PartitionResult` (no PE is chosen yet).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.mapping.base import FitAdvice, MappingError
from spinnaker2_backend.mapping.memory import LayerMemoryModel, layer_memory_models

logger = logging.getLogger(__name__)

#: How ``pes_per_layer`` splits a layer: by bytes (largest slice smallest) or by units.
PARTITION_BALANCES: tuple[str, ...] = ("bytes", "units")

__all__ = [
    "PARTITION_BALANCES",
    "LayerPartition",
    "PartitionResult",
    "largest_that_fits",
    "partition_network",
]


@dataclass(frozen=True)
class LayerPartition:
    """How one layer's units are split over PEs.

    Attributes:
        layer: layer number.
        hidden_size: units ``H``.
        bounds: ``((start, stop), ...)`` per slice, contiguous, covering ``0..H``.
        nnz: stored weights per slice (``weight_ih`` + ``weight_hh`` rows).
        data_bytes: data memory per slice.
        mode: ``"auto"``, ``"max_units_per_pe"`` or ``"pes_per_layer"``.
    """

    layer: int
    hidden_size: int
    bounds: tuple[tuple[int, int], ...]
    nnz: tuple[int, ...]
    data_bytes: tuple[int, ...]
    mode: str

    @property
    def num_slices(self) -> int:
        return len(self.bounds)

    @property
    def units(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in self.bounds)


@dataclass(frozen=True)
class PartitionResult:
    """Result of :func:`partition_network`.

    Attributes:
        layers: one :class:`LayerPartition` per layer.
        weight_format: the weight format the sizes were computed for.
        record_steps: recorded steps the sizes include.
        data_capacity: bytes of data memory per PE.
    """

    layers: tuple[LayerPartition, ...]
    weight_format: str
    record_steps: int
    data_capacity: int

    @property
    def num_slices(self) -> int:
        return sum(layer.num_slices for layer in self.layers)

    def table(self) -> str:
        """One line per layer: PEs, units per PE, non-zeros and bytes per PE (min..max)."""
        lines = [f"partition ({self.weight_format}, {self.record_steps} recorded steps)"]
        for lp in self.layers:
            lines.append(
                f"  layer {lp.layer}: {lp.hidden_size} units on {lp.num_slices} PEs ({lp.mode}); "
                f"units/PE {min(lp.units)}..{max(lp.units)}, nnz/PE {min(lp.nnz)}..{max(lp.nnz)}, "
                f"bytes/PE {min(lp.data_bytes)}..{max(lp.data_bytes)} of {self.data_capacity}"
            )
        return "\n".join(lines)


def _greedy_split(unit_bytes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Contiguous slices, each as long as its units fit in ``budget`` bytes (fewest slices)."""
    return _greedy_bounds(np.concatenate([[0], np.cumsum(unit_bytes)]).tolist(), budget)


def _greedy_bounds(prefix: list, budget: int, limit: int | None = None) -> list[tuple[int, int]]:
    """:func:`_greedy_split` on the cumulative costs ``prefix`` (a list: ``bisect`` on it is
    ``np.searchsorted(side="right")`` without a numpy call per slice); stops once it has
    more than ``limit`` slices."""
    bounds = []
    start, n = 0, len(prefix) - 1
    while start < n:
        stop = bisect.bisect_right(prefix, prefix[start] + budget) - 1
        stop = max(stop, start + 1)  # every slice holds at least one unit
        bounds.append((start, min(stop, n)))
        start = min(stop, n)
        if limit is not None and len(bounds) > limit:
            break
    return bounds


def _max_cost(unit_bytes: np.ndarray, bounds: Sequence[tuple[int, int]]) -> int:
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    return int(max(prefix[b] - prefix[a] for a, b in bounds))


def _balanced_split(unit_bytes: np.ndarray, num_slices: int) -> list[tuple[int, int]]:
    """``num_slices`` contiguous non-empty slices whose largest byte cost is smallest.

    Compares a quantile split of the cumulative cost (even slices) with the optimal min-max
    split (binary search on the budget with greedy packing) and keeps the better one.
    """
    n = len(unit_bytes)
    if not 1 <= num_slices <= n:
        raise ValueError(f"cannot split {n} units into {num_slices} non-empty slices")
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)]).astype(np.int64)
    total = int(prefix[-1])
    # Quantile split: cut where the cumulative cost crosses i * total / k.
    cuts = [0]
    targets = [total * i / num_slices for i in range(1, num_slices)]
    found = np.searchsorted(prefix, np.array(targets, dtype=np.float64)).tolist()
    costs = prefix.tolist()
    for i, target, j in zip(range(1, num_slices), targets, found):
        if j > 0 and abs(costs[j - 1] - target) <= abs(costs[min(j, n)] - target):
            j -= 1
        j = min(max(j, cuts[-1] + 1), n - (num_slices - i))
        cuts.append(j)
    cuts.append(n)
    quantile = list(zip(cuts[:-1], cuts[1:]))
    # Min-max split: smallest budget whose greedy packing needs at most k slices.
    lo, hi = int(unit_bytes.max()), total
    packed = np.concatenate([[0], np.cumsum(unit_bytes)]).tolist()  # _greedy_split's costs
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_greedy_bounds(packed, mid, limit=num_slices)) <= num_slices:
            hi = mid
        else:
            lo = mid + 1
    greedy = _greedy_bounds(packed, lo)
    # Greedy may use fewer slices: split its largest slices until there are k.
    while len(greedy) < num_slices:
        widths = [b - a for a, b in greedy]
        k = int(np.argmax(widths))
        a, b = greedy[k]
        mid = (a + b) // 2
        greedy[k : k + 1] = [(a, mid), (mid, b)]
    if _max_cost(unit_bytes, greedy) < _max_cost(unit_bytes, quantile):
        return greedy
    return quantile


def _largest_fitting_stop(model: LayerMemoryModel, start: int, guess: int, capacity: int) -> int:
    """The largest ``stop`` with ``model.data_bytes(start, stop) <= capacity`` (the bytes
    grow with the slice, up to the odd byte of padding or a ``mac-int8`` tile shifting; the
    result is checked to fit); ``start`` when not even one unit fits."""
    return largest_that_fits(
        lambda stop: model.data_bytes(start, stop) <= capacity,
        low=start + 1,
        guess=guess,
        high=model.hidden_size,
    )


def largest_that_fits(
    fits: Callable[[int], bool], *, low: int, guess: int, high: int | None = None
) -> int:
    """The largest ``n`` in ``low..high`` (``None``: no upper bound) with ``fits(n)``, or
    ``low - 1`` when none fits: galloping from ``guess`` by doubling strides until the
    answer is bracketed, then bisection. ``fits`` is taken to hold up to the answer and
    fail beyond it; the ``n`` returned was probed and fits."""
    guess = max(guess, low) if high is None else min(max(guess, low), high)
    if fits(guess):
        lo, step = guess, 1  # lo fits; find hi that does not
        hi = None
        while high is None or lo < high:
            probe = lo + step if high is None else min(lo + step, high)
            if fits(probe):
                lo, step = probe, 2 * step
            else:
                hi = probe
                break
        if hi is None:
            return lo  # high fits
    else:
        hi, step = guess, 1  # hi does not fit; find lo that does
        lo = None
        while hi > low:
            probe = max(hi - step, low)
            if fits(probe):
                lo = probe
                break
            hi, step = probe, 2 * step
        if lo is None:
            return low - 1  # not even low
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _exact_greedy_split(
    model: LayerMemoryModel, unit_bytes: np.ndarray, capacity: int
) -> list[tuple[int, int]]:
    """Fewest contiguous slices that fit, each checked with the exact byte count (the int8
    formats, whose per-unit bytes are an estimate: :attr:`LayerMemoryModel.additive`)."""
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    budget = capacity - model.fixed_bytes()
    bounds, start, n = [], 0, model.hidden_size
    while start < n:
        guess = int(np.searchsorted(prefix, prefix[start] + budget, side="right")) - 1
        stop = _largest_fitting_stop(model, start, guess, capacity)
        if stop <= start:
            raise _unit_too_big_error(model, start, unit_bytes, capacity)
        bounds.append((start, stop))
        start = stop
    return bounds


def _unit_too_big_error(
    model: LayerMemoryModel, unit: int, unit_bytes: np.ndarray, capacity: int
) -> MappingError:
    need = model.data_bytes(unit, unit + 1)
    over = need - capacity
    tips = ["prune more"]
    advice = [FitAdvice("sparsity", {}, "prune more")]
    nnz_ih, nnz_hh = model.nnz(unit, unit + 1)
    weights = sum(size for region, _, size in model.items(unit, unit + 1) if region == "weights")
    for fmt in model.sibling_formats:
        if fmt == "mac-int8" and model.quantized is None:
            continue
        other = sum(model.weight_bytes(unit, unit + 1, fmt))
        if fmt != model.weight_format and other <= weights - over:
            tips.append(f"weight format {fmt!r}")
            advice.append(FitAdvice("weight_format", {"weight_format": fmt}, tips[-1]))
    if model.record_steps:
        per_step = model.spec.word_bytes * (1 + model.spec.profile_words_per_step)
        steps = model.record_steps - -(-over // per_step)
        if steps >= 0:
            tips.append(f"record fewer steps (record_steps <= {steps})")
            advice.append(FitAdvice("record_steps", {"record_steps": steps}, tips[-1]))
    tips.append("shrink the layer")
    return MappingError(
        f"layer {model.layer}: even a PE holding only unit {unit} needs {need:,} bytes of data "
        f"memory but a PE has {capacity:,} (unit {unit_bytes[unit]:,} bytes, receive buffers "
        f"and fixed parts {model.fixed_bytes():,} bytes; format {model.weight_format!r}, "
        f"{model.record_steps} recorded steps). To fit: {'; '.join(tips)}",
        advice=advice,
    )


def _check_partition_options(max_units_per_pe, pes_per_layer, balance: str) -> None:
    """The sizing options of :func:`partition_network` agree, else MappingError."""
    if max_units_per_pe is not None and pes_per_layer is not None:
        raise MappingError("give either max_units_per_pe or pes_per_layer, not both")
    if max_units_per_pe is not None and (
        isinstance(max_units_per_pe, bool)  # True is an int to Python, not a size
        or not isinstance(max_units_per_pe, int | np.integer)
        or max_units_per_pe < 1
    ):
        raise MappingError(f"max_units_per_pe must be an integer >= 1, got {max_units_per_pe!r}")
    if balance not in PARTITION_BALANCES:
        raise MappingError(
            f"unknown balance {balance!r}; choose one of {', '.join(PARTITION_BALANCES)}"
        )
    if balance == "units" and pes_per_layer is None:
        raise MappingError("balance='units' splits a given number of PEs: give pes_per_layer")


def _pes_per_layer(pes_per_layer: int | Sequence[int], num_layers: int) -> list[int]:
    """One PE count per layer (an int is every layer's), else MappingError."""
    counts = (
        [int(pes_per_layer)] * num_layers
        if isinstance(pes_per_layer, int | np.integer)
        else [int(c) for c in pes_per_layer]
    )
    if len(counts) != num_layers:
        raise MappingError(
            f"pes_per_layer has {len(counts)} entries but the network has {num_layers} layers"
        )
    return counts


def _layer_bounds(
    model: LayerMemoryModel,
    capacity: int,
    max_units_per_pe: int | None,
    pes: int | None,
    balance: str,
) -> tuple[list[tuple[int, int]], str]:
    """The ``(start, stop)`` unit slices of one layer and the partition mode's name: at most
    ``max_units_per_pe`` units each, or split over ``pes`` PEs, or the fewest that fit."""
    hidden = model.hidden_size
    unit_bytes = model.unit_bytes()
    budget = capacity - model.fixed_bytes()
    if max_units_per_pe is not None:
        m = int(max_units_per_pe)
        return [(a, min(a + m, hidden)) for a in range(0, hidden, m)], "max_units_per_pe"
    if pes is not None:
        if not 1 <= pes <= hidden:
            raise MappingError(
                f"layer {model.layer} has {hidden} units; pes_per_layer must be 1..{hidden}, "
                f"got {pes}"
            )
        if balance == "units":
            cuts = np.cumsum([0] + [len(c) for c in np.array_split(np.arange(hidden), pes)])
            return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])], (
                "pes_per_layer (units)"
            )
        return _balanced_split(unit_bytes, pes), "pes_per_layer"
    if model.additive:
        worst = int(np.argmax(unit_bytes))
        if unit_bytes[worst] > budget:
            raise _unit_too_big_error(model, worst, unit_bytes, capacity)
        k = len(_greedy_split(unit_bytes, budget))
        bounds = _balanced_split(unit_bytes, k)
        if _max_cost(unit_bytes, bounds) > budget:  # pragma: no cover - defensive
            bounds = _greedy_split(unit_bytes, budget)
        return bounds, "auto"
    # int8 formats: greedy packing against the exact bytes, then the byte-balanced split of
    # the estimate at that PE count if every one of its slices fits exactly
    greedy = _exact_greedy_split(model, unit_bytes, capacity)
    if len(greedy) > 1:
        balanced = _balanced_split(unit_bytes, len(greedy))
        if all(model.data_bytes(a, b) <= capacity for a, b in balanced):
            return balanced, "auto"
    return greedy, "auto"


def partition_network(
    artifact: DeploymentArtifact,
    *,
    spec: ChipSpec | None = None,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    pes_per_layer: int | Sequence[int] | None = None,
    record_steps: int = 0,
    balance: str = "bytes",
    memory_models: Sequence[LayerMemoryModel] | None = None,
) -> PartitionResult:
    """Split each layer's units into contiguous per-PE slices.

    Args:
        artifact: the network.
        spec: chip figures (default :class:`ChipSpec`).
        weight_format: ``"csr"``, ``"event"`` or ``"dense"`` (sets the bytes per unit).
        max_units_per_pe: slices of at most this many units (the last one smaller), like
            py-spinnaker2's ``max_atoms_per_core``; fit is checked later by :func:`check_fit`.
        pes_per_layer: a PE count for every layer (int) or per layer (sequence); the units are
            split so that the largest slice (in bytes) is as small as possible.
        record_steps: recorded steps (the recordings grow the bytes per unit).
        balance: with ``pes_per_layer``, split so that the largest slice in bytes is
            smallest (``"bytes"``, default) or into equal unit counts (``"units"``, as
            ``numpy.array_split``: the published 27 / 27 / 15 units on 50 PEs per layer).
        memory_models: the byte models to partition with (default: built for the options
            above with the default receive policy and batch 1; :func:`map_network` passes
            its own).

    Without ``max_units_per_pe`` / ``pes_per_layer``: each layer gets the fewest PEs such
    that every PE's data memory fits (greedy packing of the per-unit bytes is optimal for
    contiguous slices), then the slices are balanced by bytes at that PE count.

    The int8 formats' bytes are not a sum over units (index widths, word padding, 16-row
    ``mac-int8`` tiles shared by neighbouring units): the greedy packing then grows each
    slice against the exact :meth:`~LayerMemoryModel.data_bytes` (galloping from the
    per-unit estimate, then bisection), and the balanced split of the estimate at that PE
    count is kept only if every slice of it fits exactly.

    Returns:
        :class:`PartitionResult`.

    Raises:
        MappingError: a single unit does not fit a PE, or the options are inconsistent.
    """
    spec = spec if spec is not None else ChipSpec()
    _check_partition_options(max_units_per_pe, pes_per_layer, balance)
    models = (
        list(memory_models)
        if memory_models is not None
        else layer_memory_models(
            artifact, spec=spec, weight_format=weight_format, record_steps=record_steps
        )
    )
    counts = _pes_per_layer(pes_per_layer, len(models)) if pes_per_layer is not None else None
    capacity = spec.data_memory_bytes
    layers = []
    for model in models:
        hidden = model.hidden_size
        k = counts[model.layer] if counts is not None else None
        bounds, mode = _layer_bounds(model, capacity, max_units_per_pe, k, balance)
        layers.append(
            LayerPartition(
                layer=model.layer,
                hidden_size=hidden,
                bounds=tuple(bounds),
                nnz=tuple(sum(model.nnz(a, b)) for a, b in bounds),
                data_bytes=tuple(model.data_bytes(a, b) for a, b in bounds),
                mode=mode,
            )
        )
        logger.debug("layer %d: %d units -> %d PEs (%s)", model.layer, hidden, len(bounds), mode)
    return PartitionResult(
        layers=tuple(layers),
        weight_format=weight_format,
        record_steps=int(record_steps),
        data_capacity=capacity,
    )


# ============================================================================== place
