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


#: The fork server of :func:`run_commands`: imports the heavy modules once, then runs each
#: command in a forked child as ``python -m MODULE ARGS`` would (``runpy``, ``__main__``).
_FORK_SERVER = r"""
import atexit, gc, json, os, runpy, sys, threading, time
for name in sys.argv[1:]:
    __import__(name)
gc.freeze()  # the preloaded objects: never scanned by the children's collections
cases = json.loads(sys.stdin.readline())
jobs, timeout = int(os.environ["_FORK_JOBS"]), float(os.environ["_FORK_TIMEOUT"])
null = os.open(os.devnull, os.O_RDONLY)
running, status, pending = {}, {}, list(enumerate(cases))
sys.stdout.flush(); sys.stderr.flush()
while pending or running:
    while pending and len(running) < jobs:
        index, case = pending.pop(0)
        pid = os.fork()
        if pid == 0:  # the command: it ends the process itself (SystemExit or a traceback)
            os.chdir(case["cwd"])
            for fd, path in ((1, case["stdout"]), (2, case["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            os.dup2(null, 0)
            os.setpgid(0, 0)
            sys.argv = [case["module"], *case["args"]]
            for loaded in (case["module"], case["module"] + ".__main__"):
                sys.modules.pop(loaded, None)  # run as __main__, as `python -m` does
            code = 0
            try:
                runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
            except SystemExit as stop:
                code = stop.code
            except BaseException:
                sys.excepthook(*sys.exc_info())
                code = 1
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
            # the interpreter's exit less its module teardown (seconds in a copy of a process
            # holding torch): wait for the threads, collect the command's garbage (a leaked
            # object's __del__ that fails prints "Exception ignored" as at a real exit), run
            # the atexit functions, flush
            threading._shutdown()
            gc.collect()
            atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)
        running[pid] = (index, time.monotonic() + timeout, time.monotonic())
    pid, code = os.waitpid(-1, os.WNOHANG)
    if pid == 0:
        for late, (index, deadline, _) in list(running.items()):
            if time.monotonic() > deadline:
                os.killpg(late, 9)
        time.sleep(0.01)
        continue
    index, _, began = running.pop(pid)
    status[index] = (os.waitstatus_to_exitcode(code), time.monotonic() - began)
    try:
        os.killpg(pid, 9)  # whatever the command left running
    except OSError:
        pass
print(json.dumps([status[i] for i in range(len(cases))]))
"""


def run_commands(
    commands: list[tuple[list[str], str | os.PathLike]],
    *,
    preload: tuple[str, ...] = (),
    jobs: int = 3,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> list[subprocess.CompletedProcess]:
    """Run many ``[sys.executable, "-m", MODULE, *ARGS]`` commands, each in ``cwd``, cheaply.

    Each command runs in a process of its own, forked from one server interpreter that
    imported ``preload`` (e.g. torch) once: its own exit status, stdout and stderr (real
    file descriptors), working folder and process state, as a user's ``python -m`` run, but
    without paying the imports again (seconds per command on a small machine). ``jobs``
    run at a time; one that overruns ``timeout`` is killed (status -9). Each result has
    ``.seconds``, the command's wall time.
    """
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fork-runs-") as scratch:
        cases = []
        for i, (cmd, cwd) in enumerate(commands):
            if cmd[:2] != [sys.executable, "-m"]:
                raise ValueError(f"run_commands runs `python -m MODULE ...` commands, not {cmd}")
            cases.append(
                {
                    "module": cmd[2],
                    "args": cmd[3:],
                    "cwd": str(cwd),
                    "stdout": os.path.join(scratch, f"{i}.out"),
                    "stderr": os.path.join(scratch, f"{i}.err"),
                }
            )
        server = subprocess.run(
            [sys.executable, "-c", _FORK_SERVER, *preload],
            input=json.dumps(cases) + "\n",
            capture_output=True,
            text=True,
            env={
                **os.environ,
                **(env or {}),
                "_FORK_JOBS": str(jobs),
                "_FORK_TIMEOUT": str(timeout),
            },
            timeout=timeout * (len(cases) / max(jobs, 1) + 2),
            check=False,
        )
        if server.returncode != 0:
            raise RuntimeError(f"the fork server failed: {server.stderr[-3000:]}")
        statuses = json.loads(server.stdout.strip().splitlines()[-1])
        done = []
        for (cmd, _), case, (status, seconds) in zip(commands, cases, statuses):
            with open(case["stdout"], encoding="utf-8", errors="replace") as out:
                stdout = out.read()
            with open(case["stderr"], encoding="utf-8", errors="replace") as err:
                stderr = err.read()
            result = subprocess.CompletedProcess(cmd, status, stdout, stderr)
            result.seconds = seconds  # type: ignore[attr-defined]  # wall time of the command
            done.append(result)
        return done
