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
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru.errors import UserError

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
        retrain: train again even if a checkpoint exists.
        full_test: after training and after pruning, evaluate on the whole PTB test split
            (about a minute each on 2 cores for the small preset).
        seed: random seed.
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
    retrain: bool = False
    full_test: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if not 0.0 <= self.prune_sparsity < 1.0:
            raise UserError(f"--sparsity must lie in [0, 1), got {self.prune_sparsity}")
        if self.eval_tokens < 2:
            raise UserError(f"--eval-tokens must be >= 2, got {self.eval_tokens}")
        if self.prune_steps < 1:
            raise UserError(f"--prune-steps must be >= 1, got {self.prune_steps}")


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
def _best_checkpoint(folder: Path) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (folder / name).exists():
            return folder / name
    return None


def stage_train(
    out_dir: Path,
    *,
    preset: str,
    steps: int | None = None,
    seed: int = 0,
    retrain: bool = False,
    full_test: bool = True,
) -> Path:
    """Train the language model (or reuse the checkpoint a previous run saved)."""
    from snn_egru.training.lm import preset_configs, train_language_model

    folder = out_dir / "train"
    existing = _best_checkpoint(folder)
    if existing is not None and not retrain:
        log.info("train: reusing %s (pass --retrain to train again)", existing)
        return existing
    model_config, train_config = preset_configs(preset)
    overrides: dict[str, Any] = {"seed": seed, "final_test": full_test}
    if steps is not None:
        overrides["max_steps"] = steps
    train_config = replace(train_config, **overrides)
    log.info("train: preset %r on %s -> %s", preset, train_config.corpus, folder)
    result = train_language_model(model_config, train_config, out_dir=folder)
    log.info(
        "train: %d steps in %.0f s, valid perplexity %.1f",
        result.steps,
        result.wall_time_s,
        result.best_valid_perplexity,
    )
    checkpoint = _best_checkpoint(folder)
    if checkpoint is None:
        raise RuntimeError(f"training wrote no checkpoint into {folder}")
    return checkpoint


def stage_prune(
    checkpoint: Path,
    out_dir: Path,
    *,
    sparsity: float,
    steps: int,
    seed: int = 0,
    retrain: bool = False,
    full_test: bool = True,
) -> Path:
    """Gradual magnitude pruning to ``sparsity`` while fine-tuning from ``checkpoint``.

    The cubic schedule (Zhu & Gupta) runs over the first two thirds of ``steps``; the rest
    fine-tunes at the target sparsity. Masks keep pruned weights at exactly zero.
    """
    from snn_egru.models.lm import LanguageModelConfig
    from snn_egru.pruning import PruningConfig
    from snn_egru.training.common import load_checkpoint
    from snn_egru.training.lm import LMTrainConfig, train_language_model

    folder = out_dir / "prune"
    existing = _best_checkpoint(folder)
    if existing is not None and not retrain:
        log.info("prune: reusing %s", existing)
        return existing
    source = load_checkpoint(checkpoint)
    model_config = source.model_config(LanguageModelConfig)
    train_config = source.training_config(LMTrainConfig)
    end = max(1, (2 * steps) // 3)
    pruning = PruningConfig(
        target_sparsity=sparsity,
        schedule="gradual",
        initial_sparsity=0.0,
        start_step=0,
        end_step=end,
        frequency=max(1, end // 10),
    )
    train_config = replace(
        train_config,
        max_steps=steps,
        schedule_steps=steps,
        warmup_steps=0,
        hold_steps=0,
        lr=train_config.lr * 0.5,
        pruning=pruning,
        init_from=str(checkpoint),
        seed=seed,
        eval_every=0,
        final_test=full_test,
    )
    log.info("prune: to %.0f %% over %d fine-tuning steps -> %s", 100 * sparsity, steps, folder)
    train_language_model(model_config, train_config, out_dir=folder)
    # the pruned model is the one at the end (the best validation checkpoint may predate
    # the target sparsity)
    last = folder / "last.pt"
    if not last.exists():
        raise RuntimeError(f"pruning wrote no checkpoint into {folder}")
    return last


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
) -> dict[str, Any]:
    """Map the artifact onto one simulated chip; save the report and the memory heatmap."""
    from spinnaker2_backend import map_network
    from spinnaker2_backend.plots import plot_memory_heatmap

    folder = out_dir / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mapping = map_network(
            artifact_path, weight_format=weight_format, max_units_per_pe=max_units_per_pe
        )
    except ValueError as err:  # MappingError: does not fit
        raise UserError(str(err)) from None
    report = mapping.report()
    (folder / "mapping_report.json").write_text(report.to_json())
    (folder / "mapping_report.txt").write_text(report.table())
    plot_memory_heatmap(mapping, folder / "memory.png")
    log.info("map: %d PEs; report in %s", report.pes_used, folder)
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


def stage_run_lava(
    artifact_path: Path,
    tokens: np.ndarray,
    out_dir: Path,
    *,
    backend: str = "spinnaker2",
    weight_format: str = "csr",
    max_units_per_pe: int | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Run ``tokens[:-1]`` through the Lava graph in a child process; read its outputs."""
    folder = out_dir / ("chip" if backend == "spinnaker2" else "lava_float")
    folder.mkdir(parents=True, exist_ok=True)
    inputs = folder / "inputs.npy"
    np.save(inputs, tokens[:-1])
    cmd = [
        sys.executable,
        "-m",
        "lava_procs",
        "run",
        str(artifact_path),
        "--inputs",
        str(inputs),
        "--backend",
        backend,
        "--out",
        str(folder),
        "--weight-format",
        weight_format,
    ]
    if max_units_per_pe is not None:
        cmd += ["--max-units-per-pe", str(max_units_per_pe)]
    log.info("run: %d tokens through the Lava graph (%s models)", len(tokens) - 1, backend)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    (folder / "lava_stdout.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UserError(f"the Lava run failed: {last} (full log: {folder / 'lava_stdout.txt'})")
    with np.load(folder / "outputs.npz") as npz:
        logits = npz["logits"]
        events = [npz[k] for k in sorted(k for k in npz.files if k.endswith("_events"))]
    result: dict[str, Any] = {
        "perplexity": perplexity_from_logits(logits, tokens[1:]),
        "logits": logits,
        "layer_events": events,
        "lava": json.loads((folder / "lava_run.json").read_text()),
    }
    chip_json = folder / "chip_report.json"
    if chip_json.exists():
        result["chip_report"] = json.loads(chip_json.read_text())
    return result


# ------------------------------------------------------------------------------ report
def _sparsity_account(artifact_path: Path, inputs: np.ndarray, events: list[np.ndarray]):
    from snn_egru.artifact import load_artifact
    from snn_egru.sparsity import SparsityMeter

    artifact = load_artifact(artifact_path)
    meter = SparsityMeter(
        [(layer.weight_ih, layer.weight_hh) for layer in artifact.layers],
        readout_weight=artifact.decoder_weight,
    )
    meter.update(artifact.layer_inputs(inputs), events)
    return meter.result()


def build_summary(
    settings: DemoSettings,
    *,
    account: Any,
    tokens: np.ndarray,
    torch_eval: dict[str, Any],
    chip_run: dict[str, Any],
    mapping: dict[str, Any],
    train_summary: dict[str, Any] | None,
    prune_summary: dict[str, Any] | None,
) -> dict[str, Any]:
    """Every number of the results section, computed from the stages' products."""
    max_logit_diff = float(np.max(np.abs(torch_eval["logits"] - chip_run["logits"])))
    torch_ppl, chip_ppl = torch_eval["perplexity"], chip_run["perplexity"]
    summary: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "tokens_evaluated": int(len(tokens) - 1),
        "perplexity": {
            "pytorch": torch_ppl,
            "simulated_chip": chip_ppl,
            "relative_difference": abs(chip_ppl - torch_ppl) / torch_ppl,
            "max_abs_logit_difference": max_logit_diff,
        },
        "sparsity": account.to_dict(),
        "mapping": mapping,
        "chip": chip_run.get("chip_report"),
        "lava": chip_run["lava"],
        "train": train_summary,
        "prune": prune_summary,
    }
    return summary


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def format_summary(summary: dict[str, Any]) -> str:
    """The results section as text (what ``snn-egru demo`` / ``report`` print)."""
    lines: list[str] = []
    ppl = summary["perplexity"]
    sp = summary["sparsity"]
    lines.append("== Results ==")
    train = summary.get("train") or {}
    if train:
        lines.append(
            f"Training: {train.get('steps', '?')} steps in {train.get('wall_time_s', 0):.0f} s; "
            f"test perplexity (full PTB test split, dense weights) "
            f"{_num(train, 'test_perplexity')}."
        )
    prune = summary.get("prune") or {}
    if prune:
        lines.append(
            f"Pruning: gradual magnitude pruning to {summary['settings']['prune_sparsity']:.0%}"
            f" with {prune.get('steps', '?')} fine-tuning steps; test perplexity "
            f"{_num(prune, 'test_perplexity')}."
        )
    lines.append(
        f"Evaluation slice: the first {summary['tokens_evaluated']} next-token predictions of "
        "the PTB test split, batch 1."
    )
    lines.append(
        f"Perplexity: PyTorch {ppl['pytorch']:.2f}, simulated SpiNNaker2 (Lava graph) "
        f"{ppl['simulated_chip']:.2f} (relative difference {ppl['relative_difference']:.1e}; "
        f"largest logit difference {ppl['max_abs_logit_difference']:.1e})."
    )
    lines.append(
        f"Sparsity: activity {sp['activity_sparsity']:.1%} of unit-steps silent, weights "
        f"{sp['weight_sparsity']:.1%} zero, {sp['events_per_token']:.1f} events per token."
    )
    macs = sp["rnn_macs"]
    lines.append(
        "MACs per token in the EGRU layers: dense "
        f"{macs['dense']:,.0f}, weight-sparse {macs['weight_sparse']:,.0f}, event-driven "
        f"{macs['event_driven']:,.0f} ({macs['dense'] / max(macs['event_driven'], 1):.1f}x "
        "fewer than dense)."
    )
    mapping = summary.get("mapping") or {}
    if mapping:
        lines.append("Mapping: " + _mapping_line(mapping))
        lines.extend(_fullest_pe_table(mapping["fullest_pe"]))
    chip = summary.get("chip")
    if chip:
        lines.append(
            f"Simulated chip time: {chip['seconds_per_token'] * 1e3:.3f} ms per token, "
            f"{chip['seconds_per_sequence'] * 1e3:.2f} ms per {chip['sequence_tokens']}-token "
            f"sequence; energy {chip['energy_per_sequence_j'] * 1e3:.3f} mJ per sequence at "
            f"{chip['average_power_w']:.3f} W average."
        )
        prof = chip["profile_per_token"]
        total = sum(prof.values()) or 1.0
        lines.append(
            "Profile per token: "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in prof.items() if v > 0)
            + "."
        )
        counts = chip["per_step"]
        lines.append(
            "Packets per token: "
            + ", ".join(f"{k} {v:,.1f}" for k, v in counts.items() if "packet" in k)
            + "."
        )
        lines.append("Comparison per sequence (published rows are measurements):")
        for row in chip["comparison"]:
            lines.append(
                f"  {row['name']:42s} {row['power_w']:7.3g} W "
                f"{row['seconds_per_sequence'] * 1e3:10.2f} ms "
                f"{row['energy_j_per_sequence']:9.3g} J  ({row['kind']})"
            )
    lines.append(
        f"Lava: {summary['lava']['steps']} steps in {summary['lava']['run_s']:.2f} s "
        f"({summary['lava']['steps_per_s']:.1f} steps/s, start-up "
        f"{summary['lava']['startup_s']:.1f} s)."
    )
    return "\n".join(lines)


def _num(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return "n/a" if value is None else f"{value:.1f}"


#: Memory regions of a PE, in the order of the mapping report.
_REGIONS = (
    "code",
    "static_data",
    "weights",
    "variables",
    "receive_buffers",
    "recordings",
    "stack_heap",
)


def _fullest_pe_table(pe: dict[str, Any]) -> list[str]:
    """The fullest PE's bytes per memory region (code in instruction memory, rest in data)."""
    rows = [f"  {'region':16s} {'bytes':>8s}"]
    rows += [
        f"  {'code (instr.)' if name == 'code' else name:16s} {pe[name]:8,d}"
        for name in _REGIONS
        if name in pe
    ]
    rows.append(f"  {'data total':16s} {pe['total']:8,d}   (free {pe['free']:,})")
    return ["Memory of the fullest PE:", *rows]


def _mapping_line(mapping: dict[str, Any]) -> str:
    fullest = mapping["fullest_pe"]
    return (
        f"{mapping['pes_used']} of {mapping['pes_available']} PEs ({mapping['weight_format']} "
        f"weights); fullest PE {fullest['pe']} holds {fullest['units']} units and "
        f"{fullest['nnz']:,} weights in {fullest['total']:,} bytes = "
        f"{mapping['fullest_utilisation']:.1%} of its data memory (mean "
        f"{mapping['mean_utilisation']:.1%})."
    )


# -------------------------------------------------------------------------------- demo
def _train_summary(folder: Path) -> dict[str, Any] | None:
    path = folder / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """The main job; returns the summary (also written to ``out_dir/summary.json``)."""
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    checkpoint = stage_train(
        out,
        preset=settings.preset,
        steps=settings.train_steps,
        seed=settings.seed,
        retrain=settings.retrain,
        full_test=settings.full_test,
    )
    pruned = stage_prune(
        checkpoint,
        out,
        sparsity=settings.prune_sparsity,
        steps=settings.prune_steps,
        seed=settings.seed,
        retrain=settings.retrain,
        full_test=settings.full_test,
    )
    artifact_path = stage_export(pruned, out / "artifact.npz")
    mapping = stage_map(
        artifact_path,
        out,
        weight_format=settings.weight_format,
        max_units_per_pe=settings.max_units_per_pe,
    )
    tokens, _ = load_test_tokens(settings.eval_tokens)
    np.save(out / "tokens.npy", tokens)
    torch_eval = stage_torch_eval(pruned, tokens)
    chip_run = stage_run_lava(
        artifact_path,
        tokens,
        out,
        backend=settings.backend,
        weight_format=settings.weight_format,
        max_units_per_pe=settings.max_units_per_pe,
    )
    account = _sparsity_account(artifact_path, tokens[:-1], chip_run["layer_events"])
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
    summary["wall_time_s"] = time.perf_counter() - started
    write_report(out, summary, account=account)
    return summary


def write_report(out: Path, summary: dict[str, Any], *, account: Any) -> None:
    """Write summary.json, summary.txt and the activity plot (the chip's profile and packet
    plots are written by the Lava run into ``chip/``)."""
    from snn_egru.plots import plot_activity_over_time

    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    (out / "summary.txt").write_text(format_summary(summary) + "\n")
    plot_activity_over_time(
        account, out / "activity.png", title="EGRU activity on the simulated chip (per token)"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
