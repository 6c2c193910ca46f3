"""spinnaker2_backend: a simulated SpiNNaker2 chip that maps, runs and measures EGRU networks.

numpy/scipy (and numba for the simulator kernels) only; no torch, no Lava.

Mapping (partition -> place -> route -> lay out memory -> check)::

    from spinnaker2_backend import ChipSpec, Machine, map_network, MappingError
    mapping = map_network("model.npz", weight_format="csr", record_steps=70)
    print(mapping.report().table())

Running (the simulated chip; see :mod:`spinnaker2_backend.simulator`; a mapping is data,
running it is the simulator's)::

    from spinnaker2_backend.simulator import run_mapping
    result = run_mapping(mapping, token_ids)

Command line: ``python -m spinnaker2_backend map --help``.

Layout and import rules: ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import (
    WEIGHT_FORMATS,
    CSRWeights,
    DenseWeights,
    EventWeights,
    PEWeights,
)
from spinnaker2_backend.machine import Machine, PECoordinates
from spinnaker2_backend.mapping import (
    LayerPlacement,
    Mapping,
    MappingError,
    MappingReport,
    MemoryLayout,
    PESlice,
    map_network,
)
from spinnaker2_backend.synthetic import PRESETS, synthetic_network

__all__ = [
    "PRESETS",
    "WEIGHT_FORMATS",
    "CSRWeights",
    "ChipSpec",
    "DenseWeights",
    "EventWeights",
    "LayerPlacement",
    "Machine",
    "Mapping",
    "MappingError",
    "MappingReport",
    "MemoryLayout",
    "PECoordinates",
    "PESlice",
    "PEWeights",
    "map_network",
    "synthetic_network",
]

# ---------------------------------------------------------------------------------------
# Names of the RUNNING half (simulator, time and energy models), imported on first use so
# that mapping works on its own. Add a name here as ``"Name": "module"`` to export it.
# ---------------------------------------------------------------------------------------
_LAZY: dict[str, str] = {
    "run_mapping": "spinnaker2_backend.simulator",
    "NetworkSimulator": "spinnaker2_backend.simulator",
    "LayerSimulator": "spinnaker2_backend.simulator",
    "CycleCosts": "spinnaker2_backend.constants",
    "EnergyCosts": "spinnaker2_backend.constants",
    "LayerStepResult": "spinnaker2_backend.simulator",
    "NetworkStepResult": "spinnaker2_backend.simulator",
    "Run": "spinnaker2_backend.results",
    "RunReport": "spinnaker2_backend.results",
    "GpuFigure": "spinnaker2_backend.results",
    "PUBLISHED_A100": "spinnaker2_backend.results",
    "LayerCounters": "spinnaker2_backend.results",
    "NetworkCounters": "spinnaker2_backend.results",
    "Profile": "spinnaker2_backend.timing",
    "EnergyEstimate": "spinnaker2_backend.energy",
    "estimate_energy": "spinnaker2_backend.energy",
    "calibrate": "spinnaker2_backend.calibration",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spinnaker2_backend' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY])
