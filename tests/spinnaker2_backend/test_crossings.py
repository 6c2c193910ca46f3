"""Chip boundaries in the placement and chip-to-chip crossings (mapping/crossings.py),
counted by hand on small placements."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend import Machine, MappingError, map_network
from spinnaker2_backend.constants import CycleCosts, EnergyCosts
from spinnaker2_backend.mapping.crossings import (
    all_fire_events,
    check_chip_boundaries,
    count_crossings,
)
from tests.spinnaker2_backend.conftest import zero_bias_layer


def _artifact(sizes, inputs=4, seed=0):
    rng = np.random.default_rng(seed)
    layers, width = [], inputs
    for h in sizes:
        w_ih = rng.normal(0, 0.5, (3 * h, width)).astype(np.float32)
        w_hh = rng.normal(0, 0.5, (3 * h, h)).astype(np.float32)
        layers.append(zero_bias_layer(w_ih, w_hh, 0.05))
        width = h
    return DeploymentArtifact(layers=layers, input_kind="features")


def _mapped(sizes, chips: int, **options):
    """:func:`_artifact` of ``sizes`` mapped with dense weights onto ``chips`` chips."""
    return map_network(
        _artifact(sizes), machine=Machine(chips=chips), weight_format="dense", **options
    )


def test_two_chips_one_boundary_by_hand():
    mapping = _mapped((8, 8), 2, max_units_per_pe=4, chip_boundaries=(0,))
    placement = mapping.placement
    assert placement.chips_of(0) == (0,) and placement.chips_of(1) == (1,)
    check_chip_boundaries(mapping, (0,))
    pe0, pe1 = placement.layers[0][0].pe, placement.layers[0][1].pe
    pe2, pe3 = placement.layers[1][0].pe, placement.layers[1][1].pe
    assert [pe // 152 for pe in (pe0, pe1, pe2, pe3)] == [0, 0, 1, 1]  # 152 PEs a chip
    x = count_crossings(mapping, {pe0: 2.0, pe1: 3.0, pe2: 5.0, pe3: 1.0})
    # layer 0: every event goes to layer 1 on chip 1, one link (chip 0 -> chip 1, east)
    assert x.layers[0].events == 5 and x.layers[0].events_leaving == 5
    assert x.layers[0].link_packets == 5 and x.layers[0].link_bytes == 40
    assert x.layers[0].pairs == {(0, 1): 5.0}
    # layer 1 (the last) sends to its own PEs on chip 1 only
    assert x.layers[1].events == 6 and x.layers[1].link_packets == 0
    assert x.pairs == {(0, 1): 5.0} and x.link_bytes == 40
    costs, energy = CycleCosts(), EnergyCosts()
    assert x.link_time_s == pytest.approx(5 * costs.chip_link_packet_cycles / 150e6)
    assert x.link_energy_j == pytest.approx(5 * energy.chip_link_energy_j)
    assert x.to_dict()["pairs"] == [
        {"from_chip": 0, "to_chip": 1, "link_packets": 5.0, "link_bytes": 40.0}
    ]
    assert "0 -> 1" in x.table()
    # without the boundary both layers share chip 0 and nothing crosses
    packed = _mapped((8, 8), 2, max_units_per_pe=4)
    assert count_crossings(packed, all_fire_events(packed)).link_packets == 0
    with pytest.raises(MappingError, match="after layer 0 is not a chip boundary"):
        check_chip_boundaries(packed, (0,))


def test_three_chips_the_multicast_tree_crosses_each_link_once():
    # layer 0 (8 PEs) on chip 0; layer 1 (160 PEs) on chips 1 and 2 (a row of the board)
    mapping = _mapped((8, 160), 3, max_units_per_pe=1, chip_boundaries=(0,))
    placement = mapping.placement
    assert placement.chips_of(0) == (0,) and placement.chips_of(1) == (1, 2)
    x = count_crossings(mapping, all_fire_events(mapping))
    # a layer-0 event reaches chips 1 and 2: links 0->1 and 1->2, once each (not 1 + 2)
    assert x.layers[0].events_leaving == 8 and x.layers[0].link_packets == 16
    assert x.layers[0].pairs == {(0, 1): 8.0, (1, 2): 8.0}
    # layer 1: 152 PEs on chip 1 send to its 8 PEs on chip 2 and back
    assert x.layers[1].link_packets == 160
    assert x.layers[1].pairs == {(1, 2): 152.0, (2, 1): 8.0}
    assert x.pairs == {(0, 1): 8.0, (1, 2): 160.0, (2, 1): 8.0}
    costs = CycleCosts()
    assert x.link_time_s == pytest.approx(160 * costs.chip_link_packet_cycles / 150e6)


@pytest.mark.parametrize(("boundaries", "match"), [((1,), "after layer 1"), ((5,), "layer 5")])
def test_a_boundary_the_network_does_not_have_is_refused(boundaries, match):
    with pytest.raises(MappingError, match=match):
        _mapped((8, 8), 2, chip_boundaries=boundaries)


def test_boundaries_that_need_more_chips_say_how_many():
    with pytest.raises(MappingError, match="chip boundaries after layers \\[0\\]") as info:
        _mapped((8, 8), 1, chip_boundaries=(0,))
    assert "chips=2" in str(info.value)


def _bottleneck_artifact(tmp_path, marks=(1,)):
    art = _artifact((24, 6, 16))
    art.metadata = {"model": {"config": {"fields": {"bottleneck_layers": list(marks)}}}}
    return str(art.save(tmp_path / "b.npz"))


def test_map_cli_places_bottleneck_boundaries_and_prints_crossings(tmp_path, capsys):
    from spinnaker2_backend.cli import main

    path = _bottleneck_artifact(tmp_path)
    argv = ["map", path, "--chips", "2", "--max-units-per-pe", "4", "--weight-format", "dense"]
    assert main([*argv, "--chip-boundaries", "bottlenecks", "--crossings"]) == 0
    out = capsys.readouterr().out
    assert "chip boundaries after layers [1]" in out and "0 -> 1" in out
    assert main([*argv, "--chip-boundaries", "1", "--crossings", "--json"]) == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--chip-boundaries", "2"], "no layer boundary after layer 2"),
        (["--chip-boundaries", "0,x"], "--chip-boundaries"),
        (["--chip-boundaries", "-1"], "--chip-boundaries"),
        (["--chips", "1", "--chip-boundaries", "1"], "--chips 2"),
    ],
)
def test_map_cli_boundary_mistakes_exit_2_with_one_line(tmp_path, capsys, extra, match):
    from spinnaker2_backend.cli import main

    argv = ["map", _bottleneck_artifact(tmp_path), "--chips", "2", *extra]
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_map_cli_bottlenecks_without_any_and_a_spilling_bottleneck(tmp_path, capsys):
    from spinnaker2_backend.cli import main

    plain = _artifact((8, 8))
    path = str(plain.save(tmp_path / "p.npz"))
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["map", path, "--chips", "2", "--chip-boundaries", "bottlenecks"]))
    assert info.value.code == 2
    assert "no bottleneck layers" in capsys.readouterr().err
    # layer 0 fills chip 0 (150 PEs), the bottleneck's 4 PEs spill onto chip 1
    spill = _artifact((150, 4, 8))
    spill.metadata = {"model": {"config": {"fields": {"bottleneck_layers": [1]}}}}
    path = str(spill.save(tmp_path / "s.npz"))
    argv = ["map", path, "--chips", "3", "--max-units-per-pe", "1", "--weight-format", "dense"]
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main([*argv, "--chip-boundaries", "bottlenecks"]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bottleneck layer 1 spills onto chip(s) [1]" in err[0]


def test_run_cli_places_bottleneck_boundaries_and_prints_the_runs_crossings(tmp_path, capsys):
    import json

    from spinnaker2_backend.cli import main

    path = _bottleneck_artifact(tmp_path)
    argv = ["run", path, "--chips", "2", "--max-units-per-pe", "4", "--weight-format", "dense"]
    argv += ["--steps", "5"]
    assert main([*argv, "--chip-boundaries", "bottlenecks", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cross = report["crossings"]
    # only the 6-unit bottleneck (layer 1) sends events to the other chip, at most all six
    # per token, each over one link; nothing of layer 0 or 2 crosses
    assert cross["source"] == "run"
    per_layer = {x["layer"]: x for x in cross["layers"]}
    assert per_layer[0]["link_packets"] == 0 and per_layer[2]["link_packets"] == 0
    assert 0 < per_layer[1]["link_packets"] <= 6
    assert cross["link_packets"] == per_layer[1]["link_packets"]
    assert main([*argv, "--chip-boundaries", "1"]) == 0
    assert "0 -> 1" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main([*argv, "--chip-boundaries", "2"]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no layer boundary after layer 2" in err[0]
