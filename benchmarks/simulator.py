"""Benchmark: simulated SpiNNaker2 tokens per second vs dense PyTorch and the numpy reference.

The published LM shapes (embedding 750 -> EGRU 1350/1350/750 -> tied decoder, vocabulary
10,000 as in the synthetic preset), 95 % pruned weights, mapped on 150 PEs (50/50/50, the
calibration mapping). In one run, on this machine, batch 1, one token at a time:

* the simulated chip (``run_mapping``: numerics, per-PE counters, timing, energy; CSR and
  event weight layouts; readout on the host, as published);
* plain dense PyTorch CPU inference of the same network (dense float32 weight matrices,
  ``torch.set_num_threads(2)``, ``torch.inference_mode``);
* the numpy reference (``DeploymentArtifact.run_reference``, CSR weights).

Each is run ``--repeats`` times over the same ``--tokens`` tokens; the best time counts.
Prints tokens per second and the ratios. Other processes on the machine may slow any of them.

Usage::

    .venv/bin/python benchmarks/simulator.py [--tokens 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.calibration import calibration_artifact, calibration_mapping
from spinnaker2_backend.simulator import run_mapping


def best_seconds(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def torch_dense_model(artifact: DeploymentArtifact):
    """Dense float32 tensors of every matrix (what a plain PyTorch deployment multiplies)."""

    def dense(w):
        return torch.from_numpy(np.asarray(w.toarray() if hasattr(w, "toarray") else w))

    layers = [
        (
            dense(layer.weight_ih).contiguous(),
            dense(layer.weight_hh).contiguous(),
            torch.from_numpy(layer.bias_ih),
            torch.from_numpy(layer.bias_hh),
            torch.from_numpy(layer.threshold),
        )
        for layer in artifact.layers
    ]
    embedding = torch.from_numpy(artifact.embedding)
    decoder = embedding  # tied
    bias = torch.from_numpy(artifact.readout_bias)
    return layers, embedding, decoder, bias


def torch_run(model, tokens: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token by token, batch 1: embedding -> EGRU stack (docs/egru.md equations) -> decoder."""
    layers, embedding, decoder, bias = model
    states = [(torch.zeros(w_hh.shape[1]), torch.zeros(w_hh.shape[1])) for _, w_hh, *_ in layers]
    events = [[] for _ in layers]
    logits = []
    with torch.inference_mode():
        for token in tokens.tolist():
            x = embedding[token]
            for i, (w_ih, w_hh, b_ih, b_hh, theta) in enumerate(layers):
                c, y = states[i]
                h = theta.shape[0]
                gi = torch.mv(w_ih, x) + b_ih
                gh = torch.mv(w_hh, y) + b_hh
                r = torch.sigmoid(gi[:h] + gh[:h])
                z = torch.sigmoid(gi[h : 2 * h] + gh[h : 2 * h])
                n = torch.tanh(gi[2 * h :] + r * gh[2 * h :])
                c_tilde = z * c + (1 - z) * n
                o = (c_tilde > theta).to(c_tilde.dtype)
                y = o * c_tilde
                states[i] = (c_tilde - o * theta, y)
                events[i].append(y)
                x = y
            logits.append(torch.mv(decoder, x) + bias)
    return [torch.stack(e) for e in events], torch.stack(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)

    artifact = calibration_artifact()
    tokens = np.random.default_rng(0).integers(0, artifact.embedding.shape[0], args.tokens)
    mappings = {  # the event layout's extra column starts overflow a layer-1 PE: time it anyway
        fmt: calibration_mapping(artifact, weight_format=fmt, check=False)
        for fmt in ("csr", "event")
    }
    model = torch_dense_model(artifact)

    rows = []
    t_torch, (torch_events, torch_logits) = best_seconds(
        lambda: torch_run(model, tokens), args.repeats
    )
    rows.append(("dense PyTorch (2 threads)", t_torch))
    t_ref, ref = best_seconds(lambda: artifact.run_reference(tokens), args.repeats)
    rows.append(("numpy reference (CSR)", t_ref))
    runs = {}
    for fmt, mapping in mappings.items():
        t_sim, runs[fmt] = best_seconds(lambda m=mapping: run_mapping(m, tokens), args.repeats)
        rows.append((f"simulated chip, {fmt} (counters, time, energy)", t_sim))
    t_lean, _ = best_seconds(lambda: run_mapping(mappings["csr"], tokens, record=False), 1)
    rows.append(("simulated chip, csr, record=False", t_lean))

    # the three compute the same network
    for fmt, run in runs.items():
        for got, want in zip(run.layer_events, ref.layer_events):
            assert np.array_equal(got, want), f"{fmt} differs from the reference"
    for got, want in zip(torch_events, ref.layer_events):
        agree = np.mean((got.numpy() != 0) == (want != 0))
        assert agree > 0.99, f"PyTorch events agree on only {agree:.3%}"

    print(
        f"published LM shapes 750 -> 1350/1350/750 -> 10,000, 95 % pruned, 150 PEs; "
        f"{args.tokens} tokens, batch 1, best of {args.repeats}; "
        f"activity {np.mean(runs['csr'].activity()):.1%} of units per step"
    )
    print(f"{'':<48} {'tokens/s':>10} {'ms/token':>9} {'vs PyTorch':>11} {'vs numpy':>9}")
    for name, seconds in rows:
        rate = args.tokens / seconds
        print(
            f"{name:<48} {rate:>10.1f} {seconds / args.tokens * 1e3:>9.3f} "
            f"{t_torch / seconds:>10.2f}x {t_ref / seconds:>8.2f}x"
        )
    for fmt, run in runs.items():
        report = run.report()
        print(
            f"simulated {fmt}: {report.seconds_per_sequence * 1e3:.2f} ms and "
            f"{report.energy_per_sequence_j:.4f} J per 70-token sequence "
            f"({report.average_power_w:.3f} W)"
        )


if __name__ == "__main__":
    main()
