"""The bottleneck study page (snn_egru.bottleneck_report): the figures it computes from
sweep points, its command-line errors, and docs/bottleneck.md current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snn_egru.bottleneck_page import plot
from snn_egru.bottleneck_report import collect, main, render_markdown

REPO = Path(__file__).resolve().parents[2]


def _record(key, ratio, ppl, packets, sizes, marks):
    settings = {
        "task": "lm",
        "cell": "egru",
        "width": 64,
        "layers": 2,
        "seed": 0,
        "steps": 300,
        "data": "ptb",
        "preset": "small",
        "layer_per_chip": True,
    }
    if ratio:
        settings["bottleneck"] = ratio
    return {
        "key": key,
        "label": f"point {key}",
        "status": "done",
        "settings": settings,
        "model_config": {"hidden_sizes": sizes, "bottleneck_layers": marks},
        "quality": {"test_perplexity": ppl},
        "test_tokens": 1000,
        "activity_sparsity": 0.7,
        "layer_activity_sparsity": [0.7] * len(sizes),
        "train_s": 10.0,
        "threads": 2,
        "load_before": "1 1 1",
        "load_after": "1 1 1",
        "chip": {
            "pes_used": 10,
            "pes_per_chip": [5, 5],
            "chip_boundaries": [0],
            "steps": 100,
            "seconds_per_token": 1e-4,
            "energy_j_per_token": 1e-5,
            "crossings": {
                "events_leaving": packets,
                "link_packets": packets,
                "link_bytes": 8 * packets,
                "link_time_s": 1e-7,
                "link_energy_j": 1e-9,
                "pairs": [],
            },
        },
    }


def _sweep(tmp_path, records):
    folder = tmp_path / "sweep"
    (folder / "points").mkdir(parents=True)
    for r in records:
        (folder / "points" / f"{r['key']}.json").write_text(json.dumps(r))
    (folder / "runs.jsonl").write_text(
        json.dumps(
            {
                "command": "snn-egru sweep run ...",
                "shard": "1/1",
                "wall_s": 60,
                "threads": 2,
                "load_before": "1",
                "load_after": "1",
            }
        )
        + "\n"
    )
    return folder


def test_reduction_cost_and_recommendation_are_computed_against_the_baseline(tmp_path):
    folder = _sweep(
        tmp_path,
        [
            _record("a", 0, 200.0, 40.0, [64, 64], []),
            _record("b", 4, 204.0, 10.0, [64, 16, 64], [1]),  # 4x, +2 %
            _record("c", 8, 210.0, 5.0, [64, 8, 64], [1]),  # 8x, +5 %
        ],
    )
    doc = collect([folder])
    by_key = {p["key"]: p for p in doc["points"]}
    assert by_key["a"]["c2c_traffic_reduction"] == 1.0 and by_key["a"]["ppl_cost"] == 0.0
    assert by_key["b"]["c2c_traffic_reduction"] == 4.0
    assert by_key["b"]["ppl_cost"] == pytest.approx(0.02)
    assert by_key["c"]["c2c_traffic_reduction"] == 8.0 and by_key["c"]["k"] == 8
    rec = doc["recommended"]
    assert rec["key"] == "b" and rec["traffic_target_met"] and rec["ppl_target_met"]
    page = render_markdown(doc)
    # no one-layer reference: whether the plain stack trains is unknown, nothing is claimed
    assert rec["baseline_trains"] is None and not rec["target_met"]
    assert "**not claimed**" in page
    assert "| egru 64/16/64 | egru | 300 | 0 | none | 4 | 16 | 204.0 | +2.0 % |" in page
    # trained points on 2 chips, no projection: the page says the 4-chip case is not covered
    assert "(chips used: 2). None of them uses 4 chips or more." in page
    assert "No projection at scale was collected" in page
    assert "(plain stack, seed 0) has no one-layer model" in page
    one = _record("r", 0, 199.0, 0.0, [64], [])
    one["settings"].update(layers=1, layer_per_chip=False)
    (folder / "points" / "r.json").write_text(json.dumps(one))
    doc = collect([folder])
    assert doc["recommended"]["target_met"] and doc["recommended"]["baseline_trains"]
    assert "**met**" in render_markdown(doc)
    # none within 3 %: the cheapest in perplexity is recommended, the target is not met
    folder2 = _sweep(
        tmp_path / "2",
        [
            _record("a", 0, 200.0, 40.0, [64, 64], []),
            _record("c", 8, 210.0, 5.0, [64, 8, 64], [1]),
        ],
    )
    rec = collect([folder2])["recommended"]
    assert rec["key"] == "c" and not rec["ppl_target_met"]
    assert "**not met**" in render_markdown(collect([folder2]))


def test_collect_without_a_baseline_and_other_mistakes_exit_2(tmp_path, capsys):
    folder = _sweep(tmp_path, [_record("b", 4, 204.0, 10.0, [64, 16, 64], [1])])
    out = str(tmp_path / "b.json")
    assert main(["collect", str(folder), "--json", out]) == 2
    assert "no point without bottleneck" in capsys.readouterr().err
    assert main(["collect", str(tmp_path / "nowhere"), "--json", out]) == 2
    assert main(["render", str(tmp_path / "missing.json"), "--md", str(tmp_path / "x.md")]) == 2
    good = _sweep(
        tmp_path / "g",
        [
            _record("a", 0, 200.0, 40.0, [64, 64], []),
            _record("b", 4, 204.0, 10.0, [64, 16, 64], [1]),
        ],
    )
    capsys.readouterr()
    assert main(["collect", str(good), "--json", out]) == 0
    assert main(["collect", str(good), "--json", out]) == 2  # exists: --overwrite needed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[-1]


def test_docs_bottleneck_md_is_generated_from_docs_bottleneck_json():
    doc = json.loads((REPO / "docs" / "bottleneck.json").read_text())
    assert (
        render_markdown(doc, "figures/bottleneck.png")
        == (REPO / "docs" / "bottleneck.md").read_text()
    )
    assert (REPO / "docs" / "figures" / "bottleneck.png").is_file()


def test_page_states_budget_recipe_and_the_one_layer_reference(tmp_path):
    recipe = [["lr", 0.005]]
    records = [
        _record("a", 0, 300.0, 40.0, [64, 64], []),
        _record("b", 4, 240.0, 10.0, [64, 16, 64], [1]),  # beats an undertrained stack
        _record("x", 0, 900.0, 40.0, [64, 64], []),  # another recipe: its own baseline
    ]
    for r in records[:2]:
        r["settings"]["recipe"] = recipe
    one = _record("r", 0, 200.0, 0.0, [64], [])
    one["settings"].update(layers=1, layer_per_chip=False, recipe=recipe)
    worse = _record("w", 0, 260.0, 0.0, [64], [])
    worse["settings"].update(layers=1, layer_per_chip=False)
    doc = collect([_sweep(tmp_path, [*records, one, worse])])
    by_key = {p["key"]: p for p in doc["points"]}
    assert "r" not in by_key and sorted(r["key"] for r in doc["one_layer_references"]) == [
        "r",
        "w",
    ]
    assert by_key["b"]["ppl_cost"] == pytest.approx(-0.2)  # against "a", not "x"
    assert by_key["a"]["one_layer_perplexity"] == 200.0
    # the reference is the best one-layer point of the same width, steps and seed, any recipe
    assert by_key["x"]["one_layer_perplexity"] == 200.0
    rec = doc["recommended"]
    assert rec["key"] == "b" and rec["steps"] == 300 and rec["recipe"] == recipe
    page = render_markdown(doc)
    assert "300 training steps for every point" in page and "seed 0" in page
    assert "`lr=0.005`" in page
    assert "reaches 300.0 test perplexity" in page and "(+50.0 %)" in page
    assert "50.0 % worse than the one-layer model" in page  # why the bottleneck "wins"
    assert rec["ppl_target_met"] and rec["baseline_trains"] is False and not rec["target_met"]
    assert "**not claimed**" in page and "no trained baseline" in page


def test_keep_merges_an_earlier_study_whose_folders_are_gone(tmp_path, capsys):
    """``collect NEW --keep OLD.json``: the old points stay (their folders may be gone), a
    point trained again replaces its copy, new points share the old baseline, the page
    lists both collect commands, and the bottleneck's own L1 is shown beside its kind."""
    old_folder = _sweep(
        tmp_path / "old",
        [
            _record("a", 0, 200.0, 40.0, [64, 64], []),
            _record("b", 4, 220.0, 10.0, [64, 16, 64], [1]),
        ],
    )
    old_json = tmp_path / "old.json"
    assert main(["collect", str(old_folder), "--json", str(old_json)]) == 0
    again = _record("a", 0, 205.0, 40.0, [64, 64], [])  # the baseline trained again here
    sparse = _record("s", 2, 209.1, 8.0, [64, 32, 64], [1])
    sparse["settings"].update(bottleneck_kind="ff", bottleneck_l1=0.03)
    new_folder = _sweep(tmp_path / "new", [again, sparse])
    doc = collect([new_folder], keep=[old_json])
    by = {(p["key"], p["source"]): p for p in doc["points"]}
    old, new = str(old_folder), str(new_folder)  # a kept point keeps the batch it came from
    assert sorted(by) == sorted([("a", old), ("b", old), ("a", new), ("s", new)])
    # both copies of "a" stay, each the baseline of its own batch
    assert by["b", old]["ppl_cost"] == pytest.approx(0.10)
    assert by["s", str(new_folder)]["c2c_traffic_reduction"] == 5.0
    assert by["s", str(new_folder)]["ppl_cost"] == pytest.approx(0.02)
    assert by["s", str(new_folder)]["bottleneck_l1"] == 0.03
    rec = doc["recommended"]
    assert rec["key"] == "s" and rec["bottleneck_l1"] == 0.03
    page = render_markdown(doc)
    assert f"collect {old_folder} --json docs/bottleneck.json --overwrite" in page
    assert f"collect {new_folder} --keep {old_json} --json docs/bottleneck.json" in page
    assert "| egru 64/32/64 | ff L1=0.03 | 300 | 0 | none | 2 | 32 | 209.1 | +2.0 % |" in page
    assert f"| `{new_folder}` |" in page and f"| `{old_folder}` |" in page
    # collecting the same folder again onto its own output keeps each point once
    new_json = tmp_path / "new.json"
    new_json.write_text(json.dumps(doc))
    again_doc = collect([new_folder], keep=[new_json])
    assert sorted((p["key"], p["source"]) for p in again_doc["points"]) == sorted(by)
    assert "`--bottleneck-l1 0.03`" in page
    assert len(doc["commands"]) == 1  # the same command string is listed once
    plot(doc, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    # a missing or foreign --keep file: one line, exit 2
    capsys.readouterr()
    out = str(tmp_path / "n.json")
    for name in ("no.json", "bad.json"):
        if name == "bad.json":
            (tmp_path / name).write_text("[1, 2]")
        args = ["collect", str(new_folder), "--keep", str(tmp_path / name), "--json", out]
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no study JSON there" in err[0] and "not a study JSON" in err[1]
