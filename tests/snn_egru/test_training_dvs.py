"""DVS training: loss goes down, checkpoints resume exactly, CLI, torch vs artifact comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snn_egru.artifact import DeploymentArtifact
from snn_egru.data.dvs import DVSFrames, FramePreprocessing
from snn_egru.data.synthetic_dvs import SyntheticDVSGesture, SyntheticGestureConfig
from snn_egru.errors import UserError
from snn_egru.export import export_artifact
from snn_egru.interop import sequence_to_reference
from snn_egru.models.dvs import DVSGestureNet, dvs_preset
from snn_egru.training.dvs import (
    DVSTrainConfig,
    compare_with_artifact,
    evaluate_dvs,
    feature_sequences,
    load_dvs_model,
    main,
    predict_torch,
    train_dvs,
)
from tests.snn_egru.conftest import tiny_dvs_cli_argv

NUM_FRAMES = 6
PRE = FramePreprocessing(num_frames=NUM_FRAMES)
GEN = SyntheticGestureConfig(duration_s=NUM_FRAMES * 0.025)


@pytest.fixture(scope="module")
def data():
    """22 short synthetic recordings (2 per class), binned once and cached in memory."""
    events = SyntheticDVSGesture(num_samples=22, seed=3, config=GEN)
    train = DVSFrames(events, preprocessing=PRE, slice_mode="random", seed=1)
    test = DVSFrames(events, preprocessing=PRE, slice_mode="start")
    train.warm_cache()
    test._memory = train._memory  # same recordings: share the binned frames
    return train, test


def _config(**overrides):
    return dvs_preset("tiny", threshold_mean=0.05, **overrides)


def _train_config(**overrides):
    values = dict(
        epochs=4, batch_size=11, lr=1e-2, warmup_steps=0, weight_decay=0.0, seed=5, log_every=1
    )
    values.update(overrides)
    return DVSTrainConfig(**values)


def test_loss_goes_down(data):
    train, test = data
    tc = _train_config(epochs=12, batch_size=4, lr=6e-3)
    torch.manual_seed(tc.seed)
    before = evaluate_dvs(DVSGestureNet(_config()), test)
    result = train_dvs(_config(), tc, dataset=data, show_progress=False)
    assert result.steps == 60 and result.epochs == 12  # 22 // 4 = 5 steps per epoch
    assert result.final.loss < 0.95 * before.loss, (before.loss, result.final.loss)
    assert result.final.accuracy > 2 / 11  # twice chance on the (seen) recordings
    train_rows = [row for row in result.history if row["kind"] == "train"]
    assert len(train_rows) == 60
    first, last = (
        np.mean([r["loss"] for r in rows]) for rows in (train_rows[:10], train_rows[-10:])
    )
    assert last < first
    assert 0.0 < result.final.activity < 1.0
    assert result.final.predictions.shape == (22,) and result.final.num_samples == 22
    assert result.model.training is False


class _Interrupt(Exception):
    pass


class _StopAtEpoch:
    """A training set that fails when epoch ``stop`` starts (a crash between epochs)."""

    def __init__(self, inner, stop):
        self.inner, self.stop = inner, stop
        self.targets, self.classes = inner.targets, inner.classes

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]

    def set_epoch(self, epoch):
        if epoch == self.stop:
            raise _Interrupt
        self.inner.set_epoch(epoch)


def test_checkpoint_resume_continues_exactly(data, tmp_path):
    train, test = data
    tc = _train_config(epochs=3)
    straight = train_dvs(_config(), tc, dataset=data, out_dir=tmp_path / "a", show_progress=False)

    with pytest.raises(_Interrupt):
        train_dvs(
            _config(),
            tc,
            dataset=(_StopAtEpoch(train, 2), test),
            out_dir=tmp_path / "b",
            show_progress=False,
        )
    resumed = train_dvs(
        None, tc, dataset=data, out_dir=tmp_path / "b", resume=True, show_progress=False
    )
    assert resumed.epochs == straight.epochs == 3 and resumed.steps == straight.steps == 6
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    rows = [
        json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1, 2, 3]
    assert "test_accuracy" in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[0]
    model, names = load_dvs_model(tmp_path / "b" / "last.pt")
    assert names[0] == "Hand clapping" and model.config == _config()
    torch.testing.assert_close(model.readout.weight, resumed.model.readout.weight)

    with pytest.raises(UserError, match="different model config"):
        train_dvs(
            _config(hidden_sizes=(4, 4)), tc, dataset=data, out_dir=tmp_path / "b", resume=True
        )
    with pytest.raises(UserError, match="no checkpoint"):
        train_dvs(_config(), tc, dataset=data, out_dir=tmp_path / "c", resume=True)


def test_class_count_mismatch_is_a_user_error(data):
    with pytest.raises(UserError, match="num_classes"):
        train_dvs(_config(num_classes=5), _train_config(), dataset=data, show_progress=False)


def _artifact_of(model):
    io = model.deployment_io()
    return DeploymentArtifact(
        layers=sequence_to_reference(model.rnn),
        input_kind=io["input_kind"],
        readout_kind=io["readout_kind"],
        readout_weight=io["readout_weight"],
        readout_bias=io["readout_bias"],
        readout_source=io["readout_source"],
    )


@pytest.mark.parametrize("readout", ["y", "trace"])
def test_torch_and_artifact_predictions_agree(data, readout):
    _, test = data
    torch.manual_seed(0)
    model = DVSGestureNet(_config(readout_source=readout)).eval()
    cmp = compare_with_artifact(model, _artifact_of(model), test, max_samples=8)
    assert cmp.labels.shape == cmp.torch_predictions.shape == cmp.artifact_predictions.shape == (8,)
    assert cmp.agreement == 1.0 and cmp.torch_accuracy == cmp.artifact_accuracy
    assert cmp.max_abs_logit_difference < 1e-4
    predictions, labels, logits = predict_torch(model, test, max_samples=8)
    np.testing.assert_array_equal(predictions, cmp.torch_predictions)
    np.testing.assert_array_equal(labels, np.arange(8))
    sequences, seq_labels = feature_sequences(model, test, max_samples=3)
    assert [s.shape for s in sequences] == [(NUM_FRAMES, 32)] * 3 and list(seq_labels) == [0, 1, 2]
    wrong = DVSGestureNet(_config(feature_size=12)).eval()
    with pytest.raises(ValueError, match="export the artifact from this model"):
        compare_with_artifact(wrong, _artifact_of(model), test, max_samples=2)


def test_export_round_trip(data, tmp_path):
    """export_artifact(model) -> file -> run_reference gives the torch logits."""
    _, test = data
    torch.manual_seed(1)
    model = DVSGestureNet(_config()).eval()
    artifact = export_artifact(model, class_names=test.classes)
    loaded = DeploymentArtifact.load(artifact.save(tmp_path / "dvs.npz"))
    assert loaded.input_kind == "features" and loaded.readout_kind == "linear"
    assert loaded.class_names == test.classes and loaded.input_size == 32
    cmp = compare_with_artifact(model, loaded, test, max_samples=6)
    assert cmp.agreement == 1.0 and cmp.max_abs_logit_difference < 1e-4
    sequences, _ = feature_sequences(model, test, max_samples=1)
    run = loaded.run_reference(sequences[0])
    with torch.no_grad():
        frames = torch.from_numpy(test[0][0])[:, None]
        step_logits = model(frames).step_logits[:, 0].numpy()
    np.testing.assert_allclose(run.logits, step_logits, atol=1e-4)


def test_cli_trains_and_reports(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        *tiny_dvs_cli_argv(out),
        "--export", str(out / "dvs.npz"), "--compare", "3",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "test accuracy" in printed and "agreement 1.0000" in printed and "on 3 samples" in printed
    )
    artifact = DeploymentArtifact.load(out / "dvs.npz")
    assert artifact.class_names[0] == "Hand clapping" and artifact.input_kind == "features"
    assert artifact.metadata["workload"] == "dvs_gesture"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["config"]["hidden_sizes"] == [32, 32]
    assert (out / "last.pt").exists() and (out / "metrics.csv").exists()
    assert main(["--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "ibmGestureTrain" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
