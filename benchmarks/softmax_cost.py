"""Benchmark: what the adaptive softmax costs and saves against the full softmax, at equal steps.

Two language models of one preset (default ``small``: PTB, embedding 256, one EGRU layer of
256 units) differ only in the decoder: the full 10k-word softmax (the preset's tied decoder)
and an adaptive softmax (``LanguageModelConfig.adaptive_softmax``, cutoffs over words ranked
by training frequency; untied, since its head and tail clusters have their own weights).
Each is trained by the project's own training code for the same number of steps with the
preset's recipe (:func:`snn_egru.training.lm.train_language_model`, seed 0) and evaluated on
the test split (the adaptive model on its exact log-probabilities). Reported per row: test
and validation perplexity, training wall time (its validations included), and the time of
one training step (forward, loss, backward, AdamW) measured in blocks interleaved between
the two models in this process (best block; torch's threads; the allocator setting of the
training loop on). Ratios are taken between rows of this run only.

    python benchmarks/softmax_cost.py                          # small, 300 steps, 2000,6000
    python benchmarks/softmax_cost.py --json                   # the report as JSON
    python benchmarks/softmax_cost.py --write-doc docs/training_speed.md   # table into docs
    python benchmarks/softmax_cost.py --from-json saved.json --write-doc docs/training_speed.md

Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

from snn_egru.data.text import bptt_windows, get_batch, load_corpus  # noqa: E402
from snn_egru.models.lm import EGRULanguageModel  # noqa: E402
from snn_egru.training.allocator import keep_buffers_mapped  # noqa: E402
from snn_egru.training.lm import (  # noqa: E402
    evaluate_perplexity,
    preset_configs,
    train_language_model,
)

START, END = "<!-- softmax-cost:start -->", "<!-- softmax-cost:end -->"


def configs(preset: str, cutoffs: tuple[int, ...] | None, steps: int, vocab: int):
    model_config, train_config = preset_configs(preset)
    model_config = replace(model_config, vocab_size=vocab)
    if cutoffs:
        model_config = replace(model_config, adaptive_softmax=cutoffs, tie_weights=False)
    train_config = replace(
        train_config, max_steps=steps, final_test=False, save_checkpoints=False, seed=0
    )
    return model_config, train_config


def step_timer(model_config, train_config, corpus, block: int):
    """A closure running ``block`` training steps of a fresh model (what the loop does per
    step: forward, loss, backward, AdamW step)."""
    torch.manual_seed(0)
    model = EGRULanguageModel(model_config).train()
    if model.adaptive is not None:
        model.set_word_ranks(torch.bincount(corpus.train, minlength=model_config.vocab_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr)
    rows = corpus.train.numel() // train_config.batch_size
    source = corpus.train[: rows * train_config.batch_size].view(train_config.batch_size, -1).t()
    windows = list(bptt_windows(rows, train_config.bptt, random_length=False))

    def run() -> None:
        for k in range(block):
            inputs, targets = get_batch(source, windows[k].start, windows[k].seq_len)
            if model.adaptive is not None:
                y = model.decoder_inputs(inputs).logits
                loss = model.adaptive_loss(y, targets)
            else:
                logits = model(inputs).logits
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def run(args: argparse.Namespace) -> dict[str, Any]:
    session = _timing.Session("wall time (torch's threads)")
    keep_buffers_mapped()  # as Trainer.fit does
    corpus = load_corpus("ptb")
    vocab = len(corpus.vocabulary)
    variants = {"full": None, "adaptive": args.cutoffs}
    rows: dict[str, dict[str, Any]] = {}
    for name, cutoffs in variants.items():
        model_config, train_config = configs(args.preset, cutoffs, args.steps, vocab)
        start = time.perf_counter()
        result = train_language_model(model_config, train_config, data=corpus, show_progress=False)
        wall = time.perf_counter() - start
        test = evaluate_perplexity(
            result.model, corpus.test, batch_size=train_config.test_batch_size,
            bptt=train_config.bptt, max_tokens=args.test_tokens, show_progress=False,
        )  # fmt: skip
        params = sum(p.numel() for p in result.model.parameters())
        rows[name] = {
            "cutoffs": list(cutoffs) if cutoffs else None,
            "tied": model_config.tie_weights,
            "parameters": params,
            "steps": result.steps,
            "train_wall_s": wall,
            "valid_perplexity": result.best_valid_perplexity,
            "test_perplexity": test.perplexity,
            "test_tokens": test.tokens,
        }
    timers = {
        name: step_timer(
            *configs(args.preset, cutoffs, args.steps, vocab)[:2], corpus, args.step_block
        )  # fmt: skip
        for name, cutoffs in variants.items()
    }
    for fn in timers.values():  # warm-up (first-touch of buffers, lazy init)
        fn()
    _, wall = _timing.interleaved(timers, args.step_repeats, multi_threaded=tuple(timers))
    for name in rows:
        rows[name]["step_ms"] = 1000 * wall[name] / args.step_block
    full, adaptive = rows["full"], rows["adaptive"]
    return {
        "preset": args.preset,
        "steps": args.steps,
        "cutoffs": list(args.cutoffs),
        "rows": rows,
        "adaptive_over_full": {
            "test_perplexity": adaptive["test_perplexity"] / full["test_perplexity"],
            "step_time": adaptive["step_ms"] / full["step_ms"],
            "train_wall": adaptive["train_wall_s"] / full["train_wall_s"],
        },
        "step_block": args.step_block,
        "step_repeats": args.step_repeats,
        "command": "python benchmarks/softmax_cost.py " + shlex.join(args.argv),
        "conditions": session.finish(),
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as the table docs/training_speed.md shows."""
    r, ratio = report["rows"], report["adaptive_over_full"]
    cond = report["conditions"]
    cut = ",".join(str(c) for c in report["cutoffs"])
    lines = [
        f"`{report['command'].strip()}` ({report['preset']} preset, {report['steps']} steps, "
        f"seed 0, test split: {r['full']['test_tokens']:,} tokens; {_timing.Session.line(cond)})",
        "",
        "| decoder | parameters | test perplexity | valid perplexity | step time | "
        "train + validation wall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {"full": "full softmax, tied (default)", "adaptive": f"adaptive {cut}, untied"}
    for name, label in labels.items():
        row = r[name]
        lines.append(
            f"| {label} | {row['parameters']:,} | {row['test_perplexity']:.2f} | "
            f"{row['valid_perplexity']:.2f} | {row['step_ms']:.0f} ms | "
            f"{row['train_wall_s']:.0f} s |"
        )
    lines += [
        "",
        f"Adaptive over full: test perplexity **{ratio['test_perplexity']:.3f}x**, step time "
        f"**{ratio['step_time']:.3f}x** (best of {report['step_repeats']} interleaved blocks of "
        f"{report['step_block']} steps), training wall {ratio['train_wall']:.3f}x.",
    ]
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    doc = path.read_text()
    block = f"{START}\n{text}\n{END}"
    new, count = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, doc,
                         flags=re.S)  # fmt: skip
    if count != 1:
        raise SystemExit(f"error: {path} lacks the {START} / {END} markers")
    path.write_text(new)


def _cutoffs(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected cutoffs such as 2000,6000, got {text!r}"
        ) from None
    return values


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small"])
    p.add_argument("--steps", type=int, default=300, help="training steps of each model")
    p.add_argument("--cutoffs", type=_cutoffs, default=(2000, 6000), help="adaptive cutoffs")
    p.add_argument("--test-tokens", type=int, help="first N test tokens (default: all)")
    p.add_argument("--step-block", type=int, default=5, help="steps per timed block")
    p.add_argument("--step-repeats", type=int, default=3, help="interleaved timed blocks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--write-doc", type=Path, help="put the table between the markers of DOC")
    p.add_argument(
        "--from-json", type=Path, help="no run: take the report of an earlier --json run"
    )
    args = p.parse_args(argv)
    args.argv = argv
    if args.steps < 1 or args.step_block < 1 or args.step_repeats < 1:
        p.error("--steps, --step-block and --step-repeats must be >= 1")
    try:
        report = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    except (ValueError, OSError) as err:  # e.g. cutoffs beyond the vocabulary
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.write_doc is not None:
        write_doc(args.write_doc, markdown(report))
    print(json.dumps(report, indent=2) if args.json else markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
