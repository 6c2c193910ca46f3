"""The Run report (dict / JSON / table, GPU comparison), the plots and the `run` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.cli import main
from spinnaker2_backend.plots_run import plot_packets, plot_profile, save_run_plots
from spinnaker2_backend.results import MEASURED_ANCHORS, PUBLISHED_A100, GpuFigure, RunReport
from spinnaker2_backend.simulator import run_mapping
from tests.networks import synthetic_lm

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lm_run():
    artifact = synthetic_lm((40, 30), 30, sparsity=0.8, threshold_mean=0.01, seed=1)
    mapping = map_network(artifact, max_units_per_pe=8)
    tokens = np.random.default_rng(0).integers(0, 50, 35)
    return run_mapping(mapping, tokens)


def test_report_figures_follow_the_run(lm_run):
    report = lm_run.report()
    assert isinstance(report, RunReport)
    assert report.steps == 35 and report.layer_sizes == [40, 30]
    assert report.seconds_per_token == pytest.approx(lm_run.seconds / 35)
    assert report.seconds_per_sequence == pytest.approx(70 * report.seconds_per_token)
    # the critical-path profile adds up to the time per token (sequential, no tick)
    assert sum(report.profile_per_token.values()) == pytest.approx(report.seconds_per_token)
    assert report.profile_per_token["recurrent product"] > 0
    assert report.energy_per_sequence_j == pytest.approx(lm_run.energy.total_j * 2)
    totals = lm_run.counters.summary()
    assert report.counters == totals
    assert report.per_step["events"] == pytest.approx(totals["events"] / 35)
    events = sum(np.count_nonzero(e) for e in lm_run.layer_events)
    assert totals["events"] == events
    assert report.activity == pytest.approx(
        [np.mean(e != 0) for e in lm_run.layer_events], rel=1e-12
    )
    assert lm_run.logits.shape == (35, 50)


def test_comparison_rows_default_to_the_published_a100(lm_run):
    report = lm_run.report()
    names = [row["name"] for row in report.comparison]
    assert names[1:] == ["SpiNNaker2 (published)", "NVIDIA A100 (published)"]
    a100 = report.comparison[2]
    assert a100["kind"] == "measured" and a100["power_w"] == 60.0
    assert a100["seconds_per_sequence"] == pytest.approx(19.9e-3)
    assert a100["time_vs_simulated"] == pytest.approx(19.9e-3 / report.seconds_per_sequence)
    assert a100["energy_vs_simulated"] == pytest.approx(1.19 / report.energy_per_sequence_j)
    assert report.comparison[0]["kind"] == "simulated estimate"
    assert report.anchors == MEASURED_ANCHORS
    gpu = GpuFigure(
        name="my GPU", power_w=100.0, seconds_per_sequence=0.01, energy_j_per_sequence=1.0
    )
    row = lm_run.report(gpu=gpu).comparison[2]
    assert row["name"] == "my GPU" and row["kind"] == "supplied"
    # a 35-token "sequence" scales the reference rows
    short = lm_run.report(sequence_tokens=35)
    assert short.comparison[2]["seconds_per_sequence"] == pytest.approx(19.9e-3 / 2)
    assert PUBLISHED_A100.energy_j_per_sequence == 1.19
    with pytest.raises(ValueError, match="sequence_tokens must be >= 1"):
        lm_run.report(sequence_tokens=0)


def test_report_serialises_and_reads(lm_run):
    report = lm_run.report()
    data = json.loads(report.to_json())
    assert data["weight_format"] == "csr" and data["clock_mhz"] == 150
    assert data["counters"]["packets_on_chip"] == report.counters["packets_on_chip"]
    assert set(data["energy_j"]) >= {"static_j", "active_j", "total_j"}
    text = report.table()
    for needle in (
        "per 70-token sequence",
        "NVIDIA A100 (published)",
        "(measured)",
        "simulated estimate",
        "recurrent product",
        "packets_chip_to_chip",
        "measured anchors",
    ):
        assert needle in text


def test_plots_write_png(lm_run, tmp_path):
    paths = save_run_plots(lm_run, tmp_path / "dir")
    assert [p.name for p in paths] == ["profile.png", "packets.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    fig = plot_profile(lm_run)  # no file: the figure only
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "busy time per step (us)"
    with pytest.raises(ValueError, match="ending in .png"):
        plot_profile(lm_run, tmp_path / "profile.jpg")
    with pytest.raises(ValueError, match="ending in .png"):
        plot_packets(lm_run, tmp_path / "packets.svg")


def test_run_command_json_and_plots(tmp_path, capsys):
    rc = main(
        ["run", "--synthetic", "paper-dvs", "--steps", "3", "--weight-format", "dense",
         "--json"]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layer_sizes"] == [256, 256] and report["steps"] == 3
    expected = map_network(synthetic_network("paper-dvs"), weight_format="dense")
    assert report["num_pes"] == expected.num_pes_used and report["weight_format"] == "dense"


def test_run_command_inputs_tick_and_gpu_row(tmp_path, capsys):
    artifact = synthetic_network(layer_sizes=(20,), input_size=6, sparsity=0.5, seed=0)
    path = artifact.save(tmp_path / "net.npz")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    rc = main(
        ["run", str(path), "--inputs", str(inputs), "--tick-us", "1000", "--clock-mhz", "300",
         "--gpu-power-w", "50", "--gpu-ms", "10", "--gpu-energy-j", "0.5", "--gpu-name", "B",
         "--plot-dir", str(tmp_path / "plots")]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert (tmp_path / "plots" / "packets.png").read_bytes()[:8] == PNG
    assert "steps: 4" in out and "300 MHz" in out and "MISSED" not in out
    assert "  B " in out and "(supplied)" in out
    # a tick shorter than a step's work: exit 2, one line naming the misses
    rc = main(["run", str(path), "--inputs", str(inputs), "--tick-us", "0.5"])
    assert rc == 2 and "missed their deadline" in capsys.readouterr().err


def test_run_command_user_errors(tmp_path, capsys):
    rc = main(["run", "--synthetic", "paper-dvs", "--gpu-power-w", "50"])
    assert rc == 2
    assert "needs all of --gpu-power-w, --gpu-ms and --gpu-energy-j" in capsys.readouterr().err
    rc = main(["run", "--synthetic", "paper-dvs", "--inputs", str(tmp_path / "none.npy")])
    assert rc == 2 and "no inputs file" in capsys.readouterr().err
    rc = main(["run", "--synthetic", "paper-dvs", "--steps", "0"])
    assert rc == 2 and "argument --steps: must be an integer >= 1" in capsys.readouterr().err
