"""Every Lava test runs under a time limit, and nothing a test starts outlives it."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.fresh_python import run_python
from tests.lava_procs.conftest import LAVA_TEST_TIMEOUT_S


def test_every_lava_test_has_a_time_limit(request) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args[0] == LAVA_TEST_TIMEOUT_S
    assert marker.kwargs.get("method") == "signal"


def test_a_hung_fresh_interpreter_leaves_nothing_running() -> None:
    """run_python's time limit kills the interpreter and the processes it started."""
    code = (
        "import multiprocessing, time\n"
        "p = multiprocessing.get_context('fork').Process(target=time.sleep, args=(300,))\n"
        "p.start(); print(p.pid, flush=True); time.sleep(300)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        run_python(code, timeout=5)
    pid = int(caught.value.stdout.split()[0])
    assert _ended(pid), f"process {pid} still running"


def _ended(pid: int, within_s: float = 30.0) -> bool:
    """True once ``pid`` is gone or a zombie (SIGKILL is delivered asynchronously: on a
    loaded machine the process may take a moment to die)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True)
        if state.stdout.strip()[:1] in (b"", b"Z"):
            return True
        time.sleep(0.1)
    return False
