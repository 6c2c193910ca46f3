"""Benchmark: EGRUSequence against torch.nn.GRU on CPU (same sizes, same run).

Prints, for each size, the forward+backward time of one training step (EGRUSequence vs
nn.GRU, ratio), and the batch-1 inference time (no_grad, eval) with the measured activity
sparsity of the EGRU vs nn.GRU at batch 1. Thresholds for the inference part are set to one
common value found by bisection so that the measured activity sparsity is at least the target
(default 85 %).

    python benchmarks/egru_layer.py            # LM size (T=70, B=32, I=750, H=1350) + small
    python benchmarks/egru_layer.py --quick    # fewer repeats, small size first

Targets (CPU, 2 threads): training step <= 2x nn.GRU; batch-1 inference at >= 85 %
activity sparsity faster than nn.GRU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from snn_egru.sequence import EGRUSequence


class Size(NamedTuple):
    name: str
    steps: int
    batch: int
    input_size: int
    hidden_size: int


LM_SIZE = Size("LM layer", 70, 32, 750, 1350)
SMALL_SIZE = Size("small", 70, 32, 64, 128)


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_models(size: Size) -> tuple[EGRUSequence, torch.nn.GRU]:
    torch.manual_seed(0)
    egru = EGRUSequence(size.input_size, size.hidden_size)
    gru = torch.nn.GRU(size.input_size, size.hidden_size)
    return egru, gru


def training_step_times(size: Size, repeats: int) -> tuple[float, float, float]:
    """(EGRU seconds, GRU seconds, EGRU event rate) for forward + backward of one batch."""
    egru, gru = make_models(size)
    x = torch.randn(size.steps, size.batch, size.input_size)
    rate = []

    def egru_step() -> None:
        egru.zero_grad(set_to_none=True)
        out, _ = egru(x)
        rate.append(float((out.detach() != 0).float().mean()))
        out.pow(2).mean().backward()

    def gru_step() -> None:
        gru.zero_grad(set_to_none=True)
        out, _ = gru(x)
        out.pow(2).mean().backward()

    t_egru = median_time(egru_step, repeats)
    t_gru = median_time(gru_step, repeats)
    return t_egru, t_gru, statistics.mean(rate)


def calibrate_threshold(egru: EGRUSequence, x: torch.Tensor, target_sparsity: float) -> float:
    """Bisect one common threshold so that the measured sparsity is >= the target."""
    low, high = 0.0, 1.0
    with torch.no_grad():
        for _ in range(12):
            mid = 0.5 * (low + high)
            egru.threshold_l0.set_(mid)
            out, _ = egru(x)
            sparsity = float((out == 0).float().mean())
            if sparsity >= target_sparsity:
                high = mid
            else:
                low = mid
        egru.threshold_l0.set_(high)
        out, _ = egru(x)
    return float((out == 0).float().mean())


def inference_times(
    size: Size, repeats: int, target_sparsity: float
) -> tuple[float, float, float, float]:
    """(EGRU s, EGRU dense s, GRU s, sparsity) of batch-1 no-grad inference over T steps."""
    egru, gru = make_models(size)
    egru.eval()
    gru.eval()
    x = torch.randn(size.steps, 1, size.input_size)
    sparsity = calibrate_threshold(egru, x, target_sparsity)

    def egru_run() -> None:
        with torch.no_grad():
            egru(x)

    def egru_dense_run() -> None:  # same computation with the dense recurrent product
        egru.event_driven = False
        try:
            with torch.no_grad():
                egru(x)
        finally:
            egru.event_driven = True

    def gru_run() -> None:
        with torch.no_grad():
            gru(x)

    t_egru = median_time(egru_run, repeats)
    t_dense = median_time(egru_dense_run, repeats)
    t_gru = median_time(gru_run, repeats)
    return t_egru, t_dense, t_gru, sparsity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement")
    parser.add_argument("--sparsity", type=float, default=0.85, help="target activity sparsity")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} repeats, "
        f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f} "
        "(other processes share the CPU: compare ratios, not absolute times)"
    )
    for size in (SMALL_SIZE, LM_SIZE):
        print(
            f"\n== {size.name}: T={size.steps} B={size.batch} I={size.input_size} "
            f"H={size.hidden_size}"
        )
        t_egru, t_gru, rate = training_step_times(size, repeats)
        print(
            f"training fwd+bwd   EGRUSequence {t_egru * 1e3:9.1f} ms  "
            f"nn.GRU {t_gru * 1e3:9.1f} ms"
            f"  ratio {t_egru / t_gru:5.2f}x  (event rate {rate:.1%})"
        )
        t_sparse, t_dense, t_gru1, sparsity = inference_times(size, repeats, args.sparsity)
        print(
            f"batch-1 inference  EGRUSequence {t_sparse * 1e3:9.1f} ms  "
            f"nn.GRU {t_gru1 * 1e3:9.1f} ms"
            f"  ratio {t_sparse / t_gru1:5.2f}x  (activity sparsity {sparsity:.1%}; "
            f"EGRU with dense recurrent product {t_dense * 1e3:.1f} ms)"
        )
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
