"""Map an EGRU network onto SpiNNaker2 PEs: partition -> place -> route -> lay out memory -> check.

Each step is a separate function with its own result dataclass (as in the SpiNNaker
toolchain); :func:`map_network` runs them in order and returns a :class:`Mapping`.

1. :func:`partition_network` splits each layer's units into contiguous per-PE slices,
   automatically (the fewest PEs such that every PE's data memory fits, balanced by bytes,
   i.e. by stored non-zeros plus per-unit state) or by a user limit ``max_units_per_pe``
   (py-spinnaker2's ``max_atoms_per_core``: slices of that many units, the last one smaller)
   or a user PE count per layer ``pes_per_layer``.
2. :func:`place_slices` puts the slices on PEs, layers contiguous, along a serpentine path
   over the QPE grid (chip after chip), choosing the path that minimises NoC hops of the
   traffic (every PE sends to every PE of its own layer and of the next layer).
3. :func:`route_slices` gives every PE a routing-key offset (``key = offset + local unit
   index``), builds the multicast targets (one per destination QPE, with a 4-bit PE mask) and
   counts router entries per chip against the router capacity.
4. :func:`layout_memory` accounts every byte of each PE's data memory by region (weights,
   variables, receive buffers, recordings, static data, heap + stack) and the code in the
   instruction memory (:class:`MemoryLayout`).
5. :func:`check_fit` raises :class:`MappingError` naming the PE, the region, bytes needed vs
   available and what to change.

Model of a PE's program (the published EGRU deployment, ``../shared/design/SPINNAKER2.md``):
a PE owns units ``[a, b)`` of a layer; it stores their rows of ``weight_ih`` and
``weight_hh`` (all three gates, see :mod:`spinnaker2_backend.formats`), computes them, and
after each step sends their ``y`` as packets to every other PE of its layer (recurrence) and
to every PE of the next layer. It keeps the full ``y_{t-1}`` of its layer and the full input
vector of the step in receive buffers. Layer 0's input vectors are computed ahead (embedding
lookup or feature extraction) and stream from DRAM (``input_source="dram"``) or arrive from
the host (``input_source="host"``). The readout (decoder) runs on the host from the last
layer's events, as in the published deployment.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import (
    WEIGHT_FORMATS,
    PEWeights,
    encode_pe_weights,
    slice_rows,
    word_count,
)
from spinnaker2_backend.machine import Machine

if TYPE_CHECKING:  # pragma: no cover
    from spinnaker2_backend.mapping_report import MappingReport

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_REGIONS",
    "INPUT_SOURCES",
    "FitCheck",
    "LayerMemoryModel",
    "LayerPartition",
    "LayerPlacement",
    "Mapping",
    "MappingError",
    "MemoryLayout",
    "MulticastTarget",
    "PESlice",
    "PartitionResult",
    "Placement",
    "RoutingResult",
    "SliceRoute",
    "check_fit",
    "layer_memory_models",
    "layout_memory",
    "map_network",
    "partition_network",
    "place_slices",
    "route_slices",
]

InputSource = Literal["dram", "host"]

#: Where layer 0's input vectors come from (see the module docstring).
INPUT_SOURCES: tuple[str, ...] = ("dram", "host")

#: Regions of a PE's data memory, in address order (heap + stack at the top).
DATA_REGIONS: tuple[str, ...] = (
    "static_data",
    "weights",
    "variables",
    "receive_buffers",
    "recordings",
    "stack_heap",
)

#: Words of per-unit state a PE keeps (besides weights and buffers): c, y, threshold (1 each),
#: bias_ih, bias_hh (3 each: one per gate), gate buffers gi = W_ih x + b_ih and
#: gh = W_hh y + b_hh (3 each). A unit whose trace is read out adds 1 word.
VARIABLE_WORDS_PER_UNIT: dict[str, int] = {
    "c": 1,
    "y": 1,
    "threshold": 1,
    "bias_ih": 3,
    "bias_hh": 3,
    "gi": 3,
    "gh": 3,
}

#: Placement heuristic only (not a hardware figure): one chip-to-chip hop costs as much as
#: this many NoC hops when comparing candidate placements.
CHIP_HOP_PLACEMENT_WEIGHT = 16


class MappingError(ValueError):
    """A network does not fit the machine (or cannot be mapped as asked).

    The message names the PE, the memory region, bytes needed vs available, and what to
    change (more PEs / ``max_units_per_pe``, more pruning, another weight format, fewer
    recorded steps, more chips).
    """


# =============================================================================== slices


@dataclass(frozen=True)
class PESlice:
    """Units ``[unit_start, unit_stop)`` of one layer, computed by one PE.

    Attributes:
        layer: layer number.
        index_in_layer: 0.. number of slices of the layer - 1 (unit order).
        pe: global PE index on the machine.
        chip: chip number.
        pe_id: on-chip PE id (``qx << 5 | qy << 2 | pe``).
        qpe: ``(qx, qy)``.
        unit_start, unit_stop: the units.
        key_offset: routing key of the slice's first unit; unit ``u`` sends with key
            ``key_offset + (u - unit_start)``.
    """

    layer: int
    index_in_layer: int
    pe: int
    chip: int
    pe_id: int
    qpe: tuple[int, int]
    unit_start: int
    unit_stop: int
    key_offset: int

    @property
    def num_units(self) -> int:
        return self.unit_stop - self.unit_start

    @property
    def pe_in_qpe(self) -> int:
        return self.pe_id & 3

    @property
    def units(self) -> range:
        return range(self.unit_start, self.unit_stop)

    def key(self, unit: int) -> int:
        """Routing key of layer unit ``unit`` (``key_offset + local index``)."""
        if not self.unit_start <= unit < self.unit_stop:
            raise ValueError(f"unit {unit} is not on this PE ({self.unit_start}..{self.unit_stop})")
        return self.key_offset + unit - self.unit_start

    def label(self) -> str:
        """Readable location, e.g. ``PE 12 (chip 0, QPE (2,1) core 0; layer 0 units 0..26)``."""
        return (
            f"PE {self.pe} (chip {self.chip}, QPE ({self.qpe[0]},{self.qpe[1]}) core "
            f"{self.pe_in_qpe}; layer {self.layer} units {self.unit_start}..{self.unit_stop - 1})"
        )


@dataclass
class LayerPlacement:
    """The slices of one layer.

    Attributes:
        layer: layer number.
        hidden_size: units of the layer ``H``.
        input_size: size of the layer's input vector ``I``.
        slices: the PE slices in unit order.
    """

    layer: int
    hidden_size: int
    input_size: int
    slices: list[PESlice]

    @property
    def pes(self) -> list[int]:
        return [s.pe for s in self.slices]

    @property
    def num_pes(self) -> int:
        return len(self.slices)

    def slice_of_unit(self, unit: int) -> PESlice:
        """The slice that computes ``unit``."""
        for s in self.slices:
            if s.unit_start <= unit < s.unit_stop:
                return s
        raise ValueError(f"layer {self.layer} has no unit {unit} (H={self.hidden_size})")


# ======================================================================= memory model


@dataclass(frozen=True)
class MemoryLayout:
    """Exact byte accounting of one PE's memories.

    Data memory regions (bytes, see :data:`DATA_REGIONS`): ``static_data`` (the program's
    .data/.bss), ``weights``, ``variables``, ``receive_buffers``, ``recordings``,
    ``stack_heap``. ``code`` lives in the instruction memory.

    Attributes:
        pe: global PE index.
        layer: layer number.
        unit_start, unit_stop: the PE's units.
        weight_format: the weight format.
        items: ``(region, item, bytes)`` for every buffer (e.g. ``("weights", "weight_hh",
            12345)``); the regions are the sums of their items.
        code: bytes of instruction memory used by the program.
        data_capacity: bytes of data memory (96 KiB).
        code_capacity: bytes of instruction memory (32 KiB).
    """

    pe: int
    layer: int
    unit_start: int
    unit_stop: int
    weight_format: str
    items: tuple[tuple[str, str, int], ...]
    code: int
    data_capacity: int
    code_capacity: int

    def region(self, name: str) -> int:
        """Bytes of one data-memory region."""
        if name not in DATA_REGIONS:
            raise KeyError(f"unknown region {name!r}; regions: {', '.join(DATA_REGIONS)}")
        return sum(b for r, _, b in self.items if r == name)

    def regions(self) -> dict[str, int]:
        """Bytes per data-memory region, in address order."""
        return {name: self.region(name) for name in DATA_REGIONS}

    @property
    def weights(self) -> int:
        return self.region("weights")

    @property
    def variables(self) -> int:
        return self.region("variables")

    @property
    def receive_buffers(self) -> int:
        return self.region("receive_buffers")

    @property
    def recordings(self) -> int:
        return self.region("recordings")

    @property
    def static_data(self) -> int:
        return self.region("static_data")

    @property
    def stack_heap(self) -> int:
        return self.region("stack_heap")

    @property
    def total(self) -> int:
        """Bytes of data memory used (all regions)."""
        return sum(b for _, _, b in self.items)

    @property
    def free(self) -> int:
        """Bytes of data memory left (negative when the PE overflows)."""
        return self.data_capacity - self.total

    @property
    def utilisation(self) -> float:
        """Fraction of the data memory used."""
        return self.total / self.data_capacity

    @property
    def code_free(self) -> int:
        return self.code_capacity - self.code

    @property
    def fits(self) -> bool:
        return self.free >= 0 and self.code_free >= 0

    def address_map(self) -> dict[str, tuple[int, int]]:
        """``region -> (start, stop)`` byte offsets in data memory.

        Regions are laid out from address 0 in :data:`DATA_REGIONS` order, except heap +
        stack, which sits at the top of the memory (the stack grows down from the end).
        """
        out: dict[str, tuple[int, int]] = {}
        address = 0
        for name in DATA_REGIONS:
            size = self.region(name)
            if name == "stack_heap":
                out[name] = (self.data_capacity - size, self.data_capacity)
            else:
                out[name] = (address, address + size)
                address += size
        return out

    def overflow_region(self) -> str | None:
        """The first region (in address order) that runs into heap + stack, if any."""
        top = self.data_capacity - self.stack_heap
        for name, (_, stop) in self.address_map().items():
            if name != "stack_heap" and stop > top:
                return name
        return None

    def largest_region(self) -> str:
        regions = self.regions()
        return max(regions, key=regions.get)


@dataclass(frozen=True)
class LayerMemoryModel:
    """Bytes a PE of one layer needs, as a function of its units ``[a, b)``.

    The data memory of a slice is additive: ``fixed_bytes + sum(unit_bytes[a:b])`` (tested),
    which lets the partition search slices quickly; :meth:`items` gives the exact per-buffer
    account used by :func:`layout_memory`.

    Attributes:
        layer: layer number.
        hidden_size, input_size: ``H`` and ``I``.
        weight_format: ``"csr"``, ``"event"`` or ``"dense"``.
        record_steps: steps of ``y`` (and timer readings) recorded in SRAM.
        keeps_trace: the PE keeps a low-pass trace of ``y`` (read out by the host).
        spec: the chip figures.
        nnz_ih_prefix, nnz_hh_prefix: ``(H + 1,)`` cumulative stored weights of units
            (their three gate rows) in ``weight_ih`` / ``weight_hh``.
    """

    layer: int
    hidden_size: int
    input_size: int
    weight_format: str
    record_steps: int
    keeps_trace: bool
    spec: ChipSpec
    nnz_ih_prefix: np.ndarray
    nnz_hh_prefix: np.ndarray

    @property
    def variable_words_per_unit(self) -> int:
        return sum(VARIABLE_WORDS_PER_UNIT.values()) + (1 if self.keeps_trace else 0)

    def nnz(self, a: int, b: int) -> tuple[int, int]:
        """Stored weights of units ``[a, b)`` in ``(weight_ih, weight_hh)``."""
        return (
            int(self.nnz_ih_prefix[b] - self.nnz_ih_prefix[a]),
            int(self.nnz_hh_prefix[b] - self.nnz_hh_prefix[a]),
        )

    def items(self, a: int, b: int) -> tuple[tuple[str, str, int], ...]:
        """``(region, item, bytes)`` of every buffer of a PE holding units ``[a, b)``."""
        wb = self.spec.word_bytes
        n = b - a
        rows = 3 * n
        nnz_ih, nnz_hh = self.nnz(a, b)
        fmt = self.weight_format
        out = [
            ("static_data", "program static data", self.spec.egru_static_data_bytes),
            (
                "weights",
                "weight_ih",
                wb * word_count(fmt, rows, self.input_size, nnz_ih),
            ),
            (
                "weights",
                "weight_hh",
                wb * word_count(fmt, rows, self.hidden_size, nnz_hh),
            ),
        ]
        for name, words in VARIABLE_WORDS_PER_UNIT.items():
            out.append(("variables", name, wb * words * n))
        if self.keeps_trace:
            out.append(("variables", "trace", wb * n))
        out.append(("receive_buffers", "y_prev of the layer", wb * self.hidden_size))
        out.append(("receive_buffers", "input vector", wb * self.input_size))
        out.append(("recordings", "recorded y", wb * n * self.record_steps))
        out.append(
            (
                "recordings",
                "recorded timer",
                wb * self.spec.profile_words_per_step * self.record_steps,
            )
        )
        out.append(("stack_heap", "heap + stack", self.spec.stack_heap_bytes))
        return tuple(out)

    def data_bytes(self, a: int, b: int) -> int:
        """Data memory used by a PE holding units ``[a, b)``."""
        return sum(size for _, _, size in self.items(a, b))

    def fixed_bytes(self) -> int:
        """Data memory a PE of this layer uses whatever its units (``data_bytes(a, a)``)."""
        return self.data_bytes(0, 0)

    def unit_bytes(self) -> np.ndarray:
        """``(H,)`` data memory each unit adds to its PE (int64)."""
        wb = self.spec.word_bytes
        nnz = np.diff(self.nnz_ih_prefix) + np.diff(self.nnz_hh_prefix)
        fmt = self.weight_format
        if fmt == "csr":
            weight_words = 2 * nnz + 6  # 3 row starts in each of the two matrices
        elif fmt == "event":
            weight_words = 2 * nnz
        else:
            weight_words = np.full(self.hidden_size, 3 * (self.input_size + self.hidden_size))
        words = weight_words + self.variable_words_per_unit + self.record_steps
        return (wb * words).astype(np.int64)

    def layout(self, pe: int, a: int, b: int) -> MemoryLayout:
        """The :class:`MemoryLayout` of PE ``pe`` holding units ``[a, b)``."""
        return MemoryLayout(
            pe=pe,
            layer=self.layer,
            unit_start=a,
            unit_stop=b,
            weight_format=self.weight_format,
            items=self.items(a, b),
            code=self.spec.egru_code_bytes,
            data_capacity=self.spec.data_memory_bytes,
            code_capacity=self.spec.instruction_memory_bytes,
        )


def _unit_nnz(weight, hidden: int) -> np.ndarray:
    """``(H,)`` stored weights of each unit's three gate rows."""
    if sp.issparse(weight):
        row_nnz = np.diff(sp.csr_matrix(weight).indptr)
    else:
        row_nnz = np.count_nonzero(np.asarray(weight), axis=1)
    return row_nnz.reshape(3, hidden).sum(axis=0).astype(np.int64)


def _check_options(weight_format: str, record_steps: int, input_source: str) -> None:
    if weight_format not in WEIGHT_FORMATS:
        raise MappingError(
            f"unknown weight format {weight_format!r}; choose one of {', '.join(WEIGHT_FORMATS)}"
        )
    if not isinstance(record_steps, int | np.integer) or record_steps < 0:
        raise MappingError(f"record_steps must be an integer >= 0, got {record_steps!r}")
    if input_source not in INPUT_SOURCES:
        raise MappingError(
            f"unknown input_source {input_source!r}; choose one of {', '.join(INPUT_SOURCES)}"
        )


def layer_memory_models(
    artifact: DeploymentArtifact,
    *,
    spec: ChipSpec,
    weight_format: str,
    record_steps: int = 0,
) -> list[LayerMemoryModel]:
    """One :class:`LayerMemoryModel` per layer of ``artifact``."""
    _check_options(weight_format, record_steps, "dram")
    models = []
    last = artifact.num_layers - 1
    for i, layer in enumerate(artifact.layers):
        hidden = layer.hidden_size
        models.append(
            LayerMemoryModel(
                layer=i,
                hidden_size=hidden,
                input_size=layer.input_size,
                weight_format=weight_format,
                record_steps=int(record_steps),
                keeps_trace=artifact.readout_source == "trace" and i == last,
                spec=spec,
                nnz_ih_prefix=np.concatenate([[0], np.cumsum(_unit_nnz(layer.weight_ih, hidden))]),
                nnz_hh_prefix=np.concatenate([[0], np.cumsum(_unit_nnz(layer.weight_hh, hidden))]),
            )
        )
    return models


# ========================================================================== partition


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
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    bounds = []
    start, n = 0, len(unit_bytes)
    while start < n:
        stop = int(np.searchsorted(prefix, prefix[start] + budget, side="right")) - 1
        stop = max(stop, start + 1)  # every slice holds at least one unit
        bounds.append((start, min(stop, n)))
        start = min(stop, n)
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
    for i in range(1, num_slices):
        target = total * i / num_slices
        j = int(np.searchsorted(prefix, target))
        if j > 0 and abs(prefix[j - 1] - target) <= abs(prefix[min(j, n)] - target):
            j -= 1
        j = min(max(j, cuts[-1] + 1), n - (num_slices - i))
        cuts.append(j)
    cuts.append(n)
    quantile = list(zip(cuts[:-1], cuts[1:]))
    # Min-max split: smallest budget whose greedy packing needs at most k slices.
    lo, hi = int(unit_bytes.max()), total
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_greedy_split(unit_bytes, mid)) <= num_slices:
            hi = mid
        else:
            lo = mid + 1
    greedy = _greedy_split(unit_bytes, lo)
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


def _unit_too_big_error(
    model: LayerMemoryModel, unit: int, unit_bytes: np.ndarray, capacity: int
) -> MappingError:
    need = model.data_bytes(unit, unit + 1)
    over = need - capacity
    tips = ["prune more"]
    nnz_ih, nnz_hh = model.nnz(unit, unit + 1)
    weights = sum(size for region, _, size in model.items(unit, unit + 1) if region == "weights")
    for fmt in WEIGHT_FORMATS:
        other = model.spec.word_bytes * (
            word_count(fmt, 3, model.input_size, nnz_ih)
            + word_count(fmt, 3, model.hidden_size, nnz_hh)
        )
        if fmt != model.weight_format and other <= weights - over:
            tips.append(f"weight format {fmt!r}")
    if model.record_steps:
        per_step = model.spec.word_bytes * (1 + model.spec.profile_words_per_step)
        steps = model.record_steps - -(-over // per_step)
        if steps >= 0:
            tips.append(f"record fewer steps (record_steps <= {steps})")
    tips.append("shrink the layer")
    return MappingError(
        f"layer {model.layer}: even a PE holding only unit {unit} needs {need:,} bytes of data "
        f"memory but a PE has {capacity:,} (unit {unit_bytes[unit]:,} bytes, receive buffers "
        f"and fixed parts {model.fixed_bytes():,} bytes; format {model.weight_format!r}, "
        f"{model.record_steps} recorded steps). To fit: {'; '.join(tips)}"
    )


def partition_network(
    artifact: DeploymentArtifact,
    *,
    spec: ChipSpec | None = None,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    pes_per_layer: int | Sequence[int] | None = None,
    record_steps: int = 0,
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

    Without ``max_units_per_pe`` / ``pes_per_layer``: each layer gets the fewest PEs such
    that every PE's data memory fits (greedy packing of the per-unit bytes is optimal for
    contiguous slices), then the slices are balanced by bytes at that PE count.

    Returns:
        :class:`PartitionResult`.

    Raises:
        MappingError: a single unit does not fit a PE, or the options are inconsistent.
    """
    spec = spec if spec is not None else ChipSpec()
    if max_units_per_pe is not None and pes_per_layer is not None:
        raise MappingError("give either max_units_per_pe or pes_per_layer, not both")
    if max_units_per_pe is not None and (
        not isinstance(max_units_per_pe, int | np.integer) or max_units_per_pe < 1
    ):
        raise MappingError(f"max_units_per_pe must be an integer >= 1, got {max_units_per_pe!r}")
    models = layer_memory_models(
        artifact, spec=spec, weight_format=weight_format, record_steps=record_steps
    )
    if pes_per_layer is not None:
        counts = (
            [int(pes_per_layer)] * len(models)
            if isinstance(pes_per_layer, int | np.integer)
            else [int(c) for c in pes_per_layer]
        )
        if len(counts) != len(models):
            raise MappingError(
                f"pes_per_layer has {len(counts)} entries but the network has {len(models)} layers"
            )
    capacity = spec.data_memory_bytes
    layers = []
    for model in models:
        hidden = model.hidden_size
        unit_bytes = model.unit_bytes()
        budget = capacity - model.fixed_bytes()
        if max_units_per_pe is not None:
            m = int(max_units_per_pe)
            bounds = [(a, min(a + m, hidden)) for a in range(0, hidden, m)]
            mode = "max_units_per_pe"
        elif pes_per_layer is not None:
            k = counts[model.layer]
            if not 1 <= k <= hidden:
                raise MappingError(
                    f"layer {model.layer} has {hidden} units; pes_per_layer must be 1..{hidden}, "
                    f"got {k}"
                )
            bounds = _balanced_split(unit_bytes, k)
            mode = "pes_per_layer"
        else:
            worst = int(np.argmax(unit_bytes))
            if unit_bytes[worst] > budget:
                raise _unit_too_big_error(model, worst, unit_bytes, capacity)
            k = len(_greedy_split(unit_bytes, budget))
            bounds = _balanced_split(unit_bytes, k)
            if _max_cost(unit_bytes, bounds) > budget:  # pragma: no cover - defensive
                bounds = _greedy_split(unit_bytes, budget)
            mode = "auto"
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


@dataclass(frozen=True)
class Placement:
    """Result of :func:`place_slices`: every slice on a PE.

    Attributes:
        machine: the machine.
        layers: per layer, its :class:`PESlice` objects in unit order.
        path: name of the PE ordering used (``"rows"`` or ``"columns"`` serpentine).
        key_shift: key offsets are ``pe << key_shift`` (room for the largest slice).
        traffic_hops: NoC hops (+ weighted chip hops) of one step in which every unit
            fires, the quantity the placement minimises.
    """

    machine: Machine
    layers: tuple[tuple[PESlice, ...], ...]
    path: str
    key_shift: int
    traffic_hops: int

    @property
    def slices(self) -> list[PESlice]:
        return [s for layer in self.layers for s in layer]

    @property
    def num_pes_used(self) -> int:
        return sum(len(layer) for layer in self.layers)

    def rows(self) -> list[dict[str, Any]]:
        """The placement table: one dict per slice."""
        return [
            {
                "layer": s.layer,
                "index_in_layer": s.index_in_layer,
                "pe": s.pe,
                "chip": s.chip,
                "pe_id": s.pe_id,
                "qx": s.qpe[0],
                "qy": s.qpe[1],
                "pe_in_qpe": s.pe_in_qpe,
                "unit_start": s.unit_start,
                "unit_stop": s.unit_stop,
                "units": s.num_units,
                "key_offset": s.key_offset,
            }
            for s in self.slices
        ]

    def to_csv(self) -> str:
        """The placement table as CSV text."""
        buf = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def to_json(self) -> str:
        """The placement table as JSON text (with the machine and path)."""
        return json.dumps(
            {
                "chips": self.machine.num_chips,
                "path": self.path,
                "key_shift": self.key_shift,
                "slices": self.rows(),
            },
            indent=2,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as ``.csv`` or ``.json`` (by the file's suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".json"):
            raise MappingError(
                f"cannot save a placement as {path.name!r}: use a .csv or .json file name"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_csv() if suffix == ".csv" else self.to_json())
        return path


def _serpentine(spec: ChipSpec, by: str) -> list[tuple[int, int]]:
    """QPEs of a chip along a serpentine path over rows (``by="rows"``) or columns."""
    present = set(spec.qpe_coordinates)
    (x0, x1), (y0, y1) = spec.qpe_x_range, spec.qpe_y_range
    path = []
    outer, inner = (range(y0, y1 + 1), range(x0, x1 + 1))
    if by == "columns":
        outer, inner = inner, outer
    for i, o in enumerate(outer):
        seq = inner if i % 2 == 0 else reversed(inner)
        for v in seq:
            qpe = (v, o) if by == "rows" else (o, v)
            if qpe in present:
                path.append(qpe)
    return path


def _chip_order(machine: Machine) -> list[int]:
    """Chips along a serpentine over the chip grid (consecutive chips are neighbours)."""
    width = machine.chip_grid[0]
    order = []
    for row in range(machine.chip_grid[1]):
        cols = range(width) if row % 2 == 0 else range(width - 1, -1, -1)
        order.extend(row * width + c for c in cols if row * width + c < machine.num_chips)
    return order


def _pe_order(machine: Machine, by: str) -> list[int]:
    spec = machine.spec
    order = []
    for chip in _chip_order(machine):
        for qpe in _serpentine(spec, by):
            for p in range(spec.pes_per_qpe):
                order.append(machine.index_of_qpe(chip, qpe, p))
    return order


def _traffic_cost(machine: Machine, layers: Sequence[Sequence[PESlice]]) -> int:
    """NoC hops (+ weighted chip hops) when every unit fires once: the placement objective.

    Every unit of a slice sends one packet per destination QPE (own layer and next layer),
    which travels the XY distance to it (and the chip hops to its chip).
    """
    from spinnaker2_backend.machine import triangular_mesh_hops

    total = 0
    for li, layer in enumerate(layers):
        dests = list(layer) + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        dest_qpes = sorted({(d.chip, d.qpe) for d in dests})
        dq = np.array([q for _, q in dest_qpes])
        dc = np.array([machine.chip_position(c) for c, _ in dest_qpes])
        src_q = np.array([s.qpe for s in layer])
        src_c = np.array([machine.chip_position(s.chip) for s in layer])
        units = np.array([s.num_units for s in layer])
        noc = np.abs(src_q[:, None, :] - dq[None, :, :]).sum(axis=2)
        delta = dc[None, :, :] - src_c[:, None, :]
        chip_hops = triangular_mesh_hops(delta[..., 0], delta[..., 1])
        per_source = (noc + CHIP_HOP_PLACEMENT_WEIGHT * chip_hops).sum(axis=1)
        total += int((units * per_source).sum())
    return total


def place_slices(partition: PartitionResult, machine: Machine) -> Placement:
    """Put the slices on PEs, layers contiguous, minimising the NoC hops of the traffic.

    The slices (layer 0 first, in unit order) follow a serpentine path over the QPE grid,
    4 PEs per QPE, chip after chip. Two paths are tried (row-wise and column-wise
    serpentine); the one with fewer hops (:func:`_traffic_cost`) is kept.

    Raises:
        MappingError: more slices than PEs on the machine.
    """
    needed = partition.num_slices
    if needed > machine.num_pes:
        per_layer = "/".join(str(lp.num_slices) for lp in partition.layers)
        sizes = "/".join(str(lp.hidden_size) for lp in partition.layers)
        chips_needed = -(-needed // machine.pes_per_chip)
        raise MappingError(
            f"the network needs {needed} PEs (layers of {sizes} units -> {per_layer} PEs, "
            f"format {partition.weight_format!r}, {partition.record_steps} recorded steps) but "
            f"the machine has {machine.num_pes} PEs on {machine.num_chips} chip(s): use "
            f"chips={chips_needed} (--chips {chips_needed}), prune more, use another weight "
            f"format, or record fewer steps"
        )
    largest = max(max(lp.units) for lp in partition.layers)
    key_shift = max(1, (largest - 1).bit_length())
    if (machine.num_pes << key_shift) > 2**machine.spec.packet_key_bits:
        raise MappingError(
            f"routing keys do not fit {machine.spec.packet_key_bits} bits: "
            f"{machine.num_pes} PEs x 2^{key_shift} keys; use smaller slices"
        )
    best: Placement | None = None
    for path in ("rows", "columns"):
        order = _pe_order(machine, path)
        k = 0
        layers = []
        for lp in partition.layers:
            slices = []
            for i, (a, b) in enumerate(lp.bounds):
                where = machine.pe(order[k])
                k += 1
                slices.append(
                    PESlice(
                        layer=lp.layer,
                        index_in_layer=i,
                        pe=where.index,
                        chip=where.chip,
                        pe_id=where.pe_id,
                        qpe=where.qpe,
                        unit_start=a,
                        unit_stop=b,
                        key_offset=where.index << key_shift,
                    )
                )
            layers.append(tuple(slices))
        cost = _traffic_cost(machine, layers)
        if best is None or cost < best.traffic_hops:
            best = Placement(
                machine=machine,
                layers=tuple(layers),
                path=path,
                key_shift=key_shift,
                traffic_hops=cost,
            )
    assert best is not None
    return best


# ============================================================================== route


@dataclass(frozen=True)
class MulticastTarget:
    """One multicast packet destination: a QPE and the PEs in it (4-bit mask).

    Attributes:
        chip: destination chip.
        qpe: destination ``(qx, qy)``.
        pe_mask: bit ``p`` set when PE ``p`` of the QPE receives.
        pes: the receiving PEs (global indices).
        noc_hops: XY hops from the source QPE.
        chip_hops: chip-to-chip hops (0 on the same chip).
    """

    chip: int
    qpe: tuple[int, int]
    pe_mask: int
    pes: tuple[int, ...]
    noc_hops: int
    chip_hops: int

    @property
    def chip_to_chip(self) -> bool:
        return self.chip_hops > 0


@dataclass(frozen=True)
class SliceRoute:
    """Where one PE's events go.

    Attributes:
        source: the sending slice.
        key: routing key of its first unit (``source.key_offset``).
        key_mask: mask that matches all its units' keys (``key & key_mask == key``).
        targets: one :class:`MulticastTarget` per destination QPE.
    """

    source: PESlice
    key: int
    key_mask: int
    targets: tuple[MulticastTarget, ...]

    @property
    def destinations(self) -> tuple[int, ...]:
        """All receiving PEs (global indices), sorted."""
        return tuple(sorted(p for t in self.targets for p in t.pes))

    @property
    def packets_per_event(self) -> int:
        """Multicast packets one event of one unit costs (one per destination QPE)."""
        return len(self.targets)

    @property
    def noc_hops_per_event(self) -> int:
        return sum(t.noc_hops for t in self.targets)

    @property
    def chip_hops_per_event(self) -> int:
        return sum(t.chip_hops for t in self.targets)

    @property
    def chip_to_chip(self) -> bool:
        return any(t.chip_to_chip for t in self.targets)


@dataclass(frozen=True)
class RoutingResult:
    """Result of :func:`route_slices`.

    Attributes:
        routes: per source PE (global index), its :class:`SliceRoute`.
        router_entries: per chip, multicast entries used.
        router_capacity: entries per chip (16,384).
        key_shift: ``key_offset = pe << key_shift``.

    Router entries (model [C]): a chip holds one entry per (source PE, destination QPE on
    that chip) (key/mask -> QPE and PE mask), plus on a source chip one entry per (source
    PE, other destination chip) for the outgoing link. Chips a packet only passes through
    use default routing (no entry), as on SpiNNaker1.
    """

    routes: dict[int, SliceRoute]
    router_entries: dict[int, int]
    router_capacity: int
    key_shift: int

    def __getitem__(self, pe: int) -> SliceRoute:
        return self.routes[pe]

    def __iter__(self):
        return iter(self.routes.values())

    def __len__(self) -> int:
        return len(self.routes)

    def sources_of(self, pe: int) -> list[PESlice]:
        """Slices whose events PE ``pe`` receives (itself excluded)."""
        return [r.source for r in self.routes.values() if pe in r.destinations]

    @property
    def max_router_entries(self) -> int:
        return max(self.router_entries.values()) if self.router_entries else 0

    @property
    def max_noc_hops(self) -> int:
        return max((t.noc_hops for r in self.routes.values() for t in r.targets), default=0)

    def table(self) -> str:
        lines = ["routing: source PE -> destination QPEs (mask), hops"]
        for pe, r in self.routes.items():
            dests = ", ".join(
                f"{t.chip}:({t.qpe[0]},{t.qpe[1]})/{t.pe_mask:04b}+{t.noc_hops}"
                + (f"+{t.chip_hops}c" if t.chip_hops else "")
                for t in r.targets
            )
            lines.append(f"  PE {pe} key {r.key:#010x}: {dests}")
        entries = ", ".join(f"chip {c}: {n}" for c, n in sorted(self.router_entries.items()))
        lines.append(f"router entries ({self.router_capacity} per chip): {entries}")
        return "\n".join(lines)


def route_slices(placement: Placement) -> RoutingResult:
    """Build the multicast routes of every slice and count router entries per chip.

    A PE's events go to every other PE of its layer (recurrence: each PE assembles the full
    ``y_{t-1}``; its own units it keeps locally) and to every PE of the next layer. The last
    layer's events go to its own layer only (the host reads them out).

    Raises:
        MappingError: a chip needs more router entries than it has.
    """
    machine = placement.machine
    spec = machine.spec
    mask_all = (2**spec.packet_key_bits - 1) ^ ((1 << placement.key_shift) - 1)
    routes: dict[int, SliceRoute] = {}
    entries = dict.fromkeys(range(machine.num_chips), 0)
    layers = placement.layers
    for li, layer in enumerate(layers):
        receivers = list(layer) + (list(layers[li + 1]) if li + 1 < len(layers) else [])
        for s in layer:
            groups: dict[tuple[int, tuple[int, int]], list[PESlice]] = {}
            for d in receivers:
                if d.pe != s.pe:
                    groups.setdefault((d.chip, d.qpe), []).append(d)
            targets = []
            for (chip, qpe), ds in sorted(groups.items()):
                mask = 0
                for d in ds:
                    mask |= 1 << d.pe_in_qpe
                targets.append(
                    MulticastTarget(
                        chip=chip,
                        qpe=qpe,
                        pe_mask=mask,
                        pes=tuple(sorted(d.pe for d in ds)),
                        noc_hops=machine.qpe_hops(s.qpe, qpe),
                        chip_hops=machine.chip_hops(s.chip, chip),
                    )
                )
                entries[chip] += 1
            entries[s.chip] += len({t.chip for t in targets} - {s.chip})
            routes[s.pe] = SliceRoute(
                source=s, key=s.key_offset, key_mask=mask_all, targets=tuple(targets)
            )
    result = RoutingResult(
        routes=routes,
        router_entries=entries,
        router_capacity=spec.router_entries_per_chip,
        key_shift=placement.key_shift,
    )
    for chip, n in entries.items():
        if n > spec.router_entries_per_chip:
            raise MappingError(
                f"chip {chip} needs {n:,} router entries but has {spec.router_entries_per_chip:,}: "
                f"use fewer, larger slices (a larger max_units_per_pe) or more chips"
            )
    return result


# ============================================================================= memory


def layout_memory(
    models: Sequence[LayerMemoryModel], placement: Placement
) -> dict[int, MemoryLayout]:
    """Per PE (global index, in placement order), its :class:`MemoryLayout`."""
    out = {}
    for s in placement.slices:
        out[s.pe] = models[s.layer].layout(s.pe, s.unit_start, s.unit_stop)
    return out


# ============================================================================== check


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


@dataclass
class Mapping:
    """A network mapped onto a machine (result of :func:`map_network`).

    Attributes:
        artifact: the network.
        machine: the machine.
        spec: the chip figures (``machine.spec``).
        weight_format: how PEs store weights.
        record_steps: steps recorded in SRAM (sized in the memory layout).
        input_source: ``"dram"`` or ``"host"``.
        partition, placement, routes, memory, fit: results of each step.
        layers: one :class:`LayerPlacement` per layer.
    """

    artifact: DeploymentArtifact
    machine: Machine
    spec: ChipSpec
    weight_format: str
    record_steps: int
    input_source: str
    partition: PartitionResult
    placement: Placement
    routes: RoutingResult
    memory: dict[int, MemoryLayout]
    fit: FitCheck
    layers: list[LayerPlacement]
    memory_models: list[LayerMemoryModel]
    max_units_per_pe: int | None = None
    _weights_cache: dict[tuple[int, int], PEWeights] = field(
        default_factory=dict, repr=False, compare=False
    )

    # ----------------------------------------------------------------- lookups
    @property
    def slices(self) -> list[PESlice]:
        """All slices, layer by layer."""
        return self.placement.slices

    @property
    def num_pes_used(self) -> int:
        return self.placement.num_pes_used

    def slice_on_pe(self, pe: int) -> PESlice:
        """The slice placed on global PE ``pe``."""
        for s in self.slices:
            if s.pe == pe:
                return s
        raise KeyError(f"no slice is placed on PE {pe}")

    def _resolve(self, layer: int, slice_: PESlice | int) -> PESlice:
        if not 0 <= layer < len(self.layers):
            raise IndexError(f"layer {layer} out of range 0..{len(self.layers) - 1}")
        if isinstance(slice_, PESlice):
            if slice_.layer != layer:
                raise ValueError(f"slice belongs to layer {slice_.layer}, not layer {layer}")
            return slice_
        return self.layers[layer].slices[slice_]

    def pe_weights(self, layer: int, slice_: PESlice | int) -> PEWeights:
        """The encoded weights one PE stores (cached).

        Args:
            layer: layer number.
            slice_: the :class:`PESlice` or its index in the layer.
        """
        s = self._resolve(layer, slice_)
        key = (layer, s.index_in_layer)
        if key not in self._weights_cache:
            params = self.artifact.layers[layer]
            self._weights_cache[key] = encode_pe_weights(
                params.weight_ih,
                params.weight_hh,
                unit_start=s.unit_start,
                unit_stop=s.unit_stop,
                format_name=self.weight_format,
            )
        return self._weights_cache[key]

    def pe_rows(self, layer: int, slice_: PESlice | int) -> np.ndarray:
        """Global rows of the layer's ``(3H, .)`` matrices the PE holds, in local order."""
        s = self._resolve(layer, slice_)
        return slice_rows(self.layers[layer].hidden_size, s.unit_start, s.unit_stop)

    @property
    def fits(self) -> bool:
        return self.fit.ok

    @property
    def dram_table_bytes(self) -> int:
        """Bytes of DRAM holding layer-0 inputs computed ahead, per chip that streams them.

        With ``input_source="dram"`` and an embedding input, the embedding vectors of the
        whole vocabulary (``V x E`` words). With feature inputs the vectors depend on the
        run (``input_size`` words per step, see :attr:`dram_bytes_per_step`).
        """
        if self.input_source != "dram" or self.artifact.input_kind != "embedding":
            return 0
        v, e = self.artifact.embedding.shape
        return v * e * self.spec.word_bytes

    @property
    def dram_bytes_per_step(self) -> int:
        """Bytes streamed from DRAM per step (one input vector) when ``input_source="dram"``."""
        return self.artifact.input_size * self.spec.word_bytes if self.input_source == "dram" else 0

    # ------------------------------------------------------------------- output
    def report(self) -> MappingReport:
        """The :class:`~spinnaker2_backend.mapping_report.MappingReport` of this mapping."""
        from spinnaker2_backend.mapping_report import build_mapping_report

        return build_mapping_report(self)

    def save_placement(self, path: str | os.PathLike) -> Path:
        """Write the placement table as ``.csv`` or ``.json``."""
        return self.placement.save(path)

    # ---------------------------------------------------------------- running
    def run(self, inputs, **kwargs):
        """Run the mapped network on the simulated chip.

        Delegates to :func:`spinnaker2_backend.simulator.run_mapping` (see there for the
        arguments and the result).
        """
        from spinnaker2_backend import simulator

        return simulator.run_mapping(self, inputs, **kwargs)

    def simulator(self, **kwargs):
        """A :class:`spinnaker2_backend.simulator.NetworkSimulator` of this mapping."""
        from spinnaker2_backend import simulator

        return simulator.NetworkSimulator(self, **kwargs)

    def layer_simulator(self, layer: int, **kwargs):
        """A :class:`spinnaker2_backend.simulator.LayerSimulator` of one mapped layer."""
        from spinnaker2_backend import simulator

        return simulator.LayerSimulator(self, layer, **kwargs)


def _resolve_artifact(artifact: DeploymentArtifact | str | os.PathLike) -> DeploymentArtifact:
    if isinstance(artifact, DeploymentArtifact):
        return artifact
    if isinstance(artifact, str | os.PathLike):
        return DeploymentArtifact.load(artifact)
    raise TypeError(
        f"map_network needs a DeploymentArtifact or a path to one, got {type(artifact).__name__}"
    )


def map_network(
    artifact: DeploymentArtifact | str | os.PathLike,
    *,
    machine: Machine | None = None,
    spec: ChipSpec | None = None,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    pes_per_layer: int | Sequence[int] | None = None,
    record_steps: int = 0,
    input_source: str = "dram",
    check: bool = True,
) -> Mapping:
    """Map an EGRU network onto a SpiNNaker2 machine (without running it).

    partition -> place -> route -> lay out memory -> check fit.

    Args:
        artifact: a :class:`~snn_egru.artifact.DeploymentArtifact` or the path of one.
        machine: the machine (default: one chip with ``spec``).
        spec: chip figures (default: ``machine.spec`` or :class:`ChipSpec`); a spec that
            differs from ``machine.spec`` replaces it (same number of chips).
        weight_format: ``"csr"`` (published design), ``"event"`` (per-source-unit rows, only
            the weights of units that fired are touched) or ``"dense"``.
        max_units_per_pe: at most this many units per PE (py-spinnaker2's
            ``max_atoms_per_core``); default: automatic (fewest PEs that fit).
        pes_per_layer: PEs per layer instead (e.g. ``50`` or ``(50, 50, 50)``), units balanced
            by bytes.
        record_steps: steps of ``y`` recorded in PE SRAM during a run (they must fit).
        input_source: ``"dram"`` (layer-0 inputs computed ahead, streamed from DRAM) or
            ``"host"``.
        check: raise :class:`MappingError` when a PE does not fit (``False``: return the
            mapping with ``mapping.fit`` listing the problems, for reports).

    Returns:
        :class:`Mapping`.

    Raises:
        MappingError: the network does not fit (message says where and what to change).
        snn_egru.artifact.ArtifactError: the artifact file is missing or malformed.
    """
    artifact = _resolve_artifact(artifact)
    if machine is None:
        machine = Machine(spec=spec)
    elif spec is not None and spec != machine.spec:
        machine = Machine(chips=machine.num_chips, spec=spec, chip_grid=machine.chip_grid)
    spec = machine.spec
    _check_options(weight_format, record_steps, input_source)
    partition = partition_network(
        artifact,
        spec=spec,
        weight_format=weight_format,
        max_units_per_pe=max_units_per_pe,
        pes_per_layer=pes_per_layer,
        record_steps=record_steps,
    )
    models = layer_memory_models(
        artifact, spec=spec, weight_format=weight_format, record_steps=record_steps
    )
    placement = place_slices(partition, machine)
    routes = route_slices(placement)
    memory = layout_memory(models, placement)
    fit = check_fit(memory, placement, models, raise_error=check)
    if input_source == "dram" and artifact.input_kind == "embedding":
        table = int(np.prod(artifact.embedding.shape)) * spec.word_bytes
        if check and table > spec.dram_bytes:
            raise MappingError(
                f"the embedding table needs {table:,} bytes of DRAM but a chip has "
                f"{spec.dram_bytes:,}: use input_source='host'"
            )
    layers = [
        LayerPlacement(
            layer=i,
            hidden_size=artifact.layers[i].hidden_size,
            input_size=artifact.layers[i].input_size,
            slices=list(placement.layers[i]),
        )
        for i in range(artifact.num_layers)
    ]
    mapping = Mapping(
        artifact=artifact,
        machine=machine,
        spec=spec,
        weight_format=weight_format,
        record_steps=int(record_steps),
        input_source=input_source,
        partition=partition,
        placement=placement,
        routes=routes,
        memory=memory,
        fit=fit,
        layers=layers,
        memory_models=models,
        max_units_per_pe=max_units_per_pe,
    )
    logger.info(
        "mapped %s units onto %d PEs (%s), fullest PE %d at %.1f %%",
        "/".join(map(str, artifact.layer_sizes)),
        placement.num_pes_used,
        weight_format,
        fit.fullest_pe,
        100 * fit.fullest_utilisation,
    )
    return mapping
