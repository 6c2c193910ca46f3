"""snn_egru: the EGRU (event-based GRU) for snnTorch/PyTorch, and its torch-free reference.

Layer: core of snn_egru (torch-free; what spinnaker2_backend and lava_procs may import).
Two layers (docs/architecture.md): the torch-free core that the chip side imports
    snn_egru.reference   the numpy EGRU step every backend is tested against
    snn_egru.artifact    the deployment artifact (training -> chip contract)
    snn_egru.errors, snn_egru.cliargs   user errors and the shared command-line parts
and the application on top (training, export, cli, pipeline), which imports the backend
and Lava.

Torch parts are imported lazily on first use (``snn_egru.EGRU`` etc.), so that
``import snn_egru.reference`` never loads torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from snn_egru.artifact import DeploymentArtifact, load_artifact
from snn_egru.reference import EGRUParams, EGRUState, egru_step

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    "EGRU": "snn_egru.neuron",
    "use_with_snntorch": "snn_egru.neuron",
    "EGRUSequence": "snn_egru.sequence",
    "egru_step_torch": "snn_egru.functional",
    "EGRUSpike": "snn_egru.functional",
    "triangle": "snn_egru.functional",
    "EGRULanguageModel": "snn_egru.models.lm",
    "DVSGestureNet": "snn_egru.models.dvs",
    "export_artifact": "snn_egru.export",
}

__all__ = [
    "DeploymentArtifact",
    "EGRUParams",
    "EGRUState",
    "egru_step",
    "load_artifact",
    *_LAZY,
]


def lazy_exports(
    package: str, lazy: dict[str, str], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose names ``lazy`` (name ->
    the module that defines it) are imported on first use, then kept in the package;
    ``dir()`` lists ``public`` (its ``__all__``)."""

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
