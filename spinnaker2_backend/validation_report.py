"""The fidelity page (``docs/fidelity.md``) and the context lines of :func:`~spinnaker2_backend.
validation.validate`: how a :class:`~spinnaker2_backend.validation.ValidationResult` is
written down. Every number on the page is computed by the run that writes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spinnaker2_backend.calibration import (
    CALIBRATION_BALANCE,
    CALIBRATION_PES_PER_LAYER,
    CALIBRATION_RECEIVE_POLICY,
)
from spinnaker2_backend.results import DVS_FRAMES_PER_SAMPLE, PUBLISHED_DVS_SPINNAKER2

__all__ = ["VALIDATE_COMMAND", "VALIDATE_RUN_COMMAND", "context", "markdown"]

#: The command that regenerates ``docs/fidelity.md`` and its JSON.
VALIDATE_COMMAND = (
    "python -m spinnaker2_backend validate --markdown docs/fidelity.md --json docs/fidelity.json"
)
#: The ``run`` command that maps and runs the LM deployment ``validate`` checks.
VALIDATE_RUN_COMMAND = (
    "python -m spinnaker2_backend run --synthetic paper-lm --sparsity 0.95 "
    f"--pes-per-layer {','.join(map(str, CALIBRATION_PES_PER_LAYER))} "
    f"--balance {CALIBRATION_BALANCE} --receive-policy {CALIBRATION_RECEIVE_POLICY} "
    "--receive-capacity auto --steps 70"
)

_ROLE_TEXT = (
    "Each published figure beside the model's, the relative error, and its role: **fitted** "
    "(a constant was set so that the model matches it), **chosen to match** (a discrete "
    "modelling choice was picked because it matches: a split, the reading 1 KB = 1024 B, "
    "the receive design), **derived** (computed from other rows: power = energy / time), "
    "**held out** (nothing about it was tuned, not even a choice of option), **given** (an "
    "input of the run). **Only the held-out rows are validation**; they must come within "
    "25 % (the latency accuracy SANA-FE publishes for its Loihi model). The others show "
    "that the fit and the choices are what the text says they are. See "
    "[spinnaker2.md](spinnaker2.md) for the model and [architecture.md](architecture.md) "
    "for the code."
)


def _fmt(value: float, unit: str) -> str:
    if unit == "PEs":
        return f"{value:.0f} PEs"
    if unit == "KB":
        return f"{value:.1f} KB"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "J":
        return f"{value:.4f} J"
    return f"{value:.3f} {unit}"


def _table_head(*columns: str, indent: str = "") -> list[str]:
    """The header and rule lines of a markdown table of ``columns``."""
    return [f"{indent}| {' | '.join(columns)} |", f"{indent}|{'---|' * len(columns)}"]


def _section(title: str, intro: str, columns: tuple[str, ...], body: list[str]) -> list[str]:
    """A page section: ``## title``, the ``intro`` paragraph, then a table of ``columns``
    whose row lines (and the lines after it) are ``body``."""
    return [f"## {title}", "", intro, "", *_table_head(*columns), *body]


def _main_table(result) -> list[str]:
    out = _table_head("deployment", "figure", "published", "model", "error", "role", "rests on")
    for r in result.rows:
        out.append(
            f"| {r.deployment} | {r.figure} | {_fmt(r.published, r.unit)} | "
            f"{_fmt(r.model, r.unit)} | {100 * r.relative_error:+.1f} % | {r.role} | {r.why} |"
        )
    held = result.held_out()
    worst = max(held, key=lambda r: abs(r.relative_error))
    out += [
        "",
        f"Validation: {len(held)} held-out rows, the largest error {worst.figure} of "
        f"{worst.deployment} at {100 * worst.relative_error:+.1f} %.",
    ]
    return out


def _sensitivity_table(rows) -> list[str]:
    out = []
    for s in rows:
        refit = f"{s.fitted[0]:.2f} cycles, {s.fitted[1]:.4f} W" if s.fitted else ""
        if s.note:
            out.append(f"| {s.assumption} | {s.value} | | | | | {s.note} |")
            continue
        out.append(
            f"| {s.assumption} | {s.value}{' *' if s.default else ''} | {s.seconds * 1e3:.2f} ms "
            f"| {100 * s.time_error:+.1f} % | {s.energy_j:.4f} J | {100 * s.energy_error:+.1f} % "
            f"| {refit} |"
        )
    times = [s.time_error for s in rows if not s.note]
    energies = [s.energy_error for s in rows if not s.note]
    spread = (
        f"Spread: time {100 * min(times):+.1f} % to {100 * max(times):+.1f} %, energy "
        f"{100 * min(energies):+.1f} % to {100 * max(energies):+.1f} % of the published "
        f"{PUBLISHED_DVS_SPINNAKER2.seconds_per_sequence * 1e3:.2f} ms and "
        f"{PUBLISHED_DVS_SPINNAKER2.energy_j_per_sequence:.3f} J."
    )
    return _section(
        "Sensitivity of the held-out prediction",
        "The DVS time and energy per sample under each alternative defensible assumption, one "
        "at a time (every other at its default, marked *). Where the assumption enters the "
        "LM fit, the walk per stored weight and the chip baseline are refit to 170.25 ms and "
        "0.0653 J first (`spinnaker2_backend.sensitivity`).",
        ("assumption", "value", "DVS time", "error", "DVS energy", "error", "refit walk, baseline"),
        [*out, "", spread, ""],
    )


def _batch_table(rows) -> list[str]:
    out = []
    for b in rows:
        out.append(
            f"| {b['batch']} | {b.get('loop', 'samples outer')} | {b['ms_per_sample']:.2f} ms | "
            f"{b['mj_per_sample']:.2f} mJ | {b['power_w']:.3f} W |"
        )
    out.append("")
    loops: dict[str, list] = {}
    for b in rows:
        loops.setdefault(b.get("loop", "samples outer"), []).append(b)
    for loop, bs in loops.items():
        first, last = bs[0], bs[-1]
        out.append(
            f"- **{loop}**: from batch {first['batch']} to {last['batch']} the time per sample "
            f"changes by {100 * (last['ms_per_sample'] / first['ms_per_sample'] - 1):+.1f} % "
            f"and the average power by {100 * (last['power_w'] / first['power_w'] - 1):+.1f} %."
        )
    why = (
        "Why: with the samples outer the chip's time grows nearly linearly with the batch "
        "(every sample walks every weight; only the per-step fixed work, the tick and the "
        "set-up, is shared), so the time per sample falls only by that fixed work's share. "
        "With the weights outer the loads of a weight and its index are paid once per step, "
        "so the time per sample falls towards the MAC and the bookkeeping of each sample. The "
        "average power hardly moves in either order: the chip baseline (fitted on the LM) is "
        "most of it and is paid per second, and the dynamic energy per sample changes with "
        "the cycles it saves."
    )
    return _section(
        "The DVS deployment at larger batches (predicted, never fitted)",
        "Table III of the paper also measured a larger batch; that column is kept out of this "
        "project on purpose, and the model predicts it. Each PE processes the samples of a "
        "batch within one step, in one of two loop orders (the published program's is not "
        "described; the paper says its time scales linearly with batch size): **samples "
        "outer** (each sample walks the weights; the shipped default) or **weights outer** "
        "(a stored weight and its index are loaded once per step and applied to every sample, "
        "`CycleCosts.batch_shares_weight_loads`). The held-out figure is batch 1, where the "
        "two orders are the same program (the sensitivity table shows it).",
        ("batch", "loop order", "time per sample", "energy per sample", "average power"),
        [*out, "", why, ""],
    )


def _design_table(rows) -> list[str]:
    out = []
    for d in rows:
        walk = f"{d.walk_cycles:.2f} cycles" if d.walk_cycles is not None else "out of reach"
        cap = "/".join(map(str, d.capacity)) if any(d.capacity) else ""
        out.append(
            f"| {d.design} | {100 * d.activity:.0f} % | {cap} | {d.receive_bytes:,} B | "
            f"{d.variables_bytes / 1024:.2f} KB ({100 * d.variables_error:+.0f} %) | "
            f"{'yes' if d.fits else 'no'} | {d.floor_ms:.1f} ms | {walk} |"
        )
    good = {}
    for d in rows:
        if d.fits and abs(d.variables_error) <= 0.10 and d.walk_cycles is not None:
            good.setdefault(d.design, []).append(f"{100 * d.activity:.0f} %")
    verdict = "; ".join(f"{k} at {', '.join(v)}" for k, v in good.items()) if good else "none"
    return _section(
        "Receive designs at trained-LM activity",
        "Each candidate of `spinnaker2_backend.receive_designs` on the published mapping, "
        "with the stand-in tuned to each activity: the fullest PE's receive buffers and Table "
        "I variables column (published 2.6 KB), whether the PE fits its 96 KiB, the sequence "
        "time with the walk per stored weight at its floor (the design's other costs alone), "
        "and the walk that gives 170.25 ms (none: out of reach).",
        (
            "design",
            "activity",
            "capacity",
            "receive buffers",
            "variables",
            "fits",
            "other costs",
            "walk for 170.25 ms",
        ),
        [
            *out,
            "",
            f"Reproduce Table I (fit, variables within 10 %, 170.25 ms reachable): {verdict}.",
            "",
        ],
    )


def _profile_evidence(result) -> list[str]:
    ev = result.evidence
    if not ev:
        return []
    out = [
        "  The evidence (`spinnaker2_backend.profile_check`): per layer, the stored weights of "
        "the PE with the most, and the fraction of them multiplied per step (the walk costs "
        "every stored weight, the MAC only those whose source fired):",
        "",
        *_table_head(
            "layer", "stored W_ih", "multiplied", "stored W_hh", "multiplied", indent="  "
        ),
    ]
    for w in ev.get("weights", []):
        out.append(
            f"  | {w['layer']} | {w['stored_ih']:,.0f} | {100 * w['multiplied_ih']:.0f} % | "
            f"{w['stored_hh']:,.0f} | {100 * w['multiplied_hh']:.0f} % |"
        )
    out += [
        "",
        "  The same recorded run re-costed under alternatives of the unpublished program, "
        "each refit to 170.25 ms (ms per sequence, summed over layers):",
        "",
        *_table_head(
            "alternative",
            "walk per weight",
            "input product",
            "recurrent product",
            "send/receive",
            "other",
            "paper's ranking",
            indent="  ",
        ),
    ]
    for a in ev.get("alternatives", []):
        g = a["groups"]
        if a["walk_cycles"] is None:
            out.append(f"  | {a['name']} | out of reach | | | | | |")
            continue
        main = ("input product", "recurrent product", "send/receive")
        other = sum(v for k, v in g.items() if k not in main)
        out.append(
            f"  | {a['name']} | {a['walk_cycles']:.2f} cycles | {g['input product']:.1f} | "
            f"{g['recurrent product']:.1f} | {g['send/receive']:.1f} | {other:.1f} | "
            f"{'yes' if a['paper_ranking'] else 'no'} |"
        )
    reproducing = [a["name"] for a in ev.get("alternatives", []) if a["paper_ranking"]]
    out += [
        "",
        "  Alternatives that give the paper's ranking (recurrent product, then input "
        f"product): {', '.join(reproducing) if reproducing else 'none'}. What still "
        "disagrees is send/receive, which the paper calls comparably cheap (a strict xfail "
        "in tests/spinnaker2_backend/test_timing.py asks for less than a fifth of the input "
        "product); the cheap-receive rows show what a receive without an interrupt per "
        "packet would give. None of the alternatives is published, and each would move the "
        "held-out DVS prediction through the refit walk.",
        "",
    ]
    return out


def _hit_cycles() -> str:
    from spinnaker2_backend.constants import CycleCosts

    c = CycleCosts()
    return f"{c.mac_cycles:g} + {c.bitmap_hit_cycles:g} cycles [C]"


def _bigger_input(result) -> str:
    """Which layers store more input than recurrent weights on their fullest PE."""
    layers = [
        str(w["layer"])
        for w in result.evidence.get("weights", [])
        if w["stored_ih"] > w["stored_hh"]
    ]
    if not layers:
        return ""
    return (
        f"layer{'s' if len(layers) > 1 else ''} {', '.join(layers)} store"
        f"{'' if len(layers) > 1 else 's'} more input than recurrent weights per PE; "
    )


def _disagreements(result) -> list[str]:
    """What the model and the measurements still disagree on, and why (numbers computed)."""
    c = result.context.get("_profile", {})
    if not c:
        return []
    total = sum(c.values())
    share = {k: 100 * v / total for k, v in c.items()} if total else {}
    out = [
        "## What still disagrees, and why",
        "",
        f"- **The LM profile.** The paper reports that the recurrent product took most of the "
        f"time and that sending events was comparably cheap. The model gives the input "
        f"product {c.get('input product', 0):.1f} ms ({share.get('input product', 0):.0f} %), "
        f"the recurrent product {c.get('recurrent product', 0):.1f} ms "
        f"({share.get('recurrent product', 0):.0f} %) and send/receive "
        f"{c.get('send/receive', 0):.1f} ms ({share.get('send/receive', 0):.0f} %) per "
        "sequence. Why: with the bitmap every stored weight costs its walk whatever the "
        "activity, and a weight whose source fired its MAC and the value's lookup "
        f"({_hit_cycles()}); layer 0's input is the embedding, read dense from DRAM "
        "into a vector (no lookup: the MAC only), so its input product multiplies every "
        "stored weight while the recurrent products multiply about a fifth; "
        f"{_bigger_input(result)}and a trained LM's 20 % activity sends a packet per event "
        "to every PE of two layers, "
        "each taking a 40-cycle receive interrupt [C]. The CSR rows' own cost "
        "(`csr_row_cycles`) is small beside the walk.",
    ]
    out += _profile_evidence(result)
    out += [
        "- **The numbers of `bitmap16`.** The design keeps received values as binary16; the "
        "simulator rounds them on receipt (`receive_bitmap.round_received`, on by default "
        "for bitmap16; `round_received=False` gives float32 values, the reference's outputs "
        "bit for bit). The rounding changes a received value by at most 2^-11 relative; "
        "the paper reports float32 on both sides and the same perplexity.",
        "- **The activity of the published run** is unknown. The walk per stored weight the "
        "fit needs falls with the stand-in's activity (the refit rows of the sensitivity "
        "table): at 30 % it is below what a bit test and a loop cost on a Cortex-M4, and no "
        "design fits Table I there, so under this model the published run fired at most "
        "about 25 % of its units per step.",
        "- **Energy per level.** Run as fast as possible, the model's 300 MHz level takes "
        "less energy than 150 MHz for the DVS sample (sensitivity table): the baseline is "
        "paid for half the time. Whether the chip does so depends on its baseline and "
        "leakage, which are not published; in the timer-driven mode a faster level always "
        "costs more.",
        "",
    ]
    return out


def markdown(result) -> str:
    """The page: main table, sensitivity, batches, receive designs, what ran."""
    out = [
        "# Fidelity: the simulated chip beside the published measurements",
        "",
        f"Generated by `{VALIDATE_COMMAND}`; do not edit by hand "
        "(a test checks that this page is current).",
        "",
        _ROLE_TEXT,
        "",
        f"The LM deployment checked here is `{VALIDATE_RUN_COMMAND}`.",
        "",
    ]
    out += _main_table(result)
    out.append("")
    for rows, table in (
        (result.sensitivity, _sensitivity_table),
        (result.batches, _batch_table),
        (result.designs, _design_table),
    ):
        out += table(rows) if rows else []
    out += _disagreements(result)
    out += ["## What ran", ""]
    out += [f"- **{k}**: {v}" for k, v in result.context.items() if not k.startswith("_")]
    out.append("")
    return "\n".join(out)


def _phases(profile, values: dict, per_seq: float) -> str:
    grouped = profile.grouped(values)
    return ", ".join(f"{k} {v * per_seq:.2f}" for k, v in grouped.items() if v > 0)


def context(artifact, tokens, lm, lm_run, dvs_run) -> dict[str, Any]:
    """The "What ran" lines: workloads, the fullest PE, the LM profile, the DVS workload."""
    profile = lm_run.profile
    per_seq = 1e3 * len(tokens) / lm_run.steps
    groups = profile.grouped(profile.critical_phase_seconds())
    pe_seconds = profile.pe_phase_seconds(0)
    busiest = int(np.argmax(sum(pe_seconds.values())))
    fullest = lm.memory[lm.report().fullest.pe]
    synthetic = artifact.metadata.get("synthetic", {})
    target = synthetic.get("activity_target")
    return {
        "_profile": {k: v * per_seq for k, v in groups.items() if v > 0},
        "LM workload": (
            f"synthetic paper-lm stand-in, 95 % pruned, CSR, {lm.num_pes_used} PEs "
            f"({'/'.join(str(len(layer.slices)) for layer in lm.layers)} per layer, "
            f"{'/'.join(str(layer.slices[0].num_units) for layer in lm.layers)} units per PE), "
            f"receive policy {lm.receive_policy} (capacity "
            f"{'/'.join(map(str, lm.receive_capacity or ()))} events), {lm_run.steps} tokens, "
            f"{lm.spec.pe_clock_mhz:g} MHz; activity per layer "
            + ", ".join(f"{100 * a:.1f} %" for a in lm_run.activity())
            + (
                f" (target {', '.join(f'{100 * a:g} %' for a in target)}: the project's "
                "trained LMs fire 18.8-24.9 % of their units per step)"
                if target
                else ""
            )
        ),
        "LM fullest PE": (
            f"PE {fullest.pe}, layer {fullest.layer}, units {fullest.unit_start}.."
            f"{fullest.unit_stop - 1}: "
            + ", ".join(f"{k} {v:,} B" for k, v in fullest.regions().items())
            + f"; code {fullest.code:,} B; free {fullest.free:,} B"
        ),
        "LM profile (ms per sequence, summed over layers)": ", ".join(
            f"{k} {v * per_seq:.2f}" for k, v in groups.items() if v > 0
        )
        + "; recurrent / input product "
        + f"{groups['recurrent product'] / groups['input product']:.2f}",
        **{
            f"LM profile of layer {i} (ms per sequence, slowest PE)": _phases(
                profile, layer, per_seq
            )
            for i, layer in enumerate(profile.layer_critical_phase_seconds())
        },
        f"LM profile of the busiest layer-0 PE ({busiest})": _phases(
            profile, {k: float(v[busiest]) for k, v in pe_seconds.items()}, per_seq
        ),
        "DVS workload": (
            f"synthetic paper-dvs (dense weights), {dvs_run.num_pes} PEs (64 per layer, 4 "
            f"units each), receive policy {dvs_run.receive_policy}, one sample of "
            f"{DVS_FRAMES_PER_SAMPLE} frames (frames per sample not published: the project's "
            "1.7 s DVS slice, [C]), batch 1; activity per layer "
            + ", ".join(f"{100 * a:.1f} %" for a in dvs_run.activity())
        ),
    }
