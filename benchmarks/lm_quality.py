"""Benchmark: language-model quality of the EGRU against nn.GRU and nn.LSTM of the same width.

Every model is trained by the project's own training code (:func:`snn_egru.training.lm.
train_language_model`) with the same recipe and budget (the ``small`` preset: same data,
batching, optimizer, schedule, clipping, dropouts, tied decoder, evaluation); only the
recurrent layers differ (``LanguageModelConfig.cell``). Each model gets its own learning
rate: with more than one rate given for a model, a sweep picks the one with the best
validation perplexity (seed 0, ``--sweep-steps`` steps) before the seeds are trained.

Prints per model: the learning rate, test perplexity (mean and spread over the seeds, and
each seed), activity sparsity of the EGRU on the test run, training time; then the ratios
``egru_over_gru_ppl`` / ``egru_over_lstm_ppl`` (test perplexities, same run), and where the
time of one training step goes (embedding, recurrent layers, decoder + softmax, optimizer),
measured in the same run.

    python benchmarks/lm_quality.py                     # EGRU, GRU, LSTM; small budget; 2 seeds
    python benchmarks/lm_quality.py --quick             # EGRU and GRU, 120 steps, 1 seed
    python benchmarks/lm_quality.py --lr egru=3e-3,6e-3,1e-2 --sweep-steps 300 --json
    python benchmarks/lm_quality.py --models egru --egru threshold_mean=0.2 support=1.0

Bad input (an empty or invalid learning-rate list or seed list, an unknown model name or
override) exits with status 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

# Passive OpenMP waiting: spinning workers steal the cores on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from snn_egru.cliargs import parse_comma_list  # noqa: E402
from snn_egru.errors import UserError  # noqa: E402
from snn_egru.models.lm import LM_CELLS, EGRULanguageModel, LanguageModelConfig  # noqa: E402
from snn_egru.training.lm import (  # noqa: E402
    LMTrainConfig,
    evaluate_perplexity,
    preset_configs,
    train_language_model,
    unit_firing_rates,
)

#: Learning rates of the ``small`` recipe per model: the best of 6e-3, 1e-2 and 1.5e-2 for the
#: EGRU and the GRU in 300-step runs (docs/lm_quality.md); the LSTM: 1e-2 (better than 6e-3).
TUNED_LR: dict[str, float] = {"egru": 1e-2, "gru": 1e-2, "lstm": 1e-2}
#: Sweep grid used by ``--sweep`` (per model).
SWEEP_LR: dict[str, tuple[float, ...]] = {
    "egru": (6e-3, 1e-2, 1.5e-2),
    "gru": (6e-3, 1e-2, 1.5e-2),
    "lstm": (6e-3, 1e-2, 1.5e-2),
}
#: ``--quick``: EGRU and GRU, this many steps, one seed, the first QUICK_TEST_TOKENS test
#: tokens (about 3 minutes on 2 idle cores).
QUICK_STEPS = 120
QUICK_TEST_TOKENS = 20_000
#: Validation tokens over which the per-unit firing rates of the EGRU are counted.
RATE_TOKENS = 20_000


# --------------------------------------------------------------------------- input checks
def parse_list(
    text: str,
    convert: Callable[[str], Any],
    *,
    name: str,
    unit: str,
    kind: str,
    example: str,
    refuse: Callable[[str, Any], str | None],
) -> tuple[Any, ...]:
    """``text`` split at commas, each part ``convert``-ed: a tuple of values. An empty list,
    a part that is not ``kind``, a value ``refuse(part, value)`` complains about, or a repeat:
    a :class:`UserError` naming the ``name`` (``unit``: the short word, ``example`` a list)."""
    listed = name.replace(" ", "-")
    return parse_comma_list(
        text,
        convert,
        empty=f"the {listed} list is empty: give one or more {unit}s, e.g. {example}",
        invalid=lambda item: f"{name} {item!r} is not {kind}: give {unit}s like {example}",
        refuse=refuse,
        repeated=f"the {listed} list {text!r} repeats a {unit}",
    )


def parse_lr_list(text: str) -> tuple[float, ...]:
    """``"3e-3,6e-3"`` -> ``(0.003, 0.006)``; empty, non-numeric, non-finite or <= 0: error."""
    return parse_list(
        text,
        float,
        name="learning rate",
        unit="rate",
        kind="a number",
        example="3e-3,6e-3",
        refuse=lambda item, value: (
            None
            if math.isfinite(value) and value > 0
            else f"learning rate {item!r} must be a finite number > 0"
        ),
    )


def parse_lr_option(text: str) -> tuple[str, tuple[float, ...]]:
    """``"egru=3e-3,6e-3"`` -> ``("egru", (0.003, 0.006))``."""
    name, sep, rates = str(text).partition("=")
    if not sep:
        raise UserError(f"--lr takes MODEL=RATE[,RATE...], e.g. egru=3e-3,6e-3; got {text!r}")
    return check_model_name(name.strip()), parse_lr_list(rates)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``; empty, non-integer, negative or repeated: error."""
    return parse_list(
        text,
        int,
        name="seed",
        unit="seed",
        kind="an integer",
        example="0,1",
        refuse=lambda item, value: None if value >= 0 else f"seed {value} must be >= 0",
    )


def sweep_rates(
    rates: tuple[float, ...],
    score: Callable[[float], float],
    metric: str,
    *,
    higher_is_better: bool,
) -> tuple[float, list[dict[str, float]] | None]:
    """The learning rate to train every seed with: the only one of ``rates``, or, after a
    sweep (``score(rate)``: one run each, in order), the best by ``metric``. Also the sweep's
    entries ``{"lr": rate, metric: score}`` (``None`` without a sweep)."""
    if len(rates) == 1:
        return rates[0], None
    entries = [{"lr": lr, metric: score(lr)} for lr in rates]
    pick = max if higher_is_better else min
    return pick(entries, key=lambda e: e[metric])["lr"], entries


def check_model_name(name: str) -> str:
    """A model name of :data:`~snn_egru.models.lm.LM_CELLS`, or an error listing them."""
    if name not in LM_CELLS:
        raise UserError(f"unknown model {name!r}; valid names: {', '.join(LM_CELLS)}")
    return name


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["threshold_mean=0.2", "learn_threshold=false"]`` -> LanguageModelConfig overrides."""
    known = {f.name: f for f in fields(LanguageModelConfig)}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known or key in ("cell", "vocab_size"):
            valid = ", ".join(k for k in known if k not in ("cell", "vocab_size"))
            raise UserError(f"model override {item!r} is not KEY=VALUE with KEY one of: {valid}")
        default = getattr(LanguageModelConfig(), key)
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("true", "yes", "1")
            elif isinstance(default, tuple):
                value = tuple(int(v) for v in raw.split(","))
            elif default is None:  # optional float fields (threshold_value): "none" or a number
                value = None if raw.lower() == "none" else float(raw)
            else:
                value = type(default)(raw)
        except ValueError:
            raise UserError(f"model override {item!r}: {raw!r} is not a valid {key}") from None
        out[key] = value
    return out


def config_differences(saved: dict[str, Any], preset: str = "small") -> dict[str, Any]:
    """The fields of a saved EGRU config that differ from today's ``preset`` (EGRU cell)."""
    current = asdict(model_config("egru", preset=preset)[0])
    ignore = {"vocab_size"}
    if saved.get("threshold_value") is not None:  # a fixed start: the Beta draw is unused
        ignore |= {"threshold_mean", "threshold_init"}
    out = {}
    for key, value in saved.items():
        if key in ignore:
            continue
        now = current.get(key)
        if isinstance(now, tuple):
            now = list(now)
        if value != now:
            out[key] = value
    return out


def egru_settings(report: dict[str, Any]) -> dict[str, Any]:
    """How a report's EGRU differs from today's preset (its overrides in older reports)."""
    if report.get("egru_config"):
        return config_differences(report["egru_config"], report.get("preset", "small"))
    return dict(report.get("egru_overrides") or {})


def report_rows(reports: list[dict[str, Any]]) -> list[tuple[dict, str, dict]]:
    """``(report, model, summary)`` of every model of every report, in order: the rows of
    :func:`ablation_table` and the numbers of :func:`plot_tradeoff`."""
    return [(rep, cell, m) for rep in reports for cell, m in rep["models"].items()]


def ablation_table(reports: list[dict[str, Any]]) -> str:
    """A markdown table of saved reports (``--save``), one row per model of each, in order.

    ``/ GRU``: the test perplexity over the best GRU among the reports with the same steps and
    test tokens (``-`` when there is none).
    """
    rows = report_rows(reports)
    best_gru: dict[tuple, float] = {}
    for rep, cell, m in rows:
        if cell == "gru":
            key = (m["steps"], rep.get("test_tokens"))
            best_gru[key] = min(best_gru.get(key, math.inf), m["test_ppl_mean"])
    lines = [
        "| # | model | settings | lr | steps | test PPL | / GRU | activity sparsity | dead units |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, (rep, cell, m) in enumerate(rows, start=1):
        overrides = egru_settings(rep) if cell == "egru" else {}
        settings = short_settings(overrides) or "preset"
        gru = best_gru.get((m["steps"], rep.get("test_tokens")))
        ratio = "-" if gru is None else f"{m['test_ppl_mean'] / gru:.3f}"
        sparsity = m.get("activity_sparsity")
        dead = m.get("dead_units") or []
        lines.append(
            f"| {number} | {cell} | {settings if cell == 'egru' else '-'} "
            f"| {m['lr']:.2g} | {m['steps']} "
            f"| {m['test_ppl_mean']:.1f} | {ratio} "
            f"| {'-' if sparsity is None else f'{100 * sparsity:.1f} %'} "
            f"| {'-' if cell != 'egru' else '/'.join(str(d) for d in dead)} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- runs
def model_config(
    cell: str, egru_overrides: dict[str, Any] | None = None, *, preset: str = "small"
) -> tuple[LanguageModelConfig, LMTrainConfig]:
    """The preset's configs (default ``small``) with the recurrent layers of ``cell``."""
    mc, tc = preset_configs(preset)
    mc = replace(mc, cell=cell)
    if cell == "egru" and egru_overrides:
        mc = replace(mc, **egru_overrides)
    return mc, tc


def train_once(
    cell: str,
    lr: float,
    seed: int,
    steps: int,
    *,
    corpus: Any,
    egru_overrides: dict[str, Any] | None = None,
    test: bool = True,
    test_tokens: int | None = None,
    preset: str = "small",
) -> dict[str, Any]:
    """One training run; returns valid/test perplexity, sparsity and times."""
    mc, tc = model_config(cell, egru_overrides, preset=preset)
    tc = replace(
        tc,
        lr=lr,
        seed=seed,
        max_steps=steps,
        eval_every=0,
        final_test=False,
        save_checkpoints=False,
    )
    start = time.perf_counter()
    result = train_language_model(mc, tc, data=corpus, show_progress=False)
    train_s = time.perf_counter() - start
    row: dict[str, Any] = {
        "model": cell,
        "lr": lr,
        "seed": seed,
        "steps": result.steps,
        "train_loss": result.train_loss,
        "valid_ppl": result.valid.perplexity if result.valid else None,
        "train_time_s": train_s,
    }
    if test:
        ev = evaluate_perplexity(
            result.model,
            corpus.test,
            batch_size=tc.test_batch_size,
            bptt=tc.bptt,
            max_tokens=test_tokens,
            measure_sparsity=True,
            show_progress=False,
        )
        row["test_ppl"] = ev.perplexity
        row["test_tokens"] = ev.tokens
        row["activity_sparsity"] = ev.sparsity.activity_sparsity if ev.sparsity else None
    if cell == "egru":
        rates = unit_firing_rates(
            result.model,
            corpus.valid,
            batch_size=tc.eval_batch_size,
            bptt=tc.bptt,
            max_tokens=RATE_TOKENS,
        )
        row["firing_rates"] = [r.tolist() for r in rates]
        row["dead_units"] = int(sum(int((r == 0).sum()) for r in rates))
        row["hidden_units"] = sum(len(r) for r in rates)  # the trained model's width
        row["units_below_1pct"] = int(sum(int((r < 0.01).sum()) for r in rates))
        theta = result.model.rnn.threshold(0).detach()
        row["threshold_quantiles"] = [
            float(q) for q in torch.quantile(theta, torch.tensor([0.1, 0.5, 0.9]))
        ]
    return row


def step_time_shares(
    cell: str,
    *,
    corpus: Any,
    repeats: int = 5,
    preset: str = "small",
    egru_overrides: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Seconds of one training step of the small preset, split into its parts.

    Parts (forward + backward each, timed separately on the same window): the embedding with
    its dropout, the recurrent layers, the tied decoder with the 10k-word softmax
    (cross-entropy), the AdamW step, and getting the batch. Medians over ``repeats``.
    """
    from snn_egru.data.text import batchify, get_batch
    from snn_egru.models.lm import embedding_with_word_dropout, locked_dropout
    from snn_egru.training.common import make_optimizer

    mc, tc = model_config(cell, egru_overrides, preset=preset)
    mc = replace(mc, vocab_size=len(corpus.vocabulary))
    torch.manual_seed(0)
    model = EGRULanguageModel(mc).train()
    optimizer = make_optimizer(model, tc.lr, tc.weight_decay, tc.betas)
    source = batchify(corpus.train, tc.batch_size)
    parts: dict[str, list[float]] = {
        "batch": [],
        "embedding": [],
        "recurrent": [],
        "decoder_softmax": [],
        "optimizer": [],
    }
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        inputs, targets = get_batch(source, r * tc.bptt, tc.bptt)
        t1 = time.perf_counter()
        x = embedding_with_word_dropout(model.embedding, inputs, mc.word_dropout)
        x = locked_dropout(x, mc.input_dropout, True)
        x_leaf = x.detach().requires_grad_(True)
        x.backward(torch.ones_like(x))
        t2 = time.perf_counter()
        y, _state, _layers = model.rnn(x_leaf, None, return_all_layers=True)
        y.backward(torch.ones_like(y))
        t3 = time.perf_counter()
        y_leaf = locked_dropout(y.detach(), mc.output_dropout, True).requires_grad_(True)
        logits = F.linear(y_leaf, model.decoder_weight, model.decoder_bias)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        model.rnn.clamp_thresholds()  # as the training loop does after every step
        optimizer.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        if r == 0:
            continue  # warm-up
        for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            parts[name].append(dt)
    return {name: statistics.median(values) for name, values in parts.items()}


def seed_summary(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Mean, spread (max - min) and per-seed values of ``metric`` over one model's runs, with
    its learning rate, steps, seeds, mean activity sparsity and training time (the LM and
    the DVS quality benchmarks)."""
    values = [r[metric] for r in rows]
    sparsity = [r["activity_sparsity"] for r in rows if r.get("activity_sparsity") is not None]
    return {
        "lr": rows[0]["lr"],
        "steps": rows[0]["steps"],
        "seeds": [r["seed"] for r in rows],
        f"{metric}_mean": statistics.fmean(values),
        f"{metric}_spread": max(values) - min(values),
        f"{metric}_per_seed": values,
        "activity_sparsity": statistics.fmean(sparsity) if sparsity else None,
        "train_time_s": statistics.fmean(r["train_time_s"] for r in rows),
    }


def model_table(
    report: dict[str, Any], metric: str, name: str, *, scale: float = 1.0, unit: str = ""
) -> list[str]:
    """One line per model: lr, steps, ``metric``'s mean ± spread (2 decimals, or 1 with a
    ``unit``) and per-seed values (times ``scale``), activity sparsity, training seconds."""
    digits = 1 if unit else 2
    lines = [
        f"{'model':<6} {'lr':>7} {'steps':>6} {name + ' (mean ± spread)':>26} "
        f"{'per seed':>18} {'act. sparsity':>14} {'train s':>8}"
    ]
    for cell, m in report["models"].items():
        act = m["activity_sparsity"]
        sparsity = "-" if act is None else f"{100 * act:.1f} %"
        mean, spread = scale * m[f"{metric}_mean"], scale * m[f"{metric}_spread"]
        per_seed = "/".join(f"{scale * v:.1f}" for v in m[f"{metric}_per_seed"])
        lines.append(
            f"{cell:<6} {m['lr']:>7.2g} {m['steps']:>6} "
            f"{mean:>{17 - len(unit)}.{digits}f}{unit} ± {spread:<{4 + digits}.{digits}f} "
            f"{per_seed:>18} {sparsity:>14} {m['train_time_s']:>8.0f}"
        )
    return lines


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`seed_summary` of the test perplexity, with the LM's own extras."""
    ppl = [r["test_ppl"] for r in rows]
    return {
        **seed_summary(rows, "test_ppl"),
        "test_ppl_std": statistics.stdev(ppl) if len(ppl) > 1 else 0.0,
        "valid_ppl_mean": statistics.fmean(r["valid_ppl"] for r in rows),
        "test_tokens": rows[0].get("test_tokens"),
        "dead_units": [r["dead_units"] for r in rows] if "dead_units" in rows[0] else None,
        "hidden_units": rows[0].get("hidden_units"),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = []
    if report["sweep"]:
        lines.append(f"learning-rate sweep ({report['sweep_steps']} steps, seed 0, valid PPL):")
        for cell, entries in report["sweep"].items():
            cells = ", ".join(f"{e['lr']:g}: {e['valid_ppl']:.2f}" for e in entries)
            lines.append(f"  {cell:<5} {cells}  -> lr {report['models'][cell]['lr']:g}")
        lines.append("")
    lines += model_table(report, "test_ppl", "test PPL")
    for key in ("egru_over_gru_ppl", "egru_over_lstm_ppl"):
        if report.get(key) is not None:
            lines.append(f"{key}: {report[key]:.3f}")
    shares = report.get("step_time_shares")
    if shares:
        total = sum(shares.values())
        parts = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in shares.items())
        lines.append(f"one EGRU training step: {1000 * total:.0f} ms = {parts}")
    egru = report["models"].get("egru")
    if egru and egru.get("dead_units") is not None:
        units = egru.get("hidden_units") or report["hidden_units"]
        lines.append(f"EGRU dead units (of {units}) per seed: {egru['dead_units']}")
    lines.append(
        f"seeds {report['seeds']}, test tokens {report['test_tokens']}, load {report['load']}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from snn_egru.data.text import load_corpus

    torch.set_num_threads(args.threads)
    models = [check_model_name(m) for m in args.models]
    if not models:
        raise UserError(f"no model given; valid names: {', '.join(LM_CELLS)}")
    seeds = parse_seeds(args.seeds)
    lrs: dict[str, tuple[float, ...]] = {
        m: (SWEEP_LR[m] if args.sweep else (TUNED_LR[m],)) for m in models
    }
    for text in args.lr or []:
        name, rates = parse_lr_option(text)
        lrs[name] = rates
    egru_overrides = parse_overrides(args.egru)
    try:  # a value the config refuses (e.g. decoder_input=foo): one line, before any training
        egru_config = model_config("egru", egru_overrides, preset=args.preset)[0]
    except ValueError as exc:
        raise UserError(f"--egru: {exc}") from None
    _, tc = preset_configs(args.preset)
    steps = args.steps or tc.max_steps
    sweep_steps = args.sweep_steps or steps
    corpus = load_corpus("ptb")
    report: dict[str, Any] = {
        "steps": steps,
        "seeds": list(seeds),
        "sweep_steps": sweep_steps,
        "sweep": {},
        "models": {},
        "egru_overrides": egru_overrides,
        # the whole EGRU architecture and recipe, so that a saved report still says what ran
        # after the preset changes
        "egru_config": asdict(egru_config),
        "test_tokens": args.test_tokens or "all",
        "threads": args.threads,
        "load": _load(),
        "preset": args.preset,
        "hidden_units": sum(egru_config.hidden_sizes),  # with the --egru overrides
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for cell in models:

        def sweep_run(lr: float, cell: str = cell) -> float:
            row = train_once(
                cell,
                lr,
                0,
                sweep_steps,
                corpus=corpus,
                egru_overrides=egru_overrides,
                test=False,
                preset=args.preset,
            )
            _log(args, f"sweep {cell} lr {lr:g}: valid PPL {row['valid_ppl']:.2f}")
            return row["valid_ppl"]

        best, entries = sweep_rates(lrs[cell], sweep_run, "valid_ppl", higher_is_better=False)
        if entries is not None:
            report["sweep"][cell] = entries
        runs[cell] = []
        for seed in seeds:
            row = train_once(
                cell,
                best,
                seed,
                steps,
                corpus=corpus,
                egru_overrides=egru_overrides,
                test_tokens=args.test_tokens,
                preset=args.preset,
            )
            runs[cell].append(row)
            if args.save:  # every finished run is kept, whatever happens later
                Path(args.save).write_text(json.dumps({**report, "runs": runs}, indent=2))
            _log(
                args,
                f"{cell} lr {best:g} seed {seed}: test PPL {row['test_ppl']:.2f} "
                f"({row['train_time_s']:.0f} s)",
            )
        report["models"][cell] = summarize(runs[cell])
    report["runs"] = runs
    ppl = {cell: m["test_ppl_mean"] for cell, m in report["models"].items()}
    for base in ("gru", "lstm"):
        both = {"egru", base} <= ppl.keys()
        report[f"egru_over_{base}_ppl"] = ppl["egru"] / ppl[base] if both else None
    report["step_time_shares"] = (
        step_time_shares("egru", corpus=corpus, preset=args.preset, egru_overrides=egru_overrides)
        if not args.no_profile
        else None
    )
    report["load_end"] = _load()
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=2))
    if args.plot:
        plot_rates([report], args.plot, label=args.label)
    return report


def plot_rates(reports: list[dict[str, Any]], path: str, *, label: str | None = None) -> None:
    """Per-unit firing-rate histogram of the seed-0 EGRU of each report (``--plot``)."""
    from snn_egru.plots import plot_unit_firing_rates

    rates: dict[str, Any] = {}
    for i, report in enumerate(reports):
        runs = report.get("runs", {}).get("egru")
        if not runs:
            raise UserError(f"report {i + 1} holds no EGRU run to plot")
        name = (
            report.get("label")
            or label
            or "EGRU, " + (short_settings(egru_settings(report)) or "small preset")
        )
        rates[name] = [v for layer in runs[0]["firing_rates"] for v in layer]
    plot_unit_firing_rates(rates, path, title="EGRU per-unit firing rates (PTB valid)")


def short_settings(overrides: dict[str, Any], lr: float | None = None) -> str:
    """A short label of how an EGRU differs from the preset:
    ``theta=0, thresholds frozen, lr 0.01``."""
    words = []
    if overrides.get("event_amplitude"):
        words.append(f"amplitude {overrides['event_amplitude']}")
    if "threshold_value" in overrides and overrides["threshold_value"] is not None:
        words.append(f"theta={overrides['threshold_value']:g}")
    elif "threshold_value" in overrides or "threshold_mean" in overrides:
        mean = overrides.get("threshold_mean")
        words.append("theta ~ Beta" + ("" if mean is None else f" mean {mean:g}"))
    if "learn_threshold" in overrides:
        words.append("thresholds " + ("learned" if overrides["learn_threshold"] else "frozen"))
    if overrides.get("event_l1"):
        words.append(f"L1 {overrides['event_l1']:g}")
    if overrides.get("decoder_input", "events") != "events":
        words.append(f"decoder reads {overrides['decoder_input']}")
    for key in ("dampening", "support"):
        if key in overrides:
            words.append(f"{key} {overrides[key]:g}")
    if lr is not None:
        words.append(f"lr {lr:.2g}")
    return ", ".join(words)


def plot_tradeoff(reports: list[dict[str, Any]], path: str) -> None:
    """Test perplexity against activity sparsity of every EGRU in the reports, with the
    dense baselines of the same steps as horizontal lines (``--table-from ... --plot``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    steps = reports[0]["steps"]
    best: dict[str, dict[str, Any]] = {}
    for number, (rep, cell, m) in enumerate(report_rows(reports), start=1):  # as in the table
        if rep["steps"] != steps:  # one budget per picture
            continue
        if cell == "egru" and m.get("activity_sparsity") is not None:
            cfg = rep.get("egru_config") or rep.get("egru_overrides") or {}
            clamped = cfg.get("event_amplitude") == "clamped"
            ablation = cfg.get("decoder_input", "events") != "events"  # not deployable
            color = "tab:orange" if clamped else "tab:blue"
            ax.scatter(
                100 * m["activity_sparsity"],
                m["test_ppl_mean"],
                marker="s" if clamped else "o",
                facecolors="none" if ablation else color,
                edgecolors=color,
                zorder=3,
            )
            ax.annotate(
                str(number),
                (100 * m["activity_sparsity"], m["test_ppl_mean"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        elif cell != "egru" and (
            cell not in best or m["test_ppl_mean"] < best[cell]["test_ppl_mean"]
        ):
            best[cell] = m
    for cell, m in best.items():  # the best run of each dense baseline
        ax.axhline(
            m["test_ppl_mean"],
            color="grey",
            linestyle={"gru": "--", "lstm": ":"}[cell],
            linewidth=1,
            label=f"nn.{cell.upper()} (lr {m['lr']:.2g})",
        )
    ax.axvline(75, color="tab:red", linewidth=0.8, alpha=0.5)
    ax.scatter([], [], marker="o", color="tab:blue", label="EGRU, event_amplitude=state")
    ax.scatter([], [], marker="s", color="tab:orange", label="EGRU, event_amplitude=clamped")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="grey", label="decoder reads c~")
    ax.set_xlabel("activity sparsity on the test tokens (%)")
    ax.set_ylabel("test perplexity")
    ax.set_title(
        f"EGRU settings (numbers: rows of the table) against nn.GRU / nn.LSTM, {steps} steps",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def _log(args: argparse.Namespace, message: str) -> None:
    if not args.json:
        print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/lm_quality.py",
        description="EGRU vs nn.GRU vs nn.LSTM language models of the same width, same recipe "
        "and budget (small preset, PTB); per-model learning rate, several seeds.",
    )
    p.add_argument("--models", nargs="+", default=list(LM_CELLS), help="egru gru lstm")
    p.add_argument(
        "--preset", default="small", choices=["tiny", "small"], help="recipe (default small)"
    )
    p.add_argument("--steps", type=int, help="optimizer steps per run (small preset's default)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default %(default)s)")
    p.add_argument(
        "--lr",
        action="append",
        metavar="MODEL=RATE[,RATE...]",
        help="learning rate(s) of a model; several rates: sweep them (repeatable)",
    )
    p.add_argument("--sweep", action="store_true", help="sweep each model's default grid")
    p.add_argument("--sweep-steps", type=int, help="steps of each sweep run (default --steps)")
    p.add_argument(
        "--egru", nargs="*", metavar="KEY=VALUE", help="EGRU model overrides (ablations)"
    )
    p.add_argument("--test-tokens", type=int, help="evaluate only this many test tokens")
    p.add_argument(
        "--quick", action="store_true", help="EGRU and GRU, 120 steps, one seed, 20k test tokens"
    )
    p.add_argument("--no-profile", action="store_true", help="skip the step-time split")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--plot", metavar="PNG", help="per-unit firing-rate histogram of the EGRU")
    p.add_argument("--label", help="name of this run's EGRU in plots and the JSON report")
    p.add_argument(
        "--table-from",
        nargs="+",
        metavar="JSON",
        help="only print a markdown table of saved --save reports (ablations), no training; "
        "with --plot, draw their perplexity against activity sparsity",
    )
    p.add_argument(
        "--plot-from",
        nargs="+",
        metavar="JSON",
        help="only draw --plot from saved --json reports (one outline each), no training",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save", metavar="JSON", help="also write the report here (after every run)")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def read_reports(names: list[str]) -> list[dict[str, Any]]:
    """Saved ``--save`` reports; a missing or malformed file is a user error."""
    reports = []
    for name in names:
        try:
            report = json.loads(Path(name).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the report {name}: {exc}") from None
        if not isinstance(report, dict) or "models" not in report:
            raise UserError(f"{name} is not a report of this benchmark (no 'models')")
        reports.append(report)
    return reports


def quick_models_and_seeds(
    parser: argparse.ArgumentParser, args: argparse.Namespace, all_models: tuple[str, ...]
) -> None:
    """``--quick``: EGRU and GRU, seed 0, unless ``--models`` / ``--seeds`` were given."""
    if args.models == list(all_models):
        args.models = ["egru", "gru"]
    if args.seeds == parser.get_default("seeds"):
        args.seeds = "0"


def run_command(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.ArgumentParser, argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parse ``argv`` and return ``body(parser, args)``'s exit status; a :class:`UserError`
    prints ``error: MESSAGE`` on stderr and returns 2 (``--verbose``: it raises, with its
    traceback)."""
    args = parser.parse_args(argv)
    try:
        return body(parser, args)
    except UserError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), _main, argv)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.quick:
        args.steps = args.steps or QUICK_STEPS
        args.test_tokens = args.test_tokens or QUICK_TEST_TOKENS
        quick_models_and_seeds(parser, args, LM_CELLS)
    for name in ("steps", "sweep_steps", "test_tokens", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.table_from:
        reports = read_reports(args.table_from)
        print(ablation_table(reports))
        if args.plot:
            plot_tradeoff(reports, args.plot)
            print(f"wrote {args.plot}")
        return 0
    if args.plot_from:
        if not args.plot:
            raise UserError("--plot-from needs --plot PNG (where to draw)")
        plot_rates(read_reports(args.plot_from), args.plot)
        print(f"wrote {args.plot}")
        return 0
    report = run(args)
    report["label"] = args.label
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
