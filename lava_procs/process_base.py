"""The base class of every Process in ``lava_procs`` (imports Lava).

It smooths two rough edges of Lava 0.10's ``AbstractProcess``:

- ``__del__`` reads ``self._runtime``, which does not exist yet when a constructor rejects
  its arguments before calling ``AbstractProcess.__init__``; Python then prints an ignored
  ``AttributeError`` for every rejected process.
- ``__init__`` adds a new console handler to the *root* logger for every process, so a
  program that builds many graphs prints each logged line many times. We keep the root
  logger's handlers as they were.
"""

from __future__ import annotations

import logging

from lava.magma.core.process.process import AbstractProcess

__all__ = ["GuardedProcess"]


class GuardedProcess(AbstractProcess):
    """``AbstractProcess`` that can fail in its constructor cleanly and leaves logging alone."""

    def __init__(self, **proc_params) -> None:
        root = logging.getLogger()
        handlers_before = list(root.handlers)
        super().__init__(**proc_params)
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)

    def __del__(self) -> None:
        if getattr(self, "_runtime", None) is not None:
            super().__del__()
