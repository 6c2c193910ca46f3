"""Benchmark: EGRUSequence against torch.nn.GRU on CPU (same sizes, same run).

Prints, for each size, the forward+backward time of one training step (EGRUSequence vs
nn.GRU, ratio), and the batch-1 inference time (no_grad, eval) with the measured activity
sparsity of the EGRU vs nn.GRU at batch 1. Thresholds for the inference part are set to one
common value found by bisection so that the measured activity sparsity is at least the target
(default 85 %).

    python benchmarks/egru_layer.py            # LM size (T=70, B=32, I=750, H=1350) + small
    python benchmarks/egru_layer.py --quick    # fewer repeats

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

# Spinning OpenMP workers steal the cores from the main thread when other processes share
# the CPU (measured: 2-thread runs of nn.GRU and EGRU alike become 10-100x slower). Passive
# waiting is set before torch is imported and applies to both models equally.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from snn_egru.sequence import EVENT_DRIVEN_MIN_HIDDEN, EGRUSequence  # noqa: E402


class Size(NamedTuple):
    name: str
    steps: int
    batch: int
    input_size: int
    hidden_size: int


LM_SIZE = Size("LM layer", 70, 32, 750, 1350)
SMALL_SIZE = Size("small", 70, 32, 64, 128)


def paired_times(
    fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Time ``fn_a`` and ``fn_b`` alternately (one warm-up each); seconds and ratio.

    Returns the median time of each and the median of the per-pair ratios ``a / b``: runs
    taken side by side see the same background load, so the ratio is steadier than either
    time on a shared machine.
    """
    fn_a()
    fn_b()
    times_a, times_b, ratios = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn_a()
        mid = time.perf_counter()
        fn_b()
        end = time.perf_counter()
        times_a.append(mid - start)
        times_b.append(end - mid)
        ratios.append((mid - start) / (end - mid))
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def make_models(size: Size) -> tuple[EGRUSequence, torch.nn.GRU]:
    torch.manual_seed(0)
    egru = EGRUSequence(size.input_size, size.hidden_size)
    gru = torch.nn.GRU(size.input_size, size.hidden_size)
    return egru, gru


def training_step_times(size: Size, repeats: int) -> tuple[float, float, float, float]:
    """(EGRU s, GRU s, ratio, EGRU event rate) for forward + backward of one batch."""
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

    t_egru, t_gru, ratio = paired_times(egru_step, gru_step, repeats)
    return t_egru, t_gru, ratio, statistics.mean(rate)


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


class InferenceResult(NamedTuple):
    """Batch-1 inference times (seconds, medians) and the measured activity sparsity."""

    event_driven: float
    gru_vs_event: float
    ratio_event: float
    dense: float
    gru_vs_dense: float
    ratio_dense: float
    sparsity: float


def inference_times(size: Size, repeats: int, target_sparsity: float) -> InferenceResult:
    """Batch-1 no-grad inference over T steps: event-driven and dense EGRU vs nn.GRU."""
    egru, gru = make_models(size)
    egru.eval()
    gru.eval()
    x = torch.randn(size.steps, 1, size.input_size)
    sparsity = calibrate_threshold(egru, x, target_sparsity)

    def egru_run(event_driven: bool) -> Callable[[], None]:
        def run() -> None:
            egru.event_driven = event_driven
            with torch.no_grad():
                egru(x)

        return run

    def gru_run() -> None:
        with torch.no_grad():
            gru(x)

    event = paired_times(egru_run(True), gru_run, repeats)
    dense = paired_times(egru_run(False), gru_run, repeats)
    return InferenceResult(*event, *dense, sparsity)


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
        f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"load average at start {os.getloadavg()[0]:.1f} "
        "(other processes share the CPU: compare ratios, not absolute times)"
    )
    for size in (SMALL_SIZE, LM_SIZE):
        print(
            f"\n== {size.name}: T={size.steps} B={size.batch} I={size.input_size} "
            f"H={size.hidden_size}"
        )
        t_egru, t_gru, ratio, rate = training_step_times(size, repeats)
        print(
            f"training fwd+bwd      EGRUSequence {t_egru * 1e3:9.1f} ms  "
            f"nn.GRU {t_gru * 1e3:9.1f} ms  ratio {ratio:5.2f}x  (event rate {rate:.1%})"
        )
        inf = inference_times(size, repeats, args.sparsity)
        print(
            f"batch-1 event-driven  EGRUSequence {inf.event_driven * 1e3:9.1f} ms  "
            f"nn.GRU {inf.gru_vs_event * 1e3:9.1f} ms  ratio {inf.ratio_event:5.2f}x  "
            f"(activity sparsity {inf.sparsity:.1%})"
        )
        print(
            f"batch-1 dense         EGRUSequence {inf.dense * 1e3:9.1f} ms  "
            f"nn.GRU {inf.gru_vs_dense * 1e3:9.1f} ms  ratio {inf.ratio_dense:5.2f}x  "
            f"(default for this size: "
            f"{'event-driven' if size.hidden_size >= EVENT_DRIVEN_MIN_HIDDEN else 'dense'})"
        )
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
