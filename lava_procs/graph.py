"""Start, run and stop a Lava graph of any processes (ours or Lava's stock ones), safely.

- :func:`running_graph`: compile and start a graph; stop it when the block ends, always.
- :func:`run_steps`: run a started graph for some steps, with a time limit.
- :func:`stop_runtime`: stop a Lava runtime, by force where Lava's own ``stop()`` would
  wait for ever.
- :func:`lif_float_reference`: Lava's stock floating-point LIF in numpy, to check a graph
  that ends in a ``LIF`` process.

:mod:`lava_procs.run` builds the EGRU network's sessions on these.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import RunConfig

from lava_procs import lava_internals
from lava_procs.common import LavaRunError
from lava_procs.process_base import check_run_config, raise_model_errors

__all__ = ["lif_float_reference", "run_steps", "running_graph", "stop_runtime"]

#: Polling interval bounds (s) while waiting for a non-blocking Lava run to finish.
_POLL_MIN_S = 0.0002
_POLL_MAX_S = 0.01


# ----------------------------------------------------------------------------- stopping
def stop_runtime(process: AbstractProcess, *, force: bool = False) -> None:
    """Stop the Lava runtime of ``process`` (and its graph); safe to call more than once.

    Works for any process of the graph, ours or Lava's stock ones; use it (or
    :func:`running_graph`) instead of a stock process's ``stop()``, which waits for ever
    after a model error.

    Args:
        process: any process of the graph.
        force: skip Lava's STOP handshake: terminate the model processes, release the
            shared memory. Done anyway when a model has failed (Lava's runtime service has
            already exited, so ``Runtime.stop()`` would wait for ever); pass ``True`` after
            a timeout or an interrupt.
    """
    if process.runtime is not None:
        lava_internals.safe_stop(process.runtime, force=force)


@contextmanager
def running_graph(
    process: AbstractProcess, run_cfg: RunConfig, *, compile_config: dict | None = None
) -> Iterator[AbstractProcess]:
    """Compile and start the graph of ``process``; stop it when the block ends, always.

    The safe pattern for a graph wired by hand (stock Lava processes and ours)::

        with running_graph(ring_buffer, SpiNNaker2SimCfg()) as graph:
            run_steps(graph, 20, timeout_s=60)
            values = monitor.get_data()      # read Vars/monitors before the block ends

    On an error inside the block (a model failure, a timeout, KeyboardInterrupt) the graph
    is stopped by force, so nothing is left running and nothing hangs.
    """
    check_run_config(run_cfg)
    try:
        process.create_runtime(run_cfg=run_cfg, compile_config=compile_config)
    except Exception as err:
        if process.runtime is None:
            raise
        errors = lava_internals.model_errors(process.runtime)
        lava_internals.force_stop(process.runtime)
        if isinstance(err, LavaRunError):
            raise
        raise LavaRunError(
            f"could not start the Lava graph of {process.name!r}: {type(err).__name__}: {err}",
            errors or [err],
        ) from err
    healthy = False
    try:
        yield process
        healthy = True
    finally:
        stop_runtime(process, force=not healthy)


def run_steps(process: AbstractProcess, num_steps: int, *, timeout_s: float | None = None) -> None:
    """Run the (started) graph of ``process`` for ``num_steps`` steps, with a time limit.

    Raises:
        LavaRunError: a process model raised; the message is the model's own (process,
            time step, cause). The graph is stopped by force.
        TimeoutError: the run took longer than ``timeout_s``; the graph is stopped by force.
    """
    runtime = process.runtime
    if runtime is None:
        raise RuntimeError("the graph has no runtime: start it first (running_graph)")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    process.run(condition=RunSteps(num_steps=int(num_steps), blocking=False))
    poll = _POLL_MIN_S
    while not lava_internals.run_finished(runtime):
        if deadline is not None and time.monotonic() > deadline:
            lava_internals.force_stop(runtime)
            raise TimeoutError(
                f"Lava run of {num_steps} steps did not finish within {timeout_s} s "
                "(the graph is stopped)"
            )
        time.sleep(poll)
        poll = min(poll * 2, _POLL_MAX_S)
    try:
        runtime.wait()
    except Exception as err:
        raise_model_errors(process, err)


def lif_float_reference(current: np.ndarray, *, du: float, dv: float, vth: float) -> np.ndarray:
    """Lava's floating-point LIF (``lava.proc.lif.models.PyLifModelFloat``, no bias) in
    numpy, step by step: ``(T, N)`` input currents ``a_in`` -> ``(T, N)`` voltages ``v``
    (``u = u (1 - du) + a_in``, ``v = v (1 - dv) + u``, reset to 0 above ``vth``)."""
    u = np.zeros(current.shape[1])
    v = np.zeros(current.shape[1])
    out = []
    for a_in in current:
        u = u * (1 - du) + a_in
        v = v * (1 - dv) + u
        v[v > vth] = 0.0
        out.append(v.copy())
    return np.stack(out)
