"""snn-egru sweep: the quick grid end to end, cache and resume, shards and merge, bad input,
the fronts and headline figures, the chip stand-in of dense cells, docs/tradeoff.md current."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snn_egru.sweep.cli import main
from snn_egru.sweep.grid import Grid, SweepPoint
from snn_egru.sweep.report import ablations, front, front_at, headline_figures, render_markdown
from snn_egru.sweep.runner import point_path, run_points

REPO = Path(__file__).resolve().parents[2]
TINY = ["--preset", "tiny", "--data", "cyclic", "--test-tokens", "40", "--chip-tokens", "20"]


def _runs(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]


def _points(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "points").glob("*.json"))]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    assert main(["run", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_sweep_records_every_measure_per_point(quick: Path) -> None:
    points = _points(quick)
    assert sorted(p["settings"]["cell"] for p in points) == ["egru", "gru"]
    for p in points:
        assert p["status"] == "done"
        assert math.isfinite(p["quality"]["test_perplexity"]) and p["test_tokens"] > 0
        macs = p["macs_per_token"]
        assert macs["effective_with_decoder"] == pytest.approx(
            macs["effective_rnn"] + macs["effective_decoder"]
        )
        assert 0 < macs["effective_rnn"] <= macs["dense_rnn"]
        chip = p["chip"]
        assert chip["pes_used"] >= 1 and chip["steps"] == 30
        assert chip["energy_j_per_token"] > 0 and chip["seconds_per_token"] > 0
        assert chip["average_power_w"] == pytest.approx(
            chip["energy_j_per_token"] / chip["seconds_per_token"]
        )
    egru = next(p for p in points if p["settings"]["cell"] == "egru")
    gru = next(p for p in points if p["settings"]["cell"] == "gru")
    assert 0 < egru["activity_sparsity"] < 1 and gru["chip"]["chip_activity"] == 1.0
    assert egru["layer_activity_sparsity"] and not gru["chip"]["lower_bound"]
    assert len(egru["dead_units"]) == 1 and 0 <= egru["dead_units"][0] <= 16
    assert gru["dead_units"] is None


def test_cached_points_are_not_trained_again_and_overwrite_retrains(quick, capsys) -> None:
    before = {p.name: p.read_text() for p in (quick / "points").glob("*.json")}
    assert main(["run", "--quick", "--out", str(quick)]) == 0
    err = capsys.readouterr().err
    assert err.count(": cached (") == 2 and "training" not in err
    assert {p.name: p.read_text() for p in (quick / "points").glob("*.json")} == before
    # after a change of the chip model: the chip runs again from the saved weights, only
    assert main(["run", "--quick", "--out", str(quick), "--rechip"]) == 0
    assert "2 point(s) run on the chip again" in capsys.readouterr().err
    for name, text in before.items():
        old, new = json.loads(text), json.loads((quick / "points" / name).read_text())
        assert new.pop("chip_rerun") is True
        old["chip"].pop("simulation_s"), new["chip"].pop("simulation_s")
        assert new == old  # the same chip model: the same figures


def test_an_interrupted_sweep_resumes_at_the_point_it_was_on(tmp_path) -> None:
    grid = Grid(
        task="lm",
        cells=("egru", "gru"),
        widths=(8,),
        steps=(2,),
        preset="tiny",
        data="cyclic",
        test_tokens=30,
        chip_tokens=10,
    )
    points = grid.points()
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_points(points, tmp_path, echo=lines.append, stop_after=1)
    assert point_path(tmp_path, points[0]).exists() and not point_path(tmp_path, points[1]).exists()
    # the second point was being trained when the sweep stopped: its marker is left
    point_path(tmp_path, points[1]).with_suffix(".running").write_text("{}")
    lines.clear()
    counts = run_points(points, tmp_path, echo=lines.append)
    assert counts == {"done": 1, "cached": 1, "does_not_fit": 0, "failed": 0}
    assert any("was interrupted before" in line for line in lines)
    assert not list((tmp_path / "points").glob("*.running"))


def test_list_fit_maps_each_point_without_training(tmp_path, capsys) -> None:
    argv = ["run", *TINY, "--cells", "egru", "--widths", "16,600", "--steps", "2"]
    assert main([*argv, "--list", "--fit", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith(" PEs") and "does not fit" in lines[1]
    assert not (tmp_path / "points").exists()
    assert main([*argv, "--fit", "--out", str(tmp_path)]) == 2
    assert "--fit goes with --list" in capsys.readouterr().err


def test_a_width_that_fits_no_chip_is_reported_and_the_sweep_goes_on(tmp_path, capsys) -> None:
    argv = [
        "run",
        "--cells",
        "gru",
        "--widths",
        "8,600",
        "--steps",
        "2",
        *TINY,
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "does_not_fit: the network needs 300 PEs" in err
    status = sorted((p["settings"]["width"], p["status"]) for p in _points(tmp_path))
    assert status == [(8, "done"), (600, "does_not_fit")]


def test_shards_partition_the_grid_and_merge_combines_them(tmp_path, capsys) -> None:
    grid = Grid(task="lm", cells=("egru", "gru", "lstm"), widths=(8, 12), seeds=(0, 1))
    keys = [p.key for p in grid.points()]
    assert len(keys) == len(set(keys)) == 12
    slices = [[p.key for p in grid.shard(i, 5)] for i in range(1, 6)]
    assert sorted(k for s in slices for k in s) == sorted(keys)
    for i in (1, 2):  # two array tasks into two folders, one merge
        argv = ["run", "--quick", "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]
        assert main(argv) == 0
    merged = tmp_path / "merged.json"
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--json", str(merged)]) == 0
    doc = json.loads(merged.read_text())
    assert len(doc["points"]) == 2 and len(doc["runs"]) == 2
    assert any("--shard 2/2" in c for c in doc["commands"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cells", ""], "the grid is empty"),
        (["--widths", ","], "--widths is empty"),
        (["--cells", "egru,rnn"], "unknown cell 'rnn'; valid names: egru, gru, lstm"),
        (["--shard", "3/2"], "--shard 3/2: slice 3 is out of range 1..2"),
        (["--shard", "0/2"], "slice 0 is out of range"),
        (["--shard", "1/9"], "the grid has only 2 points"),
        (["--shard", "x"], "give i/n"),
        (["--prune", "1.5"], "--prune: 1.5 must lie in [0, 1)"),
        (["--data", "wiki"], "--data 'wiki' is not a lm dataset"),
        (["--gru-widths", "8", "--cells", "egru"], "--gru-widths is given but --cells has no gru"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    status = main(["run", "--quick", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "x").exists()  # nothing ran


def test_merge_and_report_do_not_overwrite_without_the_flag(quick, tmp_path, capsys) -> None:
    target = tmp_path / "t.json"
    target.write_text("{}\n")
    assert main(["merge", str(quick), "--json", str(target)]) == 2
    assert "exists and differs; pass --overwrite" in capsys.readouterr().err
    assert main(["merge", str(quick), "--json", str(target), "--overwrite"]) == 0
    md = tmp_path / "t.md"
    md.write_text("mine\n")
    assert main(["report", str(target), "--md", str(md)]) == 2
    assert md.read_text() == "mine\n"
    assert main(["report", str(target), "--md", str(md), "--overwrite"]) == 0
    assert main(["report", str(target), "--md", str(md)]) == 0  # same text: nothing to replace
    assert "unchanged" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "none"), "--json", str(target)]) == 2


def _config(cell: str, cost: float, ppl: float, energy: float | None = None) -> dict:
    return {
        "cell": cell,
        "macs": cost,
        "rnn_macs": cost / 2,
        "energy": energy if energy is not None else cost,
        "quality": ppl,
        "activity_sparsity": 0.8,
        "settings": {"width": int(cost), "layers": 1},
    }


def test_front_is_pareto_and_interpolates_in_log_cost() -> None:
    configs = [
        _config("egru", 1.0, 200.0),
        _config("egru", 4.0, 100.0),
        _config("egru", 2.0, 250.0),
    ]
    line = front(configs, "macs")
    assert [c["macs"] for c in line] == [1.0, 4.0]  # (2, 250) is dominated
    assert front_at(line, "macs", 2.0) == pytest.approx(150.0)  # halfway in log cost
    assert front_at(line, "macs", 0.5) is None  # below the cheapest: nothing affordable
    assert front_at(line, "macs", 4.0) == 100.0
    assert front_at(line, "macs", 5.0) == 100.0  # above the dearest: its value, a step


def _record(cell: str, width: int, macs: float, ppl: float, energy: float, seed: int = 0) -> dict:
    settings = SweepPoint(task="lm", cell=cell, width=width, seed=seed).settings()
    return {
        "status": "done",
        "settings": settings,
        "quality": {"test_perplexity": ppl},
        "macs_per_token": {"effective_with_decoder": macs, "effective_rnn": macs / 2},
        "chip": {"energy_j_per_token": energy},
        "activity_sparsity": 0.8 if cell == "egru" else 0.0,
    }


def test_headline_ratio_is_the_worst_over_the_gru_points_the_front_reaches() -> None:
    points = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 512, 4.0e6, 100.0, 4.0),
        _record("egru", 512, 4.0e6, 110.0, 4.0, seed=1),  # seeds are averaged: 105
        _record("gru", 100, 2.0e6, 160.0, 2.0),  # EGRU front there: 152.5 -> 0.953
        _record("gru", 150, 3.0e6, 110.0, 8.0),  # front at 3e6: 200 - 95 * log(3)/log(4)
        _record("gru", 50, 0.5e6, 300.0, 0.5),  # cheaper than the front: not compared
    ]
    result = headline_figures(points)
    head = result["figures"]
    at3 = 200.0 + (105.0 - 200.0) * math.log(3.0) / math.log(4.0)
    assert head["lm_egru_over_gru_ppl_at_equal_macs"] == pytest.approx(at3 / 110.0)
    # energy 8.0 lies above the whole EGRU front: compared with its dearest point (105),
    # the best EGRU at that energy or less -> 105 / 110 = 0.955, worse than 0.953
    assert head["lm_egru_over_gru_ppl_at_equal_energy"] == pytest.approx(105.0 / 110.0)
    rows = {r["width"]: r for r in result["details"]["lm_egru_over_gru_ppl_at_equal_energy"]}
    assert rows[150]["beyond_front"] and not rows[100]["beyond_front"]
    assert rows[50]["ratio"] is None
    assert head["dvs_egru_minus_gru_accuracy"] is None


def test_a_cheaper_better_egru_point_cannot_drop_a_dear_gru_comparison() -> None:
    dear = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 512, 4.0e6, 150.0, 4.0),
        _record("gru", 256, 3.0e6, 120.0, 3.0),  # better than every EGRU
    ]
    before = headline_figures(dear)["figures"]["lm_egru_over_gru_ppl_at_equal_energy"]
    assert before > 1.0
    cheaper = _record("egru", 512, 2.0e6, 140.0, 2.0)  # dominates the dear EGRU point
    cheaper["settings"]["prune"] = 0.5
    after = headline_figures([*dear, cheaper])["figures"]["lm_egru_over_gru_ppl_at_equal_energy"]
    assert after == pytest.approx(140.0 / 120.0)  # still compared, still not met


def test_fronts_compare_points_of_one_training_budget() -> None:
    points = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 512, 4.0e6, 100.0, 4.0),
        _record("gru", 100, 2.0e6, 160.0, 2.0),
    ]
    longer = _record("egru", 256, 3.0e6, 50.0, 3.0)  # a longer run must not join the front
    longer["settings"]["steps"] = 1000
    head = headline_figures([*points, longer])
    assert head["budgets"] == {"lm": 300, "dvs": None}
    assert head["figures"]["lm_egru_over_gru_ppl_at_equal_macs"] == pytest.approx(150.0 / 160.0)
    assert head["by_steps"]["1000"]["lm_egru_over_gru_ppl_at_equal_macs"] is None


def test_the_headline_uses_the_largest_budget_that_compares_egru_with_a_dense_cell() -> None:
    short = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 512, 4.0e6, 100.0, 4.0),
        _record("gru", 100, 2.0e6, 160.0, 2.0),
    ]
    long = [_record("egru", 256, 1.0e6, 150.0, 1.0), _record("gru", 100, 2.0e6, 120.0, 2.0)]
    for p in long:
        p["settings"]["steps"] = 1000
    head = headline_figures([*short, *long])  # fewer points at 1000 steps, but both cells
    assert head["budgets"]["lm"] == 1000
    assert head["figures"]["lm_egru_over_gru_ppl_at_equal_macs"] == pytest.approx(150.0 / 120.0)
    assert head["by_steps"]["300"]["lm_egru_over_gru_ppl_at_equal_macs"] == pytest.approx(
        150.0 / 160.0
    )


def test_ablation_variants_stay_off_the_fronts() -> None:
    variant = _record("egru", 256, 2.0e6, 50.0, 2.0)  # would dominate the front if on it
    variant["settings"]["recipe"] = [["carry", "y"]]
    points = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 512, 4.0e6, 100.0, 4.0),
        _record("gru", 100, 2.0e6, 160.0, 2.0),
        variant,
    ]
    head = headline_figures(points)["figures"]
    assert head["lm_egru_over_gru_ppl_at_equal_macs"] == pytest.approx(150.0 / 160.0)


def test_ablations_pair_each_recipe_change_with_its_twin_and_judge_by_seed_spread() -> None:
    def with_recipe(record: dict, recipe: list) -> dict:
        record["settings"]["recipe"] = recipe
        return record

    points = [
        _record("egru", 256, 1.0e6, 200.0, 1.0),
        _record("egru", 256, 1.0e6, 204.0, 1.0, seed=1),  # seed spread 2 %
        with_recipe(_record("egru", 256, 1.0e6, 190.0, 1.0), [["carry", "y"]]),  # 5 % better
        with_recipe(_record("egru", 256, 1.0e6, 199.0, 1.0), [["weight_decay", 0.1]]),  # 0.5 %
        with_recipe(_record("egru", 512, 1.0e6, 150.0, 1.0), [["carry", "y"]]),  # no twin
    ]
    rows = {r["change"]: r for r in ablations(points)}
    assert sorted(rows) == ["carry=y", "weight_decay=0.1"]
    assert rows["carry=y"]["ratio"] == pytest.approx(0.95)
    assert rows["carry=y"]["seed_spread"] == pytest.approx(0.02)
    assert rows["carry=y"]["helps"] is True and rows["weight_decay=0.1"]["helps"] is False
    lone = [_record("egru", 64, 1.0e6, 200.0, 1.0)]
    lone.append(with_recipe(_record("egru", 64, 1.0e6, 100.0, 1.0), [["carry", "y"]]))
    assert ablations(lone)[0]["helps"] is None  # one seed: no spread to judge against


def test_unit_counting_meter_finds_units_that_never_fire() -> None:
    from snn_egru.sweep.measure import UnitCountingMeter

    rng = np.random.default_rng(0)
    meter = UnitCountingMeter(
        [(rng.normal(size=(12, 3)), rng.normal(size=(12, 4)))], track_time=False
    )
    events = rng.random((5, 2, 4)) * (rng.random((5, 2, 4)) > 0.3)
    events[:, :, 1] = 0.0  # unit 1 never fires
    events[0, 0, 2] = 1.0  # every other unit fires at least once
    events[0, 0, 0] = events[0, 0, 3] = 1.0
    meter.update(rng.normal(size=(5, 2, 3)), [torch.from_numpy(events)])
    assert meter.dead_units() == [1]
    assert meter.result().layers[0].events == int(np.count_nonzero(events))


def test_dense_standin_fires_every_unit_every_step_with_the_model_weights() -> None:
    from snn_egru.models.lm import EGRULanguageModel, lm_preset
    from snn_egru.sweep.measure import dense_standin_artifact

    torch.manual_seed(0)
    for cell in ("gru", "lstm"):
        model = EGRULanguageModel(lm_preset("tiny", vocab_size=20, cell=cell)).eval()
        artifact = dense_standin_artifact(model)
        run = artifact.run_reference(np.arange(12) % 20)
        assert all((events != 0).all() for events in run.layer_events)
        first = model.rnn.layers[0]
        np.testing.assert_array_equal(
            np.asarray(artifact.layers[0].weight_hh), first.weight_hh_l0.detach().numpy()[: 3 * 24]
        )


def test_harder_synthetic_gestures_keep_the_default_unchanged() -> None:
    from snn_egru.data.synthetic_dvs import SyntheticGestureConfig, generate_gesture_events

    default = SyntheticGestureConfig(duration_s=0.2)
    hard = SyntheticGestureConfig.harder(duration_s=0.2)
    assert default.distractors == 0 and hard.distractors == 2
    assert default.fingerprint() != hard.fingerprint()
    assert SyntheticGestureConfig().fingerprint() == "b8b8ced50f92"  # the key before the option
    plain = generate_gesture_events(4, seed=7, config=default)
    harder = generate_gesture_events(4, seed=7, config=hard)
    assert len(harder) > len(plain)
    with pytest.raises(ValueError, match="distractors must be an integer >= 0"):
        SyntheticGestureConfig(distractors=-1)


def test_docs_tradeoff_md_is_generated_from_docs_tradeoff_json() -> None:
    doc = json.loads((REPO / "docs" / "tradeoff.json").read_text())
    assert render_markdown(doc) == (REPO / "docs" / "tradeoff.md").read_text()
    assert doc["points"] and all(p["status"] in ("done", "does_not_fit") for p in doc["points"])


def test_snn_egru_sweep_is_the_same_command(tmp_path, capsys) -> None:
    from snn_egru.cli import main as snn_egru_main

    assert snn_egru_main(["sweep", "run", "--quick", "--shard", "3/2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["snn-egru sweep: error: --shard 3/2: slice 3 is out of range 1..2"]
    assert snn_egru_main(["sweep", "run", "--quick", "--list", "--out", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_rechip_tokens_runs_the_chip_over_more_tokens_and_keeps_the_key(quick, tmp_path) -> None:
    folder = tmp_path / "q"
    shutil.copytree(quick, folder)
    before = {p.name: json.loads(p.read_text()) for p in (folder / "points").glob("*.json")}
    argv = ["run", "--quick", "--out", str(folder), "--rechip"]
    assert main([*argv, "--rechip-tokens", "12"]) == 0
    for name, old in before.items():
        new = json.loads((folder / "points" / name).read_text())
        assert old["chip"]["steps"] == 30 and new["chip"]["steps"] == 12
        assert new["chip_rerun_tokens"] == 12 and new["settings"] == old["settings"]
        assert new["quality"] == old["quality"]
    assert main([*argv, "--rechip-tokens", "0"]) == 0  # every test token it was evaluated on
    for name in before:
        new = json.loads((folder / "points" / name).read_text())
        assert new["chip"]["steps"] == 60  # --test-tokens of --quick
    log = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert [r.get("rechip_tokens") for r in log[-2:]] == [12, 0]


def test_rechip_tokens_without_rechip_is_refused(tmp_path, capsys) -> None:
    argv = ["run", "--quick", "--out", str(tmp_path / "x"), "--rechip-tokens", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rechip-tokens goes with --rechip" in err[0]


def test_merge_takes_one_point_file_of_another_folder_with_its_runs(quick, tmp_path) -> None:
    other = tmp_path / "other"
    shutil.copytree(quick, other)
    with open(other / "runs.jsonl", "a", encoding="utf-8") as log:  # a run of other points
        log.write(json.dumps({"command": "x run --task lm --cells gru --widths 9 --out o"}) + "\n")
        log.write(json.dumps({"command": "x merge o --json j"}) + "\n")
    egru = next(p for p in _points(other) if p["settings"]["cell"] == "egru")
    file = other / "points" / f"{egru['key']}.json"
    merged = tmp_path / "m.json"
    assert main(["merge", str(file), "--json", str(merged)]) == 0
    doc = json.loads(merged.read_text())
    assert [p["key"] for p in doc["points"]] == [egru["key"]]
    assert doc["runs"] and all("--quick" in r["command"] for r in doc["runs"])
    assert str(file) in doc["commands"][-1]
    both = tmp_path / "b.json"  # the folder and a file of it: each point and run once
    assert main(["merge", str(other), str(file), "--json", str(both)]) == 0
    again = json.loads(both.read_text())
    assert len(again["points"]) == 2 and len(again["runs"]) == len(_runs(other))


def test_merge_refuses_a_file_that_is_not_a_point(tmp_path, capsys) -> None:
    bad = tmp_path / "points" / "x.json"
    bad.parent.mkdir()
    bad.write_text("[1, 2]\n")
    assert main(["merge", str(bad), "--json", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a sweep point" in err[0]
