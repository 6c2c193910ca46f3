"""benchmarks/lm_quality.py and benchmarks/dvs_quality.py: inputs, report keys, a tiny run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from snn_egru.data.text import corpus_from_texts
from snn_egru.errors import UserError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


lm_quality = load("lm_quality")


def test_lr_and_seed_lists_parse_and_refuse_bad_input():
    assert lm_quality.parse_lr_list("3e-3, 6e-3") == (3e-3, 6e-3)
    assert lm_quality.parse_lr_option("gru=1e-2") == ("gru", (1e-2,))
    assert lm_quality.parse_seeds("0,1") == (0, 1)
    for text, message in [
        ("", "learning-rate list is empty"),
        (" , ", "learning-rate list is empty"),
        ("fast", "'fast' is not a number"),
        ("-1e-3", "must be a finite number > 0"),
        ("nan", "must be a finite number > 0"),
        ("1e-3,1e-3", "repeats a rate"),
    ]:
        with pytest.raises(UserError, match=message):
            lm_quality.parse_lr_list(text)
    for text, message in [
        ("", "seed list is empty"),
        ("0,x", "seed 'x' is not an integer"),
        ("-1", "seed -1 must be >= 0"),
        ("1,1", "repeats a seed"),
    ]:
        with pytest.raises(UserError, match=message):
            lm_quality.parse_seeds(text)
    with pytest.raises(UserError, match="unknown model 'rnn'; valid names: egru, gru, lstm"):
        lm_quality.parse_lr_option("rnn=1e-3")
    with pytest.raises(UserError, match="MODEL=RATE"):
        lm_quality.parse_lr_option("1e-3")
    assert lm_quality.parse_overrides(["threshold_mean=0.2", "learn_threshold=no"]) == {
        "threshold_mean": 0.2,
        "learn_threshold": False,
    }
    with pytest.raises(UserError, match="KEY one of"):
        lm_quality.parse_overrides(["bogus=1"])
    with pytest.raises(UserError, match="not a valid support"):
        lm_quality.parse_overrides(["support=wide"])
    # an optional field (default None) takes a number or "none"
    assert lm_quality.parse_overrides(["threshold_value=0", "learn_threshold=False"]) == {
        "threshold_value": 0.0,
        "learn_threshold": False,
    }
    assert lm_quality.parse_overrides(["threshold_value=none"]) == {"threshold_value": None}
    with pytest.raises(UserError, match="not a valid threshold_value"):
        lm_quality.parse_overrides(["threshold_value=low"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "egru", "transformer"], "unknown model 'transformer'; valid names: egru"),
        (["--seeds", ""], "seed list is empty"),
        (["--lr", "egru="], "learning-rate list is empty"),
        (["--lr", "gru=0"], "must be a finite number > 0"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--plot-from", "missing.json"], "--plot-from needs --plot"),
        (
            ["--egru", "decoder_input=foo"],
            "--egru: unknown decoder_input 'foo'; valid names: events, state, positive-state",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert lm_quality.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_tiny_comparison_runs_the_project_training_and_reports_all_keys(
    monkeypatch, tmp_path, capsys
):
    line = "a b c d e f\n"
    corpus = corpus_from_texts(line * 300, line * 30, line * 30, name="cyclic")
    monkeypatch.setattr("snn_egru.data.text.load_corpus", lambda *a, **k: corpus)
    plot = tmp_path / "rates.png"
    argv = ["--preset", "tiny", "--steps", "12", "--seeds", "0,1", "--lr", "egru=3e-2,1e-2"]
    argv += [
        "--sweep-steps",
        "4",
        "--plot",
        str(plot),
        "--json",
        "--save",
        str(tmp_path / "r.json"),
    ]
    argv += ["--egru", "learn_threshold=true"]  # thresholds move: clamped in every step
    assert lm_quality.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "r.json").read_text())["models"] == report["models"]
    assert set(report["models"]) == {"egru", "gru", "lstm"}
    for cell, m in report["models"].items():
        assert m["seeds"] == [0, 1] and len(m["test_ppl_per_seed"]) == 2
        assert m["test_ppl_mean"] == pytest.approx(sum(m["test_ppl_per_seed"]) / 2)
        assert m["test_ppl_spread"] >= 0 and m["train_time_s"] > 0 and m["steps"] == 12
        assert (m["activity_sparsity"] is None) == (cell != "egru")
    assert 0.0 <= report["models"]["egru"]["activity_sparsity"] <= 1.0
    assert [e["lr"] for e in report["sweep"]["egru"]] == [3e-2, 1e-2]
    best = min(report["sweep"]["egru"], key=lambda e: e["valid_ppl"])["lr"]
    assert report["models"]["egru"]["lr"] == best
    assert report["egru_over_gru_ppl"] == pytest.approx(
        report["models"]["egru"]["test_ppl_mean"] / report["models"]["gru"]["test_ppl_mean"]
    )
    assert report["egru_over_lstm_ppl"] > 0
    assert set(report["step_time_shares"]) == {
        "batch",
        "embedding",
        "recurrent",
        "decoder_softmax",
        "optimizer",
    }
    assert plot.stat().st_size > 0
    # the text report prints the same numbers
    text = lm_quality.format_report(report)
    assert "egru_over_gru_ppl" in text and f"{report['egru_over_gru_ppl']:.3f}" in text
    # dead units out of the trained model's width (24 + 16), not the small preset's 256
    assert report["models"]["egru"]["hidden_units"] == 40 and "dead units (of 40)" in text
    # a saved report can be re-plotted without training
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report))
    again = tmp_path / "again.png"
    assert lm_quality.main(["--plot-from", str(saved), "--plot", str(again)]) == 0
    assert again.stat().st_size > 0
    # ... and tabulated: one row per model, ratios to the GRU of the same steps / tokens
    assert report["egru_config"]["learn_threshold"] is True
    assert report["egru_config"]["hidden_sizes"] == [24, 16]
    capsys.readouterr()
    assert lm_quality.main(["--table-from", str(saved)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 2 + 3 and table[0].startswith("| # | model | settings | lr")
    egru_row = next(r for r in table if r.startswith("| 1 | egru "))
    assert "thresholds learned" in egru_row
    assert f"{report['egru_over_gru_ppl']:.3f}" in egru_row
    assert "| 2 | gru | - |" in "".join(table) and "| 1.000 |" in "".join(table)
    trade = tmp_path / "tradeoff.png"
    assert lm_quality.main(["--table-from", str(saved), "--plot", str(trade)]) == 0
    assert trade.stat().st_size > 0
    assert lm_quality.short_settings({"threshold_value": 0.0, "learn_threshold": False}, 0.01) == (
        "theta=0, thresholds frozen, lr 0.01"
    )
    (tmp_path / "other.json").write_text("[]")
    assert lm_quality.main(["--table-from", str(tmp_path / "other.json")]) == 2
    assert "is not a report of this benchmark" in capsys.readouterr().err


def test_dvs_benchmark_refuses_bad_input(capsys):
    dvs_quality = load("dvs_quality")
    assert dvs_quality.main(["--models", "egru", "cnn"]) == 2
    assert "unknown model 'cnn'; valid names: egru, gru, lstm" in capsys.readouterr().err
    assert dvs_quality.main(["--seeds", "a"]) == 2
    assert "seed 'a' is not an integer" in capsys.readouterr().err
    assert dvs_quality.main(["--lr", "egru=,"]) == 2
    assert "learning-rate list is empty" in capsys.readouterr().err
