"""The helpers that run commands in fresh processes behave as ``python -m`` does."""

from __future__ import annotations

import sys

from tests.fresh_python import run_commands


def test_forked_commands_behave_as_python_m(tmp_path) -> None:
    """Exit status, stdout, stderr (a traceback too), working folder, __main__, and an
    "Exception ignored" of a leaked object's failing __del__, as a fresh interpreter shows."""
    (tmp_path / "probe_mod.py").write_text(
        "import os, sys\n"
        "class Leak:\n"
        "    def __del__(self):\n"
        "        raise ValueError('del failed')\n"
        "if __name__ == '__main__':\n"
        "    print('cwd', os.getcwd(), 'argv', sys.argv[1:])\n"
        "    if sys.argv[1] == 'exit3':\n"
        "        sys.exit(3)\n"
        "    if sys.argv[1] == 'raise':\n"
        "        raise RuntimeError('boom')\n"
        "    if sys.argv[1] == 'leak':\n"
        "        a = Leak(); a.me = a; del a\n"
        "    if sys.argv[1] == 'hang':\n"
        "        import time; time.sleep(60)\n"
    )
    py = [sys.executable, "-m", "probe_mod"]
    exit3, boom, leak, hang = run_commands(
        [([*py, "exit3"], tmp_path), ([*py, "raise"], tmp_path), ([*py, "leak"], tmp_path),
         ([*py, "hang"], tmp_path)],
        env={"PYTHONPATH": str(tmp_path)},
        timeout=5,
    )  # fmt: skip
    assert exit3.returncode == 3 and exit3.stdout == f"cwd {tmp_path} argv ['exit3']\n"
    assert (
        boom.returncode == 1 and "Traceback" in boom.stderr and "RuntimeError: boom" in boom.stderr
    )
    assert leak.returncode == 0 and "Exception ignored" in leak.stderr, leak.stderr
    assert hang.returncode == -9
