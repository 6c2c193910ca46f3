"""Short LM and DVS trainings whose numbers must not change when the training code changes.

``python tests/snn_egru/golden_training.py`` prints the numbers of the code in ``PYTHONPATH``;
``test_training_golden.py`` holds the numbers recorded from the code before the shared
training loop (``snn_egru.training.loop``) replaced the two hand-written loops, and compares.
One thread: the same CPU kernels, bit for bit, on any machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch


def _state_checksum(model: torch.nn.Module) -> float:
    return float(sum(float(v.double().sum()) for v in model.state_dict().values()))


def _checkpoint_fields(path: Path) -> dict[str, Any]:
    """The field names of a checkpoint (what old checkpoints hold and new ones must hold)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return {
        "top": sorted(payload),
        "extra": sorted(payload["extra"]),
        "metrics": sorted(payload["metrics"]),
        "config": sorted(payload["config"]["fields"]),
        "train_config": sorted(payload["train_config"]["fields"]),
        "step": payload["step"],
        "epoch": payload["epoch"],
        "rng": sorted(payload["rng_state"]),
    }


def _rows(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _without_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def lm_numbers(folder: Path) -> dict[str, Any]:
    """A tiny LM run with dropout and pruning (12 steps, validation every 5), then a resume."""
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.models.lm import lm_preset
    from snn_egru.pruning import PruningConfig
    from snn_egru.training.lm import lm_training_preset, train_language_model

    line = "a b c d e f\n"
    corpus = corpus_from_texts(line * 300, line * 30, line * 30, name="cyclic")
    model_config = lm_preset(
        "tiny", vocab_size=7, input_dropout=0.2, dropconnect=0.2, threshold_mean=0.05
    )
    pruning = PruningConfig(target_sparsity=0.5, start_step=4, end_step=10, frequency=2)
    tc = lm_training_preset(
        "tiny", max_steps=12, eval_every=5, log_every=1, bptt=10, warmup_steps=2, pruning=pruning
    )
    result = train_language_model(
        model_config, tc, data=corpus, out_dir=folder / "lm", show_progress=False
    )
    half = train_language_model(
        model_config, replace(tc, max_steps=7), data=corpus, out_dir=folder / "lm_resumed",
        show_progress=False,
    )  # fmt: skip
    resumed = train_language_model(
        model_config, tc, data=corpus, out_dir=folder / "lm_resumed", resume=True,
        show_progress=False,
    )  # fmt: skip
    summary = json.loads((folder / "lm" / "summary.json").read_text())
    return {
        "rows": _without_times(_rows(folder / "lm")),
        "summary": {k: v for k, v in summary.items() if not k.endswith("time_s")},
        "checksum": _state_checksum(result.model),
        "half_checksum": _state_checksum(half.model),
        "resumed_checksum": _state_checksum(resumed.model),
        "resumed_rows": _without_times(_rows(folder / "lm_resumed")),
        "last": _checkpoint_fields(folder / "lm" / "last.pt"),
        "best": _checkpoint_fields(folder / "lm" / "best.pt"),
    }


def dvs_numbers(folder: Path) -> dict[str, Any]:
    """A tiny DVS run on synthetic gestures (3 epochs of 5 steps, an evaluation per epoch)."""
    from snn_egru.data.dvs import DVSFrames, FramePreprocessing
    from snn_egru.data.synthetic_dvs import SyntheticDVSGesture, SyntheticGestureConfig
    from snn_egru.models.dvs import dvs_preset
    from snn_egru.training.dvs import DVSTrainConfig, train_dvs

    events = SyntheticDVSGesture(
        num_samples=22, seed=3, config=SyntheticGestureConfig(duration_s=6 * 0.025)
    )
    pre = FramePreprocessing(num_frames=6)
    train = DVSFrames(events, preprocessing=pre, slice_mode="random", seed=1)
    test = DVSFrames(events, preprocessing=pre, slice_mode="start")
    config = dvs_preset("tiny", threshold_mean=0.05, dropout=0.1)
    tc = DVSTrainConfig(epochs=3, batch_size=4, lr=6e-3, warmup_steps=3, seed=5, log_every=1)
    # progress as log lines (stderr is no terminal here): main's DataLoader then drew its base
    # seed once per epoch; with a tqdm bar or show_progress=False it drew twice (tqdm.auto's
    # constructor calls iter() on the loader), the shared loop draws once in every case
    result = train_dvs(config, tc, dataset=(train, test), out_dir=folder / "dvs")
    summary = json.loads((folder / "dvs" / "summary.json").read_text())
    return {
        "rows": _without_times(_rows(folder / "dvs")),
        "summary": {k: v for k, v in summary.items() if k != "elapsed_s"},
        "checksum": _state_checksum(result.model),
        "last": _checkpoint_fields(folder / "dvs" / "last.pt"),
    }


def numbers() -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return {"lm": lm_numbers(Path(tmp)), "dvs": dvs_numbers(Path(tmp))}
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    json.dump(numbers(), sys.stdout, indent=1)
