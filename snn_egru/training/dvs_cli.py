"""The command line of the DVS gesture trainer (``python -m snn_egru.training.dvs``,
``snn-egru train dvs``): parsed arguments (:mod:`snn_egru.training.dvs_args`) -> configs ->
:func:`~snn_egru.training.dvs.train_dvs`, then optionally the artifact export and the torch /
artifact comparison.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from snn_egru.errors import UserError
from snn_egru.models.dvs import DVS_PRESETS, DVSGestureConfig, dvs_preset
from snn_egru.quantization_cli import add_quantization_arguments, quantization_from_args
from snn_egru.training.common import CheckpointError, cleanup_distributed, is_main_process
from snn_egru.training.dvs import DVSTrainConfig, DVSTrainResult, train_dvs
from snn_egru.training.dvs_eval import compare_with_artifact


def build_arg_parser(prog: str = "python -m snn_egru.training.dvs") -> argparse.ArgumentParser:
    """The command-line interface of :func:`main` (:mod:`snn_egru.training.dvs_args`)."""
    from snn_egru.training.dvs_args import build_parser

    return build_parser(
        prog,
        defaults=DVSTrainConfig(),
        presets=sorted(DVS_PRESETS),
        add_more=add_quantization_arguments,
    )


def configs_from_args(args: argparse.Namespace) -> tuple[DVSGestureConfig | None, DVSTrainConfig]:
    overrides: dict[str, Any] = {}
    if args.readout is not None:
        overrides["readout_source"] = args.readout
    if args.hidden is not None:
        overrides["hidden_sizes"] = tuple(args.hidden)
    if args.features is not None:
        overrides["feature_size"] = args.features
    for name in ("dropout", "zoneout", "dropconnect", "cell", "event_amplitude"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    config = None if args.resume and not overrides else dvs_preset(args.preset, **overrides)
    frame_us = int(round(args.frame_ms * 1000))
    train_config = DVSTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        clip_norm=args.clip,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        data_dir=args.data,
        cache_dir=args.cache_dir,
        frame_us=frame_us,
        pool=args.pool,
        num_frames=args.num_frames,
        synthetic_train_samples=args.synthetic_train,
        synthetic_test_samples=args.synthetic_test,
        synthetic_duration_s=args.synthetic_duration,
        num_workers=args.workers,
        device=args.device,
        max_steps=args.max_steps,
        time_limit_s=args.time_limit,
        log_every=args.log_every,
        num_threads=args.threads,
        init_from=args.init_from,
        quantize=quantization_from_args(args),
    )
    return config, train_config


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for user errors, one line;
    ``--verbose`` shows the traceback)."""
    from snn_egru.training.lm_args import run_trainer

    cli = build_arg_parser(prog or "python -m snn_egru.training.dvs")
    return run_trainer(cli, argv, _run, log_format="%(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace) -> int:
    from snn_egru.training.common import check_device, guard_run_folder

    check_device(args.device)
    if args.data is not None and not Path(args.data).is_dir():
        from snn_egru.data.dvs import _layout_help

        raise UserError(
            f"--data: DVS128 Gesture folder {args.data} does not exist. "
            f"{_layout_help(Path(args.data))}"
        )
    if args.export is not None and (Path(args.export).is_dir() or not args.export.endswith(".npz")):
        raise UserError(f"--export takes a file name ending in .npz, got {args.export!r}")
    guard_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)
    try:
        config, train_config = configs_from_args(args)
        result = train_dvs(
            config,
            train_config,
            out_dir=args.out,
            resume=args.resume,
            show_progress=not (args.no_progress or args.quiet),
        )
        if is_main_process():
            print(
                f"test accuracy {result.final.accuracy:.4f} (best {result.best_accuracy:.4f}), "
                f"activity {result.final.activity:.3f}, {result.steps} steps; "
                f"checkpoints in {args.out}"
            )
            if args.export or args.compare:
                _export_and_compare(result, args)
    except ValueError as err:  # config values that do not go together
        if isinstance(err, CheckpointError):
            raise
        raise UserError(str(err)) from None
    finally:
        cleanup_distributed()
    return 0


def _export_and_compare(result: DVSTrainResult, args: argparse.Namespace) -> None:
    from snn_egru.export import export_artifact

    artifact = export_artifact(
        result.model,
        class_names=result.class_names,
        metadata={
            "workload": "dvs_gesture",
            "test_accuracy": result.final.accuracy,
            "preprocessing": asdict(result.train_config.preprocessing),
        },
    )
    if args.export:
        path = artifact.save(args.export)
        print(f"artifact written to {path}")
    if args.compare:
        test_set = result.test_set
        cmp = compare_with_artifact(result.model, artifact, test_set, max_samples=args.compare)
        print(
            f"torch accuracy {cmp.torch_accuracy:.4f}, artifact (numpy reference) accuracy "
            f"{cmp.artifact_accuracy:.4f}, agreement {cmp.agreement:.4f}, max |logit diff| "
            f"{cmp.max_abs_logit_difference:.2e} on {len(cmp.labels)} samples"
        )
