"""What a mapped layer's PEs do the same in every step, computed once from the mapping.

Used when a :class:`~spinnaker2_backend.layer_simulator.LayerSimulator` is built:

- :func:`static_operation_counts`: the per-PE operation counts that do not depend on the
  events of a step (units updated, weights walked by a dense or CSR product, words
  cleared, the DRAM read of layer 0's input);
- :func:`layer_routes`: per PE, the packets, off-chip packets and hops one event costs,
  the farthest target, and how many copies of an event each PE of this layer receives
  from this layer's PEs and from the previous layer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinnaker2_backend.mapping import Mapping
from spinnaker2_backend.mapping.base import PESlice
from spinnaker2_backend.timing import OP_INDEX, OPS

__all__ = ["LayerRoutes", "layer_routes", "static_operation_counts"]

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
class LayerRoutes:
    """The routes of one layer's PEs, as the step's counts need them.

    Attributes:
        per_event: ``(4, P)`` per event of each PE: packets, off-chip packets, NoC hops,
            chip-link hops (summed over its targets).
        max_noc, max_chip: ``(P,)`` hops to the farthest target.
        receive_own: ``(P, P)`` copies of an event of PE ``i`` that PE ``j`` receives.
        receive_in: ``(P_prev, P)`` the same from the previous layer's PEs (``None`` for
            layer 0).
        prev_slice_of_unit: the previous layer's PE index of each of its units (``None``
            for layer 0).
    """

    per_event: np.ndarray
    max_noc: np.ndarray
    max_chip: np.ndarray
    receive_own: np.ndarray
    receive_in: np.ndarray | None
    prev_slice_of_unit: np.ndarray | None


def _receivers(targets, index_of_pe: dict[int, int], row: np.ndarray) -> None:
    """Add one to ``row[j]`` for each copy of an event that this layer's PE ``j`` gets."""
    for target in targets:
        for pe in target.pes:
            j = index_of_pe.get(int(pe))
            if j is not None:
                row[j] += 1


def layer_routes(mapping: Mapping, layer: int, slices: Sequence[PESlice]) -> LayerRoutes:
    """:class:`LayerRoutes` of ``slices`` (the PEs of ``layer``) in ``mapping``."""
    routes = mapping.routes
    num_pes = len(slices)
    index_of_pe = {int(s.pe): i for i, s in enumerate(slices)}
    per_event = np.zeros((4, num_pes))  # packets, off-chip packets, noc hops, chip hops
    max_noc = np.zeros(num_pes)
    max_chip = np.zeros(num_pes)
    receive_own = np.zeros((num_pes, num_pes))
    for i, s in enumerate(slices):
        targets = routes[s.pe].targets
        for target in targets:
            per_event[0, i] += 1
            per_event[1, i] += target.chip_hops > 0
            per_event[2, i] += target.noc_hops
            max_noc[i] = max(max_noc[i], target.noc_hops)
            max_chip[i] = max(max_chip[i], target.chip_hops)
        per_event[3, i] = routes[s.pe].chip_hops_per_event  # along the multicast tree
        _receivers(targets, index_of_pe, receive_own[i])
    receive_in = prev_slice_of_unit = None
    if layer > 0:
        prev = mapping.layers[layer - 1].slices
        prev_slice_of_unit = np.repeat(np.arange(len(prev)), [s.num_units for s in prev])
        receive_in = np.zeros((len(prev), num_pes))
        for i, s in enumerate(prev):
            _receivers(routes[s.pe].targets, index_of_pe, receive_in[i])
    return LayerRoutes(per_event, max_noc, max_chip, receive_own, receive_in, prev_slice_of_unit)
