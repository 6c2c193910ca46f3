"""DVS gesture recognition with an EGRU: accuracy in PyTorch and on a simulated SpiNNaker2 chip.

What it shows
-------------
The published DVS128 Gesture deployment: a CNN feature head (run ahead, on the host) feeds
per-frame feature vectors to two EGRU layers of 256 units with dense weights, which ran on
128 PEs of one SpiNNaker2 chip, followed by a linear readout.

1. data: DVS128 Gesture read from a folder through tonic (``--data-dir``; nothing is ever
   downloaded), or, without a folder, the synthetic gesture generator of
   :mod:`snn_egru.data.synthetic_dvs` (11 classes, same event format);
   25 ms frames, max-pooled to 32 x 32, slices of ``--num-frames`` frames;
2. training (:func:`snn_egru.training.dvs.train_dvs`) of
   :class:`snn_egru.models.dvs.DVSGestureNet` (or ``--checkpoint`` to reuse one);
3. export of the EGRU part and readout to the deployment artifact
   (:func:`snn_egru.export.export_artifact`);
4. mapping with dense weights on ``--pes-per-layer`` PEs per layer (published: 64 + 64 =
   128 PEs; capped at the layer size for small models), ``map_network(artifact,
   weight_format="dense", pes_per_layer=64)``;
5. the first ``--chip-samples`` test samples: CNN features in PyTorch, then the EGRU on the
   simulated chip (``run_mapping(mapping, features)``), the class read out from the chip's events
   (:func:`snn_egru.training.dvs.artifact_sequence_logits`). Accuracy in PyTorch, with the
   numpy reference, and on the chip; time and energy per sample from the chip's run report.

Presets (``--preset``): ``paper`` (CNN 32/64/128 channels, 512 features, EGRU 256/256: as
published; train it on a GPU), ``small`` (default; 128 features, EGRU 64/64; minutes on a
CPU), ``tiny`` (32 features, EGRU 32/32; seconds, for ``--smoke``).

How to run
----------
::

    .venv/bin/python examples/dvs_gestures.py --smoke             # seconds, synthetic data
    .venv/bin/python examples/dvs_gestures.py                     # small preset, synthetic
    .venv/bin/python examples/dvs_gestures.py --data-dir data/dvsgesture --preset paper \\
        --device cuda --epochs 30 --cache-dir data/frame_cache    # DVS128 Gesture, published
    .venv/bin/python examples/dvs_gestures.py --checkpoint runs/example_dvs/train/best.pt

``--data-dir`` is the folder holding ``DVSGesture/ibmGestureTrain`` and
``DVSGesture/ibmGestureTest`` (tonic's layout; a ``.tar.gz`` of a split there is extracted).

Expected output
---------------
Log lines on stderr, then a results table on stdout; a ``--smoke`` run printed::

    == DVS gestures: PyTorch vs simulated SpiNNaker2 ==
    data                      synthetic gestures, 4 test samples of 12 frames (25 ms)
    model                     preset tiny: features 32 -> EGRU 32/32 -> 11 classes
    accuracy PyTorch          0.0% (4 samples)
    accuracy numpy reference  0.0% (agreement with PyTorch 100.0%)
    accuracy simulated chip   0.0% (agreement with PyTorch 100.0%, max |logit difference| ...)
    chip mapping              64 PEs (32 + 32), dense weights, fullest PE 6.3% of its memory
    chip time per sample      0.518 ms for 12 frames (0.300 s of events: 579x faster than ...)
    chip time per frame       43.2 us
    chip energy per sample    0.1894 mJ (0.366 W average)
    activity on chip          layer 0 24.7%, layer 1 24.4% of units firing

(accuracy after a few smoke steps is at chance level). A default run (small preset, synthetic
gestures, 10 epochs; about 5 minutes on 2 busy CPU cores, most of it generating the
synthetic events) printed: 89.1 % on 64 test samples in PyTorch, with the numpy reference and
on the chip (agreement 100 %, max |logit difference| 4.2e-07), 128 PEs (64 + 64), 7.07 ms
and 2.87 mJ per 68-frame sample (1.7 s of events).

Files in ``--out-dir`` (default ``runs/example_dvs``): ``train/``, ``artifact.npz``,
``mapping_report.txt`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from snn_egru import examples_support as support

log = logging.getLogger("examples.dvs_gestures")

#: PEs per EGRU layer in the published deployment (2 layers on 128 PEs).
PUBLISHED_PES_PER_LAYER = 64
#: ``--smoke``: tiny model, a handful of short synthetic samples, one epoch.
SMOKE = {
    "preset": "tiny",
    "num_frames": 12,
    "synthetic_train": 8,
    "synthetic_test": 4,
    "batch_size": 4,
    "epochs": 1,
    "chip_samples": 4,
}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    p = support.example_parser(__doc__, smoke="everything: tiny model, 12 synthetic samples")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        help="DVS128 Gesture folder (holding DVSGesture/); omitted: synthetic gestures",
    )
    data.add_argument("--cache-dir", metavar="DIR", help="frame cache folder (default: memory)")
    data.add_argument("--num-frames", type=int, default=68, help="25 ms frames per sample")
    data.add_argument("--synthetic-train", type=int, default=220, help="synthetic train size")
    data.add_argument("--synthetic-test", type=int, default=110, help="synthetic test size")
    train = support.add_torch_example_arguments(
        p,
        out_dir="runs/example_dvs",
        preset_help="model size (default %(default)s; paper = 512 features, EGRU 256/256)",
    )
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    train.add_argument("--time-limit", type=float, metavar="S", help="stop training after S s")
    train.add_argument("--checkpoint", metavar="PT", help="skip training: use this checkpoint")
    chip = p.add_argument_group("simulated chip")
    chip.add_argument(
        "--chip-samples",
        type=int,
        default=64,
        help="test samples run on the chip (0: all; default %(default)s)",
    )
    chip.add_argument(
        "--pes-per-layer",
        type=int,
        default=PUBLISHED_PES_PER_LAYER,
        help="PEs per EGRU layer (default %(default)s as published; capped at the layer size)",
    )
    chip.add_argument(
        "--weight-format",
        choices=("dense", "csr", "event"),
        default="dense",
        help="weights in PE memory (published: dense)",
    )
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad option values with a message naming the fix (exit status 2)."""
    support.check_at_least(
        parser, args, num_frames=1, synthetic_train=1, synthetic_test=1, epochs=1, batch_size=1
    )
    if args.chip_samples < 0:
        parser.error(f"--chip-samples must be >= 0 (0: all), got {args.chip_samples}")
    support.check_at_least(parser, args, pes_per_layer=1)
    support.check_files(parser, args, "checkpoint")


# ------------------------------------------------------------------------------ stages
def train_or_load(args: argparse.Namespace, out: Path) -> tuple[Any, list[str], Any]:
    """The trained model, its class names and the test set (trained here or loaded)."""
    from snn_egru.models.dvs import dvs_preset
    from snn_egru.training.dvs import DVSTrainConfig, dvs_datasets, load_dvs_model, train_dvs

    if args.checkpoint is not None:
        model, class_names = load_dvs_model(args.checkpoint)
        log.info("using checkpoint %s (no training)", args.checkpoint)
        _, test_set = dvs_datasets(
            DVSTrainConfig(
                data_dir=args.data_dir,
                cache_dir=args.cache_dir,
                num_frames=args.num_frames,
                synthetic_train_samples=1,
                synthetic_test_samples=args.synthetic_test,
                seed=args.seed,
            )
        )
        return model, class_names, test_set
    train_config = DVSTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=min(20, args.epochs),
        seed=args.seed,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        num_frames=args.num_frames,
        synthetic_train_samples=args.synthetic_train,
        synthetic_test_samples=args.synthetic_test,
        device=args.device,
        eval_batch_size=max(args.batch_size, 8),
        max_steps=args.max_steps,
        time_limit_s=args.time_limit,
        log_every=5,
    )
    config = dvs_preset(args.preset)
    log.info(
        "training preset %r on %s: features %d -> EGRU %s -> %d classes",
        args.preset,
        args.data_dir or "synthetic gestures",
        config.feature_size,
        "/".join(map(str, config.hidden_sizes)),
        config.num_classes,
    )
    result = train_dvs(config, train_config, out_dir=out / "train", show_progress=not args.quiet)
    log.info(
        "trained %d steps: test accuracy %.1f %% (best %.1f %%), activity %.3f",
        result.steps,
        100 * result.final.accuracy,
        100 * result.best_accuracy,
        result.final.activity,
    )
    return result.model, result.class_names, result.test_set


def chip_pes_per_layer(layer_sizes: list[int], requested: int) -> list[int]:
    """``requested`` PEs per layer, at most one PE per unit."""
    counts = [min(requested, size) for size in layer_sizes]
    if counts != [requested] * len(layer_sizes):
        log.warning(
            "layers %s are smaller than %d units: mapping them on %s PEs (one unit per PE at most)",
            layer_sizes,
            requested,
            counts,
        )
    return counts


def run_on_chip(
    mapping: Any, artifact: Any, sequences: list[np.ndarray], *, frames: int
) -> dict[str, Any]:
    """Every sample's features through the simulated chip: predictions, time, energy.

    Each sample starts from the zero state (``run_mapping`` default), as a fresh
    classification. Returns per-sample predictions ``(N,)``, logits ``(N, O)``, chip seconds
    ``(N,)`` and joules ``(N,)``, the average power and the activity per layer.
    """
    from snn_egru.training.dvs import artifact_sequence_logits
    from spinnaker2_backend.simulator import run_mapping

    logits, seconds, joules, activity = [], [], [], []
    begin = time.perf_counter()
    for features in sequences:
        run = run_mapping(mapping, features)
        logits.append(artifact_sequence_logits(artifact, run.layer_events[-1]))
        report = run.report(sequence_tokens=frames)
        seconds.append(report.seconds_per_sequence)
        joules.append(report.energy_per_sequence_j)
        activity.append(report.activity)
    log.info(
        "chip: %d samples simulated in %.1f s of host time",
        len(sequences),
        time.perf_counter() - begin,
    )
    all_logits = np.stack(logits)
    seconds_arr, joules_arr = np.asarray(seconds), np.asarray(joules)
    return {
        "predictions": all_logits.argmax(axis=1),
        "logits": all_logits,
        "seconds": seconds_arr,
        "joules": joules_arr,
        "average_power_w": float(joules_arr.sum() / seconds_arr.sum()),
        "activity": np.mean(np.asarray(activity), axis=0).tolist(),
    }


# ------------------------------------------------------------------------------ report
def results_table(results: dict[str, Any]) -> str:
    """The final results as aligned text lines."""
    chip = results["chip"]
    n = results["samples"]
    frames = results["frames"]
    event_seconds = frames * results["frame_ms"] / 1e3
    mapping = results["mapping"]
    rows = [
        (
            "data",
            f"{results['data']}, {n} test samples of {frames} frames ({results['frame_ms']:g} ms)",
        ),
        (
            "model",
            f"preset {results['preset']}: features {results['input_size']} -> EGRU "
            f"{'/'.join(map(str, results['layer_sizes']))} -> {results['classes']} classes",
        ),
        ("accuracy PyTorch", f"{results['accuracy_pytorch']:.1%} ({n} samples)"),
        (
            "accuracy numpy reference",
            f"{results['accuracy_reference']:.1%} (agreement with PyTorch "
            f"{results['agreement_reference']:.1%})",
        ),
        (
            "accuracy simulated chip",
            f"{results['accuracy_chip']:.1%} (agreement with PyTorch "
            f"{results['agreement_chip']:.1%}, max |logit difference| "
            f"{results['max_abs_logit_difference']:.1e})",
        ),
        (
            "chip mapping",
            f"{mapping['pes_used']} PEs ({' + '.join(map(str, mapping['pes_per_layer']))}), "
            f"{mapping['weight_format']} weights, fullest PE {mapping['fullest_utilisation']:.1%}"
            " of its memory",
        ),
        (
            "chip time per sample",
            f"{chip['seconds_per_sample'] * 1e3:.3f} ms for {frames} frames "
            f"({event_seconds:.3f} s of events: {event_seconds / chip['seconds_per_sample']:.0f}x "
            "faster than real time)",
        ),
        ("chip time per frame", f"{chip['seconds_per_sample'] / frames * 1e6:.1f} us"),
        (
            "chip energy per sample",
            f"{chip['joules_per_sample'] * 1e3:.4g} mJ ({chip['average_power_w']:.3f} W average)",
        ),
        support.activity_row(chip["activity"]),
    ]
    lines = support.aligned_table("DVS gestures: PyTorch vs simulated SpiNNaker2", rows)
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the example; returns the exit status (2: bad data folder or does not fit)."""
    args = support.parse_example_args(build_parser(), argv, check=check_args, smoke=SMOKE)
    out = support.prepare_torch_example(args)

    from snn_egru.data.dvs import DEFAULT_FRAME_US
    from snn_egru.errors import UserError
    from snn_egru.export import export_artifact
    from snn_egru.training.dvs import compare_with_artifact, feature_sequences

    try:
        model, class_names, test_set = train_or_load(args, out)
    except UserError as err:  # e.g. no DVS128 Gesture data in --data-dir
        log.error("%s", err)
        return 2
    model = model.cpu().eval()

    artifact = export_artifact(
        model,
        class_names=class_names,
        metadata={"workload": "dvs_gesture", "num_frames": args.num_frames},
    )
    artifact.save(out / "artifact.npz")
    log.info("exported %s (layers %s)", out / "artifact.npz", artifact.layer_sizes)

    max_samples = None if args.chip_samples == 0 else args.chip_samples
    reference = compare_with_artifact(model, artifact, test_set, max_samples=max_samples)
    sequences, labels = feature_sequences(model, test_set, max_samples=max_samples)

    pes = chip_pes_per_layer(artifact.layer_sizes, args.pes_per_layer)
    mapped = support.map_for_example(
        artifact, out, log, weight_format=args.weight_format, pes_per_layer=pes
    )
    if mapped is None:
        return 2
    mapping, report = mapped
    chip = run_on_chip(mapping, artifact, sequences, frames=args.num_frames)

    n = len(labels)
    results = {
        "data": "DVS128 Gesture" if args.data_dir else "synthetic gestures",
        "preset": args.preset if args.checkpoint is None else f"(checkpoint {args.checkpoint})",
        "samples": n,
        "frames": args.num_frames,
        "frame_ms": DEFAULT_FRAME_US / 1e3,
        "input_size": artifact.input_size,
        "layer_sizes": artifact.layer_sizes,
        "classes": len(class_names),
        "accuracy_pytorch": reference.torch_accuracy,
        "accuracy_reference": reference.artifact_accuracy,
        "agreement_reference": reference.agreement,
        "accuracy_chip": float((chip["predictions"] == labels).mean()),
        "agreement_chip": float((chip["predictions"] == reference.torch_predictions).mean()),
        "max_abs_logit_difference": float(np.abs(chip["logits"] - reference.torch_logits).max()),
        "mapping": {
            "pes_used": report.pes_used,
            "pes_per_layer": [layer.pes for layer in report.layers],
            "weight_format": report.weight_format,
            "fullest_utilisation": report.fullest.utilisation,
        },
        "chip": {
            "seconds_per_sample": float(chip["seconds"].mean()),
            "joules_per_sample": float(chip["joules"].mean()),
            "average_power_w": chip["average_power_w"],
            "activity": chip["activity"],
        },
    }
    return support.finish_example(out, results, results_table, log)


if __name__ == "__main__":
    raise SystemExit(main())
