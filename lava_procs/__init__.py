"""lava_procs: the EGRU as Lava (lava-nc 0.10) processes.

Process models: tag ``floating_pt`` (numpy reference) and tag ``spinnaker2`` (the simulated
chip of ``spinnaker2_backend``). No torch in this package.

Main entry point::

    from lava_procs import run_network
    result = run_network(artifact, token_ids, backend="spinnaker2", weight_format="csr")
    result.logits, result.layer_events, result.states, result.chip

Hand-wired graphs with Lava's stock processes (``RingBuffer``, ``Dense``, ``LIF``,
``Monitor``) run under both configs (stock processes fall back to their ``floating_pt``
models under ``SpiNNaker2SimCfg``); start and stop them safely with::

    with running_graph(source, SpiNNaker2SimCfg()) as graph:
        run_steps(graph, 100, timeout_s=60)

Names are imported lazily: importing Lava sets the multiprocessing start method to
``fork``, so ``import lava_procs`` alone does not import it.

Public names (module):
    EGRULayer (egru_layer.process), EGRUNetwork (network.process),
    EmbeddingSource, FeatureSource, Readout, HostSink (io.process),
    FloatingPtSimCfg, SpiNNaker2SimCfg, ChipOptions, ChipNetwork, ChipMappingWarning
    (run_configs),
    run_network, make_run_config, LavaRunResult, LavaNetworkSession, StepOutputs,
    running_graph, run_steps, stop_runtime (run),
    assemble_chip_run (chip_report), LavaRunError, LavaModelError, NetworkContext (common).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "EGRULayer": "lava_procs.egru_layer.process",
    "EGRUNetwork": "lava_procs.network.process",
    "EmbeddingSource": "lava_procs.io.process",
    "FeatureSource": "lava_procs.io.process",
    "Readout": "lava_procs.io.process",
    "HostSink": "lava_procs.io.process",
    "FloatingPtSimCfg": "lava_procs.run_configs",
    "SpiNNaker2SimCfg": "lava_procs.run_configs",
    "ChipOptions": "lava_procs.run_configs",
    "ChipNetwork": "lava_procs.run_configs",
    "ChipMappingWarning": "lava_procs.run_configs",
    "run_network": "lava_procs.run",
    "make_run_config": "lava_procs.run",
    "LavaRunResult": "lava_procs.run",
    "LavaNetworkSession": "lava_procs.run",
    "StepOutputs": "lava_procs.run",
    "stop_runtime": "lava_procs.run",
    "running_graph": "lava_procs.run",
    "run_steps": "lava_procs.run",
    "assemble_chip_run": "lava_procs.chip_report",
    "LavaRunError": "lava_procs.common",
    "LavaModelError": "lava_procs.common",
    "NetworkContext": "lava_procs.common",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lava_procs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
