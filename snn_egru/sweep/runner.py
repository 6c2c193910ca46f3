"""Train and measure the points of a sweep, one result file per point.

Results live in ``OUT/points/<key>.json`` (the key: :attr:`SweepPoint.key`). A point whose
file exists is not trained again (the cache; ``overwrite=True`` retrains it); a point being
trained has a ``<key>.running`` marker, so a sweep that was stopped says which point it
restarts. Each point is written when it is done, so an interrupted sweep resumes at the
point it was on. A point whose model does not fit the simulated machine is recorded as such
(status ``does_not_fit``, before any training) and the sweep goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snn_egru.errors import UserError
from snn_egru.sweep.grid import SweepPoint

log = logging.getLogger(__name__)

__all__ = ["SweepData", "point_path", "run_point", "run_points"]

#: ``--quick`` points (CI): LM tiny preset on the generated corpus, DVS tiny on few samples.
QUICK_DVS_SAMPLES = (8, 4)
#: DVS synthetic split sizes (train, test) of a full point.
DVS_SAMPLES = (220, 110)


def point_path(out: Path, point: SweepPoint) -> Path:
    return Path(out) / "points" / f"{point.key}.json"


def _generated_corpus():
    from snn_egru.data.text import corpus_from_texts

    # the tests' predictable language ('a b c d e f <eos>' over and over)
    line = "a b c d e f\n"
    return corpus_from_texts(line * 300, line * 30, line * 30, name="cyclic")


class SweepData:
    """Datasets loaded once per sweep (every point of a task shares them)."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        #: DVS frames are cached here on disk (shared by the points and invocations)
        self.cache_dir = cache_dir
        self._corpora: dict[str, Any] = {}
        self._dvs: dict[tuple, Any] = {}

    def corpus(self, name: str) -> Any:
        if name not in self._corpora:
            from snn_egru.data.text import load_corpus

            self._corpora[name] = _generated_corpus() if name == "cyclic" else load_corpus(name)
        return self._corpora[name]

    def dvs(self, name: str, samples: tuple[int, int], frames: int) -> Any:
        key = (name, samples, frames)
        if key not in self._dvs:
            from snn_egru.data.dvs import FramePreprocessing, build_dvs_datasets
            from snn_egru.data.synthetic_dvs import SyntheticGestureConfig

            pre = FramePreprocessing(num_frames=frames)
            duration = pre.slice_duration_us / 1e6
            config = (
                SyntheticGestureConfig.harder(duration_s=duration)
                if name == "synthetic-hard"
                else SyntheticGestureConfig(duration_s=duration)
            )
            self._dvs[key] = build_dvs_datasets(
                None,
                preprocessing=pre,
                synthetic_train_samples=samples[0],
                synthetic_test_samples=samples[1],
                synthetic_config=config,
                seed=0,
                cache_dir=self.cache_dir,
            )
        return self._dvs[key]


# --------------------------------------------------------------------------- language model
def lm_configs(point: SweepPoint, vocab_size: int) -> tuple[Any, Any]:
    """Model and training configs of an LM point (the project's preset plus the point)."""
    from snn_egru.pipeline_training import pruning_schedule
    from snn_egru.training.lm import preset_configs

    mc, tc = preset_configs(point.preset)
    over: dict[str, Any] = {
        "cell": point.cell,
        "vocab_size": vocab_size,
        "embedding_size": point.width,
        "hidden_sizes": (point.width,) * point.layers,
    }
    if point.is_event_based:
        if point.threshold is not None:
            over["threshold_value"] = point.threshold
        over["event_l1"] = point.event_l1
    if point.bottleneck:
        from snn_egru.bottleneck import bottleneck_width, insert_bottlenecks

        k = bottleneck_width(point.width, point.bottleneck)
        stack = insert_bottlenecks(over["hidden_sizes"], dict.fromkeys(range(point.layers - 1), k))
        over["hidden_sizes"] = stack.hidden_sizes
        over["bottleneck_layers"] = stack.bottleneck_layers
        over["bottleneck_kind"] = point.bottleneck_kind
        over["bottleneck_l1"] = point.bottleneck_l1
    mc = replace(mc, **over)
    train_over: dict[str, Any] = {
        "max_steps": point.steps,
        "seed": point.seed,
        "final_test": False,
        "save_checkpoints": False,
        "device": "cpu",
    }
    if point.prune > 0:
        train_over["pruning"] = pruning_schedule(point.prune, point.steps)
    model_fields = set(type(mc).__dataclass_fields__)
    recipe_model = {k: v for k, v in point.recipe if k in model_fields}
    recipe_train = {k: v for k, v in point.recipe if k not in model_fields}
    mc = replace(mc, **recipe_model)
    tc = replace(tc, **train_over, **recipe_train)
    return mc, tc


def _untrained_lm(point: SweepPoint, vocab_size: int) -> Any:
    from snn_egru.models.lm import EGRULanguageModel

    mc, _ = lm_configs(point, vocab_size)
    torch.manual_seed(point.seed)
    return EGRULanguageModel(mc).eval()


def _prune_like(model: Any, sparsity: float) -> None:
    """Magnitude-prune the recurrent matrices (the fit check of a pruned point)."""
    if sparsity <= 0:
        return
    from snn_egru.pruning import prune_model

    prune_model(model, sparsity)


def model_path(out: Path, point: SweepPoint) -> Path:
    """Where a point's trained weights are kept (for :func:`rechip`; not a result)."""
    return Path(out) / "models" / f"{point.key}.pt"


def _save_model(model: Any, path: Path | None) -> None:
    if path is None:
        return
    from snn_egru.training.common import config_to_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config_to_dict(model.config), "state": model.state_dict()}, path)


def load_model(point: SweepPoint, path: Path) -> Any:
    """The trained model of a point, from :func:`model_path`."""
    from snn_egru.training.common import config_from_dict

    saved = torch.load(path, map_location="cpu", weights_only=False)
    if point.task == "lm":
        from snn_egru.models.lm import EGRULanguageModel, LanguageModelConfig

        model = EGRULanguageModel(config_from_dict(saved["config"], LanguageModelConfig))
    else:
        from snn_egru.models.dvs import DVSGestureConfig, DVSGestureNet

        model = DVSGestureNet(config_from_dict(saved["config"], DVSGestureConfig))
    model.load_state_dict(saved["state"])
    return model.eval()


def chip_inputs(point: SweepPoint, data: SweepData, model: Any) -> list[np.ndarray]:
    """The streams run on the chip: LM the first test tokens, DVS the test samples' features."""
    if point.task == "lm":
        corpus = data.corpus(point.data)
        count = point.chip_tokens or point.test_tokens or int(corpus.test.numel()) - 1
        return [corpus.test[:count].numpy().astype(np.int64)]
    from snn_egru.training.dvs import feature_sequences

    _, tc = dvs_configs(point)
    samples = (tc.synthetic_train_samples, tc.synthetic_test_samples)
    _, test_set = data.dvs(point.data, samples, tc.num_frames)
    sequences, _ = feature_sequences(
        model, test_set, max_samples=point.chip_tokens or len(test_set)
    )
    return sequences


def _warm_start(point: SweepPoint, save_to: Path | None) -> Callable[[Any], None] | None:
    """What writes a warm-started point's starting weights: its parent's trained weights
    (saved beside this point's by the sweep), bottlenecks inserted when it has them."""
    parent = point.parent()
    if parent is None:
        return None
    weights = None if save_to is None else model_path(save_to.parent.parent, parent)
    if weights is None or not weights.is_file():
        raise UserError(
            f"{point.label()} starts from the trained weights of {parent.label()} "
            f"({parent.key}), and {weights or 'no sweep folder'} does not hold them: run that "
            "point first in the same --out (it is part of this grid; --overwrite retrains it)"
        )
    plain = load_model(parent, weights)

    def init(model: Any) -> None:
        if point.bottleneck:
            from snn_egru.bottleneck_insert import init_from_plain

            init_from_plain(plain, model)
        else:  # a plain continuation
            model.load_state_dict(plain.state_dict())

    return init


def train_lm(point: SweepPoint, data: SweepData, save_to: Path | None = None) -> dict[str, Any]:
    """Train an LM point with the project's training code and measure it."""
    from snn_egru.sweep.measure import DenseOpsProbe, chip_cost, event_probe, macs_from_account
    from snn_egru.sweep.measure import weight_sparsity as stack_weight_sparsity
    from snn_egru.training.lm import evaluate_perplexity, train_language_model

    corpus = data.corpus(point.data)
    mc, tc = lm_configs(point, len(corpus.vocabulary))
    init_model = _warm_start(point, save_to)
    started = time.perf_counter()
    result = train_language_model(mc, tc, data=corpus, show_progress=False, init_model=init_model)
    train_s = time.perf_counter() - started
    model = result.model.eval()
    _save_model(model, save_to)
    started = time.perf_counter()
    if point.is_event_based:
        probe: Any = event_probe(model)
    else:
        probe = DenseOpsProbe(model, model.decoder_weight)
    with probe:
        test = evaluate_perplexity(
            model,
            corpus.test,
            batch_size=tc.test_batch_size,
            bptt=tc.bptt,
            max_tokens=point.test_tokens,
            show_progress=False,
        )
    if point.is_event_based:
        account = probe.result()
        macs = macs_from_account(account)
        activity_sparsity = account.activity_sparsity
        layer_sparsity = [layer.activity_sparsity for layer in account.layers]
        dead = probe.meter.dead_units()
    else:
        macs = probe.macs()
        activity_sparsity = probe.activity_sparsity
        layer_sparsity = dead = None
    eval_s = time.perf_counter() - started
    inputs = chip_inputs(point, data, model)
    chip = chip_cost(
        model,
        inputs,
        weight_format=point.weight_format,
        chips=point.chips,
        chip_boundaries=point.chip_boundaries(),
    )
    return {
        "quality": {"test_perplexity": test.perplexity, "test_loss": test.loss},
        "valid_perplexity": result.valid.perplexity if result.valid else None,
        "test_tokens": test.tokens,
        "test_streams": tc.test_batch_size,
        "macs_per_token": macs,
        "activity_sparsity": activity_sparsity,
        "layer_activity_sparsity": layer_sparsity,
        "dead_units": dead,
        "weight_sparsity": stack_weight_sparsity(model.rnn),
        "parameters_rnn": sum(p.numel() for p in model.rnn.parameters()),
        "chip": chip,
        "train_s": train_s,
        "eval_s": eval_s,
        "steps_done": result.steps,
        "model_config": _plain(mc),
        "train_config": _plain(tc),
    }


# --------------------------------------------------------------------------- DVS
def dvs_configs(point: SweepPoint) -> tuple[Any, Any]:
    from snn_egru.models.dvs import dvs_preset
    from snn_egru.training.dvs import DVSTrainConfig

    preset = "tiny" if point.preset == "tiny" else "small"
    over: dict[str, Any] = {"cell": point.cell, "hidden_sizes": (point.width,) * point.layers}
    config = dvs_preset(preset, **over)
    if point.is_event_based and point.threshold is not None:
        config = replace(config, threshold_mean=max(point.threshold, 1e-3))
    model_fields = set(type(config).__dataclass_fields__)
    config = replace(config, **{k: v for k, v in point.recipe if k in model_fields})
    samples = QUICK_DVS_SAMPLES if point.preset == "tiny" else DVS_SAMPLES
    tc = DVSTrainConfig(
        epochs=10_000,
        max_steps=point.steps,
        seed=point.seed,
        device="cpu",
        synthetic_train_samples=samples[0],
        synthetic_test_samples=samples[1],
        num_frames=16 if point.preset == "tiny" else DVSTrainConfig().num_frames,
        batch_size=4 if point.preset == "tiny" else DVSTrainConfig().batch_size,
        **{k: v for k, v in point.recipe if k not in model_fields},
    )
    return config, tc


def _untrained_dvs(point: SweepPoint) -> Any:
    from snn_egru.models.dvs import DVSGestureNet

    config, _ = dvs_configs(point)
    torch.manual_seed(point.seed)
    return DVSGestureNet(config).eval()


def train_dvs_point(
    point: SweepPoint, data: SweepData, save_to: Path | None = None
) -> dict[str, Any]:
    from snn_egru.sweep.measure import DenseOpsProbe, chip_cost, event_probe, macs_from_account
    from snn_egru.sweep.measure import weight_sparsity as stack_weight_sparsity
    from snn_egru.training.dvs import evaluate_dvs, train_dvs

    config, tc = dvs_configs(point)
    samples = (tc.synthetic_train_samples, tc.synthetic_test_samples)
    train_set, test_set = data.dvs(point.data, samples, tc.num_frames)
    started = time.perf_counter()
    result = train_dvs(config, tc, dataset=(train_set, test_set), show_progress=False)
    train_s = time.perf_counter() - started
    model = result.model.eval()
    _save_model(model, save_to)
    if point.is_event_based:
        probe: Any = event_probe(model)
    else:
        probe = DenseOpsProbe(model, model.readout.weight)
    with probe:
        final = evaluate_dvs(model, test_set, batch_size=tc.eval_batch_size)
    if point.is_event_based:
        account = probe.result()
        macs = macs_from_account(account)
        activity_sparsity = account.activity_sparsity
        dead = probe.meter.dead_units()
    else:
        macs = probe.macs()
        activity_sparsity = probe.activity_sparsity
        dead = None
    sequences = chip_inputs(point, data, model)
    chip = chip_cost(model, sequences, weight_format=point.weight_format, chips=point.chips)
    return {
        "quality": {"test_accuracy": final.accuracy, "test_loss": final.loss},
        "test_samples": final.num_samples,
        "frames_per_sample": tc.num_frames,
        "macs_per_token": macs,
        "macs_note": "per frame step; the CNN feature head (computed ahead, off chip, the same "
        "for every cell) is not counted",
        "activity_sparsity": activity_sparsity,
        "dead_units": dead,
        "weight_sparsity": stack_weight_sparsity(model.rnn),
        "parameters_rnn": sum(p.numel() for p in model.rnn.parameters()),
        "chip": chip,
        "train_s": train_s,
        "steps_done": result.steps,
        "model_config": _plain(config),
        "train_config": _plain(tc),
    }


def _plain(config: Any) -> dict[str, Any]:
    from snn_egru.training.common import config_to_dict

    return config_to_dict(config)["fields"]


# --------------------------------------------------------------------------- one point
def check_fit(point: SweepPoint, data: SweepData) -> tuple[bool, str, int]:
    """Whether the point's model (untrained, pruned like the point) fits the machine."""
    from snn_egru.sweep.measure import fits_on_chip

    if point.task == "lm":
        model = _untrained_lm(point, len(data.corpus(point.data).vocabulary))
    else:
        model = _untrained_dvs(point)
    if point.is_event_based:
        _prune_like(model, point.prune)
    return fits_on_chip(model, point.weight_format, point.chips, point.chip_boundaries())


def run_point(
    point: SweepPoint, data: SweepData, *, threads: int | None = None, out: Path | None = None
) -> dict[str, Any]:
    """Train and measure one point; the result record (status ``done`` / ``does_not_fit``)."""
    record: dict[str, Any] = {
        "key": point.key,
        "label": point.label(),
        "settings": point.settings(),
        "threads": threads or torch.get_num_threads(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    fits, message, pes = check_fit(point, data)
    if not fits:
        record.update(status="does_not_fit", error=message)
        return record
    started = time.perf_counter()
    save_to = model_path(out, point) if out is not None else None
    train = train_lm if point.task == "lm" else train_dvs_point
    body = train(point, data, save_to)
    record.update(status="done", **body)
    record["wall_s"] = time.perf_counter() - started
    record["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return _finite(record)


def _finite(value: Any) -> Any:
    """JSON has no inf / nan: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _headline(record: dict[str, Any]) -> str:
    if record["status"] != "done":
        return f"{record['status']}: {record.get('error', '')}"
    q = record["quality"]
    quality = (
        f"test ppl {q['test_perplexity']:.2f}"
        if "test_perplexity" in q
        else f"test acc {100 * q['test_accuracy']:.1f} %"
    )
    macs = record["macs_per_token"]["effective_with_decoder"]
    chip = record["chip"]
    return (
        f"{quality}, {macs / 1e6:.3f} M MACs/token (decoder counted), act. sparsity "
        f"{100 * record['activity_sparsity']:.1f} %, chip {chip['pes_used']} PEs "
        f"{1e3 * chip['energy_j_per_token']:.4f} mJ/token, {record['wall_s']:.0f} s"
    )


def run_points(
    points: list[SweepPoint],
    out: Path,
    *,
    overwrite: bool = False,
    threads: int | None = None,
    echo: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> dict[str, int]:
    """Run ``points`` (cached ones are skipped unless ``overwrite``); one progress line each.

    Returns counts ``{"done", "cached", "does_not_fit", "failed"}``. A point that raises
    anything but a user error is reported, not cached, and the sweep goes on.
    ``stop_after``: stop (as if interrupted) after training this many points (tests).
    """
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    data = SweepData(Path(out) / "dvs-frames")
    counts = {"done": 0, "cached": 0, "does_not_fit": 0, "failed": 0}
    trained = 0
    total = len(points)
    for i, point in enumerate(points, 1):
        path = point_path(out, point)
        marker = path.with_suffix(".running")
        prefix = f"[{i}/{total}] {point.label()} ({point.key})"
        if path.exists() and not overwrite:
            counts["cached"] += 1
            echo(f"{prefix}: cached ({path})")
            continue
        if stop_after is not None and trained >= stop_after:
            raise KeyboardInterrupt
        if marker.exists():
            echo(f"{prefix}: was interrupted before; training it again")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(point.settings()) + "\n")
        echo(f"{prefix}: training")
        try:
            record = run_point(point, data, threads=threads, out=out)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - reported per point, the sweep goes on
            counts["failed"] += 1
            log.debug("point %s failed", point.key, exc_info=True)
            echo(f"{prefix}: failed: {type(err).__name__}: {err}")
            (path.with_suffix(".error.txt")).write_text(traceback.format_exc())
            marker.unlink(missing_ok=True)
            trained += 1
            continue
        _write_json(path, record)
        marker.unlink(missing_ok=True)
        counts[record["status"]] += 1
        trained += 1
        echo(f"{prefix}: {_headline(record)}")
    return counts


def rechip(
    points: list[SweepPoint],
    out: Path,
    *,
    tokens: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Run the simulated chip again for every done point with saved weights (after a change
    of the chip model); only the ``chip`` part of each result is replaced.

    ``tokens``: run the chip over the first ``tokens`` test tokens (DVS: samples) instead of
    the point's ``chip_tokens``; 0: every test token it was evaluated on (the whole test
    split unless the point sets ``test_tokens``; DVS: every test sample). The point keeps its
    key (its settings still name the ``chip_tokens`` it was trained with); ``chip["steps"]``
    and ``chip_rerun_tokens`` say what the chip ran."""
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    from snn_egru.sweep.measure import chip_cost

    data = SweepData(Path(out) / "dvs-frames")
    counts = {"rechipped": 0, "skipped": 0}
    for i, point in enumerate(points, 1):
        path, weights = point_path(out, point), model_path(out, point)
        prefix = f"[{i}/{len(points)}] {point.label()} ({point.key})"
        if not path.exists() or not weights.exists():
            counts["skipped"] += 1
            echo(f"{prefix}: no result or no saved weights; skipped")
            continue
        record = json.loads(path.read_text())
        if record["status"] != "done":
            counts["skipped"] += 1
            echo(f"{prefix}: {record['status']}; skipped")
            continue
        model = load_model(point, weights)
        run_as = point if tokens is None else replace(point, chip_tokens=tokens or None)
        chip = chip_cost(
            model,
            chip_inputs(run_as, data, model),
            weight_format=point.weight_format,
            chips=point.chips,
            chip_boundaries=point.chip_boundaries(),
        )
        record["chip"] = _finite(chip)
        record["chip_rerun"] = True
        if tokens is not None:
            record["chip_rerun_tokens"] = tokens  # 0: every test token
        _write_json(path, record)
        counts["rechipped"] += 1
        echo(f"{prefix}: chip again: {_headline(record)}")
    return counts
