"""NeuroBench's table for a trained deployment artifact (NeuroBench 2.3's own metrics).

What it shows
-------------
The artifact the chip runs (``artifact.npz``, written by ``snn-egru export``, ``snn-egru
demo`` or the other examples) benchmarked with NeuroBench's own harness and metrics:
``Footprint``, ``ConnectionSparsity``, ``ActivationSparsity``, ``SynapticOperations`` and
``ClassificationAccuracy`` (next-token top-1 accuracy for a language model). The artifact is
rebuilt as a batched PyTorch model (:class:`snn_egru.neurobench.ArtifactNet`) and wrapped by
:class:`snn_egru.neurobench.EGRUBenchmarkModel`, which makes the EGRU's input and recurrent
synapses and its events visible to NeuroBench; next to NeuroBench's figures the script
prints the same quantities from :mod:`snn_egru.sparsity` (they agree).

Data (``--data``, an ``.npz``): ``tokens`` (a 1-D stream of token ids; cut into windows of
``--seq-len``, targets = the next tokens) for a language-model artifact, or ``features``
``(N, T, I)`` and ``labels`` ``(N,)`` for a classifier on features (e.g. the DVS net's CNN
features). ``--smoke`` makes everything itself: a tiny language model trained for a few
steps on a synthetic token stream, exported to ``<out-dir>/artifact.npz``, and a held-out
synthetic stream.

How to run
----------
::

    .venv/bin/python examples/neurobench_table.py --smoke
    .venv/bin/python examples/neurobench_table.py --artifact runs/full/artifact.npz \\
        --data tokens.npz --seq-len 35 --batch-size 16

(``runs/full``: ``snn-egru demo --adaptive-softmax none --out runs/full``; the demo's default
adaptive softmax is not one linear readout, which NeuroBench's table needs: refused.)

NeuroBench is a test extra (``make setup`` installs it: ``pip install --no-deps
neurobench==2.3.0``).

Expected output
---------------
A ``--smoke`` run printed (a tiny language model after 30 training steps on a synthetic
stream; 14 s on 2 busy CPU cores, load average 9.5)::

    == NeuroBench 2.3 on runs/example_neurobench/artifact.npz ==
    ============================================================
    Footprint                          23488
    ConnectionSparsity                 0
    ActivationSparsity                 0.3
    SynapticOperations.Effective_MACs  136032
    SynapticOperations.Effective_ACs   0
    SynapticOperations.Dense           181440
    ClassificationAccuracy             0.166667
    snn_egru.sparsity: effective MACs/sample 136032 (NeuroBench 136032), activation
    sparsity 0.3 (NeuroBench 0.3), 6 samples of 35 steps

(the last line is one line). EGRU events are graded, so NeuroBench counts MACs, not ACs.
Files in ``--out-dir`` (default ``runs/example_neurobench``): ``artifact.npz`` (``--smoke``)
and ``results.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--artifact", type=Path, help="deployment artifact (.npz)")
    p.add_argument("--data", type=Path, help="workload data (.npz: tokens, or features+labels)")
    p.add_argument("--seq-len", type=int, default=35, help="window length for token streams")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-batches", type=int, default=0, help="stop after N batches (0: all)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/example_neurobench"))
    p.add_argument("--json", action="store_true", help="also write results.json to --out-dir")
    p.add_argument("--smoke", action="store_true", help="tiny self-made artifact and data")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _check_args(args: argparse.Namespace) -> None:
    if args.seq_len < 2:
        _fail("--seq-len must be >= 2")
    if args.batch_size < 1:
        _fail("--batch-size must be >= 1")
    if not args.smoke and (args.artifact is None or args.data is None):
        _fail("give --artifact and --data (or --smoke)")
    for name in ("artifact", "data"):
        path = getattr(args, name)
        if not args.smoke and not path.is_file():
            _fail(f"--{name} {path} is not a file")


def _smoke_artifact(out_dir: Path) -> tuple[Path, np.ndarray]:
    """A tiny LM trained for a few steps on a synthetic stream, exported; held-out tokens."""
    import torch

    from snn_egru.export import export_artifact
    from snn_egru.models.lm import EGRULanguageModel, lm_preset

    torch.manual_seed(0)
    vocab = 24
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, vocab, size=12)
    stream = np.concatenate(
        [pattern if rng.random() < 0.8 else rng.permutation(pattern) for _ in range(80)]
    )
    model = EGRULanguageModel(lm_preset("tiny", vocab_size=vocab, threshold_mean=0.05))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = torch.from_numpy(stream[:720]).view(-1, 8).t().contiguous()  # (T, B)
    for _ in range(30):
        logits = model(train[:-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), train[1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = export_artifact(model.eval(), metadata={"smoke": True}).save(out_dir / "artifact.npz")
    return path, stream[720:]


def _load_data(path: Path | None, tokens: np.ndarray | None) -> dict[str, np.ndarray]:
    if tokens is not None:
        return {"tokens": tokens}
    with np.load(path) as data:
        content = {key: data[key] for key in data.files}
    if "tokens" not in content and not {"features", "labels"} <= set(content):
        _fail(f"--data {path} must hold 'tokens' or 'features' and 'labels', has {list(content)}")
    return content


def _dataset(content: dict[str, np.ndarray], artifact: Any, seq_len: int):
    import torch
    from torch.utils.data import TensorDataset

    if artifact.input_kind == "embedding":
        if "tokens" not in content:
            _fail("a language-model artifact needs 'tokens' in --data")
        stream = torch.from_numpy(np.asarray(content["tokens"], dtype=np.int64).reshape(-1))
        n = (stream.numel() - 1) // seq_len
        if n < 1:
            _fail(f"the token stream ({stream.numel()} tokens) is shorter than --seq-len + 1")
        inputs = stream[: n * seq_len].view(n, seq_len)
        targets = stream[1 : n * seq_len + 1].view(n, seq_len)
        return TensorDataset(inputs, targets), seq_len
    if "features" not in content:
        _fail("a features artifact needs 'features' and 'labels' in --data")
    features = torch.from_numpy(np.asarray(content["features"], dtype=np.float32))
    if features.ndim != 3 or features.shape[-1] != artifact.input_size:
        _fail(f"features must be (N, T, {artifact.input_size}), got {tuple(features.shape)}")
    labels = torch.from_numpy(np.asarray(content["labels"], dtype=np.int64))
    return TensorDataset(features, labels), features.shape[1]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check_args(args)
    import torch

    torch.set_num_threads(max(1, args.threads))
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ClassificationAccuracy,
        SynapticOperations,
    )
    from torch.utils.data import DataLoader, Subset

    from snn_egru.artifact import load_artifact
    from snn_egru.neurobench import artifact_benchmark_model, neurobench_table
    from snn_egru.sparsity import SparsityProbe

    tokens = None
    artifact_path = args.artifact
    if args.smoke:
        artifact_path, tokens = _smoke_artifact(args.out_dir)
    artifact = load_artifact(artifact_path)
    if artifact.readout_kind == "adaptive":
        _fail(
            f"{artifact_path} has an adaptive-softmax readout (computed on the host); "
            "NeuroBench's table counts the readout as one linear layer: benchmark a "
            "full-softmax model (`snn-egru demo --adaptive-softmax none`)"
        )
    dataset, steps = _dataset(_load_data(args.data, tokens), artifact, args.seq_len)
    if args.max_batches:
        dataset = Subset(dataset, range(min(len(dataset), args.max_batches * args.batch_size)))
    loader = DataLoader(dataset, batch_size=args.batch_size)
    bench_model = artifact_benchmark_model(artifact)
    metrics = [
        [Footprint, ConnectionSparsity],
        [ActivationSparsity, SynapticOperations, ClassificationAccuracy],
    ]
    results = Benchmark(bench_model, loader, [], [], metrics).run(quiet=True)
    bench_model.close()
    net = bench_model.model
    with SparsityProbe(net) as probe, torch.no_grad():  # the same batches, our accounting
        for batch, _ in loader:
            net(batch)
    account = probe.result()
    ours = account.total_macs.event_driven * steps  # per token -> per sample
    print(neurobench_table(results, title=f"== NeuroBench 2.3 on {artifact_path} =="))
    print(
        f"snn_egru.sparsity: effective MACs/sample {ours:.6g} (NeuroBench "
        f"{results['SynapticOperations']['Effective_MACs']:.6g}), activation sparsity "
        f"{account.activity_sparsity:.6g} (NeuroBench {results['ActivationSparsity']:.6g}), "
        f"{len(dataset)} samples of {steps} steps"
    )
    if args.json:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        out = {
            "artifact": str(artifact_path),
            "neurobench": results,
            "snn_egru_macs": ours,
            "snn_egru_activation_sparsity": account.activity_sparsity,
        }
        (args.out_dir / "results.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
