"""``run --json``, the report table and ``--save-steps`` of a set of configurations, as
SHA-256 digests: the simulator's fast paths must not change them by a byte.

``golden_runs.json`` (next to this file) holds the digests of the configurations below as
the code on ``main`` produced them before the fused layer step (issue 21 item 4), with the
environment they depend on (numpy version and BLAS kernel: the cost products run in BLAS).
``test_run_golden.py`` compares against them where the environment is the same; on a
machine where OpenBLAS picks another kernel it computes the digests in a child process with
the golden kernel forced (``OPENBLAS_CORETYPE``, e.g. ``Zen`` on an AVX-512 machine that
picks ``Haswell``), and skips only where that does not give the golden environment either.
It compares the compiled step against the general (uncompiled) path everywhere.

Regenerate (only after a change that *should* change the numbers, and say so in the
commit)::

    PYTHONPATH=. .venv/bin/python tests/spinnaker2_backend/golden_runs.py --write
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("golden_runs.json")

#: name -> arguments of ``python -m spinnaker2_backend run`` (``--json`` / the table and
#: ``--save-steps`` added by :func:`digests`). 1 chip and several, csr / event / dense /
#: int8 layouts, every receive policy, windows, batch, pipelined, ticks, on-chip readout.
CONFIGS: dict[str, list[str]] = {
    "lm-csr-bitmap16": ["--synthetic", "paper-lm", "--pes-per-layer", "50", "--steps", "12"],
    "lm-event-list": [
        "--synthetic", "paper-lm", "--steps", "12",
        "--weight-format", "event", "--receive-policy", "event-list",
    ],
    "lm-csr-dense-window": [
        "--synthetic", "paper-lm", "--steps", "9", "--receive-policy", "dense",
        "--record-window", "4",
    ],
    "lm-event-4chips-pipelined-tick": [
        "--synthetic", "paper-lm", "--steps", "8", "--chips", "4",
        "--weight-format", "event", "--pipelined", "--tick-us", "5000",
    ],
    "lm-csr-int8": ["--synthetic", "paper-lm", "--steps", "6", "--weight-format", "csr-int8"],
    "lm-event-int8-readout-chip": [
        "--synthetic", "paper-lm", "--steps", "6", "--weight-format", "event-int8",
        "--readout", "chip",
    ],
    "lm-csr-2chips-readout-chip-float64": [
        "--synthetic", "paper-lm", "--steps", "7", "--chips", "2", "--readout", "chip",
        "--dtype", "float64",
    ],
    "lm-event-accumulate-host-input": [
        "--synthetic", "paper-lm", "--steps", "7", "--weight-format", "event",
        "--receive-policy", "accumulate",
        "--input-source", "host",
    ],
    "lm-csr-reused-window": [
        "--synthetic", "paper-lm", "--steps", "10", "--receive-policy", "reused",
        "--record-window", "3",
    ],
    "dvs-csr-batch": [
        "--synthetic", "paper-dvs", "--pes-per-layer", "64", "--steps", "5", "--batch-size", "2",
    ],
    "dvs-event-list-tick": [
        "--synthetic", "paper-dvs", "--steps", "6", "--weight-format", "event",
        "--receive-policy", "event-list", "--tick-us", "20000",
    ],
    "lm-event-list-drop": [
        "--synthetic", "paper-lm", "--steps", "8", "--weight-format", "event",
        "--receive-policy", "event-list", "--receive-capacity", "200,200,150",
        "--on-overflow", "drop", "--record-window", "5",
    ],
}  # fmt: skip


def environment() -> dict[str, str]:
    """What the digests depend on besides the code: numpy and its BLAS kernel."""
    from threadpoolctl import threadpool_info

    blas = [  # numpy's own BLAS (scipy and torch bring theirs, loaded or not by now)
        f"{i.get('internal_api')}:{i.get('architecture')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas" and "numpy" in str(i.get("filepath", ""))
    ]
    return {"numpy": np.__version__, "blas": ",".join(sorted(blas))}


def _cli(argv: list[str]) -> str:
    from spinnaker2_backend.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    if status != 0:
        raise RuntimeError(f"run {' '.join(argv)} exited {status}")
    return out.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(args: list[str]) -> dict[str, str]:
    """SHA-256 of ``run ARGS --json``'s output, of the table's and of every column of the
    ``--save-steps`` file (the zip's own bytes carry timestamps)."""
    from spinnaker2_backend.recording import read_step_log

    with tempfile.TemporaryDirectory() as tmp:
        steps = str(Path(tmp) / "steps.npz")
        as_json = _cli(["run", *args, "--json", "--save-steps", steps])
        log = read_step_log(steps)
    table = _cli(["run", *args])
    columns = hashlib.sha256()
    for name in sorted(log):
        columns.update(name.encode() + repr(log[name].shape).encode())
        columns.update(np.ascontiguousarray(log[name]).tobytes())
    return {
        "json": _sha(as_json.encode()),
        "table": _sha(table.encode()),
        "steps": columns.hexdigest(),
    }


def main() -> None:
    if "--with-environment" in sys.argv[1:]:  # what test_run_golden's child process prints
        runs = {name: digests(args) for name, args in CONFIGS.items()}
        print(json.dumps({"environment": environment(), "runs": runs}))
        return
    if "--write" not in sys.argv[1:]:
        print(json.dumps({name: digests(args) for name, args in CONFIGS.items()}, indent=1))
        return
    golden = {
        "environment": environment(),
        "runs": {name: digests(args) for name, args in CONFIGS.items()},
    }
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
