"""The command line of the DVS-gesture trainer (argument parsing only, torch-free).

:mod:`snn_egru.training.dvs` builds it with its defaults and runs the parsed arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from snn_egru.training.lm_args import CELL_NAMES, EVENT_AMPLITUDE_NAMES, add_time_limit_option


def build_parser(
    prog: str, *, defaults: Any, presets: Sequence[str], add_more: Any = None
) -> argparse.ArgumentParser:
    """The parser of ``python -m snn_egru.training.dvs`` / ``snn-egru train dvs``.

    ``defaults``: a :class:`~snn_egru.training.dvs.DVSTrainConfig` (the flags' defaults);
    ``presets``: the names of the network presets; ``add_more(parser)`` adds further
    options (the int8 QAT ones).
    """
    from snn_egru.cliargs import ArgumentParser

    parser = ArgumentParser(
        prog=prog,
        description=(
            "Train the EGRU DVS-gesture network (CNN features + EGRU + linear readout) on "
            "DVS128 Gesture (--data) or on synthetic gestures (no --data). A folder holding a "
            "run is continued with --resume or replaced with --overwrite, never silently."
        ),
        epilog="examples:\n"
        f"  {prog} --preset tiny --epochs 1 --out runs/dvs_tiny       synthetic, seconds\n"
        f"  {prog} --data ~/DVSGesture --device cuda --out runs/dvs   DVS128 Gesture",
    )
    _add_data_options(parser.add_argument_group("data"), defaults)
    _add_model_options(parser.add_argument_group("model"), presets)
    _add_training_options(parser, parser.add_argument_group("training"), defaults, add_more)
    _add_deployment_options(parser.add_argument_group("deployment"))
    return parser


def _add_data_options(data: Any, defaults: Any) -> None:
    from snn_egru.cliargs import add_seconds_option, float_in, int_at_least

    positive, natural = int_at_least(1), int_at_least(0)
    data.add_argument(
        "--data",
        metavar="DIR",
        help="DVS128 Gesture folder (holding DVSGesture/ibmGestureTrain/...); "
        "omitted: synthetic gestures",
    )
    data.add_argument("--cache-dir", metavar="DIR", help="frame cache folder (default: memory)")
    data.add_argument(
        "--frame-ms",
        type=float_in(0, low_open=True),
        default=defaults.frame_us / 1000,
        help="frame length in ms",
    )
    data.add_argument(
        "--pool", type=positive, default=defaults.pool, help="max-pool factor (128/pool)"
    )
    data.add_argument(
        "--num-frames", type=positive, default=defaults.num_frames, help="frames per slice"
    )
    data.add_argument(
        "--synthetic-train",
        type=positive,
        default=defaults.synthetic_train_samples,
        help="synthetic training samples",
    )
    data.add_argument(
        "--synthetic-test",
        type=positive,
        default=defaults.synthetic_test_samples,
        help="synthetic test samples",
    )
    add_seconds_option(
        data, "--synthetic-duration", "length of a synthetic sample (default: the slice length)"
    )
    data.add_argument(
        "--workers", type=natural, default=defaults.num_workers, help="data-loader workers"
    )


def _add_model_options(model: Any, presets: Sequence[str]) -> None:
    from snn_egru.cliargs import float_in, int_at_least

    positive, fraction = int_at_least(1), float_in(0, 1, high_open=True)
    model.add_argument("--preset", choices=list(presets), default="small", help="network size")
    model.add_argument("--readout", choices=("y", "trace"), default=None, help="readout source")
    model.add_argument("--hidden", type=positive, nargs="+", default=None, help="EGRU sizes")
    model.add_argument("--features", type=positive, default=None, help="CNN feature size")
    model.add_argument("--dropout", type=fraction, default=None, help="dropout (preset's)")
    model.add_argument("--zoneout", type=fraction, default=None, help="zoneout (preset's)")
    model.add_argument("--dropconnect", type=fraction, default=None, help="DropConnect")
    model.add_argument(
        "--cell",
        choices=CELL_NAMES,
        default=None,
        help="recurrent layers: egru (default) or a dense baseline gru / lstm (not exportable)",
    )
    model.add_argument(
        "--event-amplitude",
        choices=EVENT_AMPLITUDE_NAMES,
        default=None,
        help="gradient of a graded event: state (EvNN, product rule) or clamped",
    )


def _add_training_options(parser: Any, train: Any, defaults: Any, add_more: Any) -> None:
    from snn_egru.cliargs import add_hidden_alias, float_in, int_at_least

    positive, natural = int_at_least(1), int_at_least(0)
    fraction = float_in(0, 1, high_open=True)
    train.add_argument("--epochs", type=positive, default=defaults.epochs, help="epochs")
    train.add_argument("--batch-size", type=positive, default=defaults.batch_size, help="batch")
    train.add_argument(
        "--lr", type=float_in(0, low_open=True), default=defaults.lr, help="learning rate"
    )
    train.add_argument(
        "--weight-decay", type=float_in(0), default=defaults.weight_decay, help="weight decay"
    )
    train.add_argument(
        "--warmup-steps", type=natural, default=defaults.warmup_steps, help="warm-up steps"
    )
    train.add_argument(
        "--clip", type=float_in(0), default=defaults.clip_norm, help="gradient-norm clip"
    )
    train.add_argument(
        "--label-smoothing", type=fraction, default=defaults.label_smoothing, help="smoothing"
    )
    train.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    train.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="fp32 (default) or bf16 autocast (EGRU loop, state and loss stay float32; for "
        "CPUs/GPUs with bf16 matrix units: slower on AVX2-only CPUs)",
    )
    train.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    train.add_argument("--max-steps", type=positive, default=None, help="stop after N steps")
    add_time_limit_option(train)
    train.add_argument(
        "--log-every", type=positive, default=defaults.log_every, help="log every N steps"
    )
    train.add_argument(
        "--threads", type=positive, default=None, help="torch CPU threads (1 helps on a busy CPU)"
    )
    train.add_argument("--out", default="runs/dvs", metavar="DIR", help="output folder")
    add_hidden_alias(train, "--out-dir", dest="out")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    again.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bars or progress log lines"
    )
    train.add_argument("--init-from", metavar="CKPT", help="start from these weights (fine-tune)")
    if add_more is not None:
        add_more(parser)
    train.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    train.add_argument("-v", "--verbose", action="store_true", help="debug logs, tracebacks")


def _add_deployment_options(deploy: Any) -> None:
    from snn_egru.cliargs import int_at_least

    natural = int_at_least(0)
    deploy.add_argument(
        "--export", metavar="PATH", help="write the deployment artifact (.npz) after training"
    )
    deploy.add_argument(
        "--compare",
        type=natural,
        default=0,
        metavar="N",
        help="compare torch and artifact.run_reference predictions on N test samples",
    )
