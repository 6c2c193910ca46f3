"""Stage 5 of the mapping: does every PE fit, and if not, what would make it fit.

:func:`check_fit` returns a :class:`FitCheck`, or raises :class:`MappingError` naming the
PE, the region, bytes needed vs available, where the overflow reaches, and what to change
(more PEs / ``max_units_per_pe`` with the number that fits, more pruning, another weight
format with its bytes, fewer recorded steps, more chips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spinnaker2_backend.formats import WEIGHT_FORMATS, word_count
from spinnaker2_backend.mapping.base import MappingError
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


def _fix_advice(layout: MemoryLayout, model: LayerMemoryModel) -> str:
    """What would make this PE fit, with numbers where they can be computed."""
    over = -layout.free
    tips = []
    units = layout.unit_stop - layout.unit_start
    unit_bytes = model.unit_bytes()[layout.unit_start : layout.unit_stop]
    budget = layout.data_capacity - model.fixed_bytes()
    fit_units = int(np.searchsorted(np.cumsum(np.sort(unit_bytes)[::-1]), budget, side="right"))
    if 0 < fit_units < units:
        tips.append(
            f"more PEs (at most {fit_units} of these units fit on one PE, it has {units}: "
            f"max_units_per_pe={fit_units})"
        )
    elif fit_units == 0:
        tips.append("a single unit does not fit a PE, so more PEs cannot help")
    tips.append("prune more (fewer stored weights)")
    nnz_ih, nnz_hh = model.nnz(layout.unit_start, layout.unit_stop)
    for fmt in WEIGHT_FORMATS:
        if fmt == layout.weight_format:
            continue
        other = model.spec.word_bytes * (
            word_count(fmt, 3 * units, model.input_size, nnz_ih)
            + word_count(fmt, 3 * units, model.hidden_size, nnz_hh)
        )
        if other <= layout.weights - over:
            tips.append(f"weight format {fmt!r} ({other:,} bytes of weights here)")
    if layout.recordings > 0:
        per_step = model.spec.word_bytes * (units + model.spec.profile_words_per_step)
        steps = max(0, model.record_steps - -(-over // per_step))
        tips.append(f"record fewer steps (record_steps <= {steps})")
    tips.append("more chips (room for more PEs)")
    return "; ".join(tips)


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
    worst: tuple[int, int] | None = None
    for pe, layout in memory.items():
        s = slices[pe]
        if layout.code_free < 0:
            problems.append(
                f"{s.label()}: instruction memory needs {layout.code:,} bytes for the program "
                f"but {layout.code_capacity:,} are available: shrink the program "
                f"(ChipSpec.egru_code_bytes)"
            )
        if layout.free < 0:
            largest = layout.largest_region()
            regions = ", ".join(f"{k} {v:,}" for k, v in layout.regions().items() if v)
            problems.append(
                f"{s.label()}: data memory needs {layout.total:,} bytes but "
                f"{layout.data_capacity:,} are available ({-layout.free:,} over; largest "
                f"region: {largest} {layout.region(largest):,} bytes in format "
                f"{layout.weight_format!r}; the overflow reaches the "
                f"{layout.overflow_region()} region; regions: {regions}). "
                f"To fit: {_fix_advice(layout, models[s.layer])}"
            )
            if worst is None or -layout.free > worst[1]:
                worst = (len(problems) - 1, -layout.free)
    fullest = max(memory.values(), key=lambda m: m.utilisation)
    result = FitCheck(
        problems=tuple(problems),
        fullest_pe=fullest.pe,
        fullest_utilisation=fullest.utilisation,
    )
    if problems and raise_error:
        first = problems[worst[0]] if worst is not None else problems[0]
        more = f" (and {len(problems) - 1} more PE problems)" if len(problems) > 1 else ""
        raise MappingError(first + more)
    return result


# ============================================================================ mapping
