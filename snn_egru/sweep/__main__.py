"""``python -m snn_egru.sweep``: the same as ``snn-egru sweep``."""

from snn_egru.sweep.cli import main

raise SystemExit(main(prog="python -m snn_egru.sweep"))
