"""The published LM deployment at a trained LM's activity (issue 22, items 1-2): the stand-in
fires like a trained LM, the obvious command fits, the bitmap receive design is accounted
and counted as documented, and bad input exits 2 with one line."""

from __future__ import annotations

import numpy as np
import pytest

from spinnaker2_backend import map_network, synthetic_network
from spinnaker2_backend.cli import main
from spinnaker2_backend.mapping.base import MappingError
from spinnaker2_backend.receive_designs import receive_bytes
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.synthetic import (
    ACTIVITY_TOLERANCE,
    TRAINED_LM_ACTIVITY,
    ActivityError,
    activity_workload,
    published_receive,
)
from spinnaker2_backend.timing import OP_INDEX


def test_the_stand_in_fires_like_a_trained_lm(paper_lm):
    meta = paper_lm.metadata["synthetic"]
    assert meta["activity_target"] == [TRAINED_LM_ACTIVITY] * 3
    for got in meta["activity"]:
        assert abs(got - TRAINED_LM_ACTIVITY) <= ACTIVITY_TOLERANCE
    # the chip's own run of the tuning workload fires the same (float32, same numbers)
    policy, capacity = published_receive(paper_lm, "csr")
    mapping = map_network(
        paper_lm, pes_per_layer=50, receive_policy=policy, receive_capacity=capacity
    )
    run = run_mapping(mapping, activity_workload(paper_lm), record=False)
    for got in run.activity():
        assert abs(got - TRAINED_LM_ACTIVITY) <= 2 * ACTIVITY_TOLERANCE


def test_another_activity_per_layer_and_one_out_of_reach():
    net = synthetic_network(layer_sizes=(60, 40), input_size=20, sparsity=0.5, activity=(0.3, 0.1))
    got = net.metadata["synthetic"]["activity"]
    assert abs(got[0] - 0.3) <= ACTIVITY_TOLERANCE and abs(got[1] - 0.1) <= ACTIVITY_TOLERANCE
    with pytest.raises(ActivityError, match="at most"):
        synthetic_network(layer_sizes=(60,), input_size=20, activity=0.95)
    with pytest.raises(ActivityError, match="one per layer"):
        synthetic_network(layer_sizes=(60, 40), input_size=20, activity=(0.2, 0.2, 0.2))


def test_the_published_command_fits(capsys):
    argv = ["map", "--synthetic", "paper-lm", "--sparsity", "0.95", "--pes-per-layer", "50"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "receive policy: bitmap16" in out and "fits: yes" in out
    assert "PEs used: 150 (50 + 50 + 50 per layer)" in out
    assert main([*argv, "--balance", "units"]) == 0
    assert "fits: yes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--activity", "0.97"], "cannot fire"),
        (["--activity", "1.5"], "(0, 1)"),
        (["--activity", "0.2,0.2,0.2"], "one per layer"),
    ],
)
def test_bad_activity_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        rc = main(["map", "--synthetic", "paper-dvs", "--weight-format", "dense", *argv])
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_activity_needs_a_synthetic_network(tmp_path, capsys):
    path = synthetic_network(layer_sizes=(8,), input_size=4, sparsity=0.5).save(tmp_path / "n.npz")
    assert main(["map", str(path), "--activity", "0.2"]) == 2
    assert "--activity applies to --synthetic" in capsys.readouterr().err


def test_a_tick_shorter_than_the_work_and_an_unknown_level_exit_2(capsys):
    argv = ["run", "--synthetic", "paper-dvs", "--weight-format", "dense", "--steps", "3"]
    assert main([*argv, "--tick-us", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "missed their deadline" in err[-1] and "at least" in err[-1]
    assert main([*argv, "--clock-mhz", "200"]) == 2
    assert "the PE clock is 150 or 300 MHz, got 200" in capsys.readouterr().err


def test_bitmap_bytes_in_the_mapping_are_the_design_accounting():
    net = synthetic_network(layer_sizes=(40, 24), input_size=16, sparsity=0.8, seed=1)
    m = map_network(net, max_units_per_pe=8, receive_policy="bitmap16", receive_capacity=[7, 9])
    for layout in m.memory.values():
        layer = layout.layer
        expected = receive_bytes(
            "bitmap16",
            input_size=net.layers[layer].input_size,
            hidden_size=net.layers[layer].hidden_size,
            input_by_packets=layer > 0,
            capacity=[7, 9][layer],
        )
        assert layout.receive_buffers == expected
    with pytest.raises(MappingError, match="bitmap16"):
        map_network(net, receive_policy="bitmap16", weight_format="dense")


def test_bitmap_counts_by_hand():
    """Two PEs, CSR: hits are the stored weights in the columns of sources that fired."""
    net = synthetic_network(layer_sizes=(6,), input_size=5, sparsity=0.4, seed=2, activity=0.3)
    m = map_network(
        net, max_units_per_pe=3, receive_policy="bitmap16", receive_capacity=6,
        input_source="host",
    )  # fmt: skip
    xs = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    xs[:, 1] = 0.0  # source 1 never fires
    run = run_mapping(m, xs, record=True)
    ops = run.step_ops[0]  # (T, OPS, P)
    w_ih = net.layers[0].weight_ih.toarray()
    w_hh = net.layers[0].weight_hh.toarray()
    y = run.layer_events[0]
    for t in range(len(xs)):
        y_prev = y[t - 1] if t else np.zeros(6)
        for p, rows in enumerate((np.r_[0:3, 6:9, 12:15], np.r_[3:6, 9:12, 15:18])):
            hits_in = np.count_nonzero(w_ih[rows][:, xs[t] != 0])
            hits_rec = np.count_nonzero(w_hh[rows][:, y_prev != 0])
            assert ops[t, OP_INDEX["input_hits"], p] == hits_in
            assert ops[t, OP_INDEX["recurrent_hits"], p] == hits_rec
            appended = np.count_nonzero(xs[t]) + np.count_nonzero(y_prev)
            assert ops[t, OP_INDEX["list_entries"], p] == appended
            # 5 and 6 sources -> 1 bitmap word and 1 rank word zeroed, 1 rank entry built
            assert ops[t, OP_INDEX["words_cleared"], p] == 2
            assert ops[t, OP_INDEX["rank_words"], p] == 1
