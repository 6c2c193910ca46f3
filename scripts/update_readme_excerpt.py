"""Copy the results section of a real demo run into README.md (between the excerpt markers).

    .venv/bin/python scripts/update_readme_excerpt.py [RUN_DIR]    (default runs/demo)

The excerpt is the run's own summary.json formatted by `snn-egru report` (the same text as
the run's summary.txt), never typed by hand.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-excerpt:start -->", "<!-- demo-excerpt:end -->"


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
    readme_text = readme.read_text()
    block = f"{START}\n```text\n{text.rstrip()}\n```\n{END}"
    pattern = re.escape(START) + ".*?" + re.escape(END)
    new, count = re.subn(pattern, lambda _: block, readme_text, flags=re.S)
    if count != 1:
        print("error: README.md lacks the demo-excerpt markers", file=sys.stderr)
        return 2
    readme.write_text(new)
    print(f"README.md: excerpt updated from {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
