"""Benchmark: EGRUSequence against torch.nn.GRU on CPU (same sizes, same run).

For each size (small: T=70 B=32 I=64 H=128; LM layer: T=70 B=32 I=750 H=1350) it times

- one training step (forward + backward of a batch) of EGRUSequence and of nn.GRU;
- batch-1 inference (no_grad, eval) over the T steps, event-driven and dense, at a measured
  activity sparsity of at least the target (default 85 %: one common threshold found by
  bisection);

each EGRU case with the compiled time loop (``snn_egru._fastloop``, the default) and with
the Python loop it replaces (``use_compiled_loop(False)``), so the gain and the absence of a
regression are measured in the same run. All cases of one measurement run interleaved, one
after the other in each repeat; a ratio is the median over repeats of the per-repeat ratio
``EGRU / nn.GRU`` (runs side by side see the same background load, so the ratio is steadier
than either time on a shared machine). Ratios < 1: EGRU faster.

    python benchmarks/egru_layer.py            # 5 repeats
    python benchmarks/egru_layer.py --quick    # 2 repeats
    python benchmarks/egru_layer.py --json     # the table on stderr, one JSON object on stdout
    python benchmarks/egru_layer.py --sizes small   # only 64 -> 128
    python benchmarks/egru_layer.py --threads 1 --clock cpu   # CPU time: load stays out

JSON keys (ratios EGRU / nn.GRU): ``small_train_over_gru``, ``small_infer_over_gru`` (batch
1, the default recurrent product for that size), ``small_infer_event_over_gru``,
``small_infer_dense_over_gru``, the same with ``lm_``, and ``*_python_over_gru`` for the
Python loop; ``*_ms`` times; ``load_start``/``load_end`` (1-minute load average); run
settings.

Targets (CPU, 2 threads): small size training and batch-1 inference no slower than nn.GRU;
LM-size training <= 2x nn.GRU, batch-1 event-driven inference faster than nn.GRU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

# Spinning OpenMP workers steal the cores from the main thread when other processes share
# the CPU (measured: 2-thread runs of nn.GRU and EGRU alike become 10-100x slower). Passive
# waiting is set before torch is imported and applies to both models equally.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from snn_egru import _fastloop  # noqa: E402

try:  # run as a script: benchmarks/ is on sys.path
    from _timing import Session
except ImportError:  # imported as benchmarks.egru_layer
    from benchmarks._timing import Session
from snn_egru.sequence import EVENT_DRIVEN_MIN_HIDDEN, EGRUSequence  # noqa: E402


class Size(NamedTuple):
    key: str
    name: str
    steps: int
    batch: int
    input_size: int
    hidden_size: int


SMALL_SIZE = Size("small", "small", 70, 32, 64, 128)
LM_SIZE = Size("lm", "LM layer", 70, 32, 750, 1350)

BASELINE = "gru"


#: What the timings read: ``wall`` (``time.perf_counter``) or ``cpu`` (``time.thread_time``:
#: the CPU time of the calling thread only, so neither the background load of a shared
#: machine nor an idle library worker's spin is charged; only with ``--threads 1``, where
#: torch does all its work in the calling thread). Set by ``--clock``.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
clock: Callable[[], float] = time.perf_counter


def interleaved_times(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Run every function once per repeat, one after the other (after one warm-up each).

    Returns, per name, the median time (s) and the median of the per-repeat ratios to
    ``fns[BASELINE]``. The order rotates from repeat to repeat so that no case always runs
    first or after the same neighbour.
    """
    names = list(fns)
    for name in names:
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        took = {}
        for name in order:
            start = clock()
            fns[name]()
            took[name] = clock() - start
        for name in names:
            times[name].append(took[name])
            ratios[name].append(took[name] / took[BASELINE])
    return {
        name: (statistics.median(times[name]), statistics.median(ratios[name])) for name in names
    }


def make_models(size: Size) -> tuple[EGRUSequence, torch.nn.GRU]:
    torch.manual_seed(0)
    egru = EGRUSequence(size.input_size, size.hidden_size)
    gru = torch.nn.GRU(size.input_size, size.hidden_size)
    return egru, gru


def egru_case(fn: Callable[[], object], compiled: bool) -> Callable[[], object]:
    def run() -> object:
        with _fastloop.use_compiled_loop(compiled):
            return fn()

    return run


def training_step_times(size: Size, repeats: int) -> tuple[dict[str, tuple[float, float]], float]:
    """Forward + backward of one batch: times and ratios per case, and the EGRU event rate."""
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

    cases = {
        "compiled": egru_case(egru_step, True),
        "python": egru_case(egru_step, False),
        BASELINE: gru_step,
    }
    return interleaved_times(cases, repeats), statistics.mean(rate)


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
) -> tuple[dict[str, tuple[float, float]], float]:
    """Batch-1 no-grad inference over T steps, event-driven and dense, vs nn.GRU."""
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

    cases = {
        "event_compiled": egru_case(egru_run(True), True),
        "dense_compiled": egru_case(egru_run(False), True),
        "event_python": egru_case(egru_run(True), False),
        "dense_python": egru_case(egru_run(False), False),
        BASELINE: gru_run,
    }
    return interleaved_times(cases, repeats), sparsity


def load_now() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement")
    parser.add_argument("--sparsity", type=float, default=0.85, help="target activity sparsity")
    parser.add_argument(
        "--json", action="store_true", help="print the results as one JSON object on stdout"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or the calling thread's CPU time (needs --threads 1; steadier on a "
        "shared machine)",
    )
    parser.add_argument(
        "--sizes",
        default="small,lm",
        help="comma-separated sizes to run: small (64 -> 128), lm (750 -> 1350)",
    )
    args = parser.parse_args()
    sizes = {size.key: size for size in (SMALL_SIZE, LM_SIZE)}
    chosen = [name.strip() for name in args.sizes.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(sizes))
    if unknown or not chosen:
        parser.error(f"--sizes takes a list of {', '.join(sizes)}, got {args.sizes!r}")
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu times the calling thread only: it needs --threads 1")
    out = sys.stderr if args.json else sys.stdout
    session = Session(
        "wall (perf_counter)" if args.clock == "wall" else "thread_time (calling thread's CPU)"
    )

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 5)
    compiled = _fastloop.available()
    results: dict[str, object] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "clock": args.clock,
        "cpus": os.cpu_count(),
        "compiled_loop": compiled,
        "load_start": round(load_now(), 2),
    }
    say(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} repeats, "
        f"{args.clock} clock, "
        f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"load average at start {results['load_start']:.1f} "
        "(other processes share the CPU: compare ratios, not absolute times)"
    )
    if compiled:
        say(f"compiled time loop: {_fastloop.library_path()}")
    else:
        say("compiled time loop UNAVAILABLE: the 'compiled' rows run the Python loop too")
    for size in (sizes[name] for name in sizes if name in chosen):
        say(
            f"\n== {size.name}: T={size.steps} B={size.batch} I={size.input_size} "
            f"H={size.hidden_size}"
        )
        train, rate = training_step_times(size, repeats)
        load = load_now()
        t_gru = train[BASELINE][0]
        for case, label in (("compiled", "compiled loop"), ("python", "Python loop  ")):
            t, ratio = train[case]
            say(
                f"training fwd+bwd  {label}  EGRU {t * 1e3:9.1f} ms  nn.GRU {t_gru * 1e3:9.1f} ms"
                f"  ratio {ratio:5.2f}x  (event rate {rate:.1%}, load {load:.1f})"
            )
        suffix = {"compiled": "", "python": "_python"}
        for case in ("compiled", "python"):
            results[f"{size.key}_train{suffix[case]}_over_gru"] = round(train[case][1], 4)
            results[f"{size.key}_train{suffix[case]}_ms"] = round(train[case][0] * 1e3, 3)
        results[f"{size.key}_train_gru_ms"] = round(t_gru * 1e3, 3)
        results[f"{size.key}_train_event_rate"] = round(rate, 4)

        infer, sparsity = inference_times(size, repeats, args.sparsity)
        load = load_now()
        t_gru = infer[BASELINE][0]
        default = "event" if size.hidden_size >= EVENT_DRIVEN_MIN_HIDDEN else "dense"
        for mode in ("event", "dense"):
            for loop, label in (("compiled", "compiled loop"), ("python", "Python loop  ")):
                t, ratio = infer[f"{mode}_{loop}"]
                mode_label = "event-driven" if mode == "event" else "dense       "
                mark = "  <- default for this size" if mode == default else ""
                say(
                    f"batch-1 {mode_label} {label}  EGRU {t * 1e3:9.2f} ms  "
                    f"nn.GRU {t_gru * 1e3:9.2f} ms  ratio {ratio:5.2f}x  "
                    f"(activity sparsity {sparsity:.1%}, load {load:.1f}){mark}"
                )
                key = f"{size.key}_infer_{mode}{'' if loop == 'compiled' else '_python'}"
                results[f"{key}_over_gru"] = round(ratio, 4)
                results[f"{key}_ms"] = round(t * 1e3, 4)
        results[f"{size.key}_infer_over_gru"] = results[f"{size.key}_infer_{default}_over_gru"]
        results[f"{size.key}_infer_python_over_gru"] = results[
            f"{size.key}_infer_{default}_python_over_gru"
        ]
        results[f"{size.key}_infer_default"] = default
        results[f"{size.key}_infer_gru_ms"] = round(t_gru * 1e3, 4)
        results[f"{size.key}_infer_sparsity"] = round(sparsity, 4)
    results["load_end"] = round(load_now(), 2)
    results["conditions"] = session.finish()
    say(f"\nload average at end {results['load_end']:.1f}")
    say(Session.line(results["conditions"]))
    if args.json:
        print(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
