"""Benchmark: the effect of the ``bitmap16`` design's binary16 values on an LM's perplexity.

Runs a deployment artifact over the first tokens of the PTB test split on the simulated
chip, mapped with the receive policy ``bitmap16`` (lists sized for every unit), twice: with
received values rounded to binary16 (:func:`~spinnaker2_backend.receive_bitmap.
round_received`, the default for bitmap16) and with float32 values (the reference's outputs
bit for bit). Prints both perplexities, their ratio and the activity of each run::

    python benchmarks/rounding_check.py ARTIFACT [--tokens N]

It reads the PTB test split through the application layer of ``snn_egru``
(:func:`snn_egru.pipeline.load_test_tokens`), so it lives here, not in
``spinnaker2_backend`` (which imports only the torch-free core of ``snn_egru``).
"""

from __future__ import annotations

import argparse
import sys


def rounding_effect(artifact_path: str, tokens: int) -> dict[str, float]:
    """Perplexity and activity with and without binary16 rounding (module docstring)."""
    import numpy as np

    from snn_egru.artifact import DeploymentArtifact
    from snn_egru.pipeline import load_test_tokens, perplexity_from_logits
    from spinnaker2_backend import map_network
    from spinnaker2_backend.simulator import run_mapping

    artifact = DeploymentArtifact.load(artifact_path)
    ids, _ = load_test_tokens(tokens + 1)
    mapping = map_network(
        artifact,
        weight_format="csr",
        receive_policy="bitmap16",
        receive_capacity=tuple(artifact.layer_sizes),
        check=False,
    )
    out: dict[str, float] = {"tokens": float(tokens)}
    for name, rounding in (("float32", False), ("binary16", True)):
        run = run_mapping(mapping, ids[:-1], round_received=rounding)
        out[f"perplexity_{name}"] = perplexity_from_logits(run.logits, ids[1:])
        out[f"activity_{name}"] = float(np.mean(run.activity()))
        out[f"ms_per_token_{name}"] = run.report().seconds_per_sample * 1e3 / tokens
    out["perplexity_ratio"] = out["perplexity_binary16"] / out["perplexity_float32"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/rounding_check.py")
    parser.add_argument("artifact", help="an LM deployment artifact (.npz)")
    parser.add_argument("--tokens", type=int, default=1000, help="PTB test tokens (1000)")
    args = parser.parse_args(argv)
    if args.tokens < 1:
        parser.exit(2, "--tokens must be >= 1\n")
    try:
        r = rounding_effect(args.artifact, args.tokens)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{int(r['tokens'])} PTB test tokens, receive policy bitmap16")
    for name in ("float32", "binary16"):
        print(
            f"  {name:9s} values: perplexity {r[f'perplexity_{name}']:.4f}, activity "
            f"{100 * r[f'activity_{name}']:.2f} %, {r[f'ms_per_token_{name}']:.4f} ms per token"
        )
    print(f"  perplexity binary16 / float32: {r['perplexity_ratio']:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
