"""Benchmark: one LM training step with and without ``RecurrentThreads`` (the EGRU time loop
on one torch thread, the decoder's products on all), interleaved in one process.

    .venv/bin/python benchmarks/recurrent_threads.py [--preset small] [--steps 40]
        [--threads 2] [--warmup 3] [--json]

Each step is the demo's shape (BPTT 35, batch 32, the preset's model, random tokens of a
10,000-word vocabulary): forward, cross-entropy over the full softmax, backward, Adam. The
two modes alternate step by step (the order flips every pair), after `--warmup` steps of
each, so a change of the machine's load reaches both alike. Wall time (several threads):
read the ratio only when nothing else runs, and state the load. Prints the median and the
best step of each mode and ``on_over_off`` (median with ``RecurrentThreads`` over without).
The numbers of a step do not depend on the mode (``tests/snn_egru/test_recurrent_threads.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import Session  # noqa: E402
from snn_egru.models.lm import EGRULanguageModel, lm_preset  # noqa: E402
from snn_egru.training.lm_eval import RecurrentThreads  # noqa: E402

VOCAB, BPTT, BATCH = 10_000, 35, 32


def make_step(preset: str, seed: int = 0):
    """A training step ``step(recurrent_threads: bool) -> seconds`` of a fresh model."""
    torch.manual_seed(seed)
    model = EGRULanguageModel(lm_preset(preset, vocab_size=VOCAB))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, VOCAB, (BPTT + 1, BATCH))
    threads = RecurrentThreads(model, backward=True)

    def step(on: bool) -> float:
        if on:
            threads.install()
        start = time.perf_counter()
        logits = model(tokens[:-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds = time.perf_counter() - start
        if on:
            threads.remove()
        return seconds

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per mode")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per mode first")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--steps and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    session = Session(clock="wall (perf_counter), steps of the two modes alternated")
    step = make_step(args.preset)
    for _ in range(args.warmup):
        step(False), step(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.steps):
        for on in (False, True) if i % 2 == 0 else (True, False):
            times[on].append(step(on))
    median = {on: statistics.median(v) for on, v in times.items()}
    figures = session.figures(
        {
            "preset": args.preset,
            "steps": args.steps,
            "threads": args.threads,
            "off_median_ms": median[False] * 1e3,
            "on_median_ms": median[True] * 1e3,
            "off_best_ms": min(times[False]) * 1e3,
            "on_best_ms": min(times[True]) * 1e3,
            "on_over_off": median[True] / median[False],
        }
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{args.preset} LM training step, batch {BATCH}, BPTT {BPTT}, {args.threads} torch "
        f"threads, {args.steps} steps per mode, interleaved"
    )
    print(Session.line(figures["conditions"]))
    print(f"without RecurrentThreads: median {figures['off_median_ms']:.1f} ms, best "
          f"{figures['off_best_ms']:.1f} ms")  # fmt: skip
    print(f"with RecurrentThreads:    median {figures['on_median_ms']:.1f} ms, best "
          f"{figures['on_best_ms']:.1f} ms")  # fmt: skip
    print(f"on_over_off = {figures['on_over_off']:.3f} (median step time, on / off)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
