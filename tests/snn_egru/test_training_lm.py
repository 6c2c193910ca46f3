"""Language-model training: it learns, evaluates exactly, checkpoints, resumes, prunes."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from snn_egru.data.text import Corpus, corpus_from_texts
from snn_egru.models.lm import EGRULanguageModel, LanguageModelConfig, lm_preset
from snn_egru.pruning import PruningConfig, matrix_sparsity
from snn_egru.training.common import (
    CheckpointError,
    MetricsLogger,
    config_from_dict,
    config_to_dict,
    cosine_schedule,
    load_checkpoint,
    make_optimizer,
)
from snn_egru.training.lm import (
    LM_TRAIN_PRESETS,
    LMTrainConfig,
    evaluate_perplexity,
    lm_training_preset,
    load_language_model,
    main,
    preset_configs,
    train_language_model,
)
from tests.snn_egru.conftest import deterministic_tiny_lm


def cyclic_corpus() -> Corpus:
    """A predictable language: 'a b c d e f <eos>' over and over (7 tokens, ppl -> 1)."""
    line = "a b c d e f\n"
    return corpus_from_texts(line * 300, line * 30, line * 30, name="cyclic")


def tiny_configs(**train_overrides) -> tuple[LanguageModelConfig, LMTrainConfig]:
    model_config = deterministic_tiny_lm(vocab_size=7)
    defaults = dict(lr=3e-2, clip=1.0, max_steps=60, epochs=10, bptt=10, batch_size=4)
    train_config = lm_training_preset("tiny", **{**defaults, **train_overrides})
    return model_config, train_config


def test_training_learns_a_predictable_language(tmp_path):
    model_config, train_config = tiny_configs()
    result = train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=tmp_path, show_progress=False
    )
    assert result.steps == 60 and result.stop_reason == "max_steps"
    # uniform guessing gives perplexity 7; the cycle is learnt far below that
    assert result.test.perplexity < 2.0, result.summary()
    assert result.valid.perplexity < 2.0
    assert result.test.sparsity is not None
    assert 0.0 <= result.test.sparsity.activity_sparsity < 1.0
    for k in range(result.model.rnn.num_layers):
        theta = result.model.rnn.threshold(k).detach()
        assert float(theta.min()) >= 0.0 and float(theta.max()) <= 1.0  # clamped every step
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_perplexity"] == pytest.approx(result.test.perplexity)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {row["kind"] for row in rows} == {"train", "valid", "test"}
    assert (tmp_path / "metrics.csv").read_text().startswith("kind,step,epoch,loss")
    train_losses = [row["loss"] for row in rows if row["kind"] == "train"]
    assert train_losses[-1] < train_losses[0]


def test_checkpoint_holds_configs_vocabulary_and_rebuilds_the_model(tmp_path):
    model_config, train_config = tiny_configs(max_steps=6, final_test=False)
    corpus = cyclic_corpus()
    result = train_language_model(
        model_config, train_config, data=corpus, out_dir=tmp_path, show_progress=False
    )
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint.config["class"] == "snn_egru.models.lm:LanguageModelConfig"
    assert checkpoint.model_config(LanguageModelConfig) == result.model_config
    assert checkpoint.training_config(LMTrainConfig) == train_config
    assert checkpoint.vocabulary == corpus.vocabulary.to_list()
    assert checkpoint.step == 6 and checkpoint.optimizer_state is not None
    assert checkpoint.scheduler_state is not None
    model, vocabulary, metrics = load_language_model(tmp_path / "last.pt")
    assert vocabulary == corpus.vocabulary and "valid_perplexity" in metrics
    assert not model.training
    tokens = corpus.test[:20].view(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).logits, result.model.eval()(tokens).logits)
    with pytest.raises(CheckpointError, match="expected LMTrainConfig"):
        checkpoint.model_config(LMTrainConfig)


def test_resume_continues_exactly(tmp_path):
    pruning = PruningConfig(target_sparsity=0.5, start_step=2, end_step=8, frequency=2)
    model_config, train_config = tiny_configs(
        max_steps=8, schedule_steps=8, final_test=False, pruning=pruning
    )
    # model_config with dropout so that the RNG state matters
    model_config = replace(model_config, input_dropout=0.2, dropconnect=0.2)
    corpus = cyclic_corpus()
    straight = train_language_model(
        model_config, train_config, data=corpus, out_dir=tmp_path / "a", show_progress=False
    )
    half = replace(train_config, max_steps=4)
    train_language_model(
        model_config, half, data=corpus, out_dir=tmp_path / "b", show_progress=False
    )
    resumed = train_language_model(
        model_config,
        train_config,
        data=corpus,
        out_dir=tmp_path / "b",
        resume=True,
        show_progress=False,
    )
    assert resumed.steps == 8
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert matrix_sparsity(resumed.model.rnn.weight_hh_l0) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="model config differs"):
        train_language_model(
            replace(model_config, dampening=1.0),
            train_config,
            data=corpus,
            out_dir=tmp_path / "b",
            resume=True,
            show_progress=False,
        )


def test_pruning_during_training_keeps_embedding_dense(tmp_path):
    model_config, train_config = tiny_configs(
        max_steps=12,
        eval_every=2,
        weight_decay=0.1,
        measure_sparsity=False,
        pruning=PruningConfig(target_sparsity=0.8, start_step=3, end_step=9, frequency=3),
    )
    result = train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=tmp_path, show_progress=False
    )
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.extra["pruner"]["current_sparsity"] == pytest.approx(0.8)
    rnn = result.model.rnn
    for k in range(rnn.num_layers):
        for name in ("weight_ih", "weight_hh"):
            weight = getattr(rnn, f"{name}_l{k}")
            assert matrix_sparsity(weight) == pytest.approx(0.8, abs=0.01), (name, k)
    assert matrix_sparsity(result.model.embedding.weight) == 0.0


def test_uniform_model_has_perplexity_equal_to_the_vocabulary_size():
    model = EGRULanguageModel(lm_preset("tiny", vocab_size=7))
    with torch.no_grad():
        model.embedding.weight.zero_()  # tied decoder: all logits 0 -> uniform prediction
    result = evaluate_perplexity(model, cyclic_corpus().test, batch_size=2, bptt=5)
    assert result.perplexity == pytest.approx(7.0, rel=1e-5)
    assert result.tokens == (cyclic_corpus().test.numel() // 2 - 1) * 2


def test_evaluation_carries_state_like_one_long_forward():
    torch.manual_seed(5)
    model = EGRULanguageModel(lm_preset("tiny", vocab_size=7)).eval()
    data = cyclic_corpus().valid[:41]
    result = evaluate_perplexity(model, data, batch_size=1, bptt=6, show_progress=False)
    with torch.no_grad():
        logits = model(data[:-1].view(-1, 1)).logits[:, 0]
    loss = torch.nn.functional.cross_entropy(logits, data[1:])
    assert result.tokens == 40
    assert result.loss == pytest.approx(float(loss), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)


def test_time_budget_stops_training():
    model_config, train_config = tiny_configs(
        max_steps=None, epochs=50, time_budget_s=0.0, final_test=False, save_checkpoints=False
    )
    result = train_language_model(model_config, train_config, data=cyclic_corpus())
    assert result.stop_reason == "time_budget" and result.steps == 1


def test_cosine_schedule_shape():
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(model, lr=1.0, weight_decay=0.0)
    assert optimizer.defaults["betas"] == (0.0, 0.999)
    scheduler = cosine_schedule(optimizer, 10, warmup_steps=2, hold_steps=2, min_lr_ratio=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == [0.5, 1.0, 1.0, 1.0, 1.0]  # warm-up, hold, start of the cosine
    assert lrs[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 6)))
    assert lrs[10:] == [pytest.approx(0.1)] * 2
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_metrics_logger_widens_csv_and_resumes(tmp_path):
    log = MetricsLogger(tmp_path, enabled=True)
    log.log(step=1, loss=torch.tensor(2.5))
    log.log(step=2, perplexity=3.0)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "step,loss,perplexity",
        "1,2.5,",
        "2,,3.0",
    ]
    again = MetricsLogger(tmp_path, enabled=True, resume=True)
    again.log(step=3, loss=1.0)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_config_round_trip_and_refusals():
    model_config, train_config = preset_configs("paper")
    assert train_config.lr == 1.2e-3 and train_config.batch_size == 64
    assert train_config.hold_steps == 700 * math.ceil((929_589 // 64 - 1) / 70)
    data = config_to_dict(replace(train_config, pruning=PruningConfig(target_sparsity=0.9)))
    rebuilt = config_from_dict(data, LMTrainConfig)
    assert rebuilt.pruning == PruningConfig(target_sparsity=0.9)
    assert rebuilt.betas == (0.0, 0.999)
    evil = {"class": "os:system", "fields": {}}
    with pytest.raises(CheckpointError, match="outside snn_egru"):
        config_from_dict(evil)
    with pytest.raises(CheckpointError, match="unknown to LMTrainConfig"):
        config_from_dict({"class": data["class"], "fields": {"nope": 1}}, LMTrainConfig)
    with pytest.raises(ValueError, match="resume=True needs the out_dir"):
        train_language_model(*tiny_configs(), data=cyclic_corpus(), resume=True)


def test_command_line_help_and_tiny_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "torchrun" in capsys.readouterr().out
    # a user mistake: one line, exit status 2 (the old spelling --out-dir still works)
    assert main(["--preset", "tiny", "--out-dir", str(tmp_path / "none"), "--resume", "-q"]) == 2
    assert "--resume: there is no" in capsys.readouterr().err


def test_command_line_preset_names_match_the_presets():
    from snn_egru.training.lm_args import LM_PRESET_NAMES

    assert set(LM_PRESET_NAMES) == set(LM_TRAIN_PRESETS)


def test_command_line_cell_and_amplitude_names_match_the_models():
    from snn_egru.functional import EVENT_AMPLITUDES
    from snn_egru.models.dense import DENSE_CELLS
    from snn_egru.models.lm import LM_CELLS
    from snn_egru.training.lm_args import CELL_NAMES, EVENT_AMPLITUDE_NAMES

    assert CELL_NAMES == LM_CELLS == ("egru", *DENSE_CELLS)  # the DVS model's cells too
    assert EVENT_AMPLITUDE_NAMES == EVENT_AMPLITUDES


def test_init_from_a_checkpoint_then_prune(tmp_path):
    model_config, train_config = tiny_configs(max_steps=6, final_test=False)
    corpus = cyclic_corpus()
    first = train_language_model(
        model_config, train_config, data=corpus, out_dir=tmp_path / "a", show_progress=False
    )
    frozen = replace(train_config, init_from=str(tmp_path / "a" / "last.pt"), lr=1e-12, max_steps=1)
    again = train_language_model(model_config, frozen, data=corpus, show_progress=False)
    last = first.model.state_dict()
    for name, value in again.model.state_dict().items():
        torch.testing.assert_close(value, last[name], rtol=0, atol=1e-6, msg=name)
    one_shot = PruningConfig(0.9, schedule="one_shot", start_step=2)
    pruned = train_language_model(
        model_config,
        replace(frozen, lr=1e-4, max_steps=3, eval_every=1, pruning=one_shot),
        data=corpus,
        out_dir=tmp_path / "p",
        show_progress=False,
    )
    assert matrix_sparsity(pruned.model.rnn.weight_ih_l1) == pytest.approx(0.9, abs=0.01)
    # the unpruned model of step 1 predicts better, but "best" must be at the target sparsity
    rows = [json.loads(x) for x in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    valid = {row["step"]: row["perplexity"] for row in rows if row["kind"] == "valid"}
    assert valid[1] < min(valid[2], valid[3])
    assert load_checkpoint(tmp_path / "p" / "best.pt").step in (2, 3)
    with pytest.raises(ValueError, match="holds a model with hidden_sizes=\\[24, 16\\]"):
        train_language_model(
            replace(model_config, hidden_sizes=(20, 16)), frozen, data=corpus, show_progress=False
        )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_dense_baselines_train_checkpoint_and_resume_through_the_same_loop(tmp_path, cell):
    """cell='gru'/'lstm': the same loop learns the cycle, saves, reloads, resumes exactly."""
    model_config, train_config = tiny_configs(max_steps=40, eval_every=20)
    model_config = replace(model_config, cell=cell)
    result = train_language_model(
        model_config, train_config, data=cyclic_corpus(), out_dir=tmp_path, show_progress=False
    )
    assert result.test.perplexity < 2.0, result.summary()
    assert result.test.sparsity is None  # no events to count in a dense model
    model, vocab, _ = load_language_model(tmp_path / "last.pt")
    assert model.config.cell == cell and len(vocab) == 7
    # resuming at step 6 of 12 equals the straight run (dropout + DropConnect: RNG restored)
    resume_model = replace(model_config, input_dropout=0.2, dropconnect=0.2)
    full = replace(train_config, max_steps=12, schedule_steps=12, eval_every=0, final_test=False)
    corpus = cyclic_corpus()
    straight = train_language_model(
        resume_model, full, data=corpus, out_dir=tmp_path / "a", show_progress=False
    )
    train_language_model(
        resume_model,
        replace(full, max_steps=6),
        data=corpus,
        out_dir=tmp_path / "b",
        show_progress=False,
    )
    resumed = train_language_model(
        resume_model,
        full,
        data=corpus,
        out_dir=tmp_path / "b",
        resume=True,
        show_progress=False,
    )
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="pruning and quantisation are for the EGRU only"):
        train_language_model(
            model_config,
            replace(train_config, pruning=PruningConfig(target_sparsity=0.5)),
            data=cyclic_corpus(),
            show_progress=False,
        )


def test_unit_firing_rates_count_events_per_unit():
    from snn_egru.training.lm import unit_firing_rates

    torch.manual_seed(5)
    model_config, _ = tiny_configs()
    model = EGRULanguageModel(model_config)
    data = cyclic_corpus().valid
    rates = unit_firing_rates(model, data, batch_size=2, bptt=5, max_tokens=100)
    assert [tuple(r.shape) for r in rates] == [(24,), (16,)]
    # the same count by hand, one long pass (state carried like the windows)
    tokens = data[:101]
    streams = tokens[: (len(tokens) // 2) * 2].reshape(2, -1).T[:-1]
    with torch.no_grad():
        out = model.eval()(streams)
    for r, y in zip(rates, out.layer_outputs):
        torch.testing.assert_close(r, (y != 0).float().mean(dim=(0, 1)), rtol=1e-6, atol=1e-6)
    model.rnn.threshold_module(0).set_(1.0)  # c~ <= 1: nobody in layer 0 can fire
    assert float(unit_firing_rates(model, data, batch_size=2, bptt=5)[0].max()) == 0.0
    with pytest.raises(ValueError, match="no events to count"):
        unit_firing_rates(EGRULanguageModel(replace(model_config, cell="gru")), data)


def test_threshold_value_starts_every_unit_at_that_threshold():
    model_config, _ = tiny_configs()
    model = EGRULanguageModel(replace(model_config, threshold_value=0.25))
    for k in range(model.rnn.num_layers):
        assert torch.all(model.rnn.threshold(k) == 0.25)
    with pytest.raises(ValueError, match="threshold_value must lie in \\[0, 1\\]"):
        replace(model_config, threshold_value=1.5)


def test_resume_keeps_the_runs_own_step_budget(tmp_path, monkeypatch, capsys):
    """``--resume`` without ``--max-steps`` continues to the run's recorded budget (a demo's
    800 steps, not the preset's 1000); ``--max-steps`` given again extends it."""
    monkeypatch.setattr("snn_egru.training.lm.load_corpus", lambda *a, **k: cyclic_corpus())
    out = str(tmp_path / "run")
    common = ["--preset", "tiny", "--out", out, "--no-full-test", "--no-progress", "-q"]
    assert main([*common, "--max-steps", "4"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["steps"] == 4 and 0 < first["epochs"] < 1
    assert main([*common, "--resume"]) == 0  # the preset says 10; the run said 4
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["stop_reason"] == "max_steps"
    assert summary["epochs"] == first["epochs"]
    assert main([*common, "--resume", "--max-steps", "6"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 6
    assert (
        load_checkpoint(tmp_path / "run" / "last.pt").training_config(LMTrainConfig).max_steps == 6
    )
