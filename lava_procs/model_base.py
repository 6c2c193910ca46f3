"""The base class of every Python process model in ``lava_procs`` (imports Lava).

Lava 0.10 has two ways to hang when a process model raises during a time step:

1. its neighbours block for ever in ``recv()`` on a message it never sent, so the runtime
   service never hears back from them; and
2. after the runtime reports the error, ``Runtime.stop()`` waits for an answer from a
   runtime service that has already exited.

:class:`SafeStepModel` removes the first: a model computes all its outputs first and sends
them last; when the computation raises, it sends zero placeholders on every OutPort (so
every neighbour finishes the step), then raises :class:`~lava_procs.common.LavaModelError`
naming the process, the time step and the cause. The second is handled on the host by
:func:`lava_procs.run.stop_runtime`.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel

from lava_procs.common import MESSAGE_DTYPE, HostRecorder, LavaModelError

__all__ = ["SafeStepModel"]


class SafeStepModel(PyLoihiProcessModel):
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
        for key in ("recorder", "chip_recorder"):
            recorder = self.proc_params.get(key)
            if recorder is not None:
                found.append(recorder)
        return found

    def _host(self) -> None:
        # Lava sends the HOST phase to every model when a run's last step is done: ship the
        # records batched during the run, so the host can read all of them.
        super()._host()
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
            raise LavaModelError(
                f"{self.describe()} failed at Lava time step {self.time_step}: "
                f"{type(err).__name__}: {err}"
            ) from None
        for port_name in self.out_port_names:
            getattr(self, port_name).send(outputs[port_name])
