"""RunConfigs that pick our process models: ``floating_pt`` or the simulated SpiNNaker2 chip.

Both are Lava simulation configs (subclasses of :class:`Loihi2SimCfg`: Python process models
on the host CPU) with a fixed ``select_tag``:

- :class:`FloatingPtSimCfg` selects tag ``floating_pt`` (numpy reference, float32).
- :class:`SpiNNaker2SimCfg` selects tag ``spinnaker2`` and carries the chip options
  (:class:`ChipOptions`: weight format, PE clock, partition limit, chip figures, machine).
  When it selects the ``spinnaker2`` model of an :class:`~lava_procs.egru_layer.process.
  EGRULayer` it maps the layer's network onto the chip on the host (once per network, so
  every layer process runs its layer of the same mapping) and hands the mapping and the
  options to the model through the process's ``proc_params``.

The input/output processes carry both tags, so either config runs a whole network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from lava.magma.core.model.model import AbstractProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.domain import SyncDomain

from lava_procs.common import NetworkContext
from snn_egru.artifact import DeploymentArtifact

__all__ = [
    "FLOATING_PT_TAG",
    "SPINNAKER2_TAG",
    "ChipOptions",
    "FloatingPtSimCfg",
    "SpiNNaker2SimCfg",
]

FLOATING_PT_TAG = "floating_pt"
SPINNAKER2_TAG = "spinnaker2"

WeightFormat = Literal["csr", "event", "dense"]
WEIGHT_FORMATS: tuple[str, ...] = ("csr", "event", "dense")


@dataclass(frozen=True, kw_only=True)
class ChipOptions:
    """How the ``spinnaker2`` models map and time a network.

    Attributes:
        weight_format: weights in PE memory: ``"csr"`` (rows of stored non-zeros, walked
            whatever the activity, as in the measured deployment), ``"event"`` (per source
            unit, walked only for units that fired) or ``"dense"``.
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
        from spinnaker2_backend.mapping import map_network

        return map_network(
            artifact,
            machine=self.machine,
            spec=self.chip_spec(),
            weight_format=self.weight_format,
            max_units_per_pe=self.max_units_per_pe,
            record_steps=self.record_steps,
        )


class FloatingPtSimCfg(Loihi2SimCfg):
    """Selects the ``floating_pt`` models (the numpy reference) of our processes.

    Args (keyword-only): as :class:`Loihi2SimCfg`, without ``select_tag``.
    """

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
            select_tag=FLOATING_PT_TAG,
            select_sub_proc_model=select_sub_proc_model,
            exception_proc_model_map=exception_proc_model_map,
            loglevel=loglevel,
        )


class SpiNNaker2SimCfg(Loihi2SimCfg):
    """Selects the ``spinnaker2`` models and maps EGRU layers onto the simulated chip.

    Args (keyword-only):
        chip: the chip options; or give its fields directly (``weight_format``,
            ``max_units_per_pe``, ``clock_mhz``, ``spec``, ``machine``, ``record_steps``).
        custom_sync_domains, select_sub_proc_model, exception_proc_model_map, loglevel:
            as :class:`Loihi2SimCfg`.

    Attributes:
        chip: the :class:`ChipOptions` in use.
        mappings: the mappings made so far, keyed by the network's artifact ``id`` (one
            per network: every layer process of a network shares it).
    """

    def __init__(
        self,
        *,
        chip: ChipOptions | None = None,
        custom_sync_domains: list[SyncDomain] | None = None,
        select_sub_proc_model: bool = False,
        exception_proc_model_map: dict | None = None,
        loglevel: int = logging.WARNING,
        **chip_fields: Any,
    ) -> None:
        super().__init__(
            custom_sync_domains=custom_sync_domains,
            select_tag=SPINNAKER2_TAG,
            select_sub_proc_model=select_sub_proc_model,
            exception_proc_model_map=exception_proc_model_map,
            loglevel=loglevel,
        )
        if chip is not None and chip_fields:
            raise ValueError("give either chip=ChipOptions(...) or its fields, not both")
        self.chip = chip if chip is not None else ChipOptions(**chip_fields)
        self.mappings: dict[int, tuple[DeploymentArtifact, Any]] = {}

    def mapping_for(self, artifact: DeploymentArtifact) -> Any:
        """The mapping of ``artifact`` (made on first use, then shared)."""
        key = id(artifact)
        cached = self.mappings.get(key)
        if cached is None or cached[0] is not artifact:
            cached = (artifact, self.chip.map_network(artifact))
            self.mappings[key] = cached
        return cached[1]

    def select(
        self,
        process: AbstractProcess,
        proc_models: list[type[AbstractProcessModel]],
    ) -> type[AbstractProcessModel]:
        model = super().select(process, proc_models)
        if getattr(model, "needs_chip_mapping", False):
            context = process.proc_params.get("network_context")
            if context is None:
                context = NetworkContext(artifact=_single_layer_artifact(process), layer_index=0)
            mapping = self.mapping_for(context.artifact)
            for key, value in (
                ("chip_options", self.chip),
                ("chip_mapping", mapping),
                ("chip_layer_index", context.layer_index),
            ):
                process.proc_params.overwrite(key, value)
        return model


def _single_layer_artifact(process: AbstractProcess) -> DeploymentArtifact:
    """A one-layer network from a stand-alone EGRULayer's initial parameters."""
    from snn_egru.reference import EGRUParams

    # Copies: the Vars' initial values are the very objects the model will write into.
    params = EGRUParams(
        weight_ih=process.weight_ih.init.copy(),
        weight_hh=process.weight_hh.init.copy(),
        bias_ih=process.bias_ih.init.copy(),
        bias_hh=process.bias_hh.init.copy(),
        threshold=process.threshold.init.copy(),
    )
    return DeploymentArtifact(layers=[params], input_kind="features", readout_kind="none")
