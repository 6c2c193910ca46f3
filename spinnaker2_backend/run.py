"""Old import path of the run result types; they live in :mod:`spinnaker2_backend.results`.

Kept so that ``from spinnaker2_backend.run import Run, RunReport`` keeps working. The
``run`` subcommand is in :mod:`spinnaker2_backend.cli`. Nothing inside the package imports
this module.
"""

from __future__ import annotations

from spinnaker2_backend import results
from spinnaker2_backend.results import *  # noqa: F403

__all__ = list(results.__all__)
