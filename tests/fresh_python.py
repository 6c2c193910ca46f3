"""Running a piece of Python in a fresh interpreter, for tests of import order, import
hygiene and process-wide state that one pytest process cannot show."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def run_python(
    code: str, *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a new interpreter, its output captured as text; ``env``: variables
    set on top of this process's environment. Never raises on a non-zero exit status.

    The interpreter runs in a session of its own: when it ends, or overruns ``timeout``
    (``subprocess.TimeoutExpired`` is raised then), every process it started (Lava's model
    processes, a multiprocessing manager) is killed with it, so nothing outlives the test.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(child.pid)
        out, err = child.communicate()
        raise subprocess.TimeoutExpired(child.args, timeout, out, err) from None
    finally:
        _kill_session(child.pid)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _kill_session(pid: int) -> None:
    """SIGKILL to every process left in the session (process group) of ``pid``."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
