"""The results of a demo run: ``summary.json``, ``summary.txt`` and the activity plot.

:func:`build_summary` collects every number of the results section from the stages'
products (see :mod:`snn_egru.pipeline`); :func:`format_summary` writes it as text (what
``snn-egru demo`` and ``snn-egru report`` print).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKEND_LABELS",
    "build_summary",
    "finite_json",
    "format_summary",
    "sparsity_account",
    "write_report",
]


def sparsity_account(artifact_path: Path, inputs: np.ndarray, events: list[np.ndarray]):
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
    settings: Any,
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
            "lava_backend": settings.backend,
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


#: How the summary names the Lava run of each backend.
BACKEND_LABELS = {
    "spinnaker2": "simulated SpiNNaker2 (Lava graph)",
    "floating_pt": "Lava graph on the floating_pt models (no chip)",
}


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def format_summary(summary: dict[str, Any]) -> str:
    """The results section as text (what ``snn-egru demo`` / ``report`` print)."""
    lines: list[str] = []
    ppl = summary["perplexity"]
    sp = summary["sparsity"]
    lines.append("== Results ==")
    train, prune = (summary.get(stage) or {} for stage in ("train", "prune"))
    if train:
        lines.append(
            f"Training: {train.get('steps', '?')} steps in {train.get('wall_time_s', 0):.0f} s; "
            f"test perplexity (full PTB test split, dense weights) "
            f"{_num(train, 'test_perplexity')}."
        )
    if prune:
        lines.append(
            f"Pruning: gradual magnitude pruning to {summary['settings']['prune_sparsity']:.0%}"
            f" with {prune.get('steps', '?')} fine-tuning steps; test perplexity "
            f"{_num(prune, 'test_perplexity')}."
        )
    ckpts = summary.get("checkpoints") or {}
    if ckpts:
        train = "reused (same settings)" if ckpts.get("train_reused") else "trained"
        prune = "reused (same settings)" if ckpts.get("prune_reused") else "pruned"
        lines.append(f"Checkpoints: {ckpts['train']} {train}; {ckpts['prune']} {prune} from it.")
    lines.append(
        f"Evaluation slice: the first {summary['tokens_evaluated']} next-token predictions of "
        "the PTB test split, batch 1."
    )
    label = BACKEND_LABELS.get(ppl.get("lava_backend", "spinnaker2"), "Lava graph")
    lines.append(
        f"Perplexity: PyTorch {ppl['pytorch']:.2f}, {label} "
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


def _fullest_pe_table(pe: dict[str, Any]) -> list[str]:
    """The fullest PE's bytes per memory region (code in instruction memory, then the data
    regions in the order of the mapping report)."""
    from spinnaker2_backend.mapping.memory import DATA_REGIONS

    rows = [f"  {'region':16s} {'bytes':>8s}"]
    rows += [
        f"  {'code (instr.)' if name == 'code' else name:16s} {pe[name]:8,d}"
        for name in ("code", *DATA_REGIONS)
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


def write_report(out: Path, summary: dict[str, Any], *, account: Any) -> None:
    """Write summary.json, summary.txt and the activity plot (the chip's profile and packet
    plots are written by the Lava run into ``chip/``)."""
    from snn_egru.plots import plot_activity_over_time

    (out / "summary.json").write_text(
        json.dumps(finite_json(summary), indent=2, default=_json_default, allow_nan=False)
    )
    (out / "summary.txt").write_text(format_summary(summary) + "\n")
    plot_activity_over_time(
        account, out / "activity.png", title="EGRU activity on the simulated chip (per token)"
    )


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (``inf``, ``nan``) replaced by ``None`` (JSON
    has no such numbers; ``json.dumps`` would write the non-standard ``Infinity``)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
