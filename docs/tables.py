"""Generate the tables of ``docs/spinnaker2.md`` from the code (never typed in).

The figures the simulator uses live in :mod:`spinnaker2_backend.constants` (each field
with a comment naming its source and tag) and the published comparison rows in
:mod:`spinnaker2_backend.results`. This script writes them between the
``<!-- begin: NAME -->`` / ``<!-- end: NAME -->`` markers of ``docs/spinnaker2.md``::

    .venv/bin/python docs/tables.py          # check: exit 1 when the document is stale
    .venv/bin/python docs/tables.py --write  # rewrite the tables

``tests/test_architecture.py`` runs the check.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "spinnaker2.md"
CONSTANTS = ROOT / "spinnaker2_backend" / "constants.py"


def _comments(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


def constants_table(class_name: str) -> str:
    """Markdown rows ``field | default | source and tag`` of one dataclass of constants.py."""
    import spinnaker2_backend.constants as constants

    source = CONSTANTS.read_text()
    comments = _comments(source)
    cls = next(
        n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == class_name
    )
    instance = getattr(constants, class_name)()
    rows = ["| field | default | source, tag |", "|---|---|---|"]
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        name = node.target.id
        note = "; ".join(
            comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments
        )
        rows.append(f"| `{name}` | {_fmt(getattr(instance, name))} | {note} |")
    return "\n".join(rows)


def published_rows() -> str:
    """The published LM measurement (A100 and SpiNNaker2 rows) as the code holds it."""
    from spinnaker2_backend.results import (
        MEASURED_ANCHORS,
        PUBLISHED_A100,
        PUBLISHED_DVS_A100,
        PUBLISHED_DVS_SPINNAKER2,
        PUBLISHED_SPINNAKER2,
    )

    rows = ["| | per | power (W) | time (ms) | energy (J) | source |"]
    rows.append("|---|---|---|---|---|---|")
    for fig in (PUBLISHED_A100, PUBLISHED_SPINNAKER2, PUBLISHED_DVS_A100, PUBLISHED_DVS_SPINNAKER2):
        per = f"{fig.sequence_tokens}-token sequence" if fig.unit == "sequence" else "sample"
        rows.append(
            f"| {fig.name} | {per} | {fig.power_w:g} | {fig.seconds_per_sequence * 1e3:g} | "
            f"{fig.energy_j_per_sequence:g} | {fig.source} |"
        )
    rows.append("")
    rows.append("Tags the code attaches to each anchor (`MEASURED_ANCHORS`):")
    rows.append("")
    rows += [f"- {k}: {v}" for k, v in MEASURED_ANCHORS.items()]
    return "\n".join(rows)


def tables() -> dict[str, str]:
    out = {name: constants_table(name) for name in ("ChipSpec", "CycleCosts", "EnergyCosts")}
    out["published"] = published_rows()
    return out


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current contents."""
    for name, body in tables().items():
        pattern = re.compile(rf"(<!-- begin: {name} -->\n).*?(<!-- end: {name} -->)", flags=re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no '<!-- begin: {name} -->' ... '<!-- end: {name} -->'")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/spinnaker2.md")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if args.write:
        DOC.write_text(new)
        return 0
    if new != text:
        print(f"{DOC} is stale: run .venv/bin/python docs/tables.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
