"""Fault injection on every command line: an output folder that cannot be written, a full
disk, corrupted or truncated inputs of each kind, NaN / inf in every numeric input, SIGINT and
SIGTERM during a run.

Each case runs the command as a user does (``python -m ...``, a process of its own) in a work
folder of small generated files, and checks: the exit status (2 for what the user can fix, 1
for a fault outside their control, with the cause), one ``error:`` line on stderr naming the
problem, no traceback, and every file that existed before byte-identical after (the folder
is hashed before and after).

Cost: the cases that only need a process of their own are forked from a server interpreter
that imported torch (or the chip side) once (:func:`tests.fresh_python.run_commands`); the
signal cases start real interpreters (a signal must reach the command as a user's would).

Output folders that cannot be written are made three ways: a path under a regular file
(ENOTDIR, works for root too), a read-only tmpfs mount and a full tmpfs (``mount`` needs root).
Without mount the full disk is made with ``RLIMIT_FSIZE`` (64 bytes) instead: every write past
it fails with EFBIG ("the file is too large"), not ENOSPC, through the same storage-fault
path; that variant also runs everywhere for one command.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from spinnaker2_backend.synthetic import synthetic_network
from tests.fresh_python import run_commands

SNN = [sys.executable, "-m", "snn_egru.cli"]
S2 = [sys.executable, "-m", "spinnaker2_backend"]
LAVA = [sys.executable, "-m", "lava_procs"]
SWEEP = [sys.executable, "-m", "snn_egru.sweep"]
ROOT = str(Path(__file__).resolve().parents[2])
ENV = {**os.environ, "PYTHONPATH": ROOT}

#: What the fork servers import once: the torch side (snn-egru), the chip side (the others;
#: Lava and torch never share a process, as in the commands themselves).
SNN_PRELOAD = (
    "torch",
    "snn_egru.cli_commands",
    "snn_egru.models.lm",
    "snn_egru.training.lm",
    "spinnaker2_backend.mapping",
    "spinnaker2_backend.simulator",
)
CHIP_PRELOAD = ("spinnaker2_backend.cli", "spinnaker2_backend.simulator", "lava_procs.run")

#: Every command that writes, with ``{T}`` where its output goes (a folder or a file in it).
WRITERS: list[tuple[str, list[str]]] = [
    ("demo", [*SNN, "demo", "--preset", "tiny", "--no-full-test", "--out", "{T}/demo"]),
    ("run", [*SNN, "run", "feat.npz", "--backend", "reference", "--inputs", "x.npy",
             "--out", "{T}/run"]),
    ("export", [*SNN, "export", "lm.pt", "--out", "{T}/a.npz"]),
    ("train", [*SNN, "train", "lm", "--preset", "tiny", "--max-steps", "2", "--no-full-test",
               "--out", "{T}/lm"]),
    ("prune", [*SNN, "prune", "trained/best.pt", "--steps", "2", "--no-full-test", "--out",
               "{T}/p"]),
    ("map-plot", [*SNN, "map", "feat.npz", "--plot", "{T}/m.png"]),
    ("map-save-placement", [*SNN, "map", "feat.npz", "--save-placement", "{T}/p.csv"]),
    ("lava-run", [*LAVA, "run", "feat.npz", "--inputs", "x.npy", "--backend", "floating_pt",
                  "--out", "{T}/lava"]),
]  # fmt: skip

#: The writers on a full disk, where each gets to write (demo, train and prune after their
#: first steps); export, run and lava-run replace an earlier result (--overwrite), which
#: must survive byte for byte (written whole or not at all).
FULL_DISK: list[tuple[str, list[str]]] = [
    *[(name, cmd) for name, cmd in WRITERS if name in ("demo", "train", "prune", "map-plot",
                                                          "map-save-placement")],
    ("export-overwrite", [*SNN, "export", "lm.pt", "--out", "{T}/old.npz", "--overwrite"]),
    ("run-overwrite", [*SNN, "run", "feat.npz", "--backend", "reference", "--inputs", "x.npy",
                       "--out", "{T}/oldrun", "--overwrite"]),
    ("lava-run-overwrite", [*LAVA, "run", "feat.npz", "--inputs", "x.npy", "--backend",
                            "floating_pt", "--out", "{T}/oldlava", "--overwrite"]),
]  # fmt: skip

#: (id, command, exit status, text the error line must contain): bad inputs of every kind.
BAD_INPUTS: list[tuple[str, list[str], int, str]] = [
    # checkpoints
    ("ckpt-truncated", [*SNN, "export", "trunc.pt", "--out", "o.npz"], 2, "truncated"),
    ("ckpt-empty", [*SNN, "export", "empty.pt", "--out", "o.npz"], 2, "empty file"),
    ("ckpt-is-artifact", [*SNN, "export", "feat.npz", "--out", "o.npz"], 2, "deployment artifact"),
    ("ckpt-is-npy", [*SNN, "prune", "x.npy", "--out", "pr"], 2, "numpy .npy array"),
    ("ckpt-garbage", [*SNN, "export", "garbage.pt", "--out", "o.npz"], 2, "not a checkpoint"),
    # artifacts
    ("artifact-truncated", [*SNN, "map", "trunc.npz"], 2, "trunc.npz"),
    ("artifact-is-checkpoint", [*SNN, "map", "lm.pt"], 2, "lm.pt"),
    ("artifact-truncated-run", [*SNN, "run", "trunc.npz", "--inputs", "x.npy"], 2, "trunc.npz"),
    ("artifact-truncated-s2", [*S2, "map", "trunc.npz"], 2, "trunc.npz"),
    # inputs .npy
    ("inputs-truncated", [*SNN, "run", "feat.npz", "--inputs", "trunc.npy"], 2, "not a readable"),
    ("inputs-shape", [*SNN, "run", "feat.npz", "--inputs", "x31.npy"], 2, "got (20, 31)"),
    ("inputs-nan-reference", [*SNN, "run", "feat.npz", "--backend", "reference", "--inputs",
                              "xnan.npy", "--out", "o"], 2, "NaN or infinite"),
    ("inputs-nan-torch", [*SNN, "run", "feat.npz", "--backend", "torch", "--inputs", "xnan.npy",
                          "--out", "o"], 2, "NaN or infinite"),
    ("inputs-nan-chip", [*SNN, "run", "feat.npz", "--backend", "chip", "--inputs", "xnan.npy",
                         "--out", "o"], 2, "NaN or infinite"),
    ("inputs-inf-chip", [*SNN, "run", "feat.npz", "--backend", "chip", "--inputs", "xinf.npy",
                         "--out", "o"], 2, "(the first, infinite"),
    ("inputs-nan-s2", [*S2, "run", "feat.npz", "--inputs", "xnan.npy"], 2, "NaN or infinite"),
    ("inputs-nan-lava", [*LAVA, "run", "feat.npz", "--inputs", "xnan.npy", "--backend",
                         "floating_pt", "--out", "o"], 2, "NaN or infinite"),
    # token files (calibration)
    ("calibration-floats", [*SNN, "export", "lm.pt", "--quantize", "int8", "--calibration",
                            "floats.npy", "--out", "o.npz"], 2, "token ids"),
    ("calibration-truncated", [*SNN, "export", "lm.pt", "--quantize", "int8", "--calibration",
                               "trunc.npy", "--out", "o.npz"], 2, "not a readable"),
    # numbers on the command line
    ("chips-1000000", [*SNN, "map", "feat.npz", "--chips", "1000000"], 2, "[1, 35000]"),
    ("s2-chips-1000000", [*S2, "map", "feat.npz", "--chips", "1000000"], 2, "[1, 35000]"),
    ("clock-nan", [*SNN, "map", "feat.npz", "--clock-mhz", "nan"], 2, "finite"),
    ("clock-inf", [*SNN, "map", "feat.npz", "--clock-mhz", "inf"], 2, "finite"),
    ("sparsity-nan", [*SNN, "prune", "lm.pt", "--sparsity", "nan"], 2, "finite"),
    ("lr-inf", [*SNN, "train", "lm", "--preset", "tiny", "--lr", "inf"], 2, "finite"),
    # outputs: a new folder at the filesystem root, an earlier run without --overwrite
    ("plot-at-root", [*SNN, "map", "feat.npz", "--plot", "/nonexistent_faults_dir/x.png"], 2,
     "does not exist; create it first"),
    ("placement-at-root", [*SNN, "map", "feat.npz", "--save-placement",
                           "/nonexistent_faults_dir/p.csv"], 2, "does not exist"),
    ("run-out-at-root", [*SNN, "run", "feat.npz", "--inputs", "x.npy", "--out",
                         "/nonexistent_faults_dir/r"], 2, "does not exist"),
    ("run-replaces-chip-report", [*SNN, "run", "feat.npz", "--backend", "chip", "--inputs",
                                  "x.npy", "--out", "demo/chip"], 2, "pass --overwrite"),
    ("lava-replaces-its-run", [*LAVA, "run", "feat.npz", "--inputs", "x.npy", "--out", "lava"],
     2, "lava holds the results of an earlier run (outputs.npz, lava_run.json): pass "
     "--overwrite"),
]  # fmt: skip


def _digest(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha1(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _mount_tmpfs(path: Path, options: str) -> str | None:
    """Mount a tmpfs at ``path``; the reason as text when it cannot be done."""
    path.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
    except OSError as err:  # no mount program
        return str(err)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


def _earlier_results(folder: Path) -> None:
    """What the --overwrite cases of FULL_DISK would replace, and a file to keep."""
    (folder / "keep.txt").write_text("written before the disk filled up\n")
    shutil.copyfile(folder.parent / "feat.npz", folder / "old.npz")
    (folder / "oldrun").mkdir()
    np.save(folder / "oldrun" / "logits.npy", np.arange(6, dtype=np.float32))
    (folder / "oldlava").mkdir()
    shutil.copyfile(folder.parent / "feat.npz", folder / "oldlava" / "outputs.npz")
    (folder / "oldlava" / "lava_run.json").write_text('{"backend": "floating_pt"}\n')


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Small artifacts, a checkpoint, inputs and their corrupted copies; a read-only and a
    full tmpfs when mount is permitted (unmounted at the end)."""
    import torch

    from snn_egru.models.lm import EGRULanguageModel, lm_preset
    from snn_egru.training.common import save_checkpoint

    work = tmp_path_factory.mktemp("faults")
    synthetic_network(layer_sizes=(8,), input_size=6, readout_kind="linear", num_classes=3).save(
        work / "feat.npz"
    )
    torch.manual_seed(0)
    model = EGRULanguageModel(lm_preset("tiny", vocab_size=50))
    save_checkpoint(
        work / "lm.pt", model=model, config=model.config, vocabulary=[f"w{i}" for i in range(50)]
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    np.save(work / "x.npy", x)
    bad = x.copy()
    bad[3, 2] = np.nan
    np.save(work / "xnan.npy", bad)
    bad[3, 2] = np.inf
    np.save(work / "xinf.npy", bad)
    np.save(work / "x31.npy", np.zeros((20, 31), np.float32))
    np.save(work / "floats.npy", rng.random(30).astype(np.float32))
    for name, source in (("trunc.pt", "lm.pt"), ("trunc.npz", "feat.npz"), ("trunc.npy", "x.npy")):
        data = (work / source).read_bytes()
        (work / name).write_bytes(data[: len(data) // 2])
    (work / "empty.pt").write_bytes(b"")
    (work / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    (work / "afile").write_text("a regular file: nothing can be created under it\n")
    (work / "demo" / "chip").mkdir(parents=True)
    for name in ("chip_report.json", "profile.png", "packets.png", "logits.npy"):
        (work / "demo" / "chip" / name).write_bytes(b"the demo's " + name.encode())
    (work / "lava").mkdir()
    for name in ("outputs.npz", "lava_run.json"):
        (work / "lava" / name).write_bytes(b"an earlier Lava run's " + name.encode())
    # a trained model (2 steps of the tiny preset) for the commands that need its recipe
    (trained,) = run_commands(
        [([*SNN, "train", "lm", "--preset", "tiny", "--max-steps", "2", "--no-full-test",
           "--no-progress", "--out", "trained"], work)],
        preload=SNN_PRELOAD,
        env={"PYTHONPATH": ROOT},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    (work / "limited").mkdir()  # the full disk of RLIMIT_FSIZE
    _earlier_results(work / "limited")
    mounts = {"ro": _mount_tmpfs(work / "ro", "size=64k,ro")}
    mounts["full"] = _mount_tmpfs(work / "full", "size=64k")
    try:
        if mounts["full"] is None:
            _earlier_results(work / "full")
            _fill(work / "full")
        yield work, mounts
    finally:
        for name, reason in mounts.items():
            if reason is None:
                subprocess.run(["umount", str(work / name)], check=False)


def _fill(full: Path) -> None:
    """Every free block of the small tmpfs taken."""
    fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(fd)


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV, **kw)


def _check_one_line(done: subprocess.CompletedProcess, status: int, text: str) -> str:
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert text in errors[0], errors[0]
    return errors[0]


def _run_all(work: Path, cases: list[tuple[str, list[str]]], *, watch: list[Path]) -> dict:
    """Run ``cases`` (forked from the two preloaded servers, a few at a time); no file of
    ``watch`` may change."""
    before = _digest(*watch)
    groups = [
        ([c for c in cases if c[1][2] == "snn_egru.cli"], SNN_PRELOAD),
        ([c for c in cases if c[1][2] != "snn_egru.cli"], CHIP_PRELOAD),
    ]

    def one(group):
        cmds, preload = group
        if not cmds:
            return {}
        results = run_commands(
            [(cmd, work) for _, cmd in cmds], preload=preload, jobs=2, env={"PYTHONPATH": ROOT}
        )
        return dict(zip([name for name, _ in cmds], results))

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {k: v for part in pool.map(one, groups) for k, v in part.items()}
    after = _digest(*watch)
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert not changed, f"pre-existing files changed: {changed}"
    return done


@pytest.fixture(scope="module")
def bad_input_results(work):
    folder, _ = work
    results = _run_all(folder, [(c[0], c[1]) for c in BAD_INPUTS], watch=[folder])
    assert not Path("/nonexistent_faults_dir").exists(), "a folder was made at the root"
    return results


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line(bad_input_results, case) -> None:
    name, _, status, text = case
    _check_one_line(bad_input_results[name], status, text)


@pytest.mark.parametrize("kind", ["file-in-the-way", "read-only"])
def test_unwritable_output_is_one_line_exit_2(work, kind) -> None:
    """The 8 writing commands, their output under a file (ENOTDIR) or on a read-only mount."""
    folder, mounts = work
    if kind == "read-only" and mounts["ro"] is not None:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounts['ro']}")
    target = "afile" if kind == "file-in-the-way" else "ro"
    cases = [(name, [a.replace("{T}", target) for a in cmd]) for name, cmd in WRITERS]
    results = _run_all(folder, cases, watch=[folder])
    for name, _ in cases:
        line = _check_one_line(results[name], 2, target)
        assert "afile is a file" in line if target == "afile" else "cannot" in line, line


#: Files a command writes whole or not at all (a log such as metrics.csv may be begun).
RESULT_SUFFIXES = (".pt", ".npz", ".npy", ".json", ".png", ".csv", ".txt")


def _check_full_disk(disk: Path, results: dict, cause: str, *, limit: int | None = None) -> None:
    """Every case: exit 1, one line with the cause and what to do; nothing half-written: on
    a full disk no new result at all, under a file size ``limit`` none cut at the limit."""
    for name, done in results.items():
        line = _check_one_line(done, 1, cause)
        assert "free space on that disk" in line, (name, line)
    earlier = {disk / "old.npz", disk / "oldrun" / "logits.npy", disk / "oldlava" / "outputs.npz",
               disk / "oldlava" / "lava_run.json", disk / "keep.txt"}  # fmt: skip
    made = [p for p in disk.rglob("*") if p.is_file() and p not in earlier]
    left = [p for p in made if p.name.startswith(".") or ".tmp" in p.name]
    assert not left, f"temporary files left: {left}"
    results_made = [
        p for p in made if p.suffix in RESULT_SUFFIXES and p.name not in ("metrics.csv",)
    ]
    if limit is None:
        assert not results_made, f"half-written results: {results_made}"
    else:
        cut = [p for p in results_made if p.stat().st_size >= limit]
        assert not cut, f"half-written results: {cut}"


def test_full_disk_is_exit_1_with_the_cause(work) -> None:
    """No space left (a full tmpfs): not the user's path, so exit 1, and the line says why
    and what to do; the results it was to replace are byte-identical, none half-written."""
    folder, mounts = work
    if mounts["full"] is not None:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounts['full']}): the full disk is covered by "
            "test_file_size_limit_is_exit_1_with_the_cause (EFBIG) instead"
        )
    cases = [(name, [a.replace("{T}", "full") for a in cmd]) for name, cmd in FULL_DISK]
    results = _run_all(folder, cases, watch=[folder])
    _check_full_disk(folder / "full", results, "no space left on the device")


#: The file size limit of the full disk without mount: below every result, above the few
#: bytes that ``tempfile`` writes to find a usable temporary folder.
FSIZE_LIMIT = 64


def _limit_file_size() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


@pytest.mark.parametrize(
    "case",
    FULL_DISK,
    ids=[c[0] for c in FULL_DISK],
)
def test_file_size_limit_is_exit_1_with_the_cause(work, case) -> None:
    """The full disk without mount: RLIMIT_FSIZE makes every write past the limit fail
    (EFBIG; Python ignores SIGXFSZ). Run for every case where the tmpfs cannot be mounted,
    else for one."""
    folder, mounts = work
    name, cmd = case
    if mounts["full"] is None and name != "export-overwrite":
        pytest.skip("the full tmpfs covers this case (test_full_disk_is_exit_1_with_the_cause)")
    if name.startswith("lava"):
        pytest.skip("RLIMIT_FSIZE limits Lava's shared memory too: its graph cannot start")
    limited = folder / "limited"
    before = _digest(folder)
    done = _run([a.replace("{T}", "limited") for a in cmd], folder, preexec_fn=_limit_file_size)
    after = _digest(folder)
    assert [k for k in before if before[k] != after.get(k)] == []  # earlier files unchanged
    _check_full_disk(
        limited, {name: done}, "the file is too large for the file system", limit=FSIZE_LIMIT
    )


def test_verbose_shows_the_traceback_of_a_fault(work) -> None:
    folder, _ = work
    done = _run([*SNN, "-v", "run", "feat.npz", "--inputs", "x.npy", "--out", "afile/r"], folder)
    assert done.returncode == 1 and "Traceback" in done.stderr


# ------------------------------------------------------------------------------ signals
def _as_in_a_terminal() -> None:  # in the child, before exec
    """SIGINT and SIGTERM at their defaults, as in a user's terminal: a test run from a
    background job inherits SIGINT ignored, and Python then installs no Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Signalled:
    """A command started with its stderr read line by line; the reader sends ``sig`` the
    moment a line holds ``marker`` (the run is under way: no sleep decides it), after noting
    which of ``present`` exist then. :meth:`result` waits for the command to end."""

    def __init__(
        self, cmd: list[str], cwd: Path, marker: str, sig: int, present: tuple[str, ...]
    ) -> None:
        self.marker, self.sig, self.cwd, self.present = marker, sig, cwd, present
        self.signalled = False
        self.found: dict[str, bool] = {}
        self.lines: list[str] = []
        self.child = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            preexec_fn=_as_in_a_terminal,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.child.stderr is not None
        for line in self.child.stderr:
            self.lines.append(line)
            if not self.signalled and self.marker in line:
                self.found = {p: (self.cwd / p).is_file() for p in self.present}
                if self.child.poll() is None:
                    self.child.send_signal(self.sig)
                    self.signalled = True

    def result(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            self.child.wait(timeout=timeout)
        finally:
            if self.child.poll() is None:
                self.child.kill()
            self._reader.join(timeout=60)
        err = "".join(self.lines)
        return subprocess.CompletedProcess(self.child.args, self.child.returncode, "", err)


#: (id, signal, a long command, the marker on its stderr that shows the run under way, files
#: that must exist when it is signalled). The re-runs use short budgets (:data:`SHORT`).
SIGNAL_POINTS = [
    ("training-before-its-first-checkpoint", signal.SIGINT,
     [*SNN, "train", "lm", "--preset", "tiny", "--max-steps", "100000", "--no-full-test",
      "--out", "t"], "train: started", ()),
    ("training-after-a-checkpoint", signal.SIGTERM,
     [*SNN, "train", "lm", "--preset", "tiny", "--max-steps", "100000", "--eval-every", "2",
      "--no-full-test", "--out", "t"], "saved checkpoint t/last.pt", ("t/last.pt",)),
    ("pruning", signal.SIGTERM,
     [*SNN, "prune", "{W}/trained/best.pt", "--steps", "100000", "--no-full-test", "--out",
      "p"],
     "train: started", ()),
    ("chip-run", signal.SIGINT,
     [*SNN, "run", "{W}/feat.npz", "--backend", "chip", "--inputs", "xbig.npy", "--out", "c"],
     "simulated steps", ()),
    ("sweep-point", signal.SIGINT,
     [*SWEEP, "run", "--quick", "--out", "s"], ": training", ()),
]  # fmt: skip

#: What a re-run adds to follow the advice of its refusal (short budgets, so it ends soon).
FOLLOW = {
    "--resume": ["--resume", "--time-limit", "2"],
    "--overwrite": ["--overwrite"],
}
#: Budgets of the re-runs (the long command's step counts, shortened).
SHORT = {"100000": "3"}


def _advice(done: subprocess.CompletedProcess) -> str | None:
    """The flag a refusal's one line tells the user to pass (``--resume``, ``--overwrite``)."""
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    if done.returncode != 2 or len(errors) != 1 or "pass --" not in errors[0]:
        return None
    return errors[0].split("pass ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def signal_runs(work, tmp_path_factory) -> dict:
    """Every point of SIGNAL_POINTS run at once, each signalled at its marker; then the
    re-runs (short budgets), and the advised runs where a re-run refused (forked from one
    preloaded server); the work folder checked unchanged."""
    folder, _ = work
    before = _digest(folder)
    runs = {}
    for name, sig, cmd, marker, present in SIGNAL_POINTS:
        where = tmp_path_factory.mktemp(name)
        if name == "chip-run":
            big = np.random.default_rng(1).standard_normal((15000, 6)).astype("f4")
            np.save(where / "xbig.npy", big)
        cmd = [a.replace("{W}", str(folder)) for a in cmd]
        runs[name] = {
            "where": where,
            "cmd": cmd,
            "run": _Signalled(cmd, where, marker, sig, present),
        }
    for entry in runs.values():
        entry["stopped"] = entry["run"].result()
        entry["short"] = [SHORT.get(a, a) for a in entry["cmd"]]
    env = {"PYTHONPATH": ROOT}
    names = list(runs)
    again = run_commands([(runs[n]["short"], runs[n]["where"]) for n in names],
                         preload=SNN_PRELOAD, jobs=2, env=env)  # fmt: skip
    advised = [n for n, done in zip(names, again) if _advice(done) in FOLLOW]
    follow = run_commands(
        [([*runs[n]["short"], *FOLLOW[_advice(again[names.index(n)])]], runs[n]["where"])
         for n in advised],
        preload=SNN_PRELOAD, jobs=2, env=env,
    )  # fmt: skip
    for n, done in zip(names, again):
        runs[n]["again"] = done
    for n, done in zip(advised, follow):
        runs[n]["advised"] = done
    runs_unchanged = _digest(folder) == before
    return {"runs": runs, "work_unchanged": runs_unchanged}


@pytest.mark.slow
@pytest.mark.parametrize("point", SIGNAL_POINTS, ids=[p[0] for p in SIGNAL_POINTS])
def test_signal_mid_run_then_rerun(signal_runs, point) -> None:
    """A run signalled once it is under way (a marker on its stderr, not a sleep): exit
    130 / 143 with one line, nothing half-written; the re-run resumes, or refuses with one
    line whose advice then works; earlier files unchanged."""
    name, sig, _, marker, present = point
    entry = signal_runs["runs"][name]
    run, stopped = entry["run"], entry["stopped"]
    assert run.signalled, f"no {marker!r} on stderr while it ran: {stopped.stderr[-2000:]}"
    assert all(run.found.get(p) for p in present), (present, run.found)
    expected = 130 if sig == signal.SIGINT else 143
    assert stopped.returncode == expected, (stopped.returncode, stopped.stderr[-2000:])
    assert "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.endswith("interrupted" if sig == signal.SIGINT else "terminated (SIGTERM)"), last
    for path in entry["where"].rglob("*"):  # no half-written result beside temporary files
        assert not path.name.startswith("."), f"a temporary file was left: {path}"
    again = entry["again"]
    if again.returncode != 0:
        line = _check_one_line(again, 2, "pass --")
        assert _advice(again) in FOLLOW, line
        again = entry["advised"]
    assert again.returncode == 0, again.stderr[-3000:]
    if name == "sweep-point":
        assert "was interrupted before; training it again" in again.stderr, again.stderr
    if name == "training-after-a-checkpoint":
        assert "resum" in again.stderr.lower(), again.stderr[-2000:]
    assert signal_runs["work_unchanged"]


def test_fullest_pe_rows_add_to_the_total() -> None:
    """summary.txt's memory table of the fullest PE: the data rows add to the data total."""
    from dataclasses import asdict

    from snn_egru.summary import _fullest_pe_table
    from spinnaker2_backend.mapping import map_network

    network = synthetic_network(
        layer_sizes=(8, 8), input_size=6, readout_kind="linear", num_classes=3
    )
    pe = asdict(map_network(network).report().fullest)
    assert pe["debug"] > 0  # the row that was missing
    rows = _fullest_pe_table(pe)[2:-1]
    data_rows = [r for r in rows if not r.strip().startswith("code")]
    total = sum(int(r.split()[-1].replace(",", "")) for r in data_rows)
    assert total == pe["total"]
    assert any(r.split()[0] == "debug" for r in data_rows)


def test_per_pe_headers_are_full_names(work) -> None:
    from spinnaker2_backend.mapping import map_network
    from spinnaker2_backend.mapping.memory import DATA_REGIONS

    table = map_network(synthetic_network(layer_sizes=(8,), input_size=6)).report().table()
    header = next(line for line in table.splitlines() if line.split()[:2] == ["PE", "chip"])
    assert all(name in header.split() for name in DATA_REGIONS), header


def test_validate_help_names_snn_egru() -> None:
    done = subprocess.run(
        [*SNN, "validate", "--help"], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert done.returncode == 0
    assert "usage: snn-egru validate" in done.stdout
    assert "python -m spinnaker2_backend" not in done.stdout


def test_interrupted_pruning_is_not_reused(tmp_path) -> None:
    """A pruning stopped during its test evaluation leaves last.pt but no summary.json: the
    next demo prunes again (so summary.txt keeps its "Pruning:" line) instead of reusing it."""
    from snn_egru.pipeline_training import plan_prune

    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "last.pt").write_bytes(b"a checkpoint of an interrupted pruning")
    (tmp_path / "best.pt").write_bytes(b"the trained model")
    plan = plan_prune(tmp_path, tmp_path / "best.pt", sparsity=0.5, steps=2, seed=0, retrain=False)
    assert not plan.reuse


def test_resume_keeps_the_runs_own_step_budget(tmp_path) -> None:
    """`train lm --resume` on a demo folder (800 steps) continues to 800, not to the preset's
    budget; a --max-steps given again wins."""
    import argparse

    import torch

    from snn_egru.models.lm import EGRULanguageModel, lm_preset
    from snn_egru.training.common import save_checkpoint
    from snn_egru.training.lm import LMTrainConfig, resumed_budget

    torch.manual_seed(0)
    model = EGRULanguageModel(lm_preset("tiny", vocab_size=20))
    save_checkpoint(
        tmp_path / "last.pt",
        model=model,
        config=model.config,
        train_config=LMTrainConfig(max_steps=800),
        step=400,
    )
    preset = LMTrainConfig(max_steps=1000)
    args = argparse.Namespace(resume=True, out=str(tmp_path), max_steps=None, epochs=None)
    assert resumed_budget(args, preset).max_steps == 800
    args.max_steps = 1000
    assert resumed_budget(args, preset).max_steps == 1000
    args.resume = False
    assert resumed_budget(args, preset).max_steps == 1000
