"""Benchmark: where the wall time of ``snn-egru demo`` goes, phase by phase.

Runs the demo as a child process (``python -m snn_egru.cli demo --out OUT [DEMO ARGS]``),
stamps every line it logs, and splits the wall time from the start of the process to its
exit into phases, from the run's own records:

* imports and checks: process start -> the first ``train:`` line (imports, PTB test tokens,
  settings and checkpoint checks);
* training steps and validation, its test evaluation: ``train/summary.json``
  (``wall_time_s`` = steps + validations; ``total_time_s - wall_time_s`` = the test split),
  the validation seconds from the ``valid perplexity ... (X s)`` log lines;
* pruning steps and validation, its test evaluation: ``prune/summary.json`` likewise;
* stage overhead (loading data and checkpoints, building models): the stage's time in the
  demo's ``phases_s`` minus its summary's ``total_time_s``;
* export, mapping, the PyTorch evaluation slice, the Lava run (a child process: its imports,
  the run, the chip report and plots), sparsity accounting: the demo's ``phases_s``;
* report and exit: the rest (summary files, the activity plot, interpreter exit).

Prints the phases in seconds and shares, with the load average before and after and the
threads, and writes them to ``OUT/phases.json`` (``scripts/update_readme_excerpt.py`` takes
README's timing sentence from it). Needs a fresh ``--out`` (a re-run reuses checkpoints).

    python benchmarks/demo_phases.py --out runs/demo_timed
    python benchmarks/demo_phases.py --out runs/t --json -- --train-steps 600
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

VALID = re.compile(r"valid perplexity [0-9.]+ \(([0-9.]+) s\)")


def run_demo(out: Path, demo_args: list[str]) -> dict[str, Any]:
    """Run the demo; returns the stamped log lines, the wall time and the child's peak RSS."""
    import resource

    command = [sys.executable, "-m", "snn_egru.cli", "demo", "--out", str(out), *demo_args]
    start = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            print(line, end="", file=sys.stderr)
        code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"error: the demo exited with status {code}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"command": command, "lines": lines, "wall_s": wall, "peak_rss_mb": peak_kb / 1024}


def phases(out: Path, lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """The wall time split into phases (seconds; see the module docstring)."""
    summary = json.loads((out / "summary.json").read_text())
    demo = summary["phases_s"]
    first_train = next(t for t, line in lines if " train: " in line)
    prune_start = next((t for t, line in lines if " prune: " in line), float("inf"))
    valid = {"train": 0.0, "prune": 0.0}
    for t, line in lines:
        match = VALID.search(line)
        if match:
            valid["train" if t < prune_start else "prune"] += float(match.group(1))
    result: dict[str, float] = {"imports_and_checks": first_train}
    for stage in ("train", "prune"):
        stage_summary = summary.get(stage) or {}
        steps_and_valid = float(stage_summary.get("wall_time_s", 0.0))
        total = float(stage_summary.get("total_time_s", steps_and_valid))
        result[f"{stage}_steps"] = steps_and_valid - valid[stage]
        result[f"{stage}_validation"] = valid[stage]
        result[f"{stage}_test_eval"] = total - steps_and_valid
        result[f"{stage}_stage_overhead"] = demo[stage] - total
    for name in ("export", "map", "torch_eval", "lava_run", "accounting"):
        result[name] = demo[name]
    result["report_and_exit"] = wall - first_train - sum(demo.values())
    return result


def report_text(report: dict[str, Any]) -> str:
    wall = report["wall_s"]
    rows = [f"{'phase':<24}{'seconds':>9}{'share':>8}"]
    for name, seconds in report["phases_s"].items():
        rows.append(f"{name:<24}{seconds:>9.1f}{100 * seconds / wall:>7.1f}%")
    rows.append(f"{'total wall':<24}{wall:>9.1f}")
    ppl = report["test_perplexity"]
    rows.append(
        f"test perplexity (whole PTB test split): dense {ppl['dense']:.1f}, pruned "
        f"{ppl['pruned']:.1f}; peak RSS {report['peak_rss_mb']:.0f} MB"
    )
    rows.append(_timing.Session.line(report["conditions"]))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    demo_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, demo_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="a fresh run folder for the demo")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if (args.out / "summary.json").exists() or (args.out / "train").exists():
        print(f"error: {args.out} holds a run (it would be reused): give a fresh --out",
              file=sys.stderr)  # fmt: skip
        return 2
    import torch  # noqa: F401  (the threads the conditions report: the demo's defaults)

    session = _timing.Session("wall time of the demo process (its own threads)")
    run = run_demo(args.out, demo_args)
    summary = json.loads((args.out / "summary.json").read_text())
    report = {
        "command": " ".join(run["command"][1:]),
        "out": str(args.out),
        "wall_s": run["wall_s"],
        "phases_s": phases(args.out, run["lines"], run["wall_s"]),
        "peak_rss_mb": run["peak_rss_mb"],
        "train_steps": (summary.get("train") or {}).get("steps"),
        "prune_steps": (summary.get("prune") or {}).get("steps"),
        "test_perplexity": {
            "dense": (summary.get("train") or {}).get("test_perplexity"),
            "pruned": (summary.get("prune") or {}).get("test_perplexity"),
        },
        "conditions": session.finish(),
    }
    (args.out / "phases.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
