"""RunConfigs that pick our process models: ``floating_pt`` or the simulated SpiNNaker2 chip.

Both are Lava simulation configs (subclasses of :class:`Loihi2SimCfg`: Python process models
on the host CPU) with a fixed ``select_tag``:

- :class:`FloatingPtSimCfg` selects tag ``floating_pt`` (numpy reference, float32).
- :class:`SpiNNaker2SimCfg` selects tag ``spinnaker2`` and carries the chip options
  (:class:`ChipOptions`: weight format, PE clock, partition limit, chip figures, machine).
  When it selects the ``spinnaker2`` model of an :class:`~lava_procs.egru_layer.process.
  EGRULayer` it maps the layer's network onto the chip on the host (once per network, so
  every layer process runs its layer of the same mapping) and hands the mapping and the
  options to the model through the process's ``proc_params``. Processes without a
  ``spinnaker2`` model (Lava's stock ``RingBuffer``, ``Dense``, ``LIF``, ...) fall back to
  their ``floating_pt`` models; EGRU layers wired by hand are discovered in the compiled
  graph and mapped together when they form a chain (else a :class:`ChipMappingWarning`).
  The host keeps one :class:`ChipNetwork` per network: its mapping follows every
  ``Var.set`` of a layer's parameters, as the layer's model does.

The input/output processes carry both tags, so either config runs a whole network.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from lava.magma.core.model.model import AbstractProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.domain import SyncDomain

from lava_procs.common import FLOATING_PT_TAG, SPINNAKER2_TAG
from snn_egru.artifact import DeploymentArtifact

__all__ = [
    "FLOATING_PT_TAG",
    "SPINNAKER2_TAG",
    "ChipMappingWarning",
    "ChipNetwork",
    "ChipOptions",
    "FloatingPtSimCfg",
    "SpiNNaker2SimCfg",
]


WeightFormat = Literal["csr", "event", "dense", "csr-int8", "event-int8", "mac-int8"]
#: The chip's weight formats (``spinnaker2_backend.mapping.base.ALL_WEIGHT_FORMATS``); the
#: int8 ones map an int8 artifact (``docs/quantisation.md``).
WEIGHT_FORMATS: tuple[str, ...] = ("csr", "event", "dense", "csr-int8", "event-int8", "mac-int8")


@dataclass(frozen=True, kw_only=True)
class ChipOptions:
    """How the ``spinnaker2`` models map and time a network.

    Attributes:
        weight_format: weights in PE memory: ``"csr"`` (rows of stored non-zeros, walked
            whatever the activity, as in the measured deployment), ``"event"`` (per source
            unit, walked only for units that fired) or ``"dense"``; for an int8 artifact
            ``"csr-int8"``, ``"event-int8"`` or ``"mac-int8"`` (the model then runs the
            int8 codes bit-exactly; ``floating_pt`` runs the dequantised weights).
        max_units_per_pe: upper limit of units per PE when partitioning (``None``: as many
            as fit in PE memory, balanced).
        clock_mhz: PE clock in MHz, one of the chip's levels (150 or 300); ``None``: the
            ChipSpec's clock (150 MHz by default).
        tick_us: tick duration in microseconds (deadline checks; ``None``: free running).
        spec: chip figures (``spinnaker2_backend.ChipSpec``); ``None`` for the defaults.
        machine: the machine to map onto (``spinnaker2_backend.Machine``); ``None`` for the
            backend's default (as many chips as needed).
        record_steps: steps of recordings kept in PE memory (counts against its size).
    """

    weight_format: WeightFormat = "csr"
    max_units_per_pe: int | None = None
    clock_mhz: float | None = None
    tick_us: float | None = None
    spec: Any = None
    machine: Any = None
    record_steps: int = 0

    def __post_init__(self) -> None:
        if self.weight_format not in WEIGHT_FORMATS:
            raise ValueError(
                f"weight_format must be one of {WEIGHT_FORMATS}, got {self.weight_format!r}"
            )
        if self.max_units_per_pe is not None and self.max_units_per_pe < 1:
            raise ValueError(f"max_units_per_pe must be >= 1, got {self.max_units_per_pe}")
        if self.clock_mhz is not None and not self.clock_mhz > 0:
            raise ValueError(f"clock_mhz must be > 0, got {self.clock_mhz}")
        if self.tick_us is not None and not self.tick_us > 0:
            raise ValueError(f"tick_us must be > 0, got {self.tick_us}")
        if self.record_steps < 0:
            raise ValueError(f"record_steps must be >= 0, got {self.record_steps}")
        self.chip_spec()  # raises now if the clock is not one of the chip's levels

    def chip_spec(self) -> Any:
        """The ``ChipSpec`` to use: ``spec`` (or the default) with ``clock_mhz`` applied."""
        from spinnaker2_backend.constants import ChipSpec

        spec = self.spec if self.spec is not None else ChipSpec()
        if self.clock_mhz is not None:
            spec = spec.with_clock_mhz(self.clock_mhz)
        return spec

    def map_network(self, artifact: DeploymentArtifact) -> Any:
        """``spinnaker2_backend.map_network`` of ``artifact`` with these options."""
        from spinnaker2_backend import map_network

        return map_network(
            artifact,
            machine=self.machine,
            spec=self.chip_spec(),
            weight_format=self.weight_format,
            max_units_per_pe=self.max_units_per_pe,
            record_steps=self.record_steps,
        )


class _TaggedSimCfg(Loihi2SimCfg):
    """A :class:`Loihi2SimCfg` whose ``select_tag`` is the class's :attr:`TAG`.

    Args (keyword-only): as :class:`Loihi2SimCfg`, without ``select_tag``.
    """

    TAG: str

    def __init__(
        self,
        *,
        custom_sync_domains: list[SyncDomain] | None = None,
        select_sub_proc_model: bool = False,
        exception_proc_model_map: dict | None = None,
        loglevel: int = logging.WARNING,
    ) -> None:
        super().__init__(
            custom_sync_domains=custom_sync_domains,
            select_tag=self.TAG,
            select_sub_proc_model=select_sub_proc_model,
            exception_proc_model_map=exception_proc_model_map,
            loglevel=loglevel,
        )


class FloatingPtSimCfg(_TaggedSimCfg):
    """Selects the ``floating_pt`` models (the numpy reference) of our processes.

    Args (keyword-only): as :class:`Loihi2SimCfg`, without ``select_tag``.
    """

    TAG = FLOATING_PT_TAG


class ChipMappingWarning(UserWarning):
    """The EGRU layers of a graph cannot all be mapped onto one chip together."""


class ChipNetwork:
    """The host's one source of truth for an EGRU network mapped onto the simulated chip.

    It holds the network's current artifact (the layers' parameters as the models run them)
    and its mapping, made on first use. When a layer's parameter Var is set on the host
    (``layer.weight_ih.set(...)``), the layer process reports the new value here
    (:meth:`update_layer`): the artifact follows and the mapping is made again on next use,
    exactly as the layer's model does in its own process; so the chip report of a session
    always uses the mapping the models ran.

    Attributes:
        original: the artifact the network was built from (its key in the run config).
        artifact: the current artifact.
        options: the chip options.
        layers: per layer, the EGRULayer process running it (``None`` until selected).
        version: how many times a layer's parameters changed.
    """

    def __init__(self, artifact: DeploymentArtifact, options: ChipOptions) -> None:
        self.original = artifact
        self.artifact = artifact
        self.options = options
        self.layers: list[Any] = [None] * artifact.num_layers
        self.version = 0
        self._mapping: Any = None

    @property
    def mapping(self) -> Any:
        """The mapping of the current artifact (made on first use)."""
        if self._mapping is None:
            self._mapping = self.options.map_network(self.artifact)
        return self._mapping

    def update_layer(self, index: int, params: Any) -> None:
        """Layer ``index`` now runs ``params`` (a host-side Var.set): re-map on next use."""
        layers = list(self.artifact.layers)
        layers[index] = params
        self.artifact = dataclasses.replace(self.artifact, layers=layers)
        self._mapping = None
        self.version += 1


class SpiNNaker2SimCfg(_TaggedSimCfg):
    """Selects the ``spinnaker2`` models and maps EGRU layers onto the simulated chip.

    Model selection, per process of the compiled graph:

    - a process with a ``spinnaker2`` model (every :class:`~lava_procs.egru_layer.process.
      EGRULayer`, our sources, readout and sinks) runs that model;
    - any other process (Lava's stock ``RingBuffer``, ``Dense``, ``LIF``, ``Monitor``, ...)
      falls back to its ``fallback_tag`` model (``floating_pt`` by default), as Lava's own
      hardware configs fall back to Python models; an untagged model is taken as it is.
      ``fallback_models`` lists what fell back.

    Mapping: the EGRU layers of an :class:`~lava_procs.network.process.EGRUNetwork` are
    mapped together (its artifact). EGRU layers wired by hand are discovered in the compiled
    graph: layers connected directly (``a.y_out -> b.x_in``, ``b.x_in`` fed by nothing
    else) form a chain, and the chain is mapped as one network onto one machine (routes,
    packets and placement as for a network of those layers). Layers that do not form one
    chain (a Lava process between them, a fan-out, several chains) are mapped as separate
    networks, each from PE 0 of its own machine, and a :class:`ChipMappingWarning` says so.

    Args (keyword-only):
        chip: the chip options; or give its fields directly (``weight_format``,
            ``max_units_per_pe``, ``clock_mhz``, ``spec``, ``machine``, ``record_steps``).
        fallback_tag: tag of the models used for processes without a ``spinnaker2`` model
            (``None``: no fall-back, Lava's selection rules as they are).
        custom_sync_domains, select_sub_proc_model, exception_proc_model_map, loglevel:
            as :class:`Loihi2SimCfg`.

    Attributes:
        chip: the :class:`ChipOptions` in use.
        networks: the :class:`ChipNetwork` s mapped so far (one per network).
        fallback_models: ``{process name: model class}`` of the processes that fell back.
    """

    #: tells lava_procs.process_base.check_run_config that this config maps the chip
    maps_chip = True
    TAG = SPINNAKER2_TAG

    def __init__(
        self,
        *,
        chip: ChipOptions | None = None,
        fallback_tag: str | None = FLOATING_PT_TAG,
        custom_sync_domains: list[SyncDomain] | None = None,
        select_sub_proc_model: bool = False,
        exception_proc_model_map: dict | None = None,
        loglevel: int = logging.WARNING,
        **chip_fields: Any,
    ) -> None:
        super().__init__(
            custom_sync_domains=custom_sync_domains,
            select_sub_proc_model=select_sub_proc_model,
            exception_proc_model_map=exception_proc_model_map,
            loglevel=loglevel,
        )
        if chip is not None and chip_fields:
            raise ValueError("give either chip=ChipOptions(...) or its fields, not both")
        if fallback_tag == SPINNAKER2_TAG:
            raise ValueError("fallback_tag must differ from 'spinnaker2'")
        self.chip = chip if chip is not None else ChipOptions(**chip_fields)
        self.fallback_tag = fallback_tag
        self.fallback_models: dict[str, type[AbstractProcessModel]] = {}
        self.networks: list[ChipNetwork] = []
        self._by_artifact: dict[int, ChipNetwork] = {}
        self._hand_wired: dict[int, tuple[Any, ChipNetwork, int]] = {}
        self._fallback_cfg = (
            None
            if fallback_tag is None
            else Loihi2SimCfg(
                select_tag=fallback_tag,
                select_sub_proc_model=select_sub_proc_model,
                loglevel=loglevel,
            )
        )

    # ---------------------------------------------------------------------- mappings
    def network_for(self, artifact: DeploymentArtifact) -> ChipNetwork:
        """The :class:`ChipNetwork` built from ``artifact`` (made on first use)."""
        network = self._by_artifact.get(id(artifact))
        if network is None or network.original is not artifact:
            network = ChipNetwork(artifact, self.chip)
            self._by_artifact[id(artifact)] = network
            self.networks.append(network)
        return network

    def mapping_for(self, artifact: DeploymentArtifact) -> Any:
        """The current mapping of the network built from ``artifact`` (after any
        ``Var.set`` of its layers' parameters)."""
        return self.network_for(artifact).mapping

    @property
    def mappings(self) -> dict[int, tuple[DeploymentArtifact, Any]]:
        """``{id(original artifact): (current artifact, current mapping)}`` per network."""
        return {id(n.original): (n.artifact, n.mapping) for n in self.networks}

    # --------------------------------------------------------------------- selection
    def select(
        self,
        process: AbstractProcess,
        proc_models: list[type[AbstractProcessModel]],
    ) -> type[AbstractProcessModel]:
        if self._falls_back(process, proc_models):
            model = self._fallback_cfg.select(process, proc_models)
            self.fallback_models[process.name] = model
            self.log.info(
                "%s: no %r model for %s %r, using %s (%r)",
                type(self).__name__,
                SPINNAKER2_TAG,
                type(process).__name__,
                process.name,
                model.__name__,
                self.fallback_tag,
            )
            return model
        model = super().select(process, proc_models)
        if getattr(model, "needs_chip_mapping", False):
            network, index = self._network_of_layer(process)
            network.layers[index] = process
            process.chip_network = network  # host side: Var.set reports here
            process.chip_layer_index = index
            for key, value in (
                ("chip_options", self.chip),
                ("chip_mapping", network.mapping),
                ("chip_layer_index", index),
            ):
                process.proc_params.overwrite(key, value)
        return model

    def _falls_back(self, process: AbstractProcess, proc_models: list) -> bool:
        if self._fallback_cfg is None or process.__class__ in self.exception_proc_model_map:
            return False
        tags = [set(getattr(pm, "tags", ()) or ()) for pm in proc_models]
        return not any(SPINNAKER2_TAG in t for t in tags) and any(
            self.fallback_tag in t for t in tags
        )

    def _network_of_layer(self, process: AbstractProcess) -> tuple[ChipNetwork, int]:
        context = process.proc_params.get("network_context")
        if context is not None:
            return self.network_for(context.artifact), context.layer_index
        found = self._hand_wired.get(id(process))
        if found is None or found[0] is not process:
            self._discover_hand_wired(process)
            found = self._hand_wired[id(process)]
        return found[1], found[2]

    def _discover_hand_wired(self, process: AbstractProcess) -> None:
        """Map the stand-alone EGRU layers of ``process``'s graph, chained where wired so."""
        from lava.magma.compiler.compiler_graphs import find_processes

        graph = find_processes(process)
        layers = [
            p for p in graph if _is_egru_layer(p) and p.proc_params.get("network_context") is None
        ]
        layers.sort(key=lambda p: p.id)
        chains, notes = _chains(layers)
        # networks built from an artifact (EGRUNetwork, or its layers once expanded)
        others = {
            id(p.proc_params["artifact"]): p.name
            for p in graph
            if type(p).__name__ == "EGRUNetwork"
        }
        for p in graph:
            context = p.proc_params.get("network_context") if _is_egru_layer(p) else None
            if context is not None:
                others.setdefault(id(context.artifact), p.name.rsplit(".", 1)[0])
        for chain in chains:
            artifact = DeploymentArtifact(
                layers=[layer.host_params() for layer in chain],
                input_kind="features",
                readout_kind="none",
                metadata={"source": "hand-wired EGRULayers: " + ", ".join(_names(chain))},
            )
            network = self.network_for(artifact)
            for index, layer in enumerate(chain):
                self._hand_wired[id(layer)] = (layer, network, index)
        if len(chains) + len(others) > 1:
            groups = [" -> ".join(_names(chain)) for chain in chains]
            groups += [f"EGRUNetwork {name!r}" for name in others.values()]
            reasons = f" ({'; '.join(notes)})" if notes else ""
            warnings.warn(
                f"the graph holds {len(groups)} separate EGRU networks{reasons}: "
                f"{' | '.join(groups)}. Each is mapped on its own from PE 0 of its own "
                "machine, so the chip counters of each are those of that network alone. "
                "Wire the layers directly (a.y_out -> b.x_in) to map them onto one chip "
                "together, or build one EGRUNetwork",
                ChipMappingWarning,
                stacklevel=2,
            )


def _is_egru_layer(process: AbstractProcess) -> bool:
    """An :class:`~lava_procs.egru_layer.process.EGRULayer` (by its marker: no import)."""
    return bool(getattr(type(process), "is_egru_layer", False))


def _names(layers: list[Any]) -> list[str]:
    return [repr(layer.name) for layer in layers]


def _chains(layers: list[Any]) -> tuple[list[list[Any]], list[str]]:
    """The layers as chains of direct ``y_out -> x_in`` connections, and why a link was cut.

    ``a -> b`` is a link when ``a.y_out`` connects to ``b.x_in`` and ``b.x_in`` has no other
    source; a layer feeding two layers keeps neither link.
    """
    members = {id(layer): layer for layer in layers}
    successors: dict[int, list[Any]] = {id(layer): [] for layer in layers}
    predecessor: dict[int, Any] = {}
    notes = []
    for layer in layers:
        sources = layer.x_in.get_src_ports()
        feeding = [port.process for port in sources if id(port.process) in members]
        if not feeding:
            continue
        upstream = feeding[0]
        if len(sources) == 1 and sources[0] is upstream.y_out:
            successors[id(upstream)].append(layer)
            predecessor[id(layer)] = upstream
        else:
            notes.append(f"{layer.name!r} has inputs other than one layer's y_out")
    for layer in layers:
        following = successors[id(layer)]
        if len(following) > 1:
            notes.append(f"{layer.name!r} feeds {len(following)} layers")
            for other in following:
                predecessor.pop(id(other), None)
            successors[id(layer)] = []
    chains = []
    for layer in layers:
        if id(layer) in predecessor:
            continue
        chain = [layer]
        while successors[id(chain[-1])]:
            chain.append(successors[id(chain[-1])][0])
        chains.append(chain)
    return chains, notes
