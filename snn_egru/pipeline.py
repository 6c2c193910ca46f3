"""The main job, end to end: train -> prune -> export -> map -> run -> report.

Each stage is a function that writes its products into one run folder and returns what the
next stage needs, so a stage can be re-run alone (the CLI's subcommands) and the demo is
just the chain::

    RUN_DIR/
      train/            checkpoints (best.pt, last.pt), metrics.csv/jsonl, summary.json
      prune/            the pruned, fine-tuned checkpoints and their metrics
      artifact.npz      the deployment artifact (torch-free)
      mapping/          mapping_report.json, mapping_report.txt, memory.png
      chip/             the Lava run on the simulated chip: outputs.npz, chip_report.json
      tokens.npy        the test slice that was run
      summary.json      every number of the results section
      summary.txt       the results section as text
      *.png             plots

Torch and Lava never share a process: the Lava stage runs ``python -m lava_procs run`` in a
child process on the artifact file (``snn_egru`` never imports Lava).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru.errors import UserError
from snn_egru.pipeline_training import (
    StagePlan,
    plan_prune,
    plan_train,
    stage_prune,
    stage_train,
)
from snn_egru.summary import (
    build_summary,
    sparsity_account,
    write_report,
)

log = logging.getLogger(__name__)

#: Tokens per "sequence" in the published SpiNNaker2 measurement (docs/spinnaker2.md).
SEQUENCE_TOKENS = 70

__all__ = [
    "DemoSettings",
    "perplexity_from_logits",
    "run_demo",
    "stage_export",
    "stage_map",
    "stage_prune",
    "stage_run_lava",
    "stage_torch_eval",
    "stage_train",
]


@dataclass
class DemoSettings:
    """Settings of the main job (``snn-egru demo``).

    Attributes:
        out_dir: the run folder.
        preset: LM preset (``small`` for the demo, ``tiny`` for smoke tests).
        train_steps: optimizer steps of training (``None``: the preset's).
        prune_sparsity: target weight sparsity of every EGRU weight matrix.
        prune_steps: fine-tuning steps during which the gradual (cubic) pruning runs; the
            last third holds the target sparsity.
        eval_tokens: tokens of the PTB test split run on the chip and in PyTorch.
        backend: Lava process models for the chip run (``spinnaker2`` or ``floating_pt``).
        weight_format: chip weight layout (``csr``, ``event``, ``dense``).
        max_units_per_pe: partition limit (``None``: automatic).
        mapping: further mapping and machine options, as keyword arguments of
            :func:`spinnaker2_backend.map_network` in command-line form (``pes_per_layer``,
            ``record_steps``, ``input_source``, ``chips``, ``clock_mhz``); see
            :mod:`spinnaker2_backend.options`.
        retrain: train and prune again even if checkpoints exist (they are replaced).
        reprune: prune again (replacing ``prune/``), reusing the trained model.
        full_test: after training and after pruning, evaluate on the whole PTB test split
            (about a minute each on 2 cores for the small preset).
        seed: random seed.
        show_progress: progress bars on a terminal, log lines otherwise.
        adaptive_softmax: cutoffs of an adaptive-softmax decoder (untied; pruning leaves
            it dense, as it does a decoder; the host computes its log-probabilities from
            the chip's events); ``()``: the preset's full softmax.
    """

    out_dir: Path = Path("runs/demo")
    preset: str = "small"
    train_steps: int | None = None
    prune_sparsity: float = 0.9
    prune_steps: int = 300
    eval_tokens: int = 2 * SEQUENCE_TOKENS + 1
    backend: str = "spinnaker2"
    weight_format: str = "csr"
    max_units_per_pe: int | None = None
    mapping: dict[str, Any] = field(default_factory=dict)
    retrain: bool = False
    full_test: bool = True
    seed: int = 0
    show_progress: bool = True
    reprune: bool = False
    adaptive_softmax: tuple[int, ...] = ()

    def train_options(self) -> dict[str, Any]:
        """What decides whether ``train/`` can be reused (:func:`plan_train`)."""
        return {
            "preset": self.preset,
            "steps": self.train_steps,
            "seed": self.seed,
            "retrain": self.retrain,
            "adaptive_softmax": tuple(self.adaptive_softmax),
        }

    def prune_options(self) -> dict[str, Any]:
        """What decides whether ``prune/`` can be reused (:func:`plan_prune`)."""
        return {
            "sparsity": self.prune_sparsity,
            "steps": self.prune_steps,
            "seed": self.seed,
            "retrain": self.retrain or self.reprune,
        }

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.preset not in ("tiny", "small", "paper", "paper-wikitext2"):
            raise UserError(f"--preset must be tiny or small, got {self.preset!r}")
        if not 0.0 <= self.prune_sparsity < 1.0:
            raise UserError(f"--sparsity must lie in [0, 1), got {self.prune_sparsity}")
        if self.eval_tokens < 2:
            raise UserError(f"--eval-tokens must be >= 2, got {self.eval_tokens}")
        if self.prune_steps < 1:
            raise UserError(f"--prune-steps must be >= 1, got {self.prune_steps}")
        if self.train_steps is not None and self.train_steps < 1:
            raise UserError(f"--train-steps must be >= 1, got {self.train_steps}")
        if self.backend not in ("spinnaker2", "floating_pt"):
            raise UserError(f"--backend must be spinnaker2 or floating_pt, got {self.backend!r}")
        if self.weight_format not in ("csr", "event", "dense"):
            raise UserError(f"--weight-format must be csr, event or dense: {self.weight_format!r}")
        units = self.max_units_per_pe
        if units is not None and (
            isinstance(units, bool) or not isinstance(units, int) or units < 1
        ):
            raise UserError(f"--max-units-per-pe must be an integer >= 1, got {units!r}")
        unknown = set(self.mapping) - {
            "pes_per_layer",
            "record_steps",
            "input_source",
            "chips",
            "clock_mhz",
        }
        if unknown:
            raise UserError(f"unknown mapping options {sorted(unknown)}")

    def map_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`spinnaker2_backend.map_network` for these settings."""
        from spinnaker2_backend.constants import ChipSpec
        from spinnaker2_backend.machine import Machine

        extra = dict(self.mapping)
        chips = int(extra.pop("chips", 1))
        clock = extra.pop("clock_mhz", None)
        spec = ChipSpec() if clock is None else ChipSpec().with_clock_mhz(clock)
        return {
            "machine": Machine(chips=chips, spec=spec),
            "weight_format": self.weight_format,
            "max_units_per_pe": self.max_units_per_pe,
            **extra,
        }

    def mapping_argv(self) -> list[str]:
        """The ``mapping`` options as flags of ``python -m lava_procs run``."""
        words: list[str] = []
        for key, value in self.mapping.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            words += [
                "--" + key.replace("_", "-"),
                f"{value:g}" if isinstance(value, float) else str(value),
            ]
        return words


# ----------------------------------------------------------------------------- metrics
def perplexity_from_logits(logits: np.ndarray, targets: np.ndarray) -> float:
    """``exp(mean cross-entropy)`` of next-token ``logits (T, V)`` against ``targets (T,)``."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(f"{logits.shape[0]} logits rows for {targets.shape[0]} targets")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    nll = log_z - shifted[np.arange(targets.shape[0]), targets]
    return float(math.exp(nll.mean()))


# ------------------------------------------------------------------------------- stages
def stage_export(checkpoint: Path, artifact_path: Path) -> Path:
    """Export a language-model checkpoint to the deployment artifact."""
    from snn_egru.export import export_language_model_checkpoint

    artifact = export_language_model_checkpoint(checkpoint, artifact_path)
    log.info(
        "export: %s (layers %s, weight sparsity %s)",
        artifact_path,
        artifact.layer_sizes,
        ", ".join(f"{row['weight_hh']:.2f}" for row in artifact.weight_sparsity()),
    )
    return artifact_path


def stage_map(
    artifact_path: Path,
    out_dir: Path,
    *,
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Map the artifact onto the simulated machine; save the report and the memory heatmap.

    ``options``: further keyword arguments of :func:`spinnaker2_backend.map_network`
    (``machine``, ``pes_per_layer``, ``record_steps``, ``input_source``).
    """
    from spinnaker2_backend import map_network
    from spinnaker2_backend.plots import plot_memory_heatmap

    folder = out_dir / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    log.info("map: mapping %s (%s weights)", artifact_path, weight_format)
    started = time.perf_counter()
    try:
        mapping = map_network(
            artifact_path,
            weight_format=weight_format,
            max_units_per_pe=max_units_per_pe,
            **options,
        )
    except ValueError as err:  # MappingError: does not fit
        raise UserError(str(err)) from None
    report = mapping.report()
    (folder / "mapping_report.json").write_text(report.to_json())
    (folder / "mapping_report.txt").write_text(report.table())
    plot_memory_heatmap(mapping, folder / "memory.png")
    log.info(
        "map: %d PEs in %.1f s; report in %s",
        report.pes_used,
        time.perf_counter() - started,
        folder,
    )
    return {
        "pes_used": report.pes_used,
        "pes_available": report.pes_available,
        "weight_format": report.weight_format,
        "fullest_pe": asdict(report.fullest),
        "fullest_utilisation": report.fullest.utilisation,
        "mean_utilisation": report.mean_utilisation,
        "summary": report.summary(),
    }


def load_test_tokens(num_tokens: int) -> tuple[np.ndarray, list[str]]:
    """The first ``num_tokens`` tokens of the PTB test split (ids) and the vocabulary."""
    from snn_egru.data.text import load_penn_treebank

    corpus = load_penn_treebank()
    test = corpus.split("test")[:num_tokens].numpy().astype(np.int64)
    return test, corpus.vocabulary.to_list()


def stage_torch_eval(checkpoint: Path, tokens: np.ndarray) -> dict[str, Any]:
    """Perplexity of the PyTorch model on ``tokens`` (batch 1, state carried), logits kept."""
    import torch

    from snn_egru.training.lm import load_language_model

    model, _, _ = load_language_model(checkpoint)
    start = time.perf_counter()
    with torch.no_grad():
        inputs = torch.from_numpy(tokens[:-1]).long().view(-1, 1)
        out = model(inputs)
    seconds = time.perf_counter() - start
    logits = out.logits[:, 0].double().numpy()
    return {
        "perplexity": perplexity_from_logits(logits, tokens[1:]),
        "seconds": seconds,
        "logits": logits,
        "layer_events": [y[:, 0].numpy() for y in out.layer_outputs],
    }


#: Folder of the Lava run per backend, inside the run folder.
LAVA_FOLDERS = {"spinnaker2": "chip", "floating_pt": "lava_float"}


def stage_run_lava(
    artifact_path: Path,
    tokens: np.ndarray | None,
    out_dir: Path,
    *,
    backend: str = "spinnaker2",
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    inputs: np.ndarray | None = None,
    extra_args: list[str] | None = None,
    timeout_s: float = 3600.0,
    folder: Path | None = None,
    echo: Any = None,
) -> dict[str, Any]:
    """Run inputs through the Lava graph in a child process (``python -m lava_procs run``).

    Args:
        artifact_path: the artifact file.
        tokens: a token stream: ``tokens[:-1]`` is run and ``tokens[1:]`` are the targets
            of the perplexity; or ``None`` with ``inputs``.
        out_dir: the run folder; the Lava products go to ``out_dir/chip`` (``spinnaker2``)
            or ``out_dir/lava_float`` (``floating_pt``), or to ``folder``.
        backend: Lava process models, ``spinnaker2`` or ``floating_pt``.
        weight_format, max_units_per_pe: chip options.
        inputs: any inputs the artifact takes (token ids or feature vectors), run as given
            (no perplexity).
        extra_args: further flags of ``python -m lava_procs run`` (mapping and machine).
        timeout_s: the child is stopped after this long.
        folder: where the Lava products go (default: see ``out_dir``).
        echo: called with each line of the child's output as it comes (default: the log).

    The child's output is streamed line by line as it comes (and kept in
    ``lava_stdout.txt``).
    """
    if (tokens is None) == (inputs is None):
        raise ValueError("give tokens (a stream with targets) or inputs, not both")
    folder = folder if folder is not None else out_dir / LAVA_FOLDERS[backend]
    folder.mkdir(parents=True, exist_ok=True)
    run_inputs = tokens[:-1] if tokens is not None else np.asarray(inputs)
    inputs_path = folder / "inputs.npy"
    np.save(inputs_path, run_inputs)
    cmd = [
        sys.executable,
        "-m",
        "lava_procs",
        "run",
        str(artifact_path),
        "--inputs",
        str(inputs_path),
        "--backend",
        backend,
        "--out",
        str(folder),
        "--overwrite",  # the caller (demo, `snn-egru run`) refused an earlier run already
    ]
    if backend == "spinnaker2":  # the floating_pt models map onto no chip
        cmd += ["--weight-format", weight_format]
        if max_units_per_pe is not None:
            cmd += ["--max-units-per-pe", str(max_units_per_pe)]
        cmd += list(extra_args or [])
    log.info("run: %d steps through the Lava graph (%s models)", len(run_inputs), backend)
    returncode, output = _stream_child(
        cmd, folder / "lava_stdout.txt", timeout_s=timeout_s, echo=echo
    )
    if returncode != 0:
        errors = [line for line in output if "error:" in line] or output or ["(no message)"]
        last = errors[-1].split("error:", 1)[-1].strip()
        raise UserError(f"the Lava run failed: {last} (full log: {folder / 'lava_stdout.txt'})")
    with np.load(folder / "outputs.npz") as npz:
        logits = npz["logits"] if "logits" in npz.files else None
        events = [npz[k] for k in sorted(k for k in npz.files if k.endswith("_events"))]
    result: dict[str, Any] = {
        "logits": logits,
        "layer_events": events,
        "lava": json.loads((folder / "lava_run.json").read_text()),
        "folder": folder,
    }
    if tokens is not None and logits is not None:
        result["perplexity"] = perplexity_from_logits(logits, tokens[1:])
    chip_json = folder / "chip_report.json"
    if chip_json.exists():
        result["chip_report"] = json.loads(chip_json.read_text())
    return result


def _stream_child(
    cmd: list[str], log_path: Path, *, timeout_s: float, echo: Any = None
) -> tuple[int, list[str]]:
    """Run ``cmd``; hand each line of its output to ``echo`` (default: the log) as it comes,
    keep all of it in ``log_path``; return the exit status and the lines. Stopped after
    ``timeout_s``."""
    import threading

    if echo is None:
        child_log = logging.getLogger("snn_egru.lava")

        def echo(line: str) -> None:
            child_log.info("%s", line)

    lines: list[str] = []
    with open(log_path, "w", encoding="utf-8") as keep:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, stop)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                keep.write(line)
                keep.flush()
                line = line.rstrip("\n")
                lines.append(line)
                if ": error: " not in line:  # the error is reported by the caller, once
                    echo(line)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
    if timed_out.is_set():
        lines.append(f"error: stopped after the time limit of {timeout_s:.0f} s")
    return returncode, lines


# -------------------------------------------------------------------------------- demo
def _train_summary(folder: Path) -> dict[str, Any] | None:
    path = folder / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def check_demo(settings: DemoSettings) -> tuple[StagePlan, StagePlan, np.ndarray]:
    """Everything the demo can check before any work: the run folder, the evaluation slice,
    which checkpoints can be reused (same settings) and which would be replaced.

    Returns:
        the training and pruning plans and the evaluation tokens.

    Raises:
        UserError: a problem the user can fix (the message says how).
    """
    out = settings.out_dir
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the run")
    tokens, _ = load_test_tokens(settings.eval_tokens)
    if len(tokens) < settings.eval_tokens:
        raise UserError(
            f"--eval-tokens {settings.eval_tokens} is more than the PTB test split has "
            f"({len(tokens)} tokens)"
        )
    train_plan = plan_train(out, **settings.train_options())
    trained = train_plan.checkpoint if train_plan.reuse else None
    prune_plan = plan_prune(out, trained, **settings.prune_options())
    try:
        settings.map_kwargs()
    except ValueError as err:
        raise UserError(str(err)) from None
    return train_plan, prune_plan, tokens


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """The main job; returns the summary (also written to ``out_dir/summary.json``).

    Every setting is checked first (:func:`check_demo`); checkpoints of an earlier run in
    the same folder are reused only when they were made with the same settings.
    """
    out = settings.out_dir
    train_plan, prune_plan, tokens = check_demo(settings)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phases: dict[str, float] = {}  # seconds per stage (summary.json "phases_s")
    lap = [started]

    def done(name: str) -> None:
        now = time.perf_counter()
        phases[name], lap[0] = now - lap[0], now

    run = {"full_test": settings.full_test, "show_progress": settings.show_progress}
    checkpoint = stage_train(out, **settings.train_options(), **run)
    done("train")
    pruned = stage_prune(checkpoint, out, **settings.prune_options(), **run)
    done("prune")
    artifact_path = stage_export(pruned, out / "artifact.npz")
    done("export")
    map_kwargs = settings.map_kwargs()
    mapping = stage_map(artifact_path, out, **map_kwargs)
    done("map")
    np.save(out / "tokens.npy", tokens)
    torch_eval = stage_torch_eval(pruned, tokens)
    done("torch_eval")
    chip_run = stage_run_lava(
        artifact_path,
        tokens,
        out,
        backend=settings.backend,
        weight_format=settings.weight_format,
        max_units_per_pe=settings.max_units_per_pe,
        extra_args=settings.mapping_argv(),
    )
    for backend, name in LAVA_FOLDERS.items():  # a folder of the other backend is stale
        stale = out / name
        if backend != settings.backend and (stale / "lava_run.json").exists():
            log.info("removing %s (an earlier run on the %s models)", stale, backend)
            shutil.rmtree(stale)
    done("lava_run")
    account = sparsity_account(artifact_path, tokens[:-1], chip_run["layer_events"])
    from snn_egru.training.common import load_checkpoint

    summary = build_summary(
        settings,
        account=account,
        tokens=tokens,
        torch_eval=torch_eval,
        chip_run=chip_run,
        mapping=mapping,
        train_summary=_train_summary(out / "train"),
        prune_summary=_train_summary(out / "prune"),
    )
    summary["settings"]["train_steps"] = load_checkpoint(checkpoint).step
    summary["checkpoints"] = {
        "train": str(checkpoint),
        "train_reused": train_plan.reuse,
        "prune": str(pruned),
        "prune_reused": prune_plan.reuse,
    }
    done("accounting")
    summary["phases_s"] = phases  # write_report (summary files, activity plot) comes after
    summary["wall_time_s"] = time.perf_counter() - started
    write_report(out, summary, account=account)
    return summary
