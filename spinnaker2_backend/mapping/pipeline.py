"""The mapping pipeline: :func:`map_network` runs the five stages and returns a :class:`Mapping`.

partition -> place -> route -> lay out memory -> check fit (see
:mod:`spinnaker2_backend.mapping`). :class:`Mapping` holds every stage's result, encodes a
PE's weights on demand, and builds the :class:`~spinnaker2_backend.mapping.report.MappingReport`
(:func:`build_mapping_report`). A mapping is data: running it is the simulator's
(:func:`spinnaker2_backend.simulator.run_mapping`, ``NetworkSimulator(mapping)``,
``LayerSimulator(mapping, layer)``), which imports this module, never the other way round.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import PEWeights, encode_pe_weights, slice_rows
from spinnaker2_backend.formats_int8 import QUANTIZED_WEIGHT_FORMATS, encode_pe_weights_int8
from spinnaker2_backend.machine import Machine
from spinnaker2_backend.mapping.base import (
    MappingError,
    PESlice,
    check_batch_size,
    check_options,
    check_receive_policy,
)
from spinnaker2_backend.mapping.fit import FitCheck, check_fit
from spinnaker2_backend.mapping.memory import (
    LayerMemoryModel,
    MemoryLayout,
    check_artifact_format,
    layer_memory_models,
    layout_memory,
)
from spinnaker2_backend.mapping.partition import PartitionResult, partition_network
from spinnaker2_backend.mapping.placement import LayerPlacement, Placement, place_slices
from spinnaker2_backend.mapping.report import LayerReportRow, MappingReport, PEReportRow
from spinnaker2_backend.mapping.routing import RoutingResult, route_slices

logger = logging.getLogger(__name__)

__all__ = [
    "Mapping",
    "build_mapping_report",
    "map_network",
]


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
        receive_policy: how PEs keep received events; receive_capacity: per layer, the
            entries of the ``event-list`` (0 for the other policies).
        batch_size: samples every PE keeps (memory sized for them).
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
    receive_policy: str = "dense"
    receive_capacity: tuple[int, ...] = ()
    batch_size: int = 1
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
            encode = (
                encode_pe_weights_int8
                if self.weight_format in QUANTIZED_WEIGHT_FORMATS
                else encode_pe_weights
            )
            self._weights_cache[key] = encode(
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
        """The :class:`~spinnaker2_backend.mapping.report.MappingReport` of this mapping."""
        return build_mapping_report(self)

    def save_placement(self, path: str | os.PathLike) -> Path:
        """Write the placement table as ``.csv`` or ``.json``."""
        return self.placement.save(path)

    def for_batch(self, batch_size: int) -> Mapping:
        """This mapping with room for ``batch_size`` samples per PE (same placement and
        routes; memory laid out and checked again).

        Raises:
            MappingError: a PE cannot keep that many samples; the message names the
                per-sample state and the largest batch that fits.
        """
        from dataclasses import replace as _replace

        batch_size = check_batch_size(batch_size)
        if batch_size == self.batch_size:
            return self
        models = [_replace(m, batch_size=batch_size) for m in self.memory_models]
        memory = layout_memory(models, self.placement)
        fit = check_fit(memory, self.placement, models, raise_error=True)
        return _replace(
            self,
            memory=memory,
            fit=fit,
            memory_models=models,
            batch_size=batch_size,
            _weights_cache=self._weights_cache,
        )


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
    receive_policy: str = "dense",
    receive_capacity: int | Sequence[int] | None = None,
    batch_size: int = 1,
    balance: str = "bytes",
    check: bool = True,
    chip_boundaries: Sequence[int] = (),
) -> Mapping:
    """Map an EGRU network onto a SpiNNaker2 machine (without running it).

    partition -> place -> route -> lay out memory -> check fit.

    Args:
        artifact: a :class:`~snn_egru.artifact.DeploymentArtifact` or the path of one.
        machine: the machine (default: one chip with ``spec``).
        spec: chip figures (default: ``machine.spec`` or :class:`ChipSpec`); a spec that
            differs from ``machine.spec`` replaces it (same number of chips).
        weight_format: ``"csr"`` (published design), ``"event"`` (per-source-unit rows, only
            the weights of units that fired are touched) or ``"dense"``; for an int8
            artifact ``"csr-int8"``, ``"event-int8"`` (Arm core, "float" products) or
            ``"mac-int8"`` (16 x 4 MAC array, "int8" products; ``docs/quantisation.md``).
        max_units_per_pe: at most this many units per PE (py-spinnaker2's
            ``max_atoms_per_core``); default: automatic (fewest PEs that fit).
        pes_per_layer: PEs per layer instead (``50`` or ``(50, 50, 50)``), balanced by bytes.
        record_steps: steps of ``y`` recorded in PE SRAM during a run (they must fit).
        input_source: ``"dram"`` (layer-0 inputs computed ahead, in DRAM) or ``"host"``.
        receive_policy: how a PE keeps the events it receives: ``"dense"`` (a vector per
            input), ``"reused"`` (one vector for both products), ``"event-list"`` (a list
            with a capacity bound) or ``"accumulate"`` (multiplied in on arrival, ``event``
            format only); :data:`~spinnaker2_backend.mapping.base.RECEIVE_POLICIES`.
        receive_capacity: entries of the event list, for every layer (int) or per layer;
            default: every source (never overflows). Size it from a recorded run with
            :func:`spinnaker2_backend.simulator.receive_capacity_from_run`.
        batch_size: samples every PE keeps and processes per step (memory grows per sample).
        balance: how ``pes_per_layer`` splits the units: ``"bytes"`` or ``"units"``.
        check: raise :class:`MappingError` when a PE does not fit (``False``: return the
            mapping with ``mapping.fit`` listing the problems, for reports).
        chip_boundaries: layers after which the next layer starts on a fresh chip
            (:func:`~spinnaker2_backend.mapping.placement.place_slices`; a bottlenecked
            network's are :func:`~spinnaker2_backend.mapping.crossings.bottleneck_layers_of`).

    Raises:
        MappingError: the network does not fit (message says where and what to change).
        snn_egru.artifact.ArtifactError: the artifact file is missing or malformed.
    """
    artifact = _resolve_artifact(artifact)
    machine = _machine_for(machine, spec)
    spec = machine.spec
    batch_size = _check_map_options(
        artifact, weight_format, record_steps, input_source, receive_policy, batch_size
    )
    clock = _StageClock("/".join(map(str, artifact.layer_sizes)))
    models, partition = _memory_and_partition(
        artifact,
        spec,
        weight_format,
        record_steps,
        (receive_policy, receive_capacity, input_source, batch_size),
        (max_units_per_pe, pes_per_layer, balance),
    )
    placement, routes, memory, fit = _stages_2_to_5(
        partition, machine, models, clock, check, chip_boundaries
    )
    _check_embedding_table(artifact, spec, input_source, check)
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
        layers=_layer_placements(artifact, placement),
        memory_models=models,
        max_units_per_pe=max_units_per_pe,
        receive_policy=receive_policy,
        receive_capacity=tuple(m.receive_capacity for m in models),
        batch_size=batch_size,
    )
    _log_mapping(mapping)
    return mapping


def _memory_and_partition(
    artifact: DeploymentArtifact,
    spec: ChipSpec,
    weight_format: str,
    record_steps: int,
    memory_options: tuple,
    split_options: tuple,
) -> tuple[list[LayerMemoryModel], PartitionResult]:
    """Stage 1 of :func:`map_network`: the byte model of every layer and the partition
    (``memory_options``: receive policy, receive capacity, input source, batch size;
    ``split_options``: max units per PE, PEs per layer, balance)."""
    receive_policy, receive_capacity, input_source, batch_size = memory_options
    max_units_per_pe, pes_per_layer, balance = split_options
    models = layer_memory_models(
        artifact,
        spec=spec,
        weight_format=weight_format,
        record_steps=record_steps,
        receive_policy=receive_policy,
        receive_capacity=receive_capacity,
        input_source=input_source,
        batch_size=batch_size,
    )
    partition = partition_network(
        artifact,
        spec=spec,
        weight_format=weight_format,
        max_units_per_pe=max_units_per_pe,
        pes_per_layer=pes_per_layer,
        record_steps=record_steps,
        balance=balance,
        memory_models=models,
    )
    return models, partition


def _check_map_options(
    artifact: DeploymentArtifact,
    weight_format: str,
    record_steps: int,
    input_source: str,
    receive_policy: str,
    batch_size: int,
) -> int:
    """The options of :func:`map_network` are known values that suit the artifact; returns
    the batch size as an int."""
    check_options(weight_format, record_steps, input_source)
    check_receive_policy(receive_policy, weight_format)
    check_artifact_format(artifact, weight_format)
    return check_batch_size(batch_size)


def _log_mapping(mapping: Mapping) -> None:
    logger.info(
        "mapped %s units onto %d PEs (%s), fullest PE %d at %.1f %%",
        "/".join(map(str, mapping.artifact.layer_sizes)),
        mapping.placement.num_pes_used,
        mapping.weight_format,
        mapping.fit.fullest_pe,
        100 * mapping.fit.fullest_utilisation,
    )


def _machine_for(machine: Machine | None, spec: ChipSpec | None) -> Machine:
    """``machine`` (default: one chip of ``spec``), with ``spec`` in place of its own."""
    if machine is None:
        return Machine(spec=spec)
    if spec is not None and spec != machine.spec:
        return Machine(chips=machine.num_chips, spec=spec, chip_grid=machine.chip_grid)
    return machine


def _stages_2_to_5(
    partition: PartitionResult,
    machine: Machine,
    models: list[LayerMemoryModel],
    clock: _StageClock,
    check: bool,
    chip_boundaries: Sequence[int] = (),
) -> tuple[Placement, RoutingResult, MemoryLayout, FitCheck]:
    """Place, route, lay out memory and check the fit of a partition just made, each stage
    (the partition's too) logged with its time by ``clock``."""
    clock.done("1 partition", f"{partition.num_slices} slices")
    placement = place_slices(partition, machine, chip_boundaries=chip_boundaries)
    clock.done("2 placement", f"{placement.num_pes_used} PEs")
    # a layer without recurrent weights (a constrained bottleneck) sends to its own layer
    # no packet: nothing of its y_{t-1} is used
    routes = route_slices(
        placement, [i for i, m in enumerate(models) if not int(m.nnz_hh_prefix[-1])]
    )
    clock.done("3 routing")
    memory = layout_memory(models, placement)
    clock.done("4 memory layout")
    fit = check_fit(memory, placement, models, raise_error=check)
    clock.done("5 fit check")
    return placement, routes, memory, fit


def _check_embedding_table(
    artifact: DeploymentArtifact, spec: ChipSpec, input_source: str, check: bool
) -> None:
    """With ``check``: an embedding table streamed from DRAM fits a chip's DRAM."""
    if not (check and input_source == "dram" and artifact.input_kind == "embedding"):
        return
    table = int(np.prod(artifact.embedding.shape)) * spec.word_bytes
    if table > spec.dram_bytes:
        raise MappingError(
            f"the embedding table needs {table:,} bytes of DRAM but a chip has "
            f"{spec.dram_bytes:,}: use input_source='host'"
        )


def _layer_placements(artifact: DeploymentArtifact, placement: Placement) -> list[LayerPlacement]:
    """Each layer's sizes and PE slices."""
    return [
        LayerPlacement(
            layer=i,
            hidden_size=artifact.layers[i].hidden_size,
            input_size=artifact.layers[i].input_size,
            slices=list(placement.layers[i]),
        )
        for i in range(artifact.num_layers)
    ]


def build_mapping_report(mapping: Mapping) -> MappingReport:
    """Collect the :class:`MappingReport` of a mapping."""
    rows = []
    for s in mapping.slices:
        mem = mapping.memory[s.pe]
        model = mapping.memory_models[s.layer]
        rows.append(
            PEReportRow(
                pe=s.pe,
                chip=s.chip,
                pe_id=s.pe_id,
                qx=s.qpe[0],
                qy=s.qpe[1],
                pe_in_qpe=s.pe_in_qpe,
                layer=s.layer,
                unit_start=s.unit_start,
                unit_stop=s.unit_stop,
                units=s.num_units,
                nnz=sum(model.nnz(s.unit_start, s.unit_stop)),
                static_data=mem.static_data,
                weights=mem.weights,
                variables=mem.variables,
                receive_buffers=mem.receive_buffers,
                recordings=mem.recordings,
                debug=mem.debug,
                stack_heap=mem.stack_heap,
                total=mem.total,
                free=mem.free,
                utilisation=mem.utilisation,
                code=mem.code,
                packets_per_event=mapping.routes[s.pe].packets_per_event,
            )
        )
    layers = []
    for lp in mapping.layers:
        mine = [r for r in rows if r.layer == lp.layer]
        layers.append(
            LayerReportRow(
                layer=lp.layer,
                units=lp.hidden_size,
                input_size=lp.input_size,
                pes=len(mine),
                units_per_pe_min=min(r.units for r in mine),
                units_per_pe_max=max(r.units for r in mine),
                nnz=sum(r.nnz for r in mine),
                weight_bytes=sum(r.weights for r in mine),
                utilisation_min=min(r.utilisation for r in mine),
                utilisation_max=max(r.utilisation for r in mine),
            )
        )
    routes = mapping.routes
    packets = sum(r.source.num_units * r.packets_per_event for r in routes)
    hops = sum(r.source.num_units * r.noc_hops_per_event for r in routes)
    fullest = max(rows, key=lambda r: r.utilisation)
    return MappingReport(
        layer_sizes=list(mapping.artifact.layer_sizes),
        input_size=mapping.artifact.input_size,
        weight_format=mapping.weight_format,
        record_steps=mapping.record_steps,
        input_source=mapping.input_source,
        clock_mhz=mapping.spec.pe_clock_mhz,
        chips=mapping.machine.num_chips,
        pes_available=mapping.machine.num_pes,
        pes_used=len(rows),
        data_capacity=mapping.spec.data_memory_bytes,
        code_capacity=mapping.spec.instruction_memory_bytes,
        layers=layers,
        pes=rows,
        fullest=fullest,
        mean_utilisation=sum(r.utilisation for r in rows) / len(rows),
        total_weight_bytes=sum(r.weights for r in rows),
        router_entries=dict(routes.router_entries),
        router_capacity=routes.router_capacity,
        max_noc_hops=routes.max_noc_hops,
        packets_per_step_all_fire=packets,
        noc_hops_per_step_all_fire=hops,
        chip_to_chip_routes=sum(1 for r in routes if r.chip_to_chip),
        dram_table_bytes=mapping.dram_table_bytes,
        dram_bytes_per_step=mapping.dram_bytes_per_step,
        placement_path=mapping.placement.path,
        fits=mapping.fit.ok,
        problems=list(mapping.fit.problems),
        receive_policy=mapping.receive_policy,
        receive_capacity=list(mapping.receive_capacity),
        batch_size=mapping.batch_size,
        chip_to_chip_packets_all_fire=sum(
            r.source.num_units * r.chip_packets_per_event for r in routes
        ),
    )


class _StageClock:
    """Logs each mapping stage as it ends, with its time (``-v`` on the command lines)."""

    def __init__(self, network: str) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        logger.info("mapping %s units: partition, place, route, lay out memory, check fit", network)

    def done(self, stage: str, detail: str = "") -> None:
        now = self._now()
        extra = f" ({detail})" if detail else ""
        logger.info("  stage %s done in %.2f s%s", stage, now - self._last, extra)
        self._last = now
