"""Fault injection on every command line: an output folder that cannot be written, a full
disk, corrupted or truncated inputs of each kind, NaN / inf in every numeric input, SIGINT and
SIGTERM during a run.

Each case runs the command as a user does (a subprocess) in a work folder of small generated
files, and checks: the exit status (2 for what the user can fix, 1 for a fault outside their
control, with the cause), one ``error:`` line on stderr naming the problem, no traceback, and
every file that existed before byte-identical after (the folder is hashed before and after).

Output folders that cannot be written are made three ways: a path under a regular file
(ENOTDIR, works for root too), a read-only tmpfs mount and a full tmpfs (``mount`` needs root:
those cases are skipped with the reason when it is not permitted).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from spinnaker2_backend.synthetic import synthetic_network

SNN = [sys.executable, "-m", "snn_egru.cli"]
S2 = [sys.executable, "-m", "spinnaker2_backend"]
LAVA = [sys.executable, "-m", "lava_procs"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

#: Every command that writes, with ``{T}`` where its output goes (a folder or a file in it).
WRITERS: list[tuple[str, list[str]]] = [
    ("demo", [*SNN, "demo", "--preset", "tiny", "--no-full-test", "--out", "{T}/demo"]),
    ("run", [*SNN, "run", "feat.npz", "--backend", "reference", "--inputs", "x.npy",
             "--out", "{T}/run"]),
    ("export", [*SNN, "export", "lm.pt", "--out", "{T}/a.npz"]),
    ("train", [*SNN, "train", "lm", "--preset", "tiny", "--max-steps", "2", "--out", "{T}/lm"]),
    ("prune", [*SNN, "prune", "lm.pt", "--steps", "2", "--out", "{T}/p"]),
    ("map-plot", [*SNN, "map", "feat.npz", "--plot", "{T}/m.png"]),
    ("map-save-placement", [*SNN, "map", "feat.npz", "--save-placement", "{T}/p.csv"]),
    ("lava-run", [*LAVA, "run", "feat.npz", "--inputs", "x.npy", "--backend", "floating_pt",
                  "--out", "{T}/lava"]),
]  # fmt: skip

#: Commands that get past their checks and write on a full disk (the others are refused
#: before they write, or need minutes of training to reach their first write).
FULL_DISK = ("run", "map-plot", "map-save-placement")

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
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


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
    mounts = {"ro": _mount_tmpfs(work / "ro", "size=64k,ro")}
    mounts["full"] = _mount_tmpfs(work / "full", "size=64k")
    try:
        _fill(work / "full", mounts["full"])
        yield work, mounts
    finally:
        for name, reason in mounts.items():
            if reason is None:
                subprocess.run(["umount", str(work / name)], check=False)


def _fill(full: Path, reason: str | None) -> None:
    """A kept file on the small tmpfs, then every free block taken."""
    work = full.parent
    if reason is None:
        (work / "full" / "keep.txt").write_text("written before the disk filled up\n")
        fd = os.open(work / "full" / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(fd)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)


def _check_one_line(done: subprocess.CompletedProcess, status: int, text: str) -> str:
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert text in errors[0], errors[0]
    return errors[0]


def _run_all(work: Path, cases: list[tuple[str, list[str]]], *, watch: list[Path]) -> dict:
    """Run ``cases`` a few at a time; no file of ``watch`` may change."""
    before = _digest(*watch)
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip([c[0] for c in cases], pool.map(lambda c: _run(c[1], work), cases)))
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


def test_full_disk_is_exit_1_with_the_cause(work) -> None:
    """No space left: not the user's path, so exit 1, and the line says why and what to do."""
    folder, mounts = work
    if mounts["full"] is not None:
        pytest.skip(f"cannot mount a tmpfs here: {mounts['full']}")
    full = folder / "full"
    cases = [
        (name, [a.replace("{T}", "full") for a in cmd])
        for name, cmd in WRITERS
        if name in FULL_DISK
    ]
    kept = _digest(full)["{}".format(full / "keep.txt")]
    results = _run_all(folder, cases, watch=[folder])
    for name, _ in cases:
        line = _check_one_line(results[name], 1, "no space left on the device")
        assert "free space on that disk" in line, line
    assert _digest(full)[str(full / "keep.txt")] == kept
    # no partial result that a re-run would take for an earlier one
    assert not (full / "run" / "logits.npy").exists()


def test_verbose_shows_the_traceback_of_a_fault(work) -> None:
    folder, _ = work
    done = _run([*SNN, "-v", "run", "feat.npz", "--inputs", "x.npy", "--out", "afile/r"], folder)
    assert done.returncode == 1 and "Traceback" in done.stderr


def _interrupt(cmd: list[str], cwd: Path, sig: int, after_s: float) -> subprocess.CompletedProcess:
    """Start ``cmd``, send ``sig`` after ``after_s`` seconds (unless it ended), collect it."""
    child = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    deadline = time.monotonic() + after_s
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if child.poll() is None:
        child.send_signal(sig)
    out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, child.returncode, out, err)


#: each case starts the command two or three times (a few seconds each): marked slow
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("after_s", [1.5, 3.0, 4.5])
def test_signal_then_rerun(tmp_path, work, sig, after_s) -> None:
    """A run stopped at several points: one line (130 / 143) or done; the re-run works or
    refuses with a line whose advice (``--overwrite``) then works; earlier files unchanged."""
    folder, _ = work
    big = np.random.default_rng(1).standard_normal((15000, 6)).astype("f4")
    np.save(tmp_path / "xbig.npy", big)
    cmd = [*SNN, "run", str(folder / "feat.npz"), "--backend", "chip", "--inputs",
           str(tmp_path / "xbig.npy"), "--out", "out"]  # fmt: skip
    before = _digest(folder)
    stopped = _interrupt(cmd, tmp_path, sig, after_s)
    assert "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    if stopped.returncode == -sig and (tmp_path / "out" / "logits.npy").is_file():
        pass  # the signal came after the run had written its results, during exit: done
    elif stopped.returncode != 0:
        expected = 130 if sig == signal.SIGINT else 143
        assert stopped.returncode == expected, stopped.stderr[-2000:]
        assert stopped.stderr.strip().splitlines()[-1].endswith(("interrupted", "(SIGTERM)"))
    again = _run(cmd, tmp_path)
    if again.returncode != 0:
        line = _check_one_line(again, 2, "pass --overwrite")
        assert "earlier run" in line
        again = _run([*cmd, "--overwrite"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "out" / "logits.npy").is_file()
    assert _digest(folder) == before


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
