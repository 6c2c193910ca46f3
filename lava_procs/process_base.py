"""The base class of every Process in ``lava_procs`` (imports Lava).

It smooths the rough edges of Lava 0.10's ``AbstractProcess`` for the graphs a user wires
by hand (stock Lava processes and ours, ``process.run(...)`` called on any of ours):

- **errors reach the caller.** When a process model raises, Lava logs the model's
  traceback at INFO and raises ``RuntimeError: 1 Exception(s) occurred. See output above``
  with nothing above; and its ``stop()`` then waits for ever. :meth:`GuardedProcess.run`,
  :meth:`~GuardedProcess.wait` and :meth:`~GuardedProcess.create_runtime` catch that, stop
  the graph by force and raise :class:`~lava_procs.common.LavaRunError` whose message is
  the model's own (process, time step, cause); :meth:`~GuardedProcess.stop` never hangs
  (it stops by force when a model has failed). Our models also log the message at ERROR in
  their own process (see :mod:`lava_procs.model_base`), so it reaches stderr even when
  ``run`` was called on a stock Lava process.
- **the chip model needs the chip's run config**: compiling with
  ``Loihi2SimCfg(select_tag="spinnaker2")`` raises a ValueError naming
  :class:`~lava_procs.run_configs.SpiNNaker2SimCfg` (the config that maps the network
  onto the chip), before any model process starts.
- ``__del__`` reads ``self._runtime``, which does not exist yet when a constructor rejects
  its arguments before calling ``AbstractProcess.__init__``; Python then prints an ignored
  ``AttributeError`` for every rejected process.
- ``__init__`` adds a new console handler to the *root* logger for every process, so a
  program that builds many graphs prints each logged line many times. We keep the root
  logger's handlers as they were.
"""

from __future__ import annotations

import logging
from typing import Any

from lava.magma.core.process.process import AbstractProcess

from lava_procs import lava_internals
from lava_procs.common import SPINNAKER2_TAG, LavaRunError

__all__ = ["GuardedProcess", "check_run_config", "raise_model_errors"]


def check_run_config(run_cfg: Any) -> None:
    """Reject a run config that selects the chip models without mapping the chip.

    Raises:
        ValueError: ``run_cfg`` selects tag ``"spinnaker2"`` but is not a
            ``SpiNNaker2SimCfg`` (nothing would map the network onto the chip).
    """
    if getattr(run_cfg, "select_tag", None) == SPINNAKER2_TAG and not getattr(
        run_cfg, "maps_chip", False
    ):
        raise ValueError(
            f"{type(run_cfg).__name__}(select_tag={SPINNAKER2_TAG!r}) selects the simulated "
            "chip's models but nothing maps the network onto the chip: use "
            "lava_procs.SpiNNaker2SimCfg(...) (chip options as keywords, e.g. "
            "weight_format='csr'), which also runs stock Lava processes on their "
            "floating_pt models"
        )


def raise_model_errors(process: AbstractProcess, error: BaseException) -> None:
    """After Lava raised ``error`` while running ``process``'s graph: stop the graph by
    force and raise a :class:`LavaRunError` carrying the models' own messages (or
    ``error`` itself when no model failed)."""
    runtime = process.runtime
    errors = lava_internals.model_errors(runtime) if runtime is not None else []
    if runtime is not None:
        lava_internals.force_stop(runtime)
    if errors:
        causes = "; ".join(str(e) for e in errors)
        raise LavaRunError(f"Lava run failed: {causes}", errors) from errors[0]
    raise error


class GuardedProcess(AbstractProcess):
    """``AbstractProcess`` whose runs report model errors, whose ``stop`` never hangs, that
    can fail in its constructor cleanly and leaves logging alone."""

    def __init__(self, **proc_params) -> None:
        root = logging.getLogger()
        handlers_before = list(root.handlers)
        super().__init__(**proc_params)
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)

    def compile(self, run_cfg: Any, compile_config: dict[str, Any] | None = None) -> Any:
        check_run_config(run_cfg)
        return super().compile(run_cfg, compile_config)

    def create_runtime(
        self,
        run_cfg: Any = None,
        executable: Any = None,
        compile_config: dict[str, Any] | None = None,
    ) -> None:
        try:
            super().create_runtime(
                run_cfg=run_cfg, executable=executable, compile_config=compile_config
            )
        except Exception as err:
            if self.runtime is None:
                raise
            # a model failed while it was built: its message, and no process left running
            lava_internals.force_stop(self.runtime)
            raise LavaRunError(
                f"could not start the Lava graph of {self.name!r}: {type(err).__name__}: {err}",
                [err],
            ) from err

    def run(
        self,
        condition: Any,
        run_cfg: Any = None,
        compile_config: dict[str, Any] | None = None,
    ) -> None:
        try:
            super().run(condition, run_cfg=run_cfg, compile_config=compile_config)
        except LavaRunError:
            raise
        except Exception as err:
            raise_model_errors(self, err)

    def wait(self) -> None:
        try:
            super().wait()
        except Exception as err:
            raise_model_errors(self, err)

    def stop(self) -> None:
        """Stop the graph's runtime; by force when a model has failed (never hangs)."""
        if self.runtime is not None:
            lava_internals.safe_stop(self.runtime)

    def __del__(self) -> None:
        if lava_internals.has_runtime_attr(self):
            super().__del__()
