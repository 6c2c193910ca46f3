"""The base class of every Python process model in ``lava_procs`` (imports Lava).

Lava 0.10 has two ways to hang when a process model raises during a time step:

1. its neighbours block for ever in ``recv()`` on a message it never sent, so the runtime
   service never hears back from them; and
2. after the runtime reports the error, ``Runtime.stop()`` waits for an answer from a
   runtime service that has already exited.

:class:`SafeStepModel` removes the first: a model computes all its outputs first and sends
them last; when the computation raises, it sends zero placeholders on every OutPort (so
every neighbour finishes the step), then raises :class:`~lava_procs.common.LavaModelError`
naming the process, the time step and the cause; it also logs that message at ERROR on
the ``lava_procs.models`` logger in its own process (Lava itself logs model tracebacks at INFO
only), so the cause reaches stderr whichever process the user called ``run`` on. The
second is handled on the host by :func:`lava_procs.run.stop_runtime` (and by
:class:`~lava_procs.process_base.GuardedProcess`, whose ``run`` re-raises the model's
message).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_procs.common import MESSAGE_DTYPE, HostRecorder, LavaModelError
from lava_procs.lava_internals import HostPhaseModel

__all__ = ["HOST_TAGS", "SafeStepModel", "host_cpu_model", "quiet_model_errors"]

#: the tags of a model that runs on the host CPU whatever the layers run on: either RunConfig
#: of ``lava_procs.run_configs`` selects it
HOST_TAGS = ("floating_pt", "spinnaker2")


def host_cpu_model(proc, *tags: str):
    """Lava's ``@implements(proc=proc, protocol=LoihiProtocol)``, ``@requires(CPU)`` and
    ``@tag(*tags)`` in one decorator: a Python model of ``proc`` on the host CPU, stepped by
    the Loihi protocol, selected by ``tags``."""

    def decorate(cls):
        return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(*tags)(cls)))

    return decorate


#: Model errors are logged here, in the model's process. Entry points that re-raise the
#: message themselves (:class:`lava_procs.run.LavaNetworkSession`) disable it in the models
#: they start (see :func:`quiet_model_errors`), so a message is shown once.
logger = logging.getLogger("lava_procs.models")


# One handler of its own, not the root logger's: every stock Lava process adds a console
# handler to the root logger, which would print each message once per process built.
class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not at import)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False


@contextmanager
def quiet_model_errors() -> Iterator[None]:
    """Model processes forked inside this block do not log their errors (the caller
    re-raises them with the same message)."""
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


class SafeStepModel(HostPhaseModel):
    """A PyLoihiProcessModel whose failed steps never leave a neighbour waiting.

    Subclasses list their OutPorts in :attr:`out_port_names` and implement
    :meth:`compute_step`, which receives the inputs, updates the state and returns one
    message per OutPort. :meth:`run_spk` sends them (or placeholders when it raised).
    """

    #: names of the model's OutPorts; every one of them is sent on every time step
    out_port_names: tuple[str, ...] = ()

    def compute_step(self) -> dict[str, np.ndarray]:
        """Receive this step's inputs, update state, return ``{out_port_name: message}``."""
        raise NotImplementedError

    def recorders(self) -> list[HostRecorder]:
        """The host recorders this model writes to (flushed at the end of every run)."""
        found = []
        for key in ("recorder", "chip_recorder", "event_recorder"):
            recorder = self.proc_params.get(key)
            if recorder is not None:
                found.append(recorder)
        return found

    def on_run_end(self) -> None:
        # A run's last step is done: ship the records batched during the run, so the host
        # can read all of them.
        for recorder in self.recorders():
            recorder.flush()

    def describe(self) -> str:
        """How error messages name this process (class and Lava name)."""
        name = self.proc_params.get("name") or "unnamed"
        return f"{self.implements_process.__name__} {name!r}"

    def run_spk(self) -> None:
        try:
            outputs = self.compute_step()
        except Exception as err:
            for port_name in self.out_port_names:
                port = getattr(self, port_name)
                port.send(np.zeros(port.shape, dtype=MESSAGE_DTYPE))
            message = (
                f"{self.describe()} failed at Lava time step {self.time_step}: "
                f"{type(err).__name__}: {err}"
            )
            logger.error("%s", message)
            raise LavaModelError(message) from None
        for port_name in self.out_port_names:
            getattr(self, port_name).send(outputs[port_name])
