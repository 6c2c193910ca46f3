"""Every user mistake on every command line: exit status 2, one line on stderr naming the
problem (the flag the user typed), no traceback, and nothing in the work folder changed.

Table-driven: each case runs in a process of its own (``python -m ...`` as a user runs it),
in a work folder holding tiny artifacts, input files and earlier runs that must survive.
The cases fail before any work starts (argument checks, file checks, refusals to
overwrite), so they are cheap: they are forked, a few at a time, from a server interpreter
that imported torch (or the chip side) once (:func:`tests.fresh_python.run_commands`), so
no case pays the seconds of those imports again.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from spinnaker2_backend.synthetic import synthetic_network
from tests.cli.test_faults import CHIP_PRELOAD, SNN_PRELOAD
from tests.fresh_python import run_commands
from tests.networks import synthetic_lm

#: About a hundred commands, forked from two preloaded servers: about half a minute in all.
pytestmark = pytest.mark.slow

ROOT = str(Path(__file__).resolve().parents[2])

SNN = [sys.executable, "-m", "snn_egru.cli"]
S2 = [sys.executable, "-m", "spinnaker2_backend"]
LAVA = [sys.executable, "-m", "lava_procs"]
LM = [*SNN, "train", "lm", "--preset", "tiny"]
DVS = [*SNN, "train", "dvs", "--preset", "tiny"]
RUN = [*SNN, "run", "lm.npz"]
S2_RUN = [*S2, "run", "lm.npz"]


def lava_run(*flags: str, artifact="lm.npz", inputs="ids.npy", out="lava_out") -> list[str]:
    """``python -m lava_procs run ARTIFACT --inputs INPUTS --out OUT FLAGS...``."""
    return [*LAVA, "run", artifact, "--inputs", inputs, "--out", out, *flags]


#: (id, command, text the one line must contain)
CASES: list[tuple[str, list[str], str]] = [
    # ----------------------------------------------------------------- snn-egru train lm
    ("lm-max-steps-0", [*LM, "--max-steps", "0"], "argument --max-steps: must be an integer >= 1"),
    ("lm-batch-size-0", [*LM, "--batch-size", "0"], "argument --batch-size"),
    ("lm-bptt-0", [*LM, "--bptt", "0"], "argument --bptt"),
    ("lm-lr-negative", [*LM, "--lr", "-1"], "argument --lr: must lie in (0, inf)"),
    ("lm-lr-nan", [*LM, "--lr", "nan"], "argument --lr: expected a finite number"),
    ("lm-hidden-0", [*LM, "--hidden-sizes", "0"], "argument --hidden-sizes"),
    ("lm-threshold-2", [*LM, "--threshold-mean", "2"], "argument --threshold-mean"),
    ("lm-threads-0", [*LM, "--threads", "0"], "argument --threads"),
    ("lm-prune-to-1.5", [*LM, "--prune-to", "1.5"], "argument --prune-to: must lie in [0, 1)"),
    ("lm-epochs-x", [*LM, "--epochs", "x"], "argument --epochs: expected an integer"),
    ("lm-time-limit-0", [*LM, "--time-limit", "0"], "argument --time-limit"),
    ("lm-abbreviation", [*LM, "--max-step", "3"], "unrecognized arguments: --max-step"),
    ("lm-preset-unknown", [*SNN, "train", "lm", "--preset", "huge"], "invalid choice: 'huge'"),
    (
        "lm-untied-sizes",
        [*LM, "--hidden-sizes", "32", "17", "--out", "fresh"],
        "--embedding-size",
    ),
    ("lm-device-tpu", [*LM, "--device", "tpu", "--out", "fresh"], "--device 'tpu'"),
    (
        "lm-prune-schedule-after-last-step",
        [*LM, "--prune-to", "0.5", "--prune-end", "50", "--out", "fresh"],
        "--prune-end <= 10",
    ),
    ("lm-prune-end-alone", [*LM, "--prune-end", "5", "--out", "fresh"], "need --prune-to"),
    ("lm-cell-unknown", [*LM, "--cell", "rnn"], "argument --cell: invalid choice: 'rnn'"),
    (
        "lm-dense-cell-pruned",
        [*LM, "--cell", "gru", "--prune-to", "0.5", "--out", "fresh"],
        "--cell gru is a dense baseline: --prune-to and --quantize are for the EGRU only",
    ),
    ("dvs-cell-unknown", [*DVS, "--cell", "cnn"], "argument --cell: invalid choice: 'cnn'"),
    (
        "lm-prune-end-before-start",
        [*LM, "--prune-to", "0.5", "--prune-start", "6", "--prune-end", "3", "--out", "fresh"],
        "--prune-end 3 is before --prune-start 6",
    ),
    ("lm-existing-run", [*LM, "--out", "trained"], "pass --resume to continue it, --overwrite"),
    ("lm-existing-run-old-flag", [*LM, "--out-dir", "trained"], "--overwrite"),
    ("lm-resume-nothing", [*LM, "--out", "fresh", "--resume"], "no fresh/last.pt to continue"),
    # a run stopped before its first checkpoint: both commands give the same, working advice
    ("lm-stopped-run", [*LM, "--out", "stopped"], "before its first checkpoint: pass --overwrite"),
    (
        "lm-stopped-run-resume",
        [*LM, "--out", "stopped", "--resume"],
        "no stopped/last.pt to continue; pass --overwrite to start it again",
    ),
    ("lm-resume-and-overwrite", [*LM, "--resume", "--overwrite"], "not allowed with argument"),
    ("lm-out-is-file", [*LM, "--out", "afile"], "--out afile is a file"),
    ("lm-init-from-missing", [*LM, "--init-from", "missing.pt", "--out", "fresh"], "missing.pt"),
    ("lm-data-dir-missing", [*LM, "--data-dir", "nowhere", "--out", "fresh"], "--data-dir nowhere"),
    # ---------------------------------------------------------------- snn-egru train dvs
    ("dvs-epochs-0", [*DVS, "--epochs", "0"], "argument --epochs"),
    ("dvs-existing-run", [*DVS, "--out", "trained"], "--overwrite"),
    ("dvs-export-folder", [*DVS, "--export", "trained", "--out", "fresh"], "--export takes a file"),
    ("dvs-device-tpu", [*DVS, "--device", "tpu", "--out", "fresh"], "--device 'tpu'"),
    # ------------------------------------------------------------------- snn-egru prune
    ("prune-sparsity-1.5", [*SNN, "prune", "trained/best.pt", "--sparsity", "1.5"], "--sparsity"),
    ("prune-steps-0", [*SNN, "prune", "trained/best.pt", "--steps", "0"], "argument --steps"),
    ("prune-missing", [*SNN, "prune", "missing.pt"], "no checkpoint at missing.pt"),
    ("prune-folder", [*SNN, "prune", "trained"], "is a folder, not a file"),
    (
        "prune-existing",
        [*SNN, "prune", "trained/best.pt", "--out", "pruned"],
        "holds a pruned model already: pass --overwrite",
    ),
    # ------------------------------------------------------------------ snn-egru export
    ("export-out-folder", [*SNN, "export", "trained/best.pt", "--out", "trained"], "is a folder"),
    ("export-out-txt", [*SNN, "export", "trained/best.pt", "--out", "x.txt"], "ending in .npz"),
    ("export-missing", [*SNN, "export", "missing.pt", "--out", "n.npz"], "no checkpoint at"),
    (
        "export-existing",
        [*SNN, "export", "trained/best.pt", "--out", "lm.npz"],
        "lm.npz exists: pass --overwrite",
    ),
    # -------------------------------------------------------------------- snn-egru demo
    ("demo-train-steps-0", [*SNN, "demo", "--train-steps", "0"], "argument --train-steps"),
    ("demo-units-0", [*SNN, "demo", "--max-units-per-pe", "0"], "argument --max-units-per-pe"),
    ("demo-sparsity-1.5", [*SNN, "demo", "--sparsity", "1.5"], "argument --sparsity"),
    ("demo-eval-tokens-1", [*SNN, "demo", "--eval-tokens", "1"], "argument --eval-tokens"),
    ("demo-prune-steps-0", [*SNN, "demo", "--prune-steps", "0"], "argument --prune-steps"),
    ("demo-backend", [*SNN, "demo", "--backend", "loihi"], "invalid choice: 'loihi'"),
    ("demo-chips-0", [*SNN, "demo", "--chips", "0"], "argument --chips"),
    ("demo-pes-0", [*SNN, "demo", "--pes-per-layer", "3,0"], "argument --pes-per-layer"),
    ("demo-clock", [*SNN, "demo", "--clock-mhz", "200"], "the PE clock is 150 or 300 MHz"),
    ("demo-out-file", [*SNN, "demo", "--out", "afile"], "--out afile is a file"),
    (
        "demo-units-and-pes",
        [*SNN, "demo", "--max-units-per-pe", "4", "--pes-per-layer", "2"],
        "not allowed with",
    ),
    # --------------------------------------------------------------------- snn-egru run
    ("run-tokens--1", [*RUN, "--tokens", "-1"], "argument --tokens"),
    ("run-tokens-0", [*RUN, "--tokens", "0"], "argument --tokens"),
    ("run-tokens-1", [*RUN, "--tokens", "1"], "argument --tokens"),
    ("run-missing", [*SNN, "run", "missing.npz"], "no artifact at missing.npz"),
    ("run-bad-ids", [*RUN, "--inputs", "bad_ids.npy"], "token ids must lie in"),
    ("run-text-inputs", [*RUN, "--inputs", "text.txt"], "takes a .npy file"),
    ("run-fake-npy", [*RUN, "--inputs", "fake.npy"], "not a readable .npy"),
    ("run-lm-floats", [*RUN, "--inputs", "floats.npy"], "takes token ids"),
    ("run-dvs-ids", [*SNN, "run", "feat.npz", "--inputs", "ids.npy"], "feature vectors"),
    ("run-dvs-no-inputs", [*SNN, "run", "feat.npz"], "pass them with --inputs FILE.npy"),
    ("run-out-file", [*RUN, "--out", "afile"], "--out afile is a file"),
    (
        "run-tokens-and-inputs",
        [*RUN, "--inputs", "ids.npy", "--tokens", "5"],
        "with --inputs every input runs",
    ),
    ("run-plot", [*RUN, "--plot", "x.png"], "snn-egru run: error: unrecognized"),
    ("run-meta-list", [*SNN, "run", "meta_list.npz"], "meta_json holds a JSON list"),
    ("run-backend", [*RUN, "--backend", "gpu"], "invalid choice: 'gpu'"),
    ("run-units-0", [*RUN, "--max-units-per-pe", "0"], "--max-units-per-pe"),
    ("run-record-negative", [*RUN, "--record-steps", "-1"], "--record-steps"),
    ("run-corrupt", [*SNN, "run", "fake.npz"], "is not a snn-egru artifact"),
    (
        "run-chip-flag-ignored",
        [*RUN, "--backend", "reference", "--chips", "2"],
        "--chips applies to the chip backends",
    ),
    (
        "run-lava-lacks-option",
        [*RUN, "--backend", "spinnaker2", "--record-steps", "3"],
        "--record-steps is not available on the Lava chip models",
    ),
    (
        "demo-lava-lacks-option",
        [*SNN, "demo", "--pes-per-layer", "2"],
        "--pes-per-layer is not available on the Lava chip models",
    ),
    # ------------------------------------------------------------------ snn-egru report
    ("report-file", [*SNN, "report", "afile"], "no run folder at afile (a file"),
    ("report-missing", [*SNN, "report", "nowhere"], "no run folder at nowhere"),
    ("report-training-folder", [*SNN, "report", "trained"], "summary of a training run"),
    ("report-corrupt", [*SNN, "report", "corrupt"], "is not valid JSON"),
    ("report-no-summary", [*SNN, "report", "pruned"], "no summary.json in pruned"),
    # --------------------------------------------------------------------- snn-egru map
    ("map-chips-0", [*SNN, "map", "lm.npz", "--chips", "0"], "argument --chips"),
    ("map-both", [*SNN, "map", "lm.npz", "--synthetic", "paper-lm"], "not both"),
    ("map-nothing", [*SNN, "map"], "give a deployment artifact"),
    ("map-plot-txt", [*SNN, "map", "lm.npz", "--plot", "x.txt"], "ending in .png"),
    ("map-placement-txt", [*SNN, "map", "lm.npz", "--save-placement", "x.txt"], ".csv or .json"),
    ("map-sparsity-artifact", [*SNN, "map", "lm.npz", "--sparsity", "0.5"], "--synthetic networks"),
    ("map-missing", [*SNN, "map", "missing.npz"], "no artifact at missing.npz"),
    (
        "map-capacity-auto",
        [*SNN, "map", "lm.npz", "--receive-capacity", "auto"],
        "--receive-capacity auto sizes the lists",
    ),
    (
        "map-does-not-fit",
        [*SNN, "map", "--synthetic", "paper-lm", "--max-units-per-pe", "2"],
        "--chips",
    ),
    ("top-no-command", [*SNN], "the following arguments are required: COMMAND"),
    # ---------------------------------------------------- python -m spinnaker2_backend
    ("s2-map-chips-0", [*S2, "map", "lm.npz", "--chips", "0"], "argument --chips"),
    ("s2-map-no-fit", [*S2, "map", "wide.npz", "--max-units-per-pe", "1"], "use --chips 2"),
    ("s2-map-plot-dir", [*S2, "map", "lm.npz", "--plot", "trained"], "trained is a folder"),
    (
        "s2-map-capacity-auto",
        [*S2, "map", "lm.npz", "--receive-capacity", "auto"],
        "--receive-capacity auto sizes the lists",
    ),
    (
        "s2-run-gpu-negative",
        [*S2_RUN, "--gpu-power-w", "-1", "--gpu-ms", "1", "--gpu-energy-j", "1"],
        "argument --gpu-power-w",
    ),
    ("s2-run-gpu-partial", [*S2_RUN, "--gpu-ms", "1"], "needs all of --gpu-power-w"),
    (
        "s2-run-steps-beyond-inputs",
        [*S2_RUN, "--inputs", "ids.npy", "--steps", "99"],
        "--steps 99 is more than --inputs holds (5 steps)",
    ),
    ("s2-run-plot-txt", [*S2_RUN, "--plot", "x.txt"], "ending in .png"),
    ("s2-run-plot-dir-file", [*S2_RUN, "--plot-dir", "afile"], "afile is a file"),
    ("s2-run-abbreviation", [*S2_RUN, "--plot-d", "x"], "unrecognized arguments"),
    ("s2-run-bad-ids", [*S2_RUN, "--inputs", "bad_ids.npy"], "must lie in [0, 50)"),
    ("s2-run-tick-0", [*S2_RUN, "--tick-us", "0"], "argument --tick-us"),
    ("s2-run-pes-x", [*S2_RUN, "--pes-per-layer", "a,b"], "comma-separated"),
    # ------------------------------------------------------------ python -m lava_procs
    (
        "lava-no-fit",
        lava_run(
            "--backend",
            "spinnaker2",
            "--max-units-per-pe",
            "1",
            artifact="wide.npz",
            inputs="x6.npy",
        ),
        "use --chips 2",
    ),
    (
        "lava-chip-flag-on-floating-pt",
        lava_run("--chips", "2"),
        "--chips applies to --backend spinnaker2 only",
    ),
    (
        "lava-pes-per-layer",
        lava_run("--backend", "spinnaker2", "--pes-per-layer", "2"),
        "--pes-per-layer is not available on the Lava chip models",
    ),
    ("lava-steps-beyond-inputs", lava_run("--steps", "9"), "--steps 9 is more than --inputs holds"),
    ("lava-no-inputs", [*LAVA, "run", "lm.npz", "--out", "lava_out"], "required: --inputs"),
    ("lava-floats-for-lm", lava_run(inputs="floats.npy"), "takes token ids"),
    ("lava-ids-for-features", lava_run(artifact="feat.npz"), "feature vectors of shape (T, 6)"),
    ("lava-out-file", lava_run(out="afile"), "--out afile is a file"),
    ("lava-timeout-0", lava_run("--timeout", "0", out="o"), "argument --timeout"),
    ("lava-missing", lava_run(artifact="missing.npz", out="o"), "no artifact"),
    ("top-unknown-command", [*SNN, "fly"], "invalid choice: 'fly'"),
]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A work folder with tiny artifacts, inputs and earlier runs (fake checkpoints: the
    commands must refuse before reading them)."""
    work = tmp_path_factory.mktemp("work")
    lm = synthetic_lm((8, 8), 8, sparsity=0.5)
    lm.save(work / "lm.npz")
    synthetic_network(layer_sizes=(8,), input_size=6, readout_kind="linear", num_classes=3).save(
        work / "feat.npz"
    )
    with np.load(work / "lm.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta_json"] = np.array(json.dumps([1, 2]))
    np.savez(work / "meta_list.npz", **arrays)
    synthetic_network(layer_sizes=(200,), input_size=6, readout_kind="linear", num_classes=3).save(
        work / "wide.npz"
    )
    np.save(work / "x6.npy", np.zeros((3, 6), np.float32))
    np.save(work / "ids.npy", np.arange(5))
    np.save(work / "bad_ids.npy", np.array([1, 999]))
    np.save(work / "floats.npy", np.zeros((5, 8), np.float32))
    (work / "text.txt").write_text("1 2 3\n")
    (work / "fake.npy").write_bytes(b"not numpy")
    (work / "fake.npz").write_bytes(b"not a zip")
    (work / "afile").write_text("a file\n")
    trained = work / "trained"
    trained.mkdir()
    for name in ("best.pt", "last.pt", "metrics.csv"):
        (trained / name).write_bytes(b"an earlier run: " + name.encode())
    (trained / "summary.json").write_text(json.dumps({"steps": 10, "best_valid_perplexity": 9.0}))
    (work / "stopped").mkdir()
    (work / "stopped" / "metrics.jsonl").write_text('{"kind": "train", "step": 25}\n')
    (work / "pruned" / "prune").mkdir(parents=True)
    (work / "pruned" / "prune" / "last.pt").write_bytes(b"an earlier pruned model")
    (work / "corrupt").mkdir()
    (work / "corrupt" / "summary.json").write_text("{not json")
    return work


@pytest.fixture(scope="module")
def results(work: Path) -> dict[str, subprocess.CompletedProcess]:
    """Run every case (a few at a time) and check that none changed the work folder."""
    before = _digest(work)
    cases = [*CASES, CUDA_CASE]
    groups = [
        ([c for c in cases if c[1][2] == "snn_egru.cli"], SNN_PRELOAD),
        ([c for c in cases if c[1][2] != "snn_egru.cli"], CHIP_PRELOAD),
    ]

    def one(group):
        cases, preload = group
        done = run_commands(
            [(cmd, work) for _, cmd, _ in cases], preload=preload, jobs=2, env={"PYTHONPATH": ROOT}
        )
        return dict(zip([name for name, _, _ in cases], done))

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {k: v for part in pool.map(one, groups) for k, v in part.items()}
    after = _digest(work)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the work folder changed: {changed}"
    return done


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line_exit_2(results, case) -> None:
    name, cmd, expected = case
    proc = results[name]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
    assert ": error: " in lines[0]


def test_cases_have_unique_names() -> None:
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))


#: Run with the cases; checked only where there is no GPU.
CUDA_CASE = ("cuda-without-a-gpu", [*LM, "--device", "cuda", "--out", "fresh"], "")


def test_cuda_without_a_gpu_is_one_line(results) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = results[CUDA_CASE[0]]
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "--device cuda" in proc.stderr and "use --device cpu" in proc.stderr


def test_verbose_shows_the_traceback(work: Path) -> None:
    proc = subprocess.run(
        [*SNN, "--verbose", "report", "corrupt"], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = subprocess.run(
        [*SNN, "report", "corrupt", "-v"], cwd=work, capture_output=True, text=True
    )
    assert "Traceback" in proc.stderr


def test_closed_pipe_is_quiet(work: Path) -> None:
    """``snn-egru map ... | head -0``: the reader has gone before the report is written;
    the command ends quietly (no BrokenPipeError, no "Exception ignored")."""
    proc = subprocess.Popen(
        [*SNN, "map", "lm.npz", "--per-pe"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # like `head` exiting before the command prints
    err = proc.stderr.read() if proc.stderr else b""
    proc.wait(timeout=300)
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"ignored" not in err
    assert proc.returncode == 0
