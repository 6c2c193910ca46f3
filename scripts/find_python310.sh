#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter (lava-nc 0.10 needs 3.10).
# Looks at $PYTHON, then python3.10 on PATH, then pyenv's installed versions.
set -u
try() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { command -v "$1" 2>/dev/null || echo "$1"; exit 0; }; }
[ -n "${PYTHON:-}" ] && try "$PYTHON"
try python3.10
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  [ -x "$p" ] && try "$p"
done
echo "error: no Python 3.10 found. lava-nc 0.10 needs Python 3.10: install it (e.g. 'pyenv install 3.10') or set PYTHON=/path/to/python3.10" >&2
exit 1
