"""The sweep's bottleneck axis (snn_egru.sweep.grid): points, keys, chip boundaries, errors;
and one tiny bottlenecked LM point run end to end with its crossings."""

from __future__ import annotations

import json

import pytest

from snn_egru.errors import UserError
from snn_egru.sweep.grid import Grid, SweepPoint


def test_the_axis_adds_egru_points_and_leaves_other_keys_alone():
    grid = Grid(task="lm", cells=("egru", "gru"), widths=(64,), layers=(3,), bottlenecks=(0, 4))
    points = grid.points()
    assert [(p.cell, p.bottleneck) for p in points] == [("egru", 0.0), ("egru", 4.0), ("gru", 0.0)]
    plain = points[0]
    assert "bottleneck" not in plain.settings() and "layer_per_chip" not in plain.settings()
    assert plain.key == SweepPoint(task="lm", cell="egru", width=64, layers=3).key
    assert points[1].key != plain.key
    assert "bottleneck n/k=4" in points[1].label()


def test_chip_boundaries_follow_the_bottlenecks():
    base = SweepPoint(task="lm", cell="egru", width=64, layers=4)
    assert base.chip_boundaries() == ()
    from dataclasses import replace

    assert replace(base, layer_per_chip=True).chip_boundaries() == (0, 1, 2)
    assert replace(base, layer_per_chip=True, bottleneck=8).chip_boundaries() == (1, 3, 5)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"layers": (1,), "bottlenecks": (4,)}, "needs --layers >= 2"),
        ({"bottlenecks": (1,)}, "must be 0 \\(none\\) or > 1"),
        ({"bottlenecks": (0.5,)}, "must be 0 \\(none\\) or > 1"),
        ({"bottlenecks": (100,)}, "k = 0 units"),
    ],
)
def test_bad_bottleneck_axes_are_user_errors(changes, match):
    settings = {"task": "lm", "cells": ("egru",), "widths": (64,), "layers": (2,), **changes}
    with pytest.raises(UserError, match=match):
        Grid(**settings)


def test_dvs_has_no_bottleneck_axis():
    with pytest.raises(UserError, match="LM points"):
        Grid(
            task="dvs",
            cells=("egru",),
            widths=(64,),
            layers=(2,),
            bottlenecks=(4,),
            data="synthetic",
        )


def test_cli_bad_ratio_exits_2_with_one_line(capsys, tmp_path):
    from snn_egru.sweep.cli import main

    code = main(
        [
            "run",
            "--task",
            "lm",
            "--cells",
            "egru",
            "--layers",
            "2",
            "--bottlenecks",
            "0,1",
            "--out",
            str(tmp_path / "s"),
            "--list",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bottlenecks" in err[0]


def test_a_tiny_bottleneck_point_runs_and_only_its_output_crosses(tmp_path):
    from snn_egru.sweep.cli import main

    out = tmp_path / "s"
    args = [
        "run",
        "--task",
        "lm",
        "--cells",
        "egru",
        "--widths",
        "16",
        "--layers",
        "2",
        "--bottlenecks",
        "0,4",
        "--layer-per-chip",
        "--chips",
        "2",
        "--steps",
        "3",
        "--preset",
        "tiny",
        "--data",
        "cyclic",
        "--test-tokens",
        "200",
        "--chip-tokens",
        "100",
        "--threads",
        "1",
        "--out",
        str(out),
        "--recipe",
        "threshold_value=0.0",
    ]
    assert main(args) == 0
    records = [json.loads(p.read_text()) for p in sorted((out / "points").glob("*.json"))]
    by_ratio = {r["settings"].get("bottleneck", 0.0): r for r in records}
    plain, narrow = by_ratio[0.0]["chip"], by_ratio[4.0]["chip"]
    assert by_ratio[4.0]["model_config"]["hidden_sizes"] == [16, 4, 16]
    assert plain["chip_boundaries"] == [0] and narrow["chip_boundaries"] == [1]
    assert plain["pes_per_chip"][1] > 0 and narrow["pes_per_chip"][1] > 0
    crossing = [x["link_packets"] > 0 for x in narrow["crossings"]["layers"]]
    assert crossing[0] is False and crossing[2] is False
    assert [x["link_packets"] > 0 for x in plain["crossings"]["layers"]][1] is False
