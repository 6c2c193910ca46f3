"""What a mapped layer's PEs do the same in every step, computed once from the mapping.

Used when a :class:`~spinnaker2_backend.layer_simulator.LayerSimulator` is built:

- :func:`static_operation_counts`: the per-PE operation counts that do not depend on the
  events of a step (units updated, weights walked by a dense or CSR product, words
  cleared, the DRAM read of layer 0's input);
- :func:`layer_routes`: per PE, the packets, off-chip packets and hops one event costs,
  the farthest target, and how many copies of an event each PE of this layer receives
  from this layer's PEs and from the previous layer's (a :class:`ReceiveTable`: one
  shared row plus sparse corrections, never a ``P x P`` matrix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinnaker2_backend.mapping import Mapping
from spinnaker2_backend.mapping.base import PESlice
from spinnaker2_backend.timing import OP_INDEX, OPS

__all__ = ["LayerRoutes", "ReceiveTable", "layer_routes", "static_operation_counts"]

_I = OP_INDEX


def static_operation_counts(
    pe_weights: Sequence[Any],
    units: np.ndarray,
    *,
    weight_format: str,
    word_bytes: int,
    hidden_size: int,
    input_size: int,
    keeps_trace: bool,
    input_by_packets: bool,
    uses_list: bool,
    dram_input: bool,
    int8: Any = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """``(len(OPS), P)`` counts of a step that no event changes, and for ``csr`` / ``dense``
    the weights each PE walks in its input and recurrent product (``None`` otherwise).

    ``int8`` (an :class:`~spinnaker2_backend.int8_layer.Int8Products`) adds the counts of
    an int8 format.
    """
    fmt = weight_format
    static = np.zeros((len(OPS), len(units)))
    static[_I["steps"]] = 1.0
    static[_I["units"]] = units
    if keeps_trace:
        static[_I["trace_units"]] = units
    if not uses_list:  # dense input buffers are zeroed where no event arrived
        static[_I["words_cleared"]] = hidden_size + (input_size if input_by_packets else 0)
    walked = None
    if fmt in ("csr", "dense"):
        static[_I["input_rows"]] = 3 * units
        static[_I["recurrent_rows"]] = 3 * units
        w_in = np.array([pw.weight_ih.words for pw in pe_weights], dtype=np.float64)
        w_rec = np.array([pw.weight_hh.words for pw in pe_weights], dtype=np.float64)
        static[_I["weight_bytes_read"]] = word_bytes * (w_in + w_rec)
        if fmt == "csr":
            walked_in = [pw.weight_ih.nnz for pw in pe_weights]
            walked_rec = [pw.weight_hh.nnz for pw in pe_weights]
        else:
            walked_in = [pw.weight_ih.shape[0] * pw.weight_ih.shape[1] for pw in pe_weights]
            walked_rec = [pw.weight_hh.shape[0] * pw.weight_hh.shape[1] for pw in pe_weights]
        static[_I["input_weights"]] = walked_in
        static[_I["recurrent_weights"]] = walked_rec
        static[_I["macs"]] = static[_I["input_weights"]] + static[_I["recurrent_weights"]]
        walked = (
            np.asarray(walked_in, dtype=np.float64),
            np.asarray(walked_rec, dtype=np.float64),
        )
    if int8 is not None:
        int8.static_ops(static, _I)
    if dram_input:
        static[_I["dma_transfers"]] = 1.0
        static[_I["dram_bytes"]] = input_size * word_bytes
    return static, walked


@dataclass(frozen=True)
class ReceiveTable:
    """Copies of an event of source ``q`` that PE ``p`` receives, without a ``(Q, P)``
    matrix: ``base[p] + corrections[q, p]``.

    Every source of a layer multicasts to the same PEs (its own layer, the next one) and
    only leaves itself out, so one row ``base`` holds what all sources share and a sparse
    ``corrections`` (CSR over the sources: ``indptr``, ``indices``, ``data``) what one
    source changes (``-1`` for itself): ``O(P)`` numbers where a dense table held ``P^2``.
    Every entry and every event count is an integer, so the packets received are the same
    float64 numbers in any order of summation.
    """

    base: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        """The number of sources ``Q``."""
        return len(self.indptr) - 1

    @property
    def num_receivers(self) -> int:
        return len(self.base)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(base, indptr, indices, data)`` for the compiled step (``kernels.layer_ops``)."""
        return self.base, self.indptr, self.indices, self.data

    def received(self, fired: np.ndarray) -> np.ndarray:
        """``(P,)`` packets each PE receives when source ``q`` emits ``fired[q]`` events."""
        fired = np.asarray(fired, dtype=np.float64)
        out = float(fired.sum()) * self.base
        if len(self.data):
            per_entry = np.repeat(fired, np.diff(self.indptr)) * self.data
            np.add.at(out, self.indices, per_entry)
        return out

    def dense(self) -> np.ndarray:
        """The ``(Q, P)`` table (for tests and small layers)."""
        out = np.tile(self.base, (len(self), 1))
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out

    @staticmethod
    def from_dense(table: np.ndarray) -> ReceiveTable:
        """The table of a dense ``(Q, P)`` matrix (no shared row: every entry a correction)."""
        table = np.asarray(table, dtype=np.float64)
        rows, cols = np.nonzero(table)
        indptr = np.zeros(table.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=table.shape[0]), out=indptr[1:])
        return ReceiveTable(
            np.zeros(table.shape[1]), indptr, cols.astype(np.int64), table[rows, cols]
        )

    @staticmethod
    def empty(receivers: int) -> ReceiveTable:
        """No sources."""
        return ReceiveTable(
            np.zeros(receivers), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)
        )


def _receive_table(routes, sources: Sequence[PESlice], index_of_pe: dict[int, int]) -> ReceiveTable:
    """:class:`ReceiveTable` of the events of ``sources`` at the PEs ``index_of_pe``: the
    receivers every source shares (its layer's destination QPEs, :class:`SliceRoute.groups
    <spinnaker2_backend.mapping.routing.SliceRoute>`) as the base row, the rest as
    corrections. Equal to counting every PE of every target of every source."""
    num = len(index_of_pe)
    rows: dict[int, np.ndarray] = {}  # per shared group table: which of our PEs it reaches
    of_source = []
    for s in sources:
        route = routes[s.pe]
        key = id(route.groups)
        if key not in rows:
            reach = np.zeros(num)
            if route.groups is not None:
                for pes in route.groups.pes:
                    for pe in pes:
                        j = index_of_pe.get(pe)
                        if j is not None:
                            reach[j] += 1.0
            rows[key] = reach
        of_source.append(key)
    counts: dict[int, int] = {}
    for key in of_source:
        counts[key] = counts.get(key, 0) + 1
    common = max(counts, key=counts.get) if counts else None
    base = rows[common] if common is not None else np.zeros(num)
    counts_per_source = np.zeros(len(sources), dtype=np.int64)
    indices: list[int] = []
    data: list[float] = []
    for i, (s, key) in enumerate(zip(sources, of_source)):
        own = index_of_pe.get(int(s.pe))
        leaves_out = own is not None and rows[key][own] > 0  # a source leaves itself out
        if key == common:  # the usual case: only itself differs from the shared row
            if leaves_out:
                indices.append(own)
                data.append(-1.0)
                counts_per_source[i] = 1
            continue
        row = rows[key] - base
        if leaves_out:
            row[own] -= 1.0
        cols = np.flatnonzero(row)
        indices.extend(int(c) for c in cols)
        data.extend(float(v) for v in row[cols])
        counts_per_source[i] = len(cols)
    indptr = np.zeros(len(sources) + 1, dtype=np.int64)
    np.cumsum(counts_per_source, out=indptr[1:])
    return ReceiveTable(
        np.ascontiguousarray(base, dtype=np.float64),
        indptr,
        np.asarray(indices, dtype=np.int64),
        np.asarray(data, dtype=np.float64),
    )


@dataclass(frozen=True)
class LayerRoutes:
    """The routes of one layer's PEs, as the step's counts need them.

    Attributes:
        per_event: ``(4, P)`` per event of each PE: packets, off-chip packets, NoC hops,
            chip-link hops (summed over its targets).
        max_noc, max_chip: ``(P,)`` hops to the farthest target.
        receive_own: copies of an event of PE ``i`` that PE ``j`` receives
            (:class:`ReceiveTable`, ``P`` sources).
        receive_in: the same from the previous layer's PEs (``None`` for layer 0).
        prev_slice_of_unit: the previous layer's PE index of each of its units (``None``
            for layer 0).
    """

    per_event: np.ndarray
    max_noc: np.ndarray
    max_chip: np.ndarray
    receive_own: ReceiveTable
    receive_in: ReceiveTable | None
    prev_slice_of_unit: np.ndarray | None


def layer_routes(mapping: Mapping, layer: int, slices: Sequence[PESlice]) -> LayerRoutes:
    """:class:`LayerRoutes` of ``slices`` (the PEs of ``layer``) in ``mapping``."""
    routes = mapping.routes
    index_of_pe = {int(s.pe): i for i, s in enumerate(slices)}
    mine = [routes[s.pe] for s in slices]
    per_event = np.array(
        [
            [r.packets_per_event for r in mine],
            [r.chip_packets_per_event for r in mine],
            [r.noc_hops_per_event for r in mine],
            [r.chip_hops_per_event for r in mine],  # along the multicast tree
        ],
        dtype=np.float64,
    ).reshape(4, len(slices))
    max_noc = np.array([r.max_noc_hops for r in mine], dtype=np.float64)
    max_chip = np.array([r.max_chip_hops for r in mine], dtype=np.float64)
    receive_own = _receive_table(routes, slices, index_of_pe)
    receive_in = prev_slice_of_unit = None
    if layer > 0:
        prev = mapping.layers[layer - 1].slices
        prev_slice_of_unit = np.repeat(np.arange(len(prev)), [s.num_units for s in prev])
        receive_in = _receive_table(routes, prev, index_of_pe)
    return LayerRoutes(per_event, max_noc, max_chip, receive_own, receive_in, prev_slice_of_unit)
