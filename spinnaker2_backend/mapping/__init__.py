"""Map an EGRU network onto SpiNNaker2 PEs: partition -> place -> route -> lay out memory -> check.

One module per stage, each a function with its own result dataclass (as in the SpiNNaker
toolchain); :func:`~spinnaker2_backend.mapping.pipeline.map_network` runs them in order and
returns a :class:`~spinnaker2_backend.mapping.pipeline.Mapping`. Each stage takes the
previous stage's result and can be called and tested alone.

1. :mod:`~spinnaker2_backend.mapping.partition` (:func:`partition_network`) splits each
   layer's units into contiguous per-PE slices, automatically (the fewest PEs such that
   every PE's data memory fits, balanced by bytes), by ``max_units_per_pe`` or by
   ``pes_per_layer``.
2. :mod:`~spinnaker2_backend.mapping.placement` (:func:`place_slices`) puts the slices on
   PEs along a serpentine path over the QPE grid, the path with the fewest NoC hops.
3. :mod:`~spinnaker2_backend.mapping.routing` (:func:`route_slices`) gives every PE a
   routing-key offset, builds the multicast targets and counts router entries per chip.
4. :mod:`~spinnaker2_backend.mapping.memory` (:func:`layout_memory`) accounts every byte of
   each PE's data memory by region and the code in the instruction memory; the same byte
   model (:class:`LayerMemoryModel`) drives the partition.
5. :mod:`~spinnaker2_backend.mapping.fit` (:func:`check_fit`) raises :class:`MappingError`
   naming the PE, the region, bytes needed vs available and what to change.

:mod:`~spinnaker2_backend.mapping.base` holds what they share (:class:`PESlice`,
:class:`MappingError`), :mod:`~spinnaker2_backend.mapping.report` the
:class:`MappingReport` types.

Model of a PE's program (the published EGRU deployment, ``docs/spinnaker2.md``): a PE owns
units ``[a, b)`` of a layer; it stores their rows of ``weight_ih`` and ``weight_hh`` (all
three gates, see :mod:`spinnaker2_backend.formats`), computes them, and after each step
sends their ``y`` as packets to every other PE of its layer (recurrence) and to every PE of
the next layer. It keeps the full ``y_{t-1}`` of its layer and the full input vector of the
step in receive buffers. Layer 0's input vectors are computed ahead (embedding lookup or
feature extraction) and stream from DRAM (``input_source="dram"``) or arrive from the host
(``input_source="host"``). The readout (decoder) runs on the host from the last layer's
events, as in the published deployment.

Import order inside the package (one way): base <- memory <- partition <- placement <-
routing <- fit <- report <- pipeline <- this ``__init__``.
"""

from __future__ import annotations

from spinnaker2_backend.mapping.base import INPUT_SOURCES, InputSource, MappingError, PESlice
from spinnaker2_backend.mapping.fit import FitCheck, check_fit
from spinnaker2_backend.mapping.memory import (
    DATA_REGIONS,
    VARIABLE_WORDS_PER_UNIT,
    LayerMemoryModel,
    MemoryLayout,
    layer_memory_models,
    layout_memory,
)
from spinnaker2_backend.mapping.partition import LayerPartition, PartitionResult, partition_network
from spinnaker2_backend.mapping.pipeline import Mapping, build_mapping_report, map_network
from spinnaker2_backend.mapping.placement import (
    CHIP_HOP_PLACEMENT_WEIGHT,
    LayerPlacement,
    Placement,
    place_slices,
)
from spinnaker2_backend.mapping.report import LayerReportRow, MappingReport, PEReportRow
from spinnaker2_backend.mapping.routing import (
    MulticastTarget,
    RoutingResult,
    SliceRoute,
    route_slices,
)

__all__ = [
    "CHIP_HOP_PLACEMENT_WEIGHT",
    "DATA_REGIONS",
    "INPUT_SOURCES",
    "VARIABLE_WORDS_PER_UNIT",
    "FitCheck",
    "InputSource",
    "LayerMemoryModel",
    "LayerPartition",
    "LayerPlacement",
    "LayerReportRow",
    "Mapping",
    "MappingError",
    "MappingReport",
    "MemoryLayout",
    "MulticastTarget",
    "PEReportRow",
    "PESlice",
    "PartitionResult",
    "Placement",
    "RoutingResult",
    "SliceRoute",
    "build_mapping_report",
    "check_fit",
    "layer_memory_models",
    "layout_memory",
    "map_network",
    "partition_network",
    "place_slices",
    "route_slices",
]
