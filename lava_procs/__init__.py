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
``fork``, so ``import lava_procs`` alone does not import it. Lava 0.10 sets it with
``multiprocessing.set_start_method("fork")``, which raises ``RuntimeError: context has
already been set`` when anything in the process used multiprocessing first (tqdm's
progress bar, used by the SpiNNaker2 simulator, creates a lock): ``import lava_procs``
installs an import hook that lets that one call of Lava's re-set the method to ``fork``
(``force=True``), so Lava and the simulator work in one process in either order.

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
import importlib.abc
import importlib.machinery
import multiprocessing
import sys
import warnings

from snn_egru import lazy_exports

#: Lava's module that calls ``multiprocessing.set_start_method("fork")`` on import.
_LAVA_MP_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


class _ForkStartMethodLoader(importlib.abc.Loader):
    """Runs Lava's module with ``set_start_method(..., force=True)`` when the start method
    was already fixed (else exactly as Lava does)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        current = multiprocessing.get_start_method(allow_none=True)
        if current is None:
            self._loader.exec_module(module)
            return
        if current != "fork":
            warnings.warn(
                f"lava_procs: Lava 0.10 runs its process models in forked processes; the "
                f"multiprocessing start method {current!r} set earlier is changed to 'fork'",
                RuntimeWarning,
                stacklevel=2,
            )
        original = multiprocessing.set_start_method

        def set_start_method(method: str, force: bool = False) -> None:
            original(method, force=True)

        multiprocessing.set_start_method = set_start_method  # type: ignore[assignment]
        try:
            self._loader.exec_module(module)
        finally:
            multiprocessing.set_start_method = original  # type: ignore[assignment]


class _LavaStartMethodFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of :data:`_LAVA_MP_MODULE` only; every other import is untouched."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _LAVA_MP_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ForkStartMethodLoader(spec.loader)
        return spec


if _LAVA_MP_MODULE not in sys.modules and not any(
    isinstance(finder, _LavaStartMethodFinder) for finder in sys.meta_path
):
    sys.meta_path.insert(0, _LavaStartMethodFinder())

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
