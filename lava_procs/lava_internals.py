"""Every use of a private part of Lava (lava-nc 0.10) in ``lava_procs``, in one place.

Lava 0.10 has no public API for these; each function says what it needs and why. The rest
of the package goes through these functions only, and
``tests/lava_procs/test_lava_internals.py`` checks, on a real runtime, that every attribute
used here still exists with the expected type: after a Lava upgrade that test fails first,
naming the attribute, instead of a run hanging.

What is private and why it is needed:

- the exceptions the model processes raised (``Runtime._messaging_infrastructure.actors``
  and ``SystemProcess.exception``): Lava only logs them at INFO and raises "1 Exception(s)
  occurred. See output above", so the caller would never see the model's own message;
- whether a runtime is started (``Runtime._is_started``) and a STOP without the handshake
  (``_is_running``, ``_is_started``, ``join``, the shared-memory manager and the watchdog
  manager): after a model error Lava's ``Runtime.stop()`` waits for ever for an answer from a
  runtime service that has already exited;
- whether a non-blocking run is done without blocking (``Runtime.service_to_runtime``
  ports' ``probe``): ``Runtime.wait()`` blocks without a timeout;
- the HOST phase of a Python process model (``PyLoihiProcessModel._host``): the one moment
  a model knows a run has ended (to ship what it batched during the run);
- ``AbstractProcess._runtime`` before ``AbstractProcess.__init__`` ran (a constructor
  that rejects its arguments early).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from lava.magma.core.model.py.model import PyLoihiProcessModel

__all__ = [
    "TESTED_LAVA_VERSION",
    "HostPhaseModel",
    "force_stop",
    "has_runtime_attr",
    "installed_lava_version",
    "is_started",
    "model_errors",
    "run_finished",
    "safe_stop",
]

#: The Lava release these internals were read from and tested against.
TESTED_LAVA_VERSION = "0.10.0"

#: Attributes of ``lava.magma.runtime.runtime.Runtime`` this module uses (checked by test).
RUNTIME_ATTRIBUTES: tuple[str, ...] = (
    "_messaging_infrastructure",
    "_is_started",
    "_is_running",
    "_watchdog_manager",
    "service_to_runtime",
    "join",
)
#: Attributes of Lava's multiprocessing message infrastructure and of its actors.
INFRASTRUCTURE_ATTRIBUTES: tuple[str, ...] = ("actors", "smm", "stop")
ACTOR_ATTRIBUTES: tuple[str, ...] = ("exception", "_is_done", "is_alive", "terminate")


def installed_lava_version() -> str:
    """The installed ``lava-nc`` version."""
    return importlib.metadata.version("lava-nc")


def has_runtime_attr(process: Any) -> bool:
    """True once ``AbstractProcess.__init__`` has set ``_runtime`` (for ``__del__``)."""
    return getattr(process, "_runtime", None) is not None


def is_started(runtime: Any) -> bool:
    """True while the runtime's model processes run (between start and stop)."""
    return bool(getattr(runtime, "_is_started", False))


def model_errors(runtime: Any) -> list[BaseException]:
    """The exceptions raised inside the model processes of ``runtime`` (may be empty).

    Lava keeps them on its actor processes (``SystemProcess.exception``: ``(error,
    traceback)``) and only logs the traceback at INFO.
    """
    infra = getattr(runtime, "_messaging_infrastructure", None)
    errors = []
    for actor in getattr(infra, "actors", None) or []:
        try:
            info = actor.exception
        except (OSError, ValueError, EOFError):  # pipe already closed
            info = None
        if info:
            errors.append(info[0])
    return errors


def run_finished(runtime: Any) -> bool:
    """True when every runtime service has answered the current run (never blocks)."""
    return any(port.probe() for port in runtime.service_to_runtime)


#: Seconds a model process gets to exit after SIGTERM before it is killed (SIGKILL).
_TERMINATE_GRACE_S = 5.0


def force_stop(runtime: Any) -> None:
    """Lava's ``Runtime.stop()`` without the STOP handshake (which would wait for ever
    after a model error): terminate the model processes, join them, release the shared
    memory and the watchdogs. Safe to call more than once; never waits without a bound.

    Lava's own ``SystemProcess.join`` waits for the process without a limit and then reads
    its exception from a pipe whose writing end the host also holds: a process killed while
    it sent its exception leaves half a message, and that read would wait for ever. Here
    each process gets :data:`_TERMINATE_GRACE_S` after SIGTERM, then SIGKILL; the host's
    copy of the writing end is closed before the exception is read (a half message then
    reads as end of file), and the actor is marked joined so Lava does not wait again.
    """
    infra = getattr(runtime, "_messaging_infrastructure", None)
    actors = list(getattr(infra, "actors", None) or [])
    for actor in actors:
        if not getattr(actor, "_is_done", False) and actor.is_alive():
            actor.terminate()
    for actor in actors:
        _reap(actor)
    runtime._is_running = False
    runtime._is_started = False
    try:
        runtime.join()
    finally:
        if infra is not None and infra.smm is not None:
            infra.stop()
        if runtime._watchdog_manager is not None:
            runtime._watchdog_manager.stop()


def _reap(actor: Any) -> None:
    """Join one terminated Lava actor process within a bound (see :func:`force_stop`)."""
    import os
    from multiprocessing.process import BaseProcess

    if getattr(actor, "_is_done", True) or getattr(actor, "_parent_pid", None) != os.getpid():
        return
    BaseProcess.join(actor, _TERMINATE_GRACE_S)  # not Lava's join: that one has no bound
    if actor.is_alive():
        actor.kill()
        BaseProcess.join(actor)
    exception = None
    try:
        actor._cconn.close()  # the host's copy: a half-sent message now ends in EOF
        if actor._pconn.poll():
            exception = actor._pconn.recv()
    except (OSError, EOFError, ValueError):
        exception = None
    finally:
        actor._pconn.close()
    if exception is not None:
        actor._exception = exception
    actor._is_done = True


def safe_stop(runtime: Any, *, force: bool = False) -> None:
    """Stop ``runtime``: Lava's ``stop()`` while every model is healthy, else (or with
    ``force``) :func:`force_stop`. Never waits for ever."""
    if not force and not model_errors(runtime) and is_started(runtime):
        runtime.stop()
        return
    force_stop(runtime)


class HostPhaseModel(PyLoihiProcessModel):
    """A ``PyLoihiProcessModel`` told when a run's last step is done (:meth:`on_run_end`).

    Lava sends the HOST phase to every model when a run ends (before the host may read or
    set Vars); it calls the private ``_host``, which this class extends.
    """

    def on_run_end(self) -> None:
        """Called in the model's process when a run's last step is done."""

    def _host(self) -> None:
        super()._host()
        self.on_run_end()
