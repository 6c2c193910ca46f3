"""User-facing errors: raised for mistakes a user can fix; the CLI prints them as one line.

Layer: core of snn_egru (torch-free; what spinnaker2_backend and lava_procs may import).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (missing data, bad file, model does not fit, ...).

    The message names the problem and the fix; the CLI prints it without a traceback.
    """


class ArtifactError(ValueError):
    """A deployment artifact (or file) is malformed; the message says what and how to fix it.

    (Defined here so that every core module of the artifact can raise it; import it from
    :mod:`snn_egru.artifact`.)"""
