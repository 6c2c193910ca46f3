"""Stage 5 of the mapping: does every PE fit, and if not, what would make it fit.

:func:`check_fit` returns a :class:`FitCheck`, or raises :class:`MappingError` naming the
PE, the region, bytes needed vs available, where the overflow reaches, and what to change
(more PEs / ``max_units_per_pe`` with the number that fits, more pruning with the sparsity
that fits, another weight format with its bytes, another receive policy or a smaller
receive capacity with the capacity that fits, a split balanced by bytes at the same PE
count, fewer recorded steps, a smaller batch);
the error's ``advice`` holds the same as :class:`~spinnaker2_backend.mapping.base.FitAdvice`
items. More chips do not appear: a PE's memory does not grow with the machine (the
placement names the chips needed when more PEs do not fit the machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from spinnaker2_backend.mapping.base import (
    RECEIVE_POLICIES,
    FitAdvice,
    MappingError,
    check_receive_policy,
)
from spinnaker2_backend.mapping.memory import LayerMemoryModel, MemoryLayout
from spinnaker2_backend.mapping.placement import Placement

__all__ = [
    "FitCheck",
    "check_fit",
]


@dataclass(frozen=True)
class FitCheck:
    """Result of :func:`check_fit`.

    Attributes:
        problems: one message per PE that does not fit (empty when all fit).
        fullest_pe: the PE with the highest data-memory utilisation.
        fullest_utilisation: its utilisation (fraction of 96 KiB).
    """

    problems: tuple[str, ...]
    fullest_pe: int
    fullest_utilisation: float

    @property
    def ok(self) -> bool:
        return not self.problems


#: Receive policies whose buffers hold a given number of events (``receive_capacity``).
CAPPED_POLICIES: tuple[str, ...] = tuple(
    p for p in ("event-list", "bitmap16") if p in RECEIVE_POLICIES
)


def _largest_capacity(model: LayerMemoryModel, layout: MemoryLayout, policy: str) -> int:
    """The most event entries of ``policy`` with which the PE fits (0: none fits), up to
    every source of the layer (bytes grow with the capacity: bisection)."""
    a, b = layout.unit_start, layout.unit_stop

    def fits(capacity: int) -> bool:
        alt = replace(model, receive_policy=policy, receive_capacity=capacity)
        return alt.data_bytes(a, b) <= layout.data_capacity

    low, high = 0, max(model.hidden_size, model.input_size if model.input_by_packets else 0)
    if fits(high):
        return high
    if not fits(low):
        return 0
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _receive_advice(layout: MemoryLayout, model: LayerMemoryModel) -> list[FitAdvice]:
    """Other receive policies, and smaller capacities, with which this PE fits."""
    tips: list[FitAdvice] = []
    a, b = layout.unit_start, layout.unit_stop
    for policy in RECEIVE_POLICIES:
        try:
            check_receive_policy(policy, model.weight_format)
        except MappingError:
            continue
        if policy in CAPPED_POLICIES:
            cap = _largest_capacity(model, layout, policy)
            if cap >= 1 and (policy != model.receive_policy or cap < model.receive_capacity):
                what = (
                    "a smaller receive capacity"
                    if policy == model.receive_policy
                    else (f"receive policy {policy!r}")
                )
                tips.append(
                    FitAdvice(
                        "receive_policy" if policy != model.receive_policy else "receive_capacity",
                        {"receive_policy": policy, "receive_capacity": cap},
                        f"{what} (receive_policy={policy}, receive_capacity <= {cap} events of "
                        "one product per step; a run that receives more raises or drops)",
                    )
                )
        elif policy != model.receive_policy:
            alt = replace(model, receive_policy=policy)
            if alt.data_bytes(a, b) <= layout.data_capacity:
                tips.append(
                    FitAdvice(
                        "receive_policy",
                        {"receive_policy": policy, "receive_capacity": None},
                        f"receive policy {policy!r} ({alt.receive_bytes():,} bytes of receive "
                        "buffers here)",
                    )
                )
    return tips


def _balance_advice(model: LayerMemoryModel, slices: int, capacity: int) -> list[FitAdvice]:
    """A split balanced by bytes at the same PE count, when it would fit."""
    from spinnaker2_backend.mapping.partition import _balanced_split

    bounds = _balanced_split(model.unit_bytes(), slices)
    if all(model.data_bytes(a, b) <= capacity for a, b in bounds):
        return [
            FitAdvice(
                "balance",
                {"balance": "bytes"},
                f"split by bytes instead of units at the same {slices} PEs of this layer "
                "(balance=bytes)",
            )
        ]
    return []


def _fix_advice(layout: MemoryLayout, model: LayerMemoryModel) -> list[FitAdvice]:
    """What would make this PE fit, with numbers where they can be computed."""
    over = -layout.free
    tips: list[FitAdvice] = []
    units = layout.unit_stop - layout.unit_start
    unit_bytes = model.unit_bytes()[layout.unit_start : layout.unit_stop]
    budget = layout.data_capacity - model.fixed_bytes()
    fit_units = int(np.searchsorted(np.cumsum(np.sort(unit_bytes)[::-1]), budget, side="right"))
    if 0 < fit_units < units:
        tips.append(
            FitAdvice(
                "max_units_per_pe",
                {"max_units_per_pe": fit_units, "pes_per_layer": None},
                f"more PEs (at most {fit_units} of these units fit on one PE, it has {units}: "
                f"max_units_per_pe={fit_units})",
            )
        )
    elif fit_units == 0:
        tips.append(
            FitAdvice("none", {}, "a single unit does not fit a PE, so more PEs cannot help")
        )
    nnz = sum(model.nnz(layout.unit_start, layout.unit_stop))
    per_weight = model.bytes_per_stored_weight
    if per_weight and nnz:
        keep = max(nnz - -(-over // per_weight), 0)
        # re-pruning the layer scales every PE's stored weights alike: the layer's density
        # must shrink by keep / nnz
        h, i = model.hidden_size, model.input_size
        stored = int(model.nnz_ih_prefix[-1] + model.nnz_hh_prefix[-1])
        density = stored / (3 * h * (i + h)) * keep / nnz
        sparsity = min(np.ceil((1.0 - density) * 1000) / 1000, 0.999)
        tips.append(
            FitAdvice(
                "sparsity",
                {"sparsity": float(sparsity)},
                f"prune more (this PE's rows may keep at most {keep:,} of their {nnz:,} stored "
                f"weights: layer sparsity >= {sparsity:.3f})",
            )
        )
    else:
        tips.append(FitAdvice("sparsity", {}, "prune more (fewer stored weights)"))
    for fmt in model.sibling_formats:
        if fmt == layout.weight_format or (fmt == "mac-int8" and model.quantized is None):
            continue
        other = sum(model.weight_bytes(layout.unit_start, layout.unit_stop, fmt))
        if other <= layout.weights - over:
            tips.append(
                FitAdvice(
                    "weight_format",
                    {"weight_format": fmt},
                    f"weight format {fmt!r} ({other:,} bytes of weights here)",
                )
            )
    if layout.recordings > 0:
        per_step = model.spec.word_bytes * (
            units * model.batch_size + model.spec.profile_words_per_step
        )
        steps = max(0, model.record_steps - -(-over // per_step))
        tips.append(
            FitAdvice(
                "record_steps",
                {"record_steps": steps},
                f"record fewer steps (record_steps <= {steps})",
            )
        )
    if model.batch_size > 1:
        per_sample = model.per_sample_bytes(layout.unit_start, layout.unit_stop)
        batch = max(1, model.batch_size - -(-over // per_sample))
        tips.append(
            FitAdvice(
                "batch_size",
                {"batch_size": batch},
                f"a smaller batch (each sample adds {per_sample:,} bytes of per-sample state "
                f"here: c and y of {units} units, receive buffers, recordings; batch_size <= "
                f"{batch})",
            )
        )
    return tips


def check_fit(
    memory: dict[int, MemoryLayout],
    placement: Placement,
    models: Sequence[LayerMemoryModel],
    *,
    raise_error: bool = True,
) -> FitCheck:
    """Check that every PE's data and instruction memory fit.

    Args:
        memory: per-PE layouts from :func:`layout_memory`.
        placement: the placement (for readable PE locations).
        models: per-layer memory models (to compute advice).
        raise_error: raise :class:`MappingError` for the PE that overflows most.

    Returns:
        :class:`FitCheck`.

    Raises:
        MappingError: when ``raise_error`` and a PE does not fit; the message names the PE,
            the bytes needed and available, the largest region, where the overflow reaches,
            and what to change.
    """
    slices = {s.pe: s for s in placement.slices}
    problems = []
    advice: list[list[FitAdvice]] = []
    worst: tuple[int, int] | None = None
    balance: dict[tuple[int, int], list[FitAdvice]] = {}
    for pe, layout in memory.items():
        s = slices[pe]
        if layout.code_free < 0:
            advice.append([])
            problems.append(
                f"{s.label()}: instruction memory needs {layout.code:,} bytes for the program "
                f"but {layout.code_capacity:,} are available: shrink the program "
                f"(ChipSpec.egru_code_bytes)"
            )
        if layout.free < 0:
            largest = layout.largest_region()
            regions = ", ".join(f"{k} {v:,}" for k, v in layout.regions().items() if v)
            model = models[s.layer]
            tips = _fix_advice(layout, model) + _receive_advice(layout, model)
            if model.additive:  # one balanced split per layer, not one per PE over
                key = (s.layer, layout.data_capacity)
                if key not in balance:
                    n = len(placement.layers[s.layer])
                    balance[key] = _balance_advice(model, n, layout.data_capacity)
                tips += balance[key]
            batch = (
                f"; batch of {model.batch_size}: "
                f"{model.per_sample_bytes(layout.unit_start, layout.unit_stop):,} bytes of "
                f"per-sample state each"
                if model.batch_size > 1
                else ""
            )
            problems.append(
                f"{s.label()}: data memory needs {layout.total:,} bytes but "
                f"{layout.data_capacity:,} are available ({-layout.free:,} over; largest "
                f"region: {largest} {layout.region(largest):,} bytes in format "
                f"{layout.weight_format!r}; the overflow reaches the "
                f"{layout.overflow_region()} region; regions: {regions}{batch}). "
                f"To fit: {'; '.join(t.text for t in tips)}"
            )
            advice.append(tips)
            if worst is None or -layout.free > worst[1]:
                worst = (len(problems) - 1, -layout.free)
    fullest = max(memory.values(), key=lambda m: m.utilisation)
    result = FitCheck(
        problems=tuple(problems),
        fullest_pe=fullest.pe,
        fullest_utilisation=fullest.utilisation,
    )
    if problems and raise_error:
        index = worst[0] if worst is not None else 0
        more = f" (and {len(problems) - 1} more PE problems)" if len(problems) > 1 else ""
        raise MappingError(problems[index] + more, advice=advice[index])
    return result


# ============================================================================ mapping
