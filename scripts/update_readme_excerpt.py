"""Copy the results of a real demo run into README.md (between the excerpt markers).

    .venv/bin/python scripts/update_readme_excerpt.py [RUN_DIR]    (default runs/demo)

The excerpt is the run's own summary.json formatted by `snn-egru report` (the same text as
the run's summary.txt), never typed by hand. When the run was timed by
`benchmarks/demo_phases.py` (RUN_DIR/phases.json), the sentence between the demo-timing
markers (wall time, its phases, the load, peak memory, the whole-test-split perplexities) is
written from that file too.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-excerpt:start -->", "<!-- demo-excerpt:end -->"
TIMING_START, TIMING_END = "<!-- demo-timing:start -->", "<!-- demo-timing:end -->"


def timing_sentence(report: dict) -> str:
    """README's sentence about the timed run (every number from ``phases.json``)."""
    p, wall = report["phases_s"], report["wall_s"]
    cond = report["conditions"]
    minutes, seconds = divmod(round(wall), 60)
    lava = p["export"] + p["map"] + p["torch_eval"] + p["lava_run"] + p["accounting"]
    ppl = report["test_perplexity"]
    threads = cond["machine"]["torch_threads"]
    return (
        f"That run (`.venv/bin/python benchmarks/demo_phases.py --out {report['out']}`, which "
        f"runs `snn-egru demo --out {report['out']}` and times its phases) took {minutes} min "
        f"{seconds} s ({wall:.1f} s wall: training {p['train_steps']:.0f} s for "
        f"{report['train_steps']} steps plus validation {p['train_validation']:.0f} s, its "
        f"test evaluation {p['train_test_eval']:.0f} s, pruning {p['prune_steps']:.0f} s for "
        f"{report['prune_steps']} steps plus validation {p['prune_validation']:.0f} s, its "
        f"test {p['prune_test_eval']:.0f} s, loading data and models "
        f"{p['train_stage_overhead'] + p['prune_stage_overhead']:.0f} s, imports and checks "
        f"{p['imports_and_checks']:.0f} s, export, mapping and the Lava run {lava:.0f} s, "
        f"report and exit {p['report_and_exit']:.0f} s) with {threads} torch threads on the "
        f"project's 2-core AVX2 machine at load average {cond['load_before'][0]:.1f} before and "
        f"{cond['load_after'][0]:.1f} after (one-minute averages: they count the run's own "
        f"threads and whatever ran in the minute before), peak resident memory "
        f"{report['peak_rss_mb'] / 1024:.1f} GB. Test perplexity "
        f"on the whole PTB test split: {ppl['dense']:.1f} dense, {ppl['pruned']:.1f} pruned."
    )


def _replace(text: str, start: str, end: str, block: str) -> tuple[str, int]:
    pattern = re.escape(start) + ".*?" + re.escape(end)
    return re.subn(pattern, lambda _: f"{start}\n{block}\n{end}", text, flags=re.S)


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0]) if argv else ROOT / "runs" / "demo"
    summary = run_dir / "summary.json"
    if not summary.exists():
        print(f"error: no {summary}; run `make demo` first", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from snn_egru.summary import format_summary

    text = format_summary(json.loads(summary.read_text()))
    readme = ROOT / "README.md"
    new, count = _replace(readme.read_text(), START, END, f"```text\n{text.rstrip()}\n```")
    if count != 1:
        print("error: README.md lacks the demo-excerpt markers", file=sys.stderr)
        return 2
    phases = run_dir / "phases.json"
    if phases.exists():
        report = json.loads(phases.read_text())
        report.setdefault("out", str(run_dir))
        sentence = textwrap.fill(
            timing_sentence(report), width=92, break_long_words=False, break_on_hyphens=False
        )
        new, count = _replace(new, TIMING_START, TIMING_END, sentence)
        if count != 1:
            print("error: README.md lacks the demo-timing markers", file=sys.stderr)
            return 2
    readme.write_text(new)
    print(
        f"README.md: excerpt updated from {summary}"
        + (" and " + str(phases) if phases.exists() else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
