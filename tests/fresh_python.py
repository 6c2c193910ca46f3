"""Running a piece of Python in a fresh interpreter, for tests of import order, import
hygiene and process-wide state that one pytest process cannot show."""

from __future__ import annotations

import os
import subprocess
import sys


def run_python(
    code: str, *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a new interpreter, its output captured as text; ``env``: variables
    set on top of this process's environment. Never raises on a non-zero exit status."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
